// The official SAM2 exported and checked against its own predictors (`make verify-sam2`).
// The official SAM2.1 hiera-tiny, built from the `sam2==1.1.0` package's config with seeded random
// weights and saved as a checkpoint (scripts/sam2-export/verify_sam2.py checkpoint), goes through
// scripts/sam2-export/export_sam2_onnx.py (the five graphs of the contract). Then, on frames of
// ../shared/data/videos/bedroom.mp4:
// - the official SAM2VideoPredictor (box, then click, on a middle keyframe; forward to the end, then
//   backward to frame 0) beside segflow's video loop in Node (activities/segment/sam2-video.ts on
//   onnxruntime-node: the code the segment activity runs);
// - the official SAM2ImagePredictor (box, then the click with the box's mask) beside segflow's image
//   path (sam2-image.ts segmentImage on encoder.onnx + decoder.onnx).
// Compared per frame on the low-res logits and on the binary masks; ends with one `VERIFY {json}` line.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSam2Models, type RuntimeOptions } from '../../activities/segment/models.js';
import { ephemeralTrackerStore, trackVideo, type FrameMask } from '../../activities/segment/sam2-video.js';
import { segmentImage } from '../../activities/segment/sam2-image.js';
import type { PixelPrompt } from '../../activities/segment/prompts.js';
import { repoRoot, sharedData } from '../support/paths.js';

const PYTHON = join(repoRoot, '.venv/sam2/bin/python');
const EXPORT_DIR = join(repoRoot, 'scripts/sam2-export');
const MODEL_CFG = 'configs/sam2.1/sam2.1_hiera_t.yaml';
/** 7 frames (every 10th of the video, so the scene moves), keyframe in the middle: 3 forward, 3 back. */
const FRAMES = 7;
const KEYFRAME = 3;
const BOX = [300, 150, 700, 450] as const;
const POINT = [500, 300] as const;
const THREADS = Number(process.env.SEGFLOW_VERIFY_THREADS ?? 2);

/**
 * Pass thresholds, from what may legitimately differ, not from one machine's numbers. The inputs are
 * bit-identical (segflow decodes with libjpeg-turbo as PIL does and resizes exactly as the official
 * predictors do: activities/segment/resample.ts), so what is left is:
 * - float32 kernels (MLAS vs. torch's) summing in other orders: ~1e-6 relative per layer;
 * - memory features stored as bfloat16 on both sides: a value that lands on the other side of a
 *   rounding boundary moves one element by 2^-8 relative, diluted over 4096 attended tokens.
 * The bound is relative to each frame's logit scale (random weights give |logit| well under 1):
 * max |Δ| ≤ 1e-3 × the frame's max |logit|. For scale: resizing with sharp instead of the
 * predictors' own filters (±1 grey level) moved the logits by 20-115% of that scale (measured: the
 * image path 0.074 of 0.36, video frame 0 0.285 of 0.247), so the bound catches an input that is
 * off by one grey level. Masks: every pixel whose official logit clears the bound must agree, and
 * IoU ≥ 0.99 (only pixels within the bound of 0 may flip).
 */
const LOGIT_REL_BOUND = 1e-3;
const MASK_IOU_MIN = 0.99;

let work: string;
let official: {
  frames: string[];
  width: number;
  height: number;
  video: { objectScores: number[]; msPerFrame: number; fillHoleArea: number };
  image: { ms: number; iou: number };
};

function run(cmd: string, args: string[], what: string): void {
  const r = spawnSync(cmd, args, { cwd: work, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    throw new Error(
      `${what} failed (exit ${r.status}):\n${(r.stdout ?? '').slice(-4000)}\n${(r.stderr ?? '').slice(-4000)}`,
    );
  }
}

function f32(file: string): Float32Array {
  const b = readFileSync(join(work, 'official', file));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

function u8(file: string): Uint8Array {
  return new Uint8Array(readFileSync(join(work, 'official', file)));
}

interface Compared {
  maxAbsDiff: number;
  scale: number;
  iou: number;
  /** Pixels whose official logit clears the bound but whose sign differs. */
  confidentFlips: number;
}

function compareLogits(ours: Float32Array, theirs: Float32Array): Omit<Compared, 'iou'> {
  assert.equal(ours.length, theirs.length);
  let maxAbsDiff = 0;
  let scale = 0;
  for (let i = 0; i < ours.length; i++) {
    maxAbsDiff = Math.max(maxAbsDiff, Math.abs(ours[i]! - theirs[i]!));
    scale = Math.max(scale, Math.abs(theirs[i]!));
  }
  const bound = LOGIT_REL_BOUND * scale;
  let confidentFlips = 0;
  for (let i = 0; i < ours.length; i++) {
    if (Math.abs(theirs[i]!) > bound && ours[i]! > 0 !== theirs[i]! > 0) confidentFlips++;
  }
  return { maxAbsDiff, scale, confidentFlips };
}

function maskIoU(ours: Uint8Array, theirs: Uint8Array): number {
  assert.equal(ours.length, theirs.length);
  let inter = 0;
  let union = 0;
  for (let i = 0; i < ours.length; i++) {
    const a = ours[i]! > 0;
    const b = theirs[i]! > 0;
    if (a && b) inter++;
    if (a || b) union++;
  }
  return union === 0 ? 1 : inter / union;
}

/** Fails on logits that carry no information (a constant map, or everything on one side of 0). */
function assertInformative(logits: Float32Array, what: string): void {
  let min = Infinity;
  let max = -Infinity;
  let positive = 0;
  for (const v of logits) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    if (v > 0) positive++;
  }
  assert.ok(max - min > 1e-3, `${what}: the logits are constant (${min}..${max})`);
  assert.ok(
    positive > 0.01 * logits.length && positive < 0.99 * logits.length,
    `${what}: the mask is trivially empty or full (${positive} of ${logits.length} positive)`,
  );
}

before(() => {
  if (!existsSync(PYTHON)) {
    throw new Error(`no official SAM2 venv at ${PYTHON}: run \`make deps-sam2\` (scripts/setup-sam2.sh)`);
  }
  work = mkdtempSync(join(tmpdir(), 'segflow-real-sam2-'));
  mkdirSync(join(work, 'frames'));
  const ckpt = join(work, 'sam2.1_hiera_tiny_random.pt');
  run(
    PYTHON,
    [join(EXPORT_DIR, 'verify_sam2.py'), 'checkpoint', '--model-cfg', MODEL_CFG, '--out', ckpt],
    'the random-weights checkpoint',
  );
  run(
    PYTHON,
    [
      join(EXPORT_DIR, 'export_sam2_onnx.py'),
      ...['--checkpoint', ckpt, '--model-cfg', MODEL_CFG, '--out', join(work, 'models'), '--image-decoder'],
    ],
    'export_sam2_onnx.py',
  );
  run(
    'ffmpeg',
    [
      ...['-v', 'error', '-y', '-i', sharedData('videos', 'bedroom.mp4')],
      ...['-vf', 'select=not(mod(n\\,10))', '-fps_mode', 'vfr', '-frames:v', String(FRAMES)],
      ...['-q:v', '2', '-start_number', '0', join(work, 'frames', '%05d.jpg')],
    ],
    'extracting frames of bedroom.mp4',
  );
  run(
    PYTHON,
    [
      join(EXPORT_DIR, 'verify_sam2.py'),
      'official',
      ...['--checkpoint', ckpt, '--model-cfg', MODEL_CFG, '--frames', join(work, 'frames')],
      ...['--keyframe', String(KEYFRAME), '--box', BOX.join(','), '--point', POINT.join(',')],
      ...['--out', join(work, 'official'), '--threads', String(THREADS)],
    ],
    'the official SAM2 predictors',
  );
  official = JSON.parse(readFileSync(join(work, 'official', 'official.json'), 'utf8')) as typeof official;
});

const runtime: RuntimeOptions = {
  executionProviders: ['cpu'],
  deviceId: 0,
  intraOpThreads: THREADS,
  runsPerDevice: 1,
};
const prompt: PixelPrompt = { box: [...BOX], point: [...POINT] };

test('the exported graphs record the official package that made them', () => {
  const config = JSON.parse(readFileSync(join(work, 'models', 'sam2_config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  assert.equal(config.sam2_version, '1.1.0');
  assert.equal(config.model_id, 'sam2.1_hiera_tiny_random');
  assert.equal(config.fill_hole_area, official.video.fillHoleArea);
  const files = readdirSync(join(work, 'models'))
    .filter((f) => f.endsWith('.onnx'))
    .sort();
  assert.deepEqual(files, [
    'decoder.onnx',
    'encoder.onnx',
    'memory_attention.onnx',
    'memory_encoder.onnx',
    'video_decoder.onnx',
  ]);
});

const verify: Record<string, number> = {};

test("segflow's Node video loop gives the official SAM2VideoPredictor's logits and masks", async () => {
  const models = await loadSam2Models(join(work, 'models'), 'video', runtime);
  const names = official.frames;
  const logits = new Map<number, Float32Array>();
  const masks = new Map<number, FrameMask>();
  const store = ephemeralTrackerStore(async (m) => {
    masks.set(m.frame, m);
  });
  const started = performance.now();
  try {
    await trackVideo(
      models,
      {
        count: names.length,
        name: (i) => names[i]!.replace(/\.jpe?g$/, ''),
        load: (i) => {
          const path = join(work, 'frames', names[i]!);
          return Promise.resolve({ data: readFileSync(path), label: path });
        },
      },
      store,
      { keyframe: KEYFRAME, prompt, trace: (e) => logits.set(e.frame, Float32Array.from(e.logits)) },
    );
  } finally {
    await models.release();
  }
  const msPerFrameNode = (performance.now() - started) / names.length;
  let logitMaxAbsDiff = 0;
  let worstRelative = 0;
  let maskIoUMin = 1;
  for (let t = 0; t < names.length; t++) {
    const theirs = f32(`video-logits-${t}.f32`);
    const ours = logits.get(t);
    assert.ok(ours, `frame ${t}: the Node loop produced no logits`);
    assertInformative(theirs, `frame ${t} (official)`);
    assertInformative(ours, `frame ${t} (segflow)`);
    const c = compareLogits(ours, theirs);
    const iou = maskIoU(masks.get(t)!.mask, u8(`video-mask-${t}.u8`));
    console.log(
      `frame ${t}: max |Δlogit| ${c.maxAbsDiff.toExponential(2)} of max |logit| ${c.scale.toFixed(3)}, ` +
        `mask IoU ${iou.toFixed(4)}, confident flips ${c.confidentFlips}`,
    );
    logitMaxAbsDiff = Math.max(logitMaxAbsDiff, c.maxAbsDiff);
    worstRelative = Math.max(worstRelative, c.maxAbsDiff / c.scale);
    maskIoUMin = Math.min(maskIoUMin, iou);
    assert.ok(
      c.maxAbsDiff <= LOGIT_REL_BOUND * c.scale,
      `frame ${t}: logits differ by ${c.maxAbsDiff} (bound ${LOGIT_REL_BOUND} × ${c.scale})`,
    );
    assert.equal(c.confidentFlips, 0, `frame ${t}: ${c.confidentFlips} pixels with a clear logit flip sides`);
    assert.ok(iou >= MASK_IOU_MIN, `frame ${t}: mask IoU ${iou} < ${MASK_IOU_MIN}`);
  }
  Object.assign(verify, {
    frames: names.length,
    logitMaxAbsDiff,
    logitMaxRelDiff: worstRelative,
    maskIoUMin,
    msPerFrameNode: Math.round(msPerFrameNode),
    msPerFramePython: Math.round(official.video.msPerFrame),
  });
});

test("segflow's image path gives the official SAM2ImagePredictor's logits and mask", async () => {
  const models = await loadSam2Models(join(work, 'models'), 'image', runtime);
  const path = join(work, 'frames', official.frames[KEYFRAME]!);
  let result;
  try {
    result = await segmentImage(models, { data: readFileSync(path), label: path }, prompt);
  } finally {
    await models.release();
  }
  assert.equal(result.decoderCalls, 2, 'box, then the click with the box mask');
  const theirs = f32('image-logits.f32');
  assertInformative(theirs, 'image (official)');
  assertInformative(result.logits, 'image (segflow)');
  const c = compareLogits(result.logits, theirs);
  const iou = maskIoU(result.mask, u8('image-mask.u8'));
  console.log(
    `image: max |Δlogit| ${c.maxAbsDiff.toExponential(2)} of ${c.scale.toFixed(3)}, mask IoU ${iou.toFixed(4)}`,
  );
  assert.ok(c.maxAbsDiff <= LOGIT_REL_BOUND * c.scale, `image logits differ by ${c.maxAbsDiff}`);
  assert.equal(c.confidentFlips, 0);
  assert.ok(iou >= MASK_IOU_MIN, `image mask IoU ${iou}`);
  verify.imageLogitMaxAbsDiff = c.maxAbsDiff;
  verify.imageMaskIoU = iou;
  console.log(`VERIFY ${JSON.stringify(verify)}`);
});
