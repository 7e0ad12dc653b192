// Benchmark: ingesting a ~200 MB video (probe, SHA-256, multipart upload to the dev S3, then 6
// sampled frames decoded, resized and stored) keeps this process's extra resident memory under
// 100 MB. The video is made here with ffmpeg (high-bitrate noisy testsrc2) in a temp folder.
//   node dist/bench/media-ingest.bench.js      (needs the dev stack: `segr dev up`)
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { loadConfig } from '../activities/runtime/config-loader.js';
import { ArtifactStore } from '../activities/storage/artifact-store.js';
import { runTool } from '../activities/media/ffmpeg.js';
import { ingestVideo } from '../activities/media/ingest.js';
import { storeVideoFrames } from '../activities/media/frame-store.js';
import { linspaceIndices } from '../activities/media/sampling.js';

const LIMIT_MB = 100;
const TARGET_BYTES = 200e6;
const MB = 1024 * 1024;

async function makeVideo(path: string): Promise<number> {
  for (const seconds of [8, 10, 14]) {
    await runTool(
      'ffmpeg',
      [
        '-hide_banner',
        '-nostdin',
        '-loglevel',
        'error',
        '-y',
        '-f',
        'lavfi',
        '-i',
        'testsrc2=size=1280x720:rate=30',
        '-vf',
        'noise=alls=30:allf=t',
        '-t',
        String(seconds),
        '-c:v',
        'libx264',
        '-preset',
        'ultrafast',
        '-crf',
        '8',
        '-pix_fmt',
        'yuv420p',
        path,
      ],
      { timeoutMs: 300_000 },
    );
    const size = statSync(path).size;
    if (size >= TARGET_BYTES) return size;
  }
  throw new Error('could not make a 200 MB test video');
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'segflow-bench-ingest-'));
  try {
    const video = join(dir, 'big.mp4');
    const size = await makeVideo(video);
    const store = ArtifactStore.fromConfig({
      ...loadConfig().config.s3,
      prefix: `bench/ingest-${Date.now()}`,
    });
    await store.ensureBucket();
    global.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 10);
    const t0 = performance.now();
    const ingested = await ingestVideo(store, video);
    const t1 = performance.now();
    const frames = await storeVideoFrames(
      store,
      { path: video, sha256: ingested.video.sha256 },
      linspaceIndices(ingested.probe.frames, 6),
      {
        probe: ingested.probe,
      },
    );
    const t2 = performance.now();
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    const extra = (peak - base) / MB;
    console.log(
      `video: ${(size / 1e6).toFixed(1)} MB, ${ingested.probe.width}x${ingested.probe.height}, ${ingested.probe.frames} frames (${ingested.video.uri})`,
    );
    console.log(`ingest (probe + sha256 + multipart upload): ${((t1 - t0) / 1000).toFixed(2)} s`);
    console.log(
      `sample 6 frames (decode + resize + store):  ${((t2 - t1) / 1000).toFixed(2)} s, ${frames.length} frames`,
    );
    console.log(
      `rss: base ${(base / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB, extra ${extra.toFixed(1)} MB (limit ${LIMIT_MB} MB)`,
    );
    console.log(
      `media-ingest: ${extra < LIMIT_MB ? 'PASS' : 'FAIL'} extra RSS ${extra.toFixed(1)} MB < ${LIMIT_MB} MB`,
    );
    // The bench's objects (the 200 MB video included) are removed from the dev S3 again.
    for await (const o of store.list('')) {
      await store.client.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: store.prefix + o.key }));
    }
    store.client.destroy();
    if (extra >= LIMIT_MB) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
