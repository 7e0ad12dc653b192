// Benchmark: decode + sample + resize of 6 frames of ../shared/data/videos/bedroom.mp4, the way
// the pipeline does it (ffmpeg's select filter streams only the sampled frames; sharp resizes)
// beside two naive decode-everything baselines in the same run: every frame decoded into memory,
// and every frame written out as PNG files first. Prints medians and ratios.
//   node dist/bench/media-sample.bench.js
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FFMPEG_QUIET, runTool, startTool } from '../activities/media/ffmpeg.js';
import { extractFrames } from '../activities/media/frames.js';
import { resizeForPolicy } from '../activities/media/image.js';
import { probeVideo } from '../activities/media/probe.js';
import { linspaceIndices } from '../activities/media/sampling.js';

const video =
  process.env.SEGFLOW_BENCH_VIDEO ??
  join(
    process.env.SEGFLOW_SHARED_DATA ?? join(process.cwd(), '..', 'shared', 'data'),
    'videos',
    'bedroom.mp4',
  );
const RUNS = Number(process.env.SEGFLOW_BENCH_RUNS ?? 3);
const MB = 1024 * 1024;

async function pipelineWay(indices: number[]): Promise<number> {
  let n = 0;
  for await (const f of extractFrames(video, indices)) {
    await resizeForPolicy({ raw: f.rgb, width: f.width, height: f.height, channels: 3 });
    n++;
  }
  return n;
}

async function naiveInMemory(indices: number[], width: number, height: number): Promise<number> {
  const proc = startTool('ffmpeg', [
    ...FFMPEG_QUIET,
    '-i',
    video,
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    'pipe:1',
  ]);
  const chunks: Buffer[] = [];
  for await (const c of proc.stdout as AsyncIterable<Buffer>) chunks.push(c);
  await proc.done;
  const all = Buffer.concat(chunks);
  const size = width * height * 3;
  for (const i of indices) {
    await resizeForPolicy({ raw: all.subarray(i * size, (i + 1) * size), width, height, channels: 3 });
  }
  return indices.length;
}

async function naivePngFiles(indices: number[]): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'segflow-bench-frames-'));
  try {
    await runTool('ffmpeg', [...FFMPEG_QUIET, '-i', video, join(dir, '%05d.png')], { timeoutMs: 600_000 });
    for (const i of indices)
      await resizeForPolicy(readFileSync(join(dir, `${String(i + 1).padStart(5, '0')}.png`)));
    return indices.length;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(name: string, fn: () => Promise<number>) {
  const times: number[] = [];
  let peak = 0;
  for (let r = 0; r < RUNS; r++) {
    const base = process.memoryUsage().rss;
    let top = base;
    const sampler = setInterval(() => (top = Math.max(top, process.memoryUsage().rss)), 5);
    const t0 = performance.now();
    const n = await fn();
    times.push(performance.now() - t0);
    clearInterval(sampler);
    peak = Math.max(peak, Math.max(top, process.memoryUsage().rss) - base);
    if (n !== 6) throw new Error(`${name} produced ${n} frames`);
  }
  times.sort((a, b) => a - b);
  return { name, median: times[Math.floor(times.length / 2)]!, peakMb: peak / MB };
}

async function main(): Promise<void> {
  const probe = await probeVideo(video);
  const indices = linspaceIndices(probe.frames, 6);
  console.log(
    `${video}: ${probe.width}x${probe.height}, ${probe.frames} frames; sampled ${JSON.stringify(indices)}; ${RUNS} runs each`,
  );
  await pipelineWay(indices); // warm-up (sharp, page cache)
  const ours = await measure('select filter + sharp (pipeline)', () => pipelineWay(indices));
  const mem = await measure('naive: decode all frames to memory', () =>
    naiveInMemory(indices, probe.width, probe.height),
  );
  const png = await measure('naive: decode all frames to PNG files', () => naivePngFiles(indices));
  for (const r of [ours, mem, png]) {
    console.log(
      `${r.name.padEnd(40)} median ${r.median.toFixed(0).padStart(6)} ms   peak extra RSS ${r.peakMb.toFixed(1)} MB`,
    );
  }
  console.log(
    `speed-up vs decode-all-to-memory: ${(mem.median / ours.median).toFixed(2)}x; vs decode-all-to-PNG: ${(png.median / ours.median).toFixed(2)}x`,
  );
}

await main();
