// The media pipeline on the real public data in ../shared/data: bedroom.mp4 probed, 6 frames
// sampled and resized, an overlay video made; the three photos ingested into the real dev S3.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { extractFrames } from '../../../activities/media/frames.js';
import { probeVideo } from '../../../activities/media/probe.js';
import { linspaceIndices } from '../../../activities/media/sampling.js';
import { resizeForPolicy, resizeKeyframe } from '../../../activities/media/image.js';
import { ingestMedia } from '../../../activities/media/ingest.js';
import { overlayVideoFile } from '../../../activities/media/overlay.js';
import { storeVideoFrames } from '../../../activities/media/frame-store.js';
import { PolicyImages } from '../../../activities/media/policy-images.js';
import { sha256OfFile } from '../../../activities/storage/artifact-store.js';
import type { BinaryMask } from '../../../activities/media/rle.js';
import { sharedData } from '../../support/paths.js';
import { testStore } from '../../support/stack.js';

const bedroom = sharedData('videos', 'bedroom.mp4');
const store = testStore();
after(() => store.client.destroy());

test('bedroom.mp4 probes as 960×540, 30 fps, 200 frames, h264', async () => {
  const p = await probeVideo(bedroom);
  assert.deepEqual(
    { width: p.width, height: p.height, fps: p.fps, frames: p.frames, codec: p.codec },
    {
      width: 960,
      height: 540,
      fps: 30,
      frames: 200,
      codec: 'h264',
    },
  );
});

test('6 frames of bedroom.mp4 sampled by integer linspace and resized to 448×448 and 864×864', async () => {
  const indices = linspaceIndices(200, 6);
  assert.deepEqual(indices, [0, 39, 79, 119, 159, 199]);
  const frames = [];
  for await (const f of extractFrames(bedroom, indices)) frames.push(f);
  assert.deepEqual(
    frames.map((f) => f.index),
    indices,
  );
  // Frames differ from each other (the camera moves): the select filter picked distinct frames.
  const means = await Promise.all(
    frames.map(
      async (f) =>
        (await sharp(f.rgb, { raw: { width: 960, height: 540, channels: 3 } }).stats()).channels[0]!.mean,
    ),
  );
  assert.equal(new Set(means.map((m) => m.toFixed(3))).size, 6);
  for (const f of frames) {
    const src = { raw: f.rgb, width: f.width, height: f.height, channels: 3 as const };
    const small = await sharp(await resizeForPolicy(src)).metadata();
    assert.deepEqual([small.format, small.width, small.height], ['jpeg', 448, 448]);
    const key = await sharp(await resizeKeyframe(src)).metadata();
    assert.deepEqual([key.width, key.height], [864, 864]);
  }
});

test('frame 79 from the select filter equals frame 79 of a full decode', async () => {
  let full: Buffer | undefined;
  for await (const f of extractFrames(bedroom, 'all')) if (f.index === 79) full = Buffer.from(f.rgb);
  let picked: Buffer | undefined;
  for await (const f of extractFrames(bedroom, [79])) picked = f.rgb;
  assert.ok(full && picked);
  assert.ok(full.equals(picked));
});

test('sampled frames are stored in S3 (original and policy size); a second run decodes nothing and returns the same refs', async () => {
  const { sha256 } = await sha256OfFile(bedroom);
  const first = await storeVideoFrames(store, { path: bedroom, sha256 }, [0, 39, 79, 119, 159, 199]);
  assert.equal(first.length, 6);
  const meta = await sharp(await store.getBytes(first[2]!.policy.uri)).metadata();
  assert.deepEqual([meta.width, meta.height], [448, 448]);
  const again = await storeVideoFrames(
    store,
    { path: '/nonexistent/not-decoded-again.mp4', sha256 },
    [0, 39, 79, 119, 159, 199],
  );
  assert.deepEqual(
    again.map((f) => f.policy.sha256),
    first.map((f) => f.policy.sha256),
  );
  const dataUrl = await new PolicyImages(store).url(first[0]!.policy);
  assert.match(dataUrl, /^data:image\/jpeg;base64,\/9j\//);
  const presigned = await new PolicyImages(store, { mode: 'presigned-url' }).url(first[0]!.policy);
  const res = await fetch(presigned);
  assert.equal(res.status, 200);
  assert.equal(Buffer.from(await res.arrayBuffer()).length, first[0]!.policy.bytes);
});

test('an overlay MP4 of bedroom.mp4 with a moving mask sequence plays back with all 200 frames', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'segflow-overlay-'));
  const out = join(dir, 'overlay.mp4');
  const masks = (index: number): BinaryMask | undefined => {
    if (index % 2 === 1) return undefined; // frames without a mask stay untinted
    const m = { width: 960, height: 540, data: new Uint8Array(960 * 540) };
    for (let y = 100; y < 300; y++) for (let x = 200 + index; x < 400 + index; x++) m.data[y * 960 + x] = 1;
    return m;
  };
  const { frames } = await overlayVideoFile(bedroom, masks, out, { color: [0, 255, 0], alpha: 0.6 });
  assert.equal(frames, 200);
  const p = await probeVideo(out);
  assert.deepEqual([p.width, p.height, p.frames, p.codec, p.fps], [960, 540, 200, 'h264', 30]);
  // The tinted box is green in frame 0 of the overlay video.
  for await (const f of extractFrames(out, [0])) {
    const at = (x: number, y: number) => [...f.rgb.subarray((y * 960 + x) * 3, (y * 960 + x) * 3 + 3)];
    const [r, g, b] = at(300, 200);
    assert.ok(g! > 150 && g! > r! + 50 && g! > b! + 50, `tinted pixel ${[r, g, b]}`);
  }
});

test('the three photos in ../shared/data/images are ingested content-addressed, idempotently', async () => {
  for (const name of ['cars.jpg', 'groceries.jpg', 'truck.jpg']) {
    const path = sharedData('images', name);
    const ingested = await ingestMedia(store, path);
    assert.equal(ingested.kind, 'image');
    if (ingested.kind !== 'image') continue;
    const { sha256, bytes } = await sha256OfFile(path);
    assert.equal(ingested.image.sha256, sha256);
    assert.equal(ingested.image.bytes, bytes);
    assert.equal(ingested.format, 'jpeg');
    assert.match(
      ingested.image.uri,
      new RegExp(`/media/images/sha256/${sha256.slice(0, 2)}/${sha256}\\.jpg$`),
    );
    const meta = await sharp(path).metadata();
    assert.deepEqual([ingested.width, ingested.height], [meta.width, meta.height]);
    assert.ok((await store.getBytes(ingested.image.uri)).equals(readFileSync(path)));
    const again = await ingestMedia(store, path);
    assert.deepEqual(again, ingested);
  }
});
