// J&F throughput on 854×480 masks, one core: the fast implementation beside a straightforward one.
//   npx tsc -p tsconfig.json && node dist/bench/metrics.bench.js [--naive-frames N] [--seconds S]
// Uses the real DAVIS masks in ../shared/data/davis_osvos when present, else synthetic masks.
import { existsSync, readdirSync } from 'node:fs';
import { readMaskPng } from '../activities/media/mask-png.js';
import { evaluateFrame } from '../core/metrics/davis.js';
import { evaluateFrameNaive } from '../core/metrics/davis-naive.js';
import { maskFrom, type BinaryMask } from '../core/metrics/mask.js';
import { sharedData } from '../test/support/paths.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function loadPairs(): Promise<{ source: string; pairs: [BinaryMask, BinaryMask][] }> {
  const dir = sharedData('davis_osvos');
  const pairs: [BinaryMask, BinaryMask][] = [];
  if (existsSync(dir)) {
    for (const seq of ['blackswan', 'dog', 'judo']) {
      const names = readdirSync(sharedData('davis_osvos', seq))
        .filter((n) => n.endsWith('.png'))
        .sort();
      const masks = await Promise.all(names.map((n) => readMaskPng(sharedData('davis_osvos', seq, n))));
      // Prediction = the mask 3 frames later: real shapes, real (imperfect) overlap.
      for (let i = 0; i + 3 < masks.length; i++)
        pairs.push([masks[i + 3] as BinaryMask, masks[i] as BinaryMask]);
    }
    return { source: `real DAVIS masks (${dir})`, pairs };
  }
  for (let i = 0; i < 40; i++) {
    const r = 120 + i;
    const a = maskFrom(854, 480, (x, y) => (x - 400 - i) ** 2 + (y - 240) ** 2 < r * r);
    const b = maskFrom(854, 480, (x, y) => (x - 410) ** 2 + (y - 236 + i / 2) ** 2 < (r + 5) * (r + 5));
    pairs.push([a, b]);
  }
  return { source: 'synthetic discs (shared data not found)', pairs };
}

function timeFast(
  pairs: [BinaryMask, BinaryMask][],
  seconds: number,
): { fps: number; frames: number; checksum: number } {
  let frames = 0;
  let checksum = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  while (performance.now() < deadline) {
    for (const [p, g] of pairs) {
      const s = evaluateFrame(p, g);
      checksum += s.J + s.F;
      frames++;
    }
  }
  return { fps: frames / ((performance.now() - start) / 1000), frames, checksum };
}

async function main(): Promise<void> {
  const { source, pairs } = await loadPairs();
  const naiveFrames = arg('--naive-frames', 4);
  const seconds = arg('--seconds', 3);
  // Warm-up (JIT) before timing.
  timeFast(pairs, 0.5);
  const fast = timeFast(pairs, seconds);
  let naiveMs = 0;
  let mismatches = 0;
  for (let i = 0; i < naiveFrames; i++) {
    const [p, g] = pairs[(i * 7) % pairs.length] as [BinaryMask, BinaryMask];
    const t = performance.now();
    const slow = evaluateFrameNaive(p, g);
    naiveMs += performance.now() - t;
    const quick = evaluateFrame(p, g);
    if (slow.J !== quick.J || slow.F !== quick.F) mismatches++;
  }
  const naiveFps = naiveFrames / (naiveMs / 1000);
  const report = {
    bench: 'J&F per frame (DAVIS J and F, bound_th 0.008, disk radius 8), 854×480, one core',
    source,
    node: process.version,
    fast: { framesPerSecond: Math.round(fast.fps * 10) / 10, frames: fast.frames },
    naive: {
      framesPerSecond: Math.round(naiveFps * 100) / 100,
      frames: naiveFrames,
      what: 'full seg2bmap + per-pixel disk dilation',
    },
    ratio: Math.round((fast.fps / naiveFps) * 10) / 10,
    target: { framesPerSecond: 200, met: fast.fps >= 200 },
    identicalResults: mismatches === 0,
  };
  console.log(JSON.stringify(report, null, 2));
  if (mismatches > 0) process.exitCode = 1;
}

await main();
