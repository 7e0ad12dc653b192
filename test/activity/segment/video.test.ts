// The SAM2 video loop on real frames of bedroom.mp4 with the generated test models: processing
// order, bank and pointer selection (F = 1..7, P = 1..16), a mask for every frame in S3,
// heartbeats, and resuming after an interruption from heartbeat details or the S3 checkpoint.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CancelledFailure } from '@temporalio/common';
import { ApplicationFailure } from '@temporalio/common';
import sharp from 'sharp';
import { createLogger } from '../../../activities/runtime/logger.js';
import {
  createSegmentActivities,
  type SegmentVideoInput,
  type SegmentVideoResult,
} from '../../../activities/segment/activities.js';
import { DEFAULT_IMAGE_CONFIG } from '../../../activities/segment/contract.js';
import { planMemory } from '../../../activities/segment/memory-bank.js';
import {
  loadSam2Models,
  releaseSharedSam2Models,
  type Sam2Models,
} from '../../../activities/segment/models.js';
import {
  ephemeralTrackerStore,
  processingOrder,
  trackVideo,
  type TrackTraceEntry,
} from '../../../activities/segment/sam2-video.js';
import { activityEnvironment } from '../../support/activity-env.js';
import { writeSam2TestModels } from '../../support/onnx-models.js';
import { sharedData } from '../../support/paths.js';
import { testConfig, testStore, uniqueId } from '../../support/stack.js';

const NUM_FRAMES = 20;
const KEYFRAME = 3;
const framesDir = mkdtempSync(join(tmpdir(), 'segflow-bedroom-'));
const modelsDir = mkdtempSync(join(tmpdir(), 'segflow-sam2-video-'));
const store = testStore();
const prefix = uniqueId('segment-video-test');
let models: Sam2Models;
let frameUris: string[] = [];
let files: string[] = [];
// box and click in pixels of the 480×270 frames (the bed)
const prompt = {
  space: 'pixels' as const,
  box: [90, 120, 330, 250] as [number, number, number, number],
  point: [200, 190] as [number, number],
};

before(async () => {
  execFileSync('ffmpeg', [
    '-hide_banner',
    '-loglevel',
    'error',
    '-i',
    sharedData('videos', 'bedroom.mp4'),
    '-vf',
    `select='lt(n\\,${NUM_FRAMES})',scale=480:270`,
    '-vsync',
    '0',
    '-q:v',
    '3',
    join(framesDir, '%05d.jpg'),
  ]);
  files = readdirSync(framesDir).sort();
  assert.equal(files.length, NUM_FRAMES);
  await writeSam2TestModels(modelsDir);
  models = await loadSam2Models(modelsDir, 'video');
  frameUris = [];
  for (const f of files)
    frameUris.push(
      (await store.putBytes(`${prefix}/frames/${f}`, readFileSync(join(framesDir, f)), 'image/jpeg')).uri,
    );
});
after(async () => {
  await models.release();
  await releaseSharedSam2Models();
  store.client.destroy();
});

const localFrames = () => ({
  count: files.length,
  name: (i: number) => files[i]!.replace(/\.jpg$/, ''),
  load: async (i: number) => ({ data: join(framesDir, files[i]!), label: files[i]! }),
});

function activities() {
  const config = testConfig();
  return createSegmentActivities({
    config: { ...config, segment: { ...config.segment, modelsDir } },
    store,
    logger: createLogger('silent'),
  });
}

async function maskHashes(outputPrefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of files) {
    const png = await store.getBytes(`${outputPrefix}/masks/${f.replace(/\.jpg$/, '')}.png`);
    out.push(createHash('sha256').update(png).digest('hex'));
  }
  return out;
}

test('forward to the end, then backward to 0; bank and pointers follow the SAM2 rules at every frame', async () => {
  const trace: TrackTraceEntry[] = [];
  const masks: number[] = [];
  const result = await trackVideo(
    models,
    localFrames(),
    ephemeralTrackerStore(async (m) => void masks.push(m.frame)),
    {
      keyframe: KEYFRAME,
      prompt: { box: prompt.box, point: prompt.point },
      trace: (e) => trace.push(e),
    },
  );
  const order = [3, ...Array.from({ length: 16 }, (_, i) => 4 + i), 2, 1, 0];
  assert.deepEqual(
    trace.map((e) => e.frame),
    order,
  );
  assert.deepEqual(processingOrder(KEYFRAME, NUM_FRAMES), order);
  assert.deepEqual(masks, order, 'a mask for every frame, written in processing order');
  assert.equal(result.framesComputed, NUM_FRAMES);
  // every plan equals the rule applied to the frames tracked so far
  const done: number[] = [];
  for (const e of trace) {
    if (e.frame !== KEYFRAME) {
      const expected = planMemory(DEFAULT_IMAGE_CONFIG, {
        frameIdx: e.frame,
        reverse: e.frame < KEYFRAME,
        numFrames: NUM_FRAMES,
        condFrames: [KEYFRAME],
        hasOutput: (f) => done.includes(f) && f !== KEYFRAME,
      });
      assert.deepEqual(e.plan, expected, `frame ${e.frame}`);
    }
    done.push(e.frame);
  }
  const at = (f: number) => trace.find((e) => e.frame === f)!.plan!;
  // F = 1, P = 1 right after the keyframe
  assert.deepEqual(
    at(4).memory.map((m) => [m.frame, m.tposRow]),
    [[3, 6]],
  );
  assert.deepEqual(
    at(4).pointers.map((p) => [p.frame, p.offset]),
    [[3, 1]],
  );
  // F = 7, P = 16 at the last frame: cond + 13..18; pointers cond@16 + 18..4
  assert.deepEqual(
    at(19).memory.map((m) => [m.frame, m.tposRow]),
    [
      [3, 6],
      [13, 5],
      [14, 4],
      [15, 3],
      [16, 2],
      [17, 1],
      [18, 0],
    ],
  );
  assert.equal(at(19).pointers.length, 16);
  assert.deepEqual(at(19).pointers[0], { frame: 3, offset: 16, pos: 16 / 15 });
  // the backward pass starts from the forward frames: memories 8..4, pointers 4..17
  assert.deepEqual(
    at(2).memory.map((m) => [m.frame, m.tposRow]),
    [
      [3, 6],
      [8, 5],
      [7, 4],
      [6, 3],
      [5, 2],
      [4, 1],
    ],
  );
  assert.deepEqual(
    at(2).pointers.map((p) => p.frame),
    [3, ...Array.from({ length: 14 }, (_, i) => 4 + i)],
  );
  assert.deepEqual(
    at(0).memory.map((m) => m.frame),
    [3, 6, 5, 4, 2, 1],
  );
  // the tracked object stays present and its mask stays near the prompted box
  for (const e of trace) {
    assert.ok(e.objectScore > 0, `frame ${e.frame} object present`);
    assert.ok(e.area > 0.5 * 240 * 130 && e.area < 1.3 * 240 * 130, `frame ${e.frame} area ${e.area}`);
  }
});

test('the activity writes a mask per frame to S3, heartbeats per frame, and a retried attempt resumes', async () => {
  const acts = activities();
  const input: SegmentVideoInput = {
    frames: frameUris,
    keyframe: KEYFRAME,
    prompt,
    outputPrefix: `${prefix}/full`,
  };
  const beats: { done: number; lastFrame: number }[] = [];
  const env = activityEnvironment();
  env.on('heartbeat', (d: { done: number; lastFrame: number }) => beats.push(d));
  const full: SegmentVideoResult = await env.run(acts.segmentVideo, input);
  assert.equal(full.numFrames, NUM_FRAMES);
  assert.deepEqual(
    [full.width, full.height, full.resumedFrom, full.framesComputed],
    [480, 270, 0, NUM_FRAMES],
  );
  assert.deepEqual(
    beats.map((b) => b.done),
    Array.from({ length: NUM_FRAMES }, (_, i) => i + 1),
  );
  assert.deepEqual(
    beats.map((b) => b.lastFrame),
    processingOrder(KEYFRAME, NUM_FRAMES),
  );
  const manifest = await store.getJson<{ frames: { mask: string }[] }>(full.manifest.uri);
  assert.equal(manifest.frames.length, NUM_FRAMES);
  for (const f of manifest.frames) {
    const meta = await sharp(await store.getBytes(f.mask)).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [480, 270, 1]);
  }
  const reference = await maskHashes(`${prefix}/full`);
  // the frame states are cleaned up once the video is done; the checkpoint stays
  const left: string[] = [];
  for await (const o of store.list(`${prefix}/full/state/`)) left.push(o.key);
  assert.deepEqual(left, [`${prefix}/full/state/checkpoint.json`]);

  // interrupted after 9 frames (cancelled, like a worker going away), resumed from heartbeat details
  const cut = { ...input, outputPrefix: `${prefix}/cut` };
  const env1 = activityEnvironment();
  let last: unknown;
  env1.on('heartbeat', (d: { done: number }) => {
    last = d;
    if (d.done === 9) env1.cancel();
  });
  await assert.rejects(env1.run(acts.segmentVideo, cut), (e: unknown) => e instanceof CancelledFailure);
  const env2 = activityEnvironment({ heartbeatDetails: last });
  const resumed: SegmentVideoResult = await env2.run(acts.segmentVideo, cut);
  assert.equal(resumed.resumedFrom, 9);
  assert.equal(resumed.framesComputed, NUM_FRAMES - 9);
  assert.deepEqual(
    await maskHashes(`${prefix}/cut`),
    reference,
    'resumed masks equal the uninterrupted run, frame by frame',
  );

  // interrupted in the backward pass, restarted with no heartbeat details: the S3 checkpoint decides
  const cut2 = { ...input, outputPrefix: `${prefix}/cut2` };
  const env3 = activityEnvironment();
  env3.on('heartbeat', (d: { done: number }) => d.done === 18 && env3.cancel());
  await assert.rejects(env3.run(acts.segmentVideo, cut2), (e: unknown) => e instanceof CancelledFailure);
  const restarted: SegmentVideoResult = await activityEnvironment().run(acts.segmentVideo, cut2);
  assert.equal(restarted.resumedFrom, 18);
  assert.equal(restarted.framesComputed, 2);
  assert.deepEqual(await maskHashes(`${prefix}/cut2`), reference);

  // a finished job retried again does no work
  const again: SegmentVideoResult = await activityEnvironment().run(acts.segmentVideo, input);
  assert.deepEqual([again.framesComputed, again.resumedFrom], [0, NUM_FRAMES]);
});

test('segmentVideo reads the frames from a stored FrameSet: the same masks as the listed frames', async () => {
  const frameSet = await store.putJson(`${prefix}/frame-set.json`, {
    width: 480,
    height: 270,
    frames: frameUris.map((uri, fid) => ({ fid, name: `${String(fid).padStart(5, '0')}.jpg`, ref: { uri } })),
  });
  const acts = activities();
  const listed: SegmentVideoResult = await activityEnvironment().run(acts.segmentVideo, {
    frames: frameUris,
    keyframe: KEYFRAME,
    prompt,
    outputPrefix: `${prefix}/listed`,
  });
  const bySet: SegmentVideoResult = await activityEnvironment().run(acts.segmentVideo, {
    frameSet,
    keyframe: KEYFRAME,
    prompt,
    outputPrefix: `${prefix}/by-set`,
  });
  assert.equal(bySet.numFrames, NUM_FRAMES);
  assert.deepEqual(await maskHashes(`${prefix}/by-set`), await maskHashes(`${prefix}/listed`));
  assert.equal(listed.numFrames, NUM_FRAMES);
  await assert.rejects(
    activityEnvironment().run(acts.segmentVideo, {
      frames: frameUris,
      frameSet,
      keyframe: 0,
      prompt,
      outputPrefix: `${prefix}/x`,
    }),
    /give either frames or frameSet/,
  );
});

test('bad video input fails fast and names the problem', async () => {
  const acts = activities();
  const env = activityEnvironment();
  const base: SegmentVideoInput = {
    frames: frameUris.slice(0, 4),
    keyframe: 1,
    prompt,
    outputPrefix: `${prefix}/bad`,
  };
  const failsWith = (re: RegExp) => (e: unknown) =>
    e instanceof ApplicationFailure &&
    e.nonRetryable === true &&
    e.type === 'BadInputError' &&
    re.test(e.message);
  await assert.rejects(
    env.run(acts.segmentVideo, { ...base, keyframe: 7 }),
    failsWith(/keyframe 7 is not a frame of the video \(frames 0\.\.3\)/),
  );
  const noPrompt: SegmentVideoInput = { ...base, prompt: { space: 'pixels' } };
  await assert.rejects(
    env.run(acts.segmentVideo, noPrompt),
    failsWith(/prompt needs a box, a point or both/),
  );
  const outside: SegmentVideoInput = { ...base, prompt: { space: 'pixels', box: [0, 0, 600, 100] } };
  await assert.rejects(
    env.run(acts.segmentVideo, outside),
    failsWith(/box \[0, 0, 600, 100\] lies outside the image \(480×270 pixels\)/),
  );
  // the reference's behaviour for an unprompted query, when asked for: empty masks everywhere
  const unprompted: SegmentVideoInput = {
    frames: base.frames,
    keyframe: 1,
    onMissingPrompt: 'empty-masks',
    outputPrefix: `${prefix}/empty`,
  };
  const empty: SegmentVideoResult = await env.run(acts.segmentVideo, unprompted);
  assert.deepEqual([empty.numFrames, empty.emptyFrames, empty.framesComputed], [4, 4, 0]);
});
