// ReasonSeg's image protocol: the reference script prompted SAM2 with the box alone, one call,
// single mask (multimask_output=False). Counted at the decoder: exactly one call, box corners only
// (labels 2, 3), no mask input, on video_decoder.onnx's single-mask token 0 when the folder has it;
// the samexporter-only folder falls back to its best multimask token. The two-call protocol stays an option.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createLogger } from '../../../activities/runtime/logger.js';
import {
  createSegmentActivities,
  type SegmentImageInput,
  type SegmentImageResult,
} from '../../../activities/segment/activities.js';
import {
  loadSam2Models,
  releaseSharedSam2Models,
  type Feeds,
  type Sam2Models,
} from '../../../activities/segment/models.js';
import { segmentImage } from '../../../activities/segment/sam2-image.js';
import { activityEnvironment } from '../../support/activity-env.js';
import { writeSam2TestModels } from '../../support/onnx-models.js';
import { sharedData } from '../../support/paths.js';
import { testConfig, testStore, uniqueId } from '../../support/stack.js';

const fullDir = mkdtempSync(join(tmpdir(), 'segflow-sam2-box-'));
const samexporterDir = mkdtempSync(join(tmpdir(), 'segflow-sam2-box-samexp-'));
const store = testStore();
const prefix = uniqueId('segment-image-protocol');
let models: Sam2Models;
/** Every decoder call: which graph, its point labels and whether a mask was fed in. */
const calls: { graph: string; labels: number[]; hasMask: number }[] = [];

function spy(m: Sam2Models): void {
  for (const key of ['decoder', 'videoDecoder'] as const) {
    const g = m.graphs[key];
    if (!g) continue;
    const run = g.run.bind(g);
    g.run = (feeds: Feeds) => {
      calls.push({
        graph: key,
        labels: [...(feeds.point_labels!.data as Float32Array)],
        hasMask: (feeds.has_mask_input!.data as Float32Array)[0]!,
      });
      return run(feeds);
    };
  }
}

before(async () => {
  await writeSam2TestModels(fullDir);
  await writeSam2TestModels(samexporterDir, { only: ['encoder', 'decoder'] });
  models = await loadSam2Models(fullDir, 'image');
  spy(models);
});
after(async () => {
  await models.release();
  await releaseSharedSam2Models();
  store.client.destroy();
});

const cars = { data: sharedData('images', 'cars.jpg'), label: 'cars.jpg' };
const box: [number, number, number, number] = [300, 200, 1900, 1300];

test('box protocol: one box-only decoder call on the single-mask token of video_decoder.onnx', async () => {
  calls.length = 0;
  const r = await segmentImage(models, cars, { box, point: [1100, 750] }, undefined, 'box');
  assert.deepEqual(calls, [{ graph: 'videoDecoder', labels: [2, 3], hasMask: 0 }]);
  assert.equal(r.decoderCalls, 1);
  assert.equal(r.decoder, 'videoDecoder');
  assert.notEqual(r.rule, 'multimask-argmax', 'a single-mask choice (token 0 or its stability fallback)');
  assert.ok(r.area > 0);
});

test('box-then-point stays available: two calls, the click fed the box mask', async () => {
  calls.length = 0;
  const r = await segmentImage(models, cars, { box, point: [1100, 750] }, undefined, 'box-then-point');
  assert.equal(r.decoderCalls, 2);
  assert.deepEqual(
    calls.map((c) => [c.graph, c.labels, c.hasMask]),
    [
      ['decoder', [2, 3], 0],
      ['decoder', [1], 1],
    ],
  );
});

test('through the activity: a ReasonSeg-style box+point prompt with protocol "box" makes one call; samexporter-only folders fall back to the best of 3 masks', async () => {
  const image = await store.putBytes(`${prefix}/cars.jpg`, readFileSync(cars.data), 'image/jpeg');
  const env = activityEnvironment();
  const run = async (modelsDir: string) => {
    const acts = createSegmentActivities({
      config: { ...testConfig(), segment: { ...testConfig().segment, modelsDir } },
      store,
      logger: createLogger('silent'),
    });
    const input: SegmentImageInput = {
      image: image.uri,
      prompt: { space: 'norm1000', box: [130, 130, 850, 870], point: [490, 500] },
      protocol: 'box',
      outputKey: `${prefix}/${modelsDir === fullDir ? 'full' : 'samexp'}-mask.png`,
    };
    return (await env.run(acts.segmentImage, input)) as SegmentImageResult;
  };
  const full = await run(fullDir);
  assert.deepEqual([full.decoderCalls, full.decoder], [1, 'videoDecoder']);
  const samexp = await run(samexporterDir);
  assert.deepEqual([samexp.decoderCalls, samexp.decoder], [1, 'decoder']);
});
