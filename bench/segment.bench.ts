/**
 * SAM2 segment benchmark on CPU with the generated sam2-onnx v1 test models and real frames of
 * bedroom.mp4 (960×540):
 *   1. the video loop end to end, per-frame latency by stage (Node only);
 *   2. a matched comparison: the same ONNX files on the same inputs (a tracked frame with F = 7
 *      memories and P = 16 pointers) timed in this process through onnxruntime-node and in a child
 *      Python process through onnxruntime from PyPI (same version), plus the equivalent pre- and
 *      post-processing; rounds alternate Node / Python, best median per side → Node/Python ratio.
 * Needs `bash bench/setup-segment-python.sh` (pinned onnxruntime, numpy, pillow in .venv/segment-bench).
 * Threads per session: SEGFLOW_BENCH_THREADS (default 1, for a quiet comparison on shared hosts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { FEAT, HIDDEN_DIM, LOW_RES, MEM_DIM } from '../activities/segment/contract.js';
import { f32, f32Data, graph, i64, loadSam2Models, type Feeds } from '../activities/segment/models.js';
import { logitsToMask } from '../activities/segment/postprocess.js';
import { prepareImage } from '../activities/segment/preprocess.js';
import { toModelPoints } from '../activities/segment/prompts.js';
import type { Stage } from '../activities/segment/sam2-image.js';
import { ephemeralTrackerStore, trackVideo } from '../activities/segment/sam2-video.js';
import { writeSam2TestModels } from '../test/support/onnx-models.js';
import { repoRoot, sharedData } from '../test/support/paths.js';

const NUM_FRAMES = 17;
const ITERATIONS = 15;
const ROUNDS = 5;
const threads = Number(process.env.SEGFLOW_BENCH_THREADS ?? 1);
const python = join(repoRoot, '.venv/segment-bench/bin/python');
if (!existsSync(python)) {
  console.error('segment bench: the Python side is missing; run `bash bench/setup-segment-python.sh` first');
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'segflow-segment-bench-'));
const modelsDir = await writeSam2TestModels(join(work, 'models'));
const framesDir = join(work, 'frames');
execFileSync('mkdir', ['-p', framesDir]);
execFileSync('ffmpeg', [
  '-hide_banner',
  '-loglevel',
  'error',
  '-i',
  sharedData('videos', 'bedroom.mp4'),
  '-vf',
  `select='lt(n\\,${NUM_FRAMES})'`,
  '-vsync',
  '0',
  '-q:v',
  '2',
  join(framesDir, '%05d.jpg'),
]);
const files = readdirSync(framesDir).sort();
const models = await loadSam2Models(modelsDir, 'video', {
  executionProviders: ['cpu'],
  deviceId: 0,
  intraOpThreads: threads,
  runsPerDevice: 1,
});
const cfg = models.config;

// 1. the loop, per frame by stage
const stages: Stage[] = [
  'preprocess',
  'encoder',
  'memoryAttention',
  'decoder',
  'memoryEncoder',
  'postprocess',
];
const perFrame = new Map<number, Partial<Record<Stage, number>>>();
let current = 0;
const t0 = performance.now();
await trackVideo(
  models,
  {
    count: files.length,
    name: (i) => files[i]!,
    load: async (i) => {
      current = i;
      return { data: join(framesDir, files[i]!), label: files[i]! };
    },
  },
  ephemeralTrackerStore(),
  {
    keyframe: 0,
    prompt: { box: [200, 250, 700, 520], point: [450, 400] },
    timer: (s, ms) => {
      const row = perFrame.get(current) ?? {};
      row[s] = (row[s] ?? 0) + ms;
      perFrame.set(current, row);
    },
  },
);
const loopMs = performance.now() - t0;
const tracked = [...perFrame.entries()].filter(([f]) => f !== 0).map(([, r]) => r);
console.log(`video loop: ${NUM_FRAMES} frames of 960×540, keyframe 0, ${threads} thread(s) per session`);
console.log(
  `  ${(loopMs / NUM_FRAMES).toFixed(1)} ms/frame end to end (frame loading and S3-free state keeping included)`,
);
console.log('  tracked-frame mean by stage (ms):');
for (const s of stages) {
  const v = tracked.map((r) => r[s] ?? 0);
  console.log(`    ${s.padEnd(16)} ${(v.reduce((a, b) => a + b, 0) / v.length).toFixed(2)}`);
}

// 2. matched comparison on one tracked frame with F = 7 and P = 16
function npy(path: string, data: Float32Array | BigInt64Array, shape: readonly number[]): string {
  const descr = data instanceof Float32Array ? '<f4' : '<i8';
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head.writeUInt8(1, 6);
  head.writeUInt8(0, 7);
  head.writeUInt16LE(header.length, 8);
  writeFileSync(
    path,
    Buffer.concat([
      head,
      Buffer.from(header, 'latin1'),
      Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    ]),
  );
  return path;
}

const frame = join(framesDir, files[NUM_FRAMES - 1]!);
const image = await prepareImage({ data: frame, label: 'bench' }, cfg.pixel_mean, cfg.pixel_std, 'cubic');
const enc = graph(models, 'encoder');
const encOut = await enc.run({ image: f32(image.tensor, [1, 3, 1024, 1024]) });
const embed = f32Data(encOut, 'image_embed', enc.file);
const hr0 = f32Data(encOut, 'high_res_feats_0', enc.file);
const hr1 = f32Data(encOut, 'high_res_feats_1', enc.file);
const pad = toModelPoints([], image);
const decFeeds = (e: Float32Array): Feeds => ({
  image_embed: f32(e, [1, HIDDEN_DIM, FEAT, FEAT]),
  high_res_feats_0: f32(hr0, [1, 32, 256, 256]),
  high_res_feats_1: f32(hr1, [1, 64, 128, 128]),
  point_coords: f32(
    toModelPoints(
      [
        { x: 200, y: 250, label: 2 },
        { x: 700, y: 520, label: 3 },
      ],
      image,
    ).coords,
    [1, 2, 2],
  ),
  point_labels: f32(Float32Array.of(2, 3), [1, 2]),
  mask_input: f32(new Float32Array(LOW_RES * LOW_RES), [1, 1, LOW_RES, LOW_RES]),
  has_mask_input: f32(Float32Array.of(0), [1]),
});
const vdec = graph(models, 'videoDecoder');
const keyOut = await vdec.run(decFeeds(embed));
const keyLogits = Float32Array.from(f32Data(keyOut, 'masks', vdec.file).subarray(0, LOW_RES * LOW_RES));
const menc = graph(models, 'memoryEncoder');
const mencFeeds: Feeds = {
  current_vision_feat: f32(embed, [1, HIDDEN_DIM, FEAT, FEAT]),
  mask_logits: f32(keyLogits, [1, 1, LOW_RES, LOW_RES]),
  binarize: f32(Float32Array.of(0), [1]),
  object_score_logits: f32(Float32Array.of(5), [1, 1]),
};
const mem = f32Data(await menc.run(mencFeeds), 'maskmem_features', menc.file);
const F = 7;
const P = 16;
const memory = new Float32Array(F * MEM_DIM * FEAT * FEAT);
for (let i = 0; i < F; i++) memory.set(mem, i * mem.length);
const ptrs = Float32Array.from(f32Data(keyOut, 'obj_ptrs', vdec.file).subarray(0, HIDDEN_DIM));
const memory0 = new Float32Array(P * HIDDEN_DIM);
for (let i = 0; i < P; i++) memory0.set(ptrs, i * HIDDEN_DIM);
const matt = graph(models, 'memoryAttention');
const mattFeeds: Feeds = {
  current_vision_feat: f32(embed, [1, HIDDEN_DIM, FEAT, FEAT]),
  memory_1: f32(memory, [F, MEM_DIM, FEAT, FEAT]),
  memory_1_tpos: i64([6, 5, 4, 3, 2, 1, 0]),
  memory_0: f32(memory0, [P, HIDDEN_DIM]),
  memory_0_pos: f32(
    Float32Array.from({ length: P }, (_, i) => (i === 0 ? 16 / 15 : i / 15)),
    [P],
  ),
};
const pixFeat = f32Data(await matt.run(mattFeeds), 'pix_feat_with_mem', matt.file);
const trackFeeds = {
  ...decFeeds(pixFeat),
  point_coords: f32(pad.coords, [1, 1, 2]),
  point_labels: f32(pad.labels, [1, 1]),
};

const matched: { stage: Stage; file: string; feeds: Feeds }[] = [
  { stage: 'encoder', file: enc.file, feeds: { image: f32(image.tensor, [1, 3, 1024, 1024]) } },
  { stage: 'memoryAttention', file: matt.file, feeds: mattFeeds },
  { stage: 'decoder', file: vdec.file, feeds: trackFeeds },
  { stage: 'memoryEncoder', file: menc.file, feeds: mencFeeds },
];
const manifest = {
  iterations: ITERATIONS,
  threads,
  frame,
  width: image.width,
  height: image.height,
  logits: npy(join(work, 'logits.npy'), keyLogits, [LOW_RES, LOW_RES]),
  graphs: Object.fromEntries(
    matched.map((m) => [
      m.stage,
      {
        file: m.file,
        inputs: Object.fromEntries(
          Object.entries(m.feeds).map(([name, t]) => [
            name,
            npy(join(work, `${m.stage}-${name}.npy`), t.data as Float32Array | BigInt64Array, t.dims),
          ]),
        ),
      },
    ]),
  ),
};
const manifestPath = join(work, 'manifest.json');
writeFileSync(manifestPath, JSON.stringify(manifest));

// Plain sessions with the same options as the Python side (no gate), so only the binding differs.
const sessions = new Map<Stage, ort.InferenceSession>();
for (const m of matched) {
  sessions.set(
    m.stage,
    await ort.InferenceSession.create(m.file, {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: threads,
      executionProviders: ['cpu'],
    }),
  );
}

async function medianMs(fn: () => Promise<unknown> | unknown): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const s = performance.now();
    await fn();
    times.push(performance.now() - s);
  }
  times.sort((a, b) => a - b);
  const mid = Math.floor(times.length / 2);
  return times.length % 2 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
}

async function nodeRound(): Promise<Record<string, number>> {
  const r: Record<string, number> = {};
  r.preprocess = await medianMs(() =>
    prepareImage({ data: frame, label: 'bench' }, cfg.pixel_mean, cfg.pixel_std, 'cubic'),
  );
  for (const m of matched) {
    const s = sessions.get(m.stage)!;
    r[m.stage] = await medianMs(() => s.run(m.feeds));
  }
  r.postprocess = await medianMs(() => logitsToMask(keyLogits, LOW_RES, image.width, image.height, 0));
  return r;
}

const best = (a: Record<string, number> | undefined, b: Record<string, number>) =>
  a ? Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Math.min(v, a[k] ?? v)])) : b;
let nodeBest: Record<string, number> | undefined;
let pyBest: Record<string, number> | undefined;
let pyVersion = '';
for (let round = 0; round < ROUNDS; round++) {
  nodeBest = best(nodeBest, await nodeRound());
  const out = JSON.parse(
    execFileSync(python, [join(repoRoot, 'bench/segment_ort.py'), manifestPath], { encoding: 'utf8' }),
  ) as Record<string, number | string>;
  pyVersion = String(out.onnxruntime);
  delete out.onnxruntime;
  pyBest = best(pyBest, out as Record<string, number>);
}

console.log(
  `\nmatched comparison: one tracked frame (F = ${F}, P = ${P}), median of ${ITERATIONS} runs, best of ${ROUNDS} alternating rounds`,
);
console.log(
  `  onnxruntime-node ${ort.env.versions.common} vs onnxruntime (Python) ${pyVersion}, ${threads} thread(s)`,
);
console.log(
  `  ${'stage'.padEnd(16)} ${'node ms'.padStart(9)} ${'python ms'.padStart(10)} ${'ratio'.padStart(7)}`,
);
let nodeOrt = 0;
let pyOrt = 0;
for (const s of stages) {
  const n = nodeBest![s]!;
  const p = pyBest![s]!;
  if (s !== 'preprocess' && s !== 'postprocess') {
    nodeOrt += n;
    pyOrt += p;
  }
  console.log(
    `  ${s.padEnd(16)} ${n.toFixed(2).padStart(9)} ${p.toFixed(2).padStart(10)} ${(n / p).toFixed(3).padStart(7)}`,
  );
}
const nodeAll = stages.reduce((a, s) => a + nodeBest![s]!, 0);
const pyAll = stages.reduce((a, s) => a + pyBest![s]!, 0);
console.log(
  `  ${'onnx stages'.padEnd(16)} ${nodeOrt.toFixed(2).padStart(9)} ${pyOrt.toFixed(2).padStart(10)} ${(nodeOrt / pyOrt).toFixed(3).padStart(7)}`,
);
console.log(
  `  ${'whole frame'.padEnd(16)} ${nodeAll.toFixed(2).padStart(9)} ${pyAll.toFixed(2).padStart(10)} ${(nodeAll / pyAll).toFixed(3).padStart(7)}`,
);
console.log(`Node/Python ratio (ONNX stages): ${(nodeOrt / pyOrt).toFixed(3)} (aim ≤ 1.05)`);
const round3 = (x: number) => Math.round(x * 1000) / 1000;
console.log(
  `BENCH ${JSON.stringify({
    name: 'segment',
    graphs: 'SAM2 contract test graphs (test/support/onnx-models.ts)',
    nodeOverPython: round3(nodeOrt / pyOrt),
    nodeOverPythonFrame: round3(nodeAll / pyAll),
    msPerFrame: round3(loopMs / NUM_FRAMES),
    stageRatios: Object.fromEntries(stages.map((s) => [s, round3(nodeBest![s]! / pyBest![s]!)])),
    threads,
  })}`,
);
await models.release();
for (const s of sessions.values()) await s.release();
