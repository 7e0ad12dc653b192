// SAM2 image mode on real photos with the generated test models: preprocessing, prompt mapping
// (non-square images), the box → point refinement, the upsample, and the activity on real S3.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import sharp from 'sharp';
import { createLogger } from '../../../activities/runtime/logger.js';
import { createSegmentActivities, type SegmentImageResult } from '../../../activities/segment/activities.js';
import {
  loadSam2Models,
  releaseSharedSam2Models,
  type Sam2Models,
} from '../../../activities/segment/models.js';
import { segmentImage } from '../../../activities/segment/sam2-image.js';
import { activityEnvironment } from '../../support/activity-env.js';
import { writeSam2TestModels } from '../../support/onnx-models.js';
import { sharedData } from '../../support/paths.js';
import { testConfig, testStore, uniqueId } from '../../support/stack.js';

const modelsDir = mkdtempSync(join(tmpdir(), 'segflow-sam2-image-'));
let models: Sam2Models;
const store = testStore();
const prefix = uniqueId('segment-image-test');
before(async () => {
  await writeSam2TestModels(modelsDir);
  models = await loadSam2Models(modelsDir, 'image');
});
after(async () => {
  await models.release();
  await releaseSharedSam2Models();
  store.client.destroy();
});

function maskBox(mask: Uint8Array, width: number, height: number) {
  let x0 = Infinity,
    y0 = Infinity,
    x1 = -1,
    y1 = -1,
    area = 0,
    sx = 0,
    sy = 0;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      if (mask[y * width + x]) {
        area++;
        sx += x;
        sy += y;
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
  return { x0, y0, x1, y1, area, cx: sx / area, cy: sy / area };
}

/** One low-res cell in original pixels (256 cells across each axis). */
const cell = (w: number, h: number) => ({ cx: w / 256, cy: h / 256 });

test('a box on the truck (1800×1200) gives a mask filling that box and nothing outside it', async () => {
  const box: [number, number, number, number] = [240, 330, 1420, 960];
  const r = await segmentImage(
    models,
    { data: sharedData('images', 'truck.jpg'), label: 'truck.jpg' },
    { box },
  );
  assert.equal(r.width, 1800);
  assert.equal(r.height, 1200);
  assert.equal(r.decoderCalls, 1);
  const b = maskBox(r.mask, r.width, r.height);
  const { cx, cy } = cell(r.width, r.height);
  for (const [got, want, tol] of [
    [b.x0, box[0], cx],
    [b.x1, box[2], cx],
    [b.y0, box[1], cy],
    [b.y1, box[3], cy],
  ] as const) {
    assert.ok(
      Math.abs(got - want) <= tol + 1,
      `mask edge ${got} vs box edge ${want} (±${tol.toFixed(1)} px)`,
    );
  }
  const boxArea = (box[2] - box[0]) * (box[3] - box[1]);
  assert.ok(b.area > 0.95 * boxArea && b.area < 1.02 * boxArea, `area ${b.area} vs box ${boxArea}`);
});

test('non-square 800×534: a 0–1000 box maps with W/1000 and H/1000, through the activity on S3', async () => {
  const bytes = readFileSync(sharedData('images', 'groceries.jpg'));
  const image = await store.putBytes(`${prefix}/groceries.jpg`, bytes, 'image/jpeg');
  const acts = createSegmentActivities({
    config: { ...testConfig(), segment: { ...testConfig().segment, modelsDir } },
    store,
    logger: createLogger('silent'),
  });
  const env = activityEnvironment();
  const res: SegmentImageResult = await env.run(acts.segmentImage, {
    image: image.uri,
    prompt: { space: 'norm1000' as const, box: [100, 500, 400, 900] as [number, number, number, number] },
    outputKey: `${prefix}/groceries-mask.png`,
  });
  assert.equal(res.width, 800);
  assert.equal(res.height, 534);
  const png = await store.getBytes(res.mask.uri);
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ['png', 800, 534, 1]);
  const { data } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  assert.ok(
    data.every((v) => v === 0 || v === 255),
    'mask is 0/255',
  );
  const b = maskBox(data, 800, 534);
  // the box in pixels is [80, 267, 320, 480.6]; a square-image assumption would put y at 0.5·800 = 400
  const { cx, cy } = cell(800, 534);
  assert.ok(Math.abs(b.x0 - 80) <= cx + 1 && Math.abs(b.x1 - 320) <= cx + 1, `x ${b.x0}..${b.x1}`);
  assert.ok(Math.abs(b.y0 - 267) <= cy + 1 && Math.abs(b.y1 - 480.6) <= cy + 1, `y ${b.y0}..${b.y1}`);
  assert.equal(res.area, b.area);
});

test('box then point: the point call gets the box mask as mask_input and stays inside the box', async () => {
  const box: [number, number, number, number] = [300, 200, 1900, 1300];
  const input = { data: sharedData('images', 'cars.jpg'), label: 'cars.jpg' };
  const boxOnly = await segmentImage(models, input, { box });
  const pointOnly = await segmentImage(models, input, { point: [1100, 750] });
  const both = await segmentImage(models, input, { box, point: [1100, 750] });
  assert.equal(both.decoderCalls, 2);
  const b = maskBox(both.mask, both.width, both.height);
  const { cx, cy } = cell(2250, 1500);
  assert.ok(
    b.x0 >= box[0] - cx && b.x1 <= box[2] + cx && b.y0 >= box[1] - cy && b.y1 <= box[3] + cy,
    JSON.stringify(b),
  );
  // the refined mask is the box mask (fed back as mask_input) plus the click, not the click alone
  assert.ok(both.area > 10 * pointOnly.area, `refined ${both.area} vs point-only ${pointOnly.area}`);
  assert.ok(both.area > 0.9 * boxOnly.area, `refined ${both.area} vs box-only ${boxOnly.area}`);
});

test('a click lands where it was made on a non-square image (disk centred on the point)', async () => {
  const r = await segmentImage(
    models,
    { data: sharedData('images', 'cars.jpg'), label: 'cars.jpg' },
    { point: [1600, 400] },
  );
  const b = maskBox(r.mask, r.width, r.height);
  const { cx, cy } = cell(2250, 1500);
  assert.ok(
    Math.abs(b.cx - 1600) < cx && Math.abs(b.cy - 400) < cy,
    `centroid ${b.cx.toFixed(1)},${b.cy.toFixed(1)}`,
  );
  // radius 12 cells → an ellipse of 12·W/256 by 12·H/256 pixels in the original frame
  assert.ok(Math.abs((b.x1 - b.x0) / 2 - 12 * cx) < 2 * cx, `half width ${(b.x1 - b.x0) / 2}`);
  assert.ok(Math.abs((b.y1 - b.y0) / 2 - 12 * cy) < 2 * cy, `half height ${(b.y1 - b.y0) / 2}`);
});

test('bad input and missing models fail as non-retryable ApplicationFailures that say what to do', async () => {
  const config = testConfig();
  const noModels = createSegmentActivities({
    config: { ...config, segment: { ...config.segment, modelsDir: undefined } },
    store,
    logger: createLogger('silent'),
  });
  const env = activityEnvironment();
  const input = {
    image: `${prefix}/x.jpg`,
    prompt: { space: 'pixels' as const, box: [0, 0, 10, 10] as [number, number, number, number] },
    outputKey: `${prefix}/x.png`,
  };
  await assert.rejects(env.run(noModels.segmentImage, input), (e: unknown) => {
    assert.ok(e instanceof ApplicationFailure);
    assert.equal(e.type, 'ModelFilesMissing');
    assert.equal(e.nonRetryable, true);
    assert.match(e.message, /export_sam2_onnx\.py/);
    return true;
  });
  const acts = createSegmentActivities({
    config: { ...config, segment: { ...config.segment, modelsDir } },
    store,
    logger: createLogger('silent'),
  });
  await store.putBytes(`${prefix}/corrupt.jpg`, Buffer.from('definitely not a jpeg'), 'image/jpeg');
  await assert.rejects(
    env.run(acts.segmentImage, { ...input, image: `${prefix}/corrupt.jpg` }),
    (e: unknown) => {
      assert.ok(e instanceof ApplicationFailure);
      assert.equal(e.type, 'BadInputError');
      assert.equal(e.nonRetryable, true);
      assert.match(e.message, /corrupt\.jpg: not a readable image/);
      return true;
    },
  );
  await assert.rejects(
    env.run(acts.segmentImage, { ...input, image: `${prefix}/missing.jpg` }),
    /image .*missing\.jpg does not exist/,
  );
  await assert.rejects(
    env.run(acts.segmentImage, { ...input, prompt: { space: 'norm1000', box: [0, 0, 10] } } as never),
    (e: unknown) =>
      e instanceof ApplicationFailure &&
      e.type === 'BadInputError' &&
      /segmentImage input is invalid: prompt\.box/.test(e.message),
  );
});
