/**
 * SAM2 segment benchmark on CPU, on the official SAM2.1 hiera-tiny graphs (sam2==1.1.0, seeded random
 * weights; exported once and cached by scripts/sam2-export/cached-tiny.sh, which needs .venv/sam2 —
 * without it the generated nano contract graphs stand in and the BENCH line says so), on real
 * frames of bedroom.mp4 (960×540):
 *   1. the video loop (activities/segment/sam2-video.ts, what the segment activity runs): keyframe
 *      0 prompted, then propagation; per-frame wall time of the propagated frames and their stages;
 *   2. a matched comparison: the same ONNX files on the same inputs (a tracked frame with F = 7
 *      memories and P = 16 pointers) run by segflow's own sessions (models.ts, onnxruntime-node) and
 *      by Python onnxruntime (same version, same intra-op threads) in a worker process
 *      (bench/segment_ort.py), plus preprocessing (segflow's prepareImage vs PIL + numpy, as the
 *      official video predictor does it) and postprocessing (logits → mask). Node and Python
 *      alternate call by call (the side that goes first swaps every call), stage after stage, round
 *      after round; each side's median over all rounds → Node/Python ratio per stage and for the
 *      whole frame (the sum of the stage medians).
 * Needs `bash bench/setup-segment-python.sh` (pinned onnxruntime, numpy, pillow in .venv/segment-bench).
 *   SEGFLOW_BENCH_THREADS  intra-op threads per session, both sides @default 1
 *   SEGFLOW_BENCH_ROUNDS   alternating rounds @default 5
 *   SEGFLOW_BENCH_FRAMES   frames of the video loop @default 10
 *   SEGFLOW_BENCH_STAGES   comma-separated stages of the matched comparison @default all six
 * Ends with `BENCH {"name":"segment","graphs":…,"threads":…,"nodeOverPython":…,"msPerFrame":…,…}`.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
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

const threads = Number(process.env.SEGFLOW_BENCH_THREADS ?? 1);
const ROUNDS = Number(process.env.SEGFLOW_BENCH_ROUNDS ?? 5);
const NUM_FRAMES = Number(process.env.SEGFLOW_BENCH_FRAMES ?? 10);
/** Timed calls per stage and round: enough for ~1.5 s of the stage, 2..15. */
const ROUND_MS = 1500;
const python = join(repoRoot, '.venv/segment-bench/bin/python');
if (!existsSync(python)) {
  console.error('segment bench: the Python side is missing; run `bash bench/setup-segment-python.sh` first');
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'segflow-segment-bench-'));

/** The real hiera-tiny graphs, or the nano contract graphs when they cannot be made here. */
async function modelsFolder(): Promise<{ dir: string; graphs: 'sam2.1-hiera-tiny' | 'nano-contract' }> {
  const r = spawnSync('bash', [join(repoRoot, 'scripts/sam2-export/cached-tiny.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status === 0 && r.stdout.trim()) return { dir: r.stdout.trim(), graphs: 'sam2.1-hiera-tiny' };
  console.error(
    'segment bench: the SAM2.1 hiera-tiny graphs cannot be made here (see above); ' +
      'FALLING BACK to the generated nano contract graphs (test/support/onnx-models.ts) — ' +
      'their ratios are per-call overhead, not the real model',
  );
  return { dir: await writeSam2TestModels(join(work, 'models')), graphs: 'nano-contract' };
}

const { dir: modelsDir, graphs: graphsName } = await modelsFolder();
const framesDir = join(work, 'frames');
execFileSync('mkdir', ['-p', framesDir]);
execFileSync('ffmpeg', [
  ...['-hide_banner', '-loglevel', 'error', '-i', sharedData('videos', 'bedroom.mp4')],
  ...['-vf', `select='lt(n\\,${NUM_FRAMES})'`, '-vsync', '0', '-q:v', '2', join(framesDir, '%05d.jpg')],
]);
const files = readdirSync(framesDir).sort();
const models = await loadSam2Models(modelsDir, 'video', {
  executionProviders: ['cpu'],
  deviceId: 0,
  intraOpThreads: threads,
  runsPerDevice: 1,
});
const cfg = models.config;
const allStages: Stage[] = [
  'preprocess',
  'encoder',
  'memoryAttention',
  'decoder',
  'memoryEncoder',
  'postprocess',
];
const only = process.env.SEGFLOW_BENCH_STAGES?.split(',');
const stages = allStages.filter((s) => !only || only.includes(s));
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round3 = (x: number) => Math.round(x * 1000) / 1000;

// 1. the video loop: per propagated frame, wall time (frame loading included) and stages
const perFrame = new Map<number, Partial<Record<Stage, number>>>();
const frameMs = new Map<number, number>();
let current = 0;
let frameStart = performance.now();
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
    onProgress: (p) => {
      const now = performance.now();
      frameMs.set(p.lastFrame, now - frameStart);
      frameStart = now;
    },
  },
);
const loopMs = performance.now() - t0;
const propagated = [...frameMs.entries()].filter(([f]) => f !== 0).map(([, ms]) => ms);
const msPerFrame = propagated.reduce((a, b) => a + b, 0) / propagated.length;
console.log(
  `video loop (${graphsName}): ${NUM_FRAMES} frames of 960×540, keyframe 0, ${threads} intra-op thread(s)`,
);
console.log(
  `  ${(loopMs / NUM_FRAMES).toFixed(1)} ms/frame end to end; propagated frames: mean ` +
    `${msPerFrame.toFixed(1)} ms, median ${median(propagated).toFixed(1)} ms (frame loading included)`,
);
console.log('  propagated-frame mean by stage (ms):');
const tracked = [...perFrame.entries()].filter(([f]) => f !== 0).map(([, r]) => r);
for (const s of allStages) {
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

const frame = join(framesDir, files[files.length - 1]!);
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

const matched: { stage: Stage; graph: typeof enc; feeds: Feeds }[] = [
  { stage: 'encoder', graph: enc, feeds: { image: f32(image.tensor, [1, 3, 1024, 1024]) } },
  { stage: 'memoryAttention', graph: matt, feeds: mattFeeds },
  { stage: 'decoder', graph: vdec, feeds: trackFeeds },
  { stage: 'memoryEncoder', graph: menc, feeds: mencFeeds },
];
const manifestPath = join(work, 'manifest.json');
writeFileSync(
  manifestPath,
  JSON.stringify({
    threads,
    frame,
    width: image.width,
    height: image.height,
    logits: npy(join(work, 'logits.npy'), keyLogits, [LOW_RES, LOW_RES]),
    graphs: Object.fromEntries(
      matched.map((m) => [
        m.stage,
        {
          file: m.graph.file,
          inputs: Object.fromEntries(
            Object.entries(m.feeds).map(([name, t]) => [
              name,
              npy(join(work, `${m.stage}-${name}.npy`), t.data as Float32Array | BigInt64Array, t.dims),
            ]),
          ),
        },
      ]),
    ),
  }),
);

// The Node side: segflow's own calls (its sessions and options, its preprocessing), nothing bench-only.
const nodeRuns: Record<Stage, () => Promise<unknown> | unknown> = {
  preprocess: () => prepareImage({ data: frame, label: 'bench' }, cfg.pixel_mean, cfg.pixel_std, 'cubic'),
  ...(Object.fromEntries(matched.map((m) => [m.stage, () => m.graph.run(m.feeds)])) as Record<
    'encoder' | 'memoryAttention' | 'decoder' | 'memoryEncoder',
    () => Promise<unknown>
  >),
  postprocess: () => logitsToMask(keyLogits, LOW_RES, image.width, image.height, 0),
};

// V8's garbage collection while the Node side is timed (Python frees by reference counting)
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });
const nodeGcMs = new Map<Stage, number>();

async function nodeSamples(stage: Stage, iterations: number, warmup: boolean): Promise<number[]> {
  const fn = nodeRuns[stage];
  if (warmup) await fn();
  const times: number[] = [];
  const gc0 = gcMs;
  for (let i = 0; i < iterations; i++) {
    const s = performance.now();
    await fn();
    times.push(performance.now() - s);
  }
  await new Promise((resolve) => setImmediate(resolve)); // let the gc entries arrive
  nodeGcMs.set(stage, (nodeGcMs.get(stage) ?? 0) + gcMs - gc0);
  return times;
}

// The Python worker: sessions loaded once, one request per line.
const child = spawn(python, [join(repoRoot, 'bench/segment_ort.py'), manifestPath], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
async function reply(): Promise<Record<string, unknown>> {
  const next = await lines.next();
  if (next.done) throw new Error('segment bench: the Python worker exited early (see its stderr above)');
  return JSON.parse(next.value) as Record<string, unknown>;
}
async function pythonSamples(stage: Stage, iterations: number, warmup: boolean): Promise<number[]> {
  child.stdin.write(`${JSON.stringify({ stage, iterations, warmup })}\n`);
  return (await reply()).ms as number[];
}
const ready = await reply();
const pyVersion = String(ready.onnxruntime);

const iterations = new Map<Stage, number>();
for (const s of stages) {
  const t = performance.now();
  await nodeRuns[s]();
  iterations.set(s, Math.min(15, Math.max(2, Math.round(ROUND_MS / (performance.now() - t)))));
}
const samples = { node: new Map<Stage, number[]>(), python: new Map<Stage, number[]>() };
const roundRatios = new Map<Stage, number[]>();
for (let round = 0; round < ROUNDS; round++) {
  for (const s of stages) {
    const n = iterations.get(s)!;
    if (round === 0) {
      await nodeSamples(s, 0, true);
      await pythonSamples(s, 0, true);
    }
    // call by call, Node and Python in turn (who goes first alternates), so load that drifts
    // over seconds on a shared machine weighs on both sides alike
    const nodeT: number[] = [];
    const pyT: number[] = [];
    for (let i = 0; i < n; i++) {
      if ((i + round) % 2 === 0) {
        nodeT.push(...(await nodeSamples(s, 1, false)));
        pyT.push(...(await pythonSamples(s, 1, false)));
      } else {
        pyT.push(...(await pythonSamples(s, 1, false)));
        nodeT.push(...(await nodeSamples(s, 1, false)));
      }
    }
    samples.node.set(s, [...(samples.node.get(s) ?? []), ...nodeT]);
    samples.python.set(s, [...(samples.python.get(s) ?? []), ...pyT]);
    roundRatios.set(s, [...(roundRatios.get(s) ?? []), median(nodeT) / median(pyT)]);
  }
}
child.stdin.end();

const nodeMs = Object.fromEntries(stages.map((s) => [s, median(samples.node.get(s)!)])) as Record<
  Stage,
  number
>;
const pyMs = Object.fromEntries(stages.map((s) => [s, median(samples.python.get(s)!)])) as Record<
  Stage,
  number
>;
console.log(
  `\nmatched comparison (${graphsName}): one tracked frame (F = ${F}, P = ${P}), ${ROUNDS} alternating rounds, ` +
    `median over all rounds`,
);
console.log(
  `  onnxruntime-node ${ort.env.versions.common} vs onnxruntime (Python) ${pyVersion}, ${threads} intra-op thread(s)`,
);
console.log(
  `  ${'stage'.padEnd(16)} ${'calls'.padStart(5)} ${'node ms'.padStart(9)} ${'python ms'.padStart(10)} ${'ratio'.padStart(7)} ${'node gc'.padStart(8)}  per-round ratios`,
);
const onnxStages = stages.filter((s) => s !== 'preprocess' && s !== 'postprocess');
const sum = (r: Record<Stage, number>, ss: readonly Stage[]) => ss.reduce((a, s) => a + r[s], 0);
for (const s of stages) {
  console.log(
    `  ${s.padEnd(16)} ${String(samples.node.get(s)!.length).padStart(5)} ${nodeMs[s].toFixed(2).padStart(9)} ` +
      `${pyMs[s].toFixed(2).padStart(10)} ${(nodeMs[s] / pyMs[s]).toFixed(3).padStart(7)} ` +
      `${(nodeGcMs.get(s)! / samples.node.get(s)!.length).toFixed(2).padStart(8)}  ` +
      roundRatios
        .get(s)!
        .map((r) => r.toFixed(2))
        .join(' '),
  );
}
const nodeOnnx = sum(nodeMs, onnxStages);
const pyOnnx = sum(pyMs, onnxStages);
const nodeFrame = sum(nodeMs, stages);
const pyFrame = sum(pyMs, stages);
console.log(
  `  ${'onnx stages'.padEnd(16)} ${''.padStart(5)} ${nodeOnnx.toFixed(2).padStart(9)} ${pyOnnx.toFixed(2).padStart(10)} ${(nodeOnnx / pyOnnx).toFixed(3).padStart(7)}`,
);
console.log(
  `  ${'whole frame'.padEnd(16)} ${''.padStart(5)} ${nodeFrame.toFixed(2).padStart(9)} ${pyFrame.toFixed(2).padStart(10)} ${(nodeFrame / pyFrame).toFixed(3).padStart(7)}`,
);
console.log(
  `Node/Python per frame: ${(nodeFrame / pyFrame).toFixed(3)} (aim ≤ 1.05 per stage and per frame)`,
);
console.log(
  `BENCH ${JSON.stringify({
    name: 'segment',
    graphs: graphsName,
    threads,
    nodeOverPython: round3(nodeFrame / pyFrame),
    msPerFrame: round3(msPerFrame),
    onnxStagesRatio: round3(nodeOnnx / pyOnnx),
    stageRatios: Object.fromEntries(stages.map((s) => [s, round3(nodeMs[s] / pyMs[s])])),
    nodeMs: Object.fromEntries(stages.map((s) => [s, round3(nodeMs[s])])),
    pythonMs: Object.fromEntries(stages.map((s) => [s, round3(pyMs[s])])),
    onnxruntime: { node: ort.env.versions.common, python: pyVersion },
    ...(only ? { stages } : {}),
  })}`,
);
await models.release();
rmSync(work, { recursive: true, force: true });
