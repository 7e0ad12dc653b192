// Dataset readers and `segr dataset prepare` on small datasets made here: OK-VOS (a parquet written
// with hyparquet-writer, JPEG frames and 0/255 PNG masks made with sharp), ReasonSeg (LISA JSON
// polygons) and a JSONL manifest (image, video, frame folder), stored in the real dev S3.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { ArtifactStore } from '../../../activities/storage/artifact-store.js';
import { BadMediaError } from '../../../activities/media/errors.js';
import { runTool } from '../../../activities/media/ffmpeg.js';
import { decodeRle } from '../../../activities/media/rle.js';
import type { MaskSequence } from '../../../activities/media/masks.js';
import { readOkVos } from '../../../activities/datasets/okvos.js';
import { readReasonSeg } from '../../../activities/datasets/reasonseg.js';
import { readManifest } from '../../../activities/datasets/manifest.js';
import {
  prepareDataset,
  type PreparedDatasetIndex,
  type PreparedSample,
} from '../../../activities/datasets/prepare.js';
import { linspaceIndices } from '../../../activities/media/sampling.js';
import { repoRoot } from '../../support/paths.js';
import { testConfig, uniqueId } from '../../support/stack.js';

const config = testConfig();
const prefix = uniqueId('datasets-test');
const store = ArtifactStore.fromConfig({ ...config.s3, prefix });
const root = mkdtempSync(join(tmpdir(), 'segflow-datasets-'));
after(() => store.client.destroy());

const W = 64;
const H = 48;
/** Frame i of a video: a white square moving right over a grey background. */
const square = (i: number) => ({ x0: 10 + 2 * i, x1: 20 + 2 * i, y0: 10, y1: 20 });

async function frameJpeg(i: number, shade: number): Promise<Buffer> {
  const px = Buffer.alloc(W * H * 3, shade);
  const s = square(i);
  for (let y = s.y0; y <= s.y1; y++)
    for (let x = s.x0; x <= s.x1; x++) px.fill(255, (y * W + x) * 3, (y * W + x) * 3 + 3);
  return sharp(px, { raw: { width: W, height: H, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

async function maskPng(i: number): Promise<Buffer> {
  const px = Buffer.alloc(W * H);
  const s = square(i);
  for (let y = s.y0; y <= s.y1; y++) for (let x = s.x0; x <= s.x1; x++) px[y * W + x] = 255;
  return sharp(px, { raw: { width: W, height: H, channels: 1 } })
    .png()
    .toBuffer();
}

const okvosColumns = (
  rows: { question: string; images: string[]; ability: string; video: string; oid: number; id: string }[],
  drop?: string,
) => {
  const cols = [
    {
      name: 'question',
      data: rows.map((r) => r.question),
      el: { type: 'BYTE_ARRAY', converted_type: 'UTF8' },
    },
    { name: 'images', data: rows.map((r) => r.images), list: true },
    { name: 'ability', data: rows.map((r) => r.ability), el: { type: 'BYTE_ARRAY', converted_type: 'UTF8' } },
    { name: 'video', data: rows.map((r) => r.video), el: { type: 'BYTE_ARRAY', converted_type: 'UTF8' } },
    { name: 'oid', data: rows.map((r) => BigInt(r.oid)), el: { type: 'INT64' } },
    { name: 'id', data: rows.map((r) => r.id), el: { type: 'BYTE_ARRAY', converted_type: 'UTF8' } },
  ].filter((c) => c.name !== drop);
  const schema: Record<string, unknown>[] = [{ name: 'root', num_children: cols.length }];
  for (const c of cols) {
    if (c.list) {
      schema.push({ name: c.name, repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 });
      schema.push({ name: 'list', repetition_type: 'REPEATED', num_children: 1 });
      schema.push({
        name: 'element',
        type: 'BYTE_ARRAY',
        converted_type: 'UTF8',
        repetition_type: 'OPTIONAL',
      });
    } else schema.push({ name: c.name, repetition_type: 'OPTIONAL', ...c.el });
  }
  type WriteOptions = Parameters<typeof parquetWriteBuffer>[0];
  return Buffer.from(
    parquetWriteBuffer({
      columnData: cols.map(({ name, data }) => ({ name, data })) as WriteOptions['columnData'],
      schema: schema as unknown as WriteOptions['schema'],
    }),
  );
};

const okvosRows = [
  {
    question: "Please find 'the square' in the provided video.",
    images: [] as string[],
    ability: 'one-hop',
    video: 'a1b2c3d4e5',
    oid: 1,
    id: 'okvos-0',
  },
  {
    question: "Please find 'the other square' in the provided video.",
    images: [] as string[],
    ability: 'in-video',
    video: 'f6e5d4c3b2',
    oid: 2,
    id: 'okvos-1',
  },
];

before(async () => {
  // OK-VOS: 10 frames per video; masks on frames 2..8 only (not every frame has a PNG).
  for (const split of ['train', 'test']) {
    for (const [v, row] of okvosRows.entries()) {
      const fdir = join(root, 'okvos', split, 'JPEGImages', row.video);
      const adir = join(root, 'okvos', split, 'Annotations', row.video, String(row.oid));
      mkdirSync(fdir, { recursive: true });
      mkdirSync(adir, { recursive: true });
      row.images = [];
      for (let i = 0; i < 10; i++) {
        const name = String(i * 5).padStart(5, '0'); // frame ids 0, 5, 10, … like subsampled YouTube-VOS
        row.images.push(name);
        writeFileSync(join(fdir, `${name}.jpg`), await frameJpeg(i, 60 + 40 * v));
        if (i >= 2 && i <= 8) writeFileSync(join(adir, `${name}.png`), await maskPng(i));
      }
    }
    writeFileSync(join(root, 'okvos', `${split}.parquet`), okvosColumns(okvosRows));
  }
  writeFileSync(join(root, 'okvos', 'nooid.parquet'), okvosColumns(okvosRows, 'oid'));

  // ReasonSeg: two images with LISA JSON; a target rectangle with an "ignore" hole.
  const rs = join(root, 'reasonseg', 'val');
  mkdirSync(rs, { recursive: true });
  for (const name of ['img_a', 'img_b']) {
    writeFileSync(join(rs, `${name}.jpg`), await frameJpeg(0, 90));
    writeFileSync(
      join(rs, `${name}.json`),
      JSON.stringify({
        text: name === 'img_a' ? ['what holds the drink?'] : ['the square thing', 'the bright object'],
        is_sentence: true,
        shapes: [
          {
            label: 'target',
            points: [
              [10, 10],
              [30.7, 10],
              [30.7, 30.2],
              [10, 30.2],
            ],
            shape_type: 'polygon',
          },
          {
            label: 'ignore',
            points: [
              [15, 15],
              [20, 15],
              [20, 20],
              [15, 20],
            ],
            shape_type: 'polygon',
          },
          {
            label: 'flag',
            points: [
              [0, 0],
              [63, 0],
              [63, 47],
              [0, 47],
            ],
            shape_type: 'polygon',
          },
        ],
      }),
    );
  }

  // Manifest: an image with a mask, a 30-frame video with a mask folder, a frame folder without masks.
  const m = join(root, 'manifest');
  mkdirSync(join(m, 'video-masks'), { recursive: true });
  writeFileSync(join(m, 'photo.jpg'), await frameJpeg(3, 120));
  writeFileSync(join(m, 'photo-mask.png'), await maskPng(3));
  await runTool('ffmpeg', [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    `testsrc=size=${W}x${H}:rate=10`,
    '-frames:v',
    '30',
    '-pix_fmt',
    'yuv420p',
    join(m, 'clip.mp4'),
  ]);
  for (const i of [0, 12, 29])
    writeFileSync(join(m, 'video-masks', `${String(i).padStart(5, '0')}.png`), await maskPng(i % 10));
  mkdirSync(join(m, 'frames'));
  for (let i = 0; i < 4; i++) writeFileSync(join(m, 'frames', `f${i}.jpg`), await frameJpeg(i, 30));
  writeFileSync(
    join(m, 'samples.jsonl'),
    [
      { id: 'photo', media: 'photo.jpg', query: 'the square', mask: 'photo-mask.png', ability: 'in-video' },
      { id: 'clip', media: 'clip.mp4', query: 'the test pattern', mask: 'video-masks' },
      { id: 'frames', media: 'frames', query: 'anything' },
    ]
      .map((l) => JSON.stringify(l))
      .join('\n') + '\n',
  );
});

async function indexOf(ref: { uri: string }) {
  return store.getJson<PreparedDatasetIndex>(ref.uri);
}

test('OK-VOS test split: uniform 6 of 10 frames, ground truth from the masks by core/groundtruth, masks kept', async () => {
  const samples = await readOkVos(join(root, 'okvos', 'test.parquet'));
  assert.equal(samples.length, 2);
  assert.equal(samples[0]!.question, "Please find 'the square' in the provided video.");
  const { index, samples: n } = await prepareDataset(store, samples, {
    format: 'okvos',
    split: 'test',
    source: 'test.parquet',
  });
  assert.equal(n, 2);
  const idx = await indexOf(index);
  assert.deepEqual(
    idx.samples.map((s) => [s.id, s.ability]),
    [
      ['okvos-0', 'one-hop'],
      ['okvos-1', 'in-video'],
    ],
  );
  const rec = await store.getJson<PreparedSample>(idx.samples[0]!.ref.uri);
  assert.equal(rec.dataSource, 'Search_RVOS_one-hop');
  assert.deepEqual(rec.sampledIndices, linspaceIndices(10, 6));
  assert.deepEqual(rec.sampledIndices, [0, 1, 3, 5, 7, 9]);
  assert.deepEqual(
    rec.frames.map((f) => f.fid),
    [0, 5, 15, 25, 35, 45],
  );
  assert.equal(rec.anchor, null);
  // Masks exist on frames 2..8: among the sampled, ids 15, 25, 35 (positions 3, 5, 7).
  assert.deepEqual(Object.keys(rec.groundTruth).sort(), ['15', '25', '35']);
  // Frame position 3: square x 16..26, y 10..20 in a 64×48 frame → Qwen3-VL 0–1000.
  const gt = rec.groundTruth['15']!;
  assert.deepEqual(gt.bbox_2d, [
    Math.round((16 / 64) * 1000),
    Math.round((10 / 48) * 1000),
    Math.round((26 / 64) * 1000),
    Math.round((20 / 48) * 1000),
  ]);
  // Centre (21, 15): 15 / 48 · 1000 = 312.5, and Python's round is half-to-even → 312.
  assert.deepEqual(gt.point_2d, [328, 312]);
  assert.equal(gt.area, 1);
  assert.equal(gt.max_conn_area, 1);
  const meta = await sharp(await store.getBytes(rec.frames[0]!.policy.uri)).metadata();
  assert.deepEqual([meta.width, meta.height], [448, 448]);
  const seq = await store.getJson<MaskSequence>(rec.masks!.uri);
  assert.deepEqual(
    seq.frames.map((f) => f.index),
    [2, 3, 4, 5, 6, 7, 8],
  );
  assert.equal(
    decodeRle(seq.frames[0]!.rle).data.reduce((a, b) => a + b, 0),
    11 * 11,
  );
  // Prepared again: the same content-addressed index.
  const again = await prepareDataset(store, await readOkVos(join(root, 'okvos', 'test.parquet')), {
    format: 'okvos',
    split: 'test',
    source: 'test.parquet',
  });
  assert.equal(again.index.uri, index.uri);
});

test('OK-VOS train split: the anchor rule puts an annotated frame among the sampled ones', async () => {
  const samples = await readOkVos(join(root, 'okvos', 'train.parquet'));
  const { index } = await prepareDataset(store, samples, {
    format: 'okvos',
    split: 'train',
    source: 'train.parquet',
  });
  const idx = await indexOf(index);
  assert.equal(idx.options.anchor, true);
  for (const s of idx.samples) {
    const rec = await store.getJson<PreparedSample>(s.ref.uri);
    assert.ok(rec.anchor !== null && rec.anchor >= 2 && rec.anchor <= 8, `anchor ${rec.anchor}`);
    assert.ok(rec.sampledIndices.includes(rec.anchor));
    assert.equal(rec.sampledIndices.length, 6);
  }
});

test('ReasonSeg: one sample per query, the mask rasterised from the polygons, the ignore region apart', async () => {
  const samples = await readReasonSeg(join(root, 'reasonseg', 'val'));
  assert.deepEqual(
    samples.map((s) => s.id),
    ['img_a', 'img_b#0', 'img_b#1'],
  );
  const { index } = await prepareDataset(store, samples, {
    format: 'reasonseg',
    split: 'val',
    source: 'val',
  });
  const rec = await store.getJson<PreparedSample>((await indexOf(index)).samples[0]!.ref.uri);
  assert.equal(rec.totalFrames, 1);
  assert.equal(rec.question, 'what holds the drink?');
  const target = decodeRle((await store.getJson<MaskSequence>(rec.masks!.uri)).frames[0]!.rle);
  const ignore = decodeRle((await store.getJson<MaskSequence>(rec.ignore!.uri)).frames[0]!.rle);
  // Polygon 10..30 × 10..30 (vertices truncated to int) minus the 15..20 square; the "flag" shape is skipped.
  assert.equal(
    target.data.reduce((a, b) => a + b, 0),
    21 * 21 - 6 * 6,
  );
  assert.equal(
    ignore.data.reduce((a, b) => a + b, 0),
    6 * 6,
  );
  assert.deepEqual(rec.groundTruth['0']!.bbox_2d, [
    Math.round((10 / 64) * 1000),
    Math.round((10 / 48) * 1000),
    Math.round((30 / 64) * 1000),
    Math.round((30 / 48) * 1000),
  ]);
});

test('JSONL manifest: image with mask, video with a mask folder, frame folder without masks', async () => {
  const samples = await readManifest(join(root, 'manifest', 'samples.jsonl'));
  assert.deepEqual(
    samples.map((s) => [s.id, s.media.kind, s.annotation.kind]),
    [
      ['photo', 'image', 'mask-file'],
      ['clip', 'video', 'mask-folder'],
      ['frames', 'frames', 'none'],
    ],
  );
  const { index } = await prepareDataset(store, samples, {
    format: 'manifest',
    split: 'test',
    source: 'samples.jsonl',
  });
  const recs = await Promise.all(
    (await indexOf(index)).samples.map((s) => store.getJson<PreparedSample>(s.ref.uri)),
  );
  const [photo, clip, frames] = recs as [PreparedSample, PreparedSample, PreparedSample];
  assert.equal(photo.ability, 'in-video');
  assert.deepEqual(Object.keys(photo.groundTruth), ['0']);
  assert.equal(clip.totalFrames, 30);
  assert.deepEqual(clip.sampledIndices, linspaceIndices(30, 6));
  assert.deepEqual(Object.keys(clip.groundTruth), ['0', '29']);
  assert.equal(clip.frames.length, 6);
  assert.equal(frames.masks, null);
  assert.deepEqual(frames.groundTruth, {});
  assert.deepEqual(
    frames.frames.map((f) => f.fid),
    [0, 1, 2, 3],
  );
});

test('a parquet missing a column: typed non-retryable error naming the file and the columns; CLI exits non-zero', async () => {
  const path = join(root, 'okvos', 'nooid.parquet');
  const err = await readOkVos(path).catch((e: unknown) => e);
  assert.ok(err instanceof BadMediaError);
  assert.equal(err.retryable, false);
  assert.equal(err.file, path);
  assert.match(err.problem, /is missing required OK-VOS columns \["oid"\]/);
  const res = spawnSync(
    process.execPath,
    [join(repoRoot, 'bin/segr.js'), 'dataset', 'prepare', '--format', 'okvos', path],
    {
      encoding: 'utf8',
      env: { ...process.env, SEGFLOW_S3_PREFIX: `${prefix}/cli-bad` },
    },
  );
  assert.notEqual(res.status, 0);
  assert.equal(res.stdout, '');
  assert.match(res.stderr, /nooid\.parquet: is missing required OK-VOS columns \["oid"\]/);
});

test('a missing annotation: the error names the folder; no dataset index is written', async () => {
  const bad = new ArtifactStore(store.client, { bucket: store.bucket, prefix: `${prefix}/missing-anno` });
  const samples = await readOkVos(join(root, 'okvos', 'test.parquet'));
  const gone = join(root, 'okvos', 'test', 'Annotations', 'f6e5d4c3b2', '2');
  rmSync(gone, { recursive: true });
  const err = await prepareDataset(bad, samples, { format: 'okvos', split: 'test', source: 'x' }).catch(
    (e: unknown) => e,
  );
  assert.ok(err instanceof BadMediaError, String(err));
  assert.equal(err.file, gone);
  assert.match(err.problem, /missing annotation: the mask folder does not exist/);
  const indexes = [];
  for await (const o of bad.list('datasets/indexes/')) indexes.push(o);
  assert.deepEqual(indexes, [], 'a failed preparation registered an index');
  const rsErr = await readReasonSeg(join(root, 'manifest', 'frames')).catch((e: unknown) => e);
  assert.ok(rsErr instanceof BadMediaError);
  assert.match(rsErr.message, /f0\.json: missing annotation: image f0\.jpg has no f0\.json beside it/);
});

test('segr dataset prepare prints the index of a prepared dataset', () => {
  const res = spawnSync(
    process.execPath,
    [
      join(repoRoot, 'bin/segr.js'),
      'dataset',
      'prepare',
      '--format',
      'reasonseg',
      join(root, 'reasonseg', 'val'),
    ],
    {
      encoding: 'utf8',
      env: { ...process.env, SEGFLOW_S3_PREFIX: `${prefix}/cli`, SEGFLOW_LOG_LEVEL: 'warn' },
    },
  );
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout) as {
    format: string;
    split: string;
    samples: number;
    index: { uri: string };
  };
  assert.equal(out.format, 'reasonseg');
  assert.equal(out.split, 'val');
  assert.equal(out.samples, 3);
  assert.match(out.index.uri, new RegExp(`^s3://${store.bucket}/${prefix}/cli/datasets/indexes/sha256/`));
});
