// The media role's activities in MockActivityEnvironment, against the real dev S3: small JSON in
// and out (ArtifactRefs, never bytes), heartbeats, cancellation that stops ffmpeg.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { CancelledFailure } from '@temporalio/common';
import sharp from 'sharp';
import { createMediaActivities } from '../../../activities/media/activities.js';
import { encodeMaskPng, toMaskSequence } from '../../../activities/media/masks.js';
import type { IngestedMedia } from '../../../activities/media/ingest.js';
import { activityEnvironment } from '../../support/activity-env.js';
import { sharedData } from '../../support/paths.js';
import { testStore, uniqueId } from '../../support/stack.js';

const store = testStore();
after(() => store.client.destroy());
const acts = createMediaActivities({ store });
/** Runs one activity in a fresh MockActivityEnvironment, keeping its types. */
const call = <A, R>(fn: (input: A) => Promise<R>, input: NoInfer<A>): Promise<R> =>
  activityEnvironment().run(fn, input) as Promise<R>;

function box(width: number, height: number, x0: number, y0: number, x1: number, y1: number) {
  const m = { width, height, data: new Uint8Array(width * height) };
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m.data[y * width + x] = 1;
  return m;
}

let video: IngestedMedia;

test('mediaIngest + mediaProbe + mediaSampleFrames on bedroom.mp4: 6 frames at 448×448 with their originals', async () => {
  video = await call(acts.mediaIngest, { source: sharedData('videos', 'bedroom.mp4') });
  assert.equal(video.kind, 'video');
  assert.ok(JSON.stringify(video).length < 2000, 'ingest result is small JSON');
  if (video.kind !== 'video') return;
  assert.deepEqual(await call(acts.mediaProbe, { media: video.video }), {
    width: 960,
    height: 540,
    fps: 30,
    frames: 200,
    codec: 'h264',
  });
  const sampled = await call(acts.mediaSampleFrames, { media: video });
  assert.deepEqual(sampled.indices, [0, 39, 79, 119, 159, 199]);
  assert.deepEqual(
    sampled.frames.map((f) => f.fid),
    [0, 39, 79, 119, 159, 199],
  );
  const orig = await sharp(await store.getBytes(sampled.frames[1]!.original.uri)).metadata();
  assert.deepEqual([orig.width, orig.height], [960, 540]);
  const small = await sharp(await store.getBytes(sampled.frames[1]!.policy.uri)).metadata();
  assert.deepEqual([small.width, small.height], [448, 448]);
  const anchored = await call(acts.mediaSampleFrames, { media: video, anchor: 60 });
  assert.deepEqual(anchored.indices, [0, 39, 60, 119, 159, 199]);
  const key = await call(acts.mediaKeyframe, { frame: sampled.frames[2]!.original });
  const km = await sharp(await store.getBytes(key.uri)).metadata();
  assert.deepEqual([km.width, km.height, km.format], [864, 864, 'jpeg']);
});

test('mediaSampleFrames on an image and on a folder of frames', async () => {
  const image = await call(acts.mediaIngest, { source: sharedData('images', 'truck.jpg') });
  const one = await call(acts.mediaSampleFrames, { media: image });
  assert.equal(one.frames.length, 1);
  assert.equal(one.frames[0]!.original.sha256, image.kind === 'image' ? image.image.sha256 : '');
  const frames = await call(acts.mediaExtractFrames, {
    video: video.kind === 'video' ? video.video : (undefined as never),
    indices: [3, 4, 5, 100],
  });
  assert.equal(frames.frames, 4);
  const sampled = await call(acts.mediaSampleFrames, { media: { kind: 'frames', ...frames }, count: 3 });
  assert.deepEqual(sampled.indices, [0, 1, 3]);
  assert.deepEqual(
    sampled.frames.map((f) => f.fid),
    [3, 4, 100],
  );
});

test('mediaOverlayImage and mediaOverlayVideo write a PNG and an MP4 to S3', async () => {
  if (video.kind !== 'video') return;
  const image = await call(acts.mediaIngest, { source: sharedData('images', 'cars.jpg') });
  if (image.kind !== 'image') return;
  const mask = await store.putContentAddressed(
    'test/masks',
    await encodeMaskPng(box(image.width, image.height, 100, 100, 600, 500)),
    'image/png',
    'png',
  );
  const overlay = await call(acts.mediaOverlayImage, { image: image.image, mask });
  const om = await sharp(await store.getBytes(overlay.uri)).metadata();
  assert.deepEqual([om.format, om.width, om.height], ['png', image.width, image.height]);

  const seq = toMaskSequence(
    960,
    540,
    [0, 50, 100, 150].map((i) => [i, box(960, 540, 100 + i, 100, 300 + i, 300)]),
  );
  // A per-run field makes the sequence new, so this run really encodes (a repeat is a cache hit).
  const masks = await store.putContentAddressed(
    'test/mask-seqs',
    Buffer.from(JSON.stringify({ ...seq, run: uniqueId('seq') })),
    'application/json',
    'json',
  );
  const beats: unknown[] = [];
  const beating = activityEnvironment();
  beating.on('heartbeat', (d: unknown) => beats.push(d));
  const mp4 = (await beating.run(acts.mediaOverlayVideo, { video: video.video, masks })) as Awaited<
    ReturnType<typeof acts.mediaOverlayVideo>
  >;
  assert.equal(mp4.contentType, 'video/mp4');
  assert.ok(mp4.bytes > 10_000);
  assert.ok(beats.length >= 4, `heartbeats: ${beats.length}`);
  // Idempotent: the same inputs give the same object without re-encoding.
  assert.deepEqual(await call(acts.mediaOverlayVideo, { video: video.video, masks }), mp4);
});

test("mediaOverlayVideo streams the segmenter's masks from its manifest: the same video as from one mask sequence", async () => {
  if (video.kind !== 'video') return;
  const run = uniqueId('manifest');
  const masked = [0, 50, 100, 150];
  const frames = [];
  for (let i = 0; i < 200; i++) {
    const key = `test/overlay-manifest/${run}/masks/${String(i).padStart(5, '0')}.png`;
    // frames 0, 50, 100, 150 have a mask; frame 10 is listed but was never written (no mask)
    if (masked.includes(i))
      await store.putBytes(key, await encodeMaskPng(box(960, 540, 100 + i, 100, 300 + i, 300)), 'image/png');
    if (masked.includes(i) || i === 10)
      frames.push({ frame: i, name: String(i).padStart(5, '0'), mask: store.uriOf(key) });
  }
  const manifest = await store.putJson(`test/overlay-manifest/${run}/manifest.json`, {
    width: 960,
    height: 540,
    frames,
  });
  const seq = toMaskSequence(
    960,
    540,
    masked.map((i) => [i, box(960, 540, 100 + i, 100, 300 + i, 300)]),
  );
  const masks = await store.putContentAddressed(
    'test/mask-seqs',
    Buffer.from(JSON.stringify({ ...seq, run })),
    'application/json',
    'json',
  );
  const streamed = await call(acts.mediaOverlayVideo, { video: video.video, manifest });
  const whole = await call(acts.mediaOverlayVideo, { video: video.video, masks });
  assert.notEqual(streamed.uri, whole.uri);
  assert.equal(streamed.sha256, whole.sha256, 'the same frames tinted with the same masks');
  await assert.rejects(
    call(acts.mediaOverlayVideo, { video: video.video, masks, manifest }),
    /give either masks or manifest/,
  );
});

test('mediaIngest refuses a video longer than the configured limits, naming them; heartbeats while storing', async () => {
  const limited = createMediaActivities({ store, video: { maxFrames: 150, maxSeconds: 1200 } });
  await assert.rejects(
    call(limited.mediaIngest, { source: sharedData('videos', 'bedroom.mp4') }),
    (err: Error & { type?: string; nonRetryable?: boolean }) => {
      assert.match(
        err.message,
        /bedroom\.mp4: is 0\.1 minutes long \(200 frames\); segflow takes videos of at most 1200 s and 150 frames/,
      );
      return true;
    },
  );
  const beats: unknown[] = [];
  const beating = activityEnvironment();
  beating.on('heartbeat', (d: unknown) => beats.push(d));
  await beating.run(acts.mediaIngest, { source: sharedData('videos', 'bedroom.mp4') });
  assert.ok(beats.length >= 1, 'a heartbeat once probed, and as the upload goes');
});

test('cancelling mediaOverlayVideo stops ffmpeg and stores nothing', async () => {
  if (video.kind !== 'video') return;
  const seq = toMaskSequence(960, 540, [[1, box(960, 540, 0, 0, 10, 10)]]);
  const masks = await store.putContentAddressed(
    'test/mask-seqs',
    Buffer.from(JSON.stringify({ ...seq, run: uniqueId('seq') })),
    'application/json',
    'json',
  );
  const cancelling = activityEnvironment();
  const running = cancelling.run(acts.mediaOverlayVideo, { video: video.video, masks });
  await new Promise((r) => setTimeout(r, 300));
  cancelling.cancel();
  await assert.rejects(
    running,
    (err: unknown) => err instanceof CancelledFailure || /cancelled/.test(String(err)),
  );
  const key = `derived/${video.video.sha256.slice(0, 2)}/${video.video.sha256}/overlays/${masks.sha256}.mp4`;
  assert.equal(await store.head(key), undefined);
});

test('invalid activity input is a non-retryable BadInputError naming the field', async () => {
  const err = await call(acts.mediaSampleFrames, { media: { kind: 'video' } } as never).catch(
    (e: unknown) => e,
  );
  assert.match(String(err), /mediaSampleFrames input is invalid: media/);
  assert.equal((err as { nonRetryable?: boolean }).nonRetryable, true);
});
