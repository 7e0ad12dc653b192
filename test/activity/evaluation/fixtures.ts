// Tiny evaluation datasets made on the fly: OK-VOS layout (JPEG clips of coloured shapes moving
// over a grey background, 0/255 PNG masks, a parquet written with hyparquet-writer) and ReasonSeg
// (images with LISA polygon JSON). Each sample's question carries a marker ([q1] …) that the
// scripted policy reads to decide what it answers; `expectedBox` gives the true box of a frame.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { parquetWriteBuffer } from 'hyparquet-writer';

export const W = 64;
export const H = 48;
export const FRAMES = 8;

type Rgb = [number, number, number];

export interface Clip {
  video: string;
  color: Rgb;
  /** Box of the shape at frame position i (inclusive pixel bounds). */
  box: (i: number) => { x0: number; y0: number; x1: number; y1: number };
  /** A disc instead of a rectangle inside the box. */
  disc?: boolean;
}

export const clips: Clip[] = [
  {
    video: 'a1b2c3d4e5',
    color: [220, 30, 30],
    box: (i) => ({ x0: 6 + 3 * i, y0: 10, x1: 20 + 3 * i, y1: 24 }),
  },
  {
    video: 'f6e5d4c3b2',
    color: [30, 60, 220],
    box: (i) => ({ x0: 30, y0: 4 + 2 * i, x1: 50, y1: 18 + 2 * i }),
  },
  {
    video: '0a9b8c7d6e',
    color: [30, 200, 60],
    box: (i) => ({ x0: 20 + i, y0: 14, x1: 36 + i, y1: 30 }),
    disc: true,
  },
];

function inside(c: Clip, i: number, x: number, y: number): boolean {
  const b = c.box(i);
  if (x < b.x0 || x > b.x1 || y < b.y0 || y > b.y1) return false;
  if (!c.disc) return true;
  const cx = (b.x0 + b.x1) / 2;
  const cy = (b.y0 + b.y1) / 2;
  const r = (b.x1 - b.x0) / 2;
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
}

async function frameJpeg(c: Clip, i: number): Promise<Buffer> {
  const px = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const p = (y * W + x) * 3;
      // A faint gradient, so no two frames of different clips are byte-identical.
      const bg: Rgb = [110 + (x % 7), 110 + (y % 5), 115 + i];
      const col = inside(c, i, x, y) ? c.color : bg;
      px[p] = col[0];
      px[p + 1] = col[1];
      px[p + 2] = col[2];
    }
  return sharp(px, { raw: { width: W, height: H, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

async function maskPng(c: Clip, i: number): Promise<Buffer> {
  const px = Buffer.alloc(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) px[y * W + x] = inside(c, i, x, y) ? 255 : 0;
  return sharp(px, { raw: { width: W, height: H, channels: 1 } })
    .png()
    .toBuffer();
}

/** Frame name of position i: ids 0, 5, 10, … like subsampled YouTube-VOS. */
export const frameName = (i: number) => String(i * 5).padStart(5, '0');

export interface OkvosRow {
  id: string;
  question: string;
  ability: string;
  clip: Clip;
  oid: number;
}

/** What the scripted policy does for a marker: answer the true box, a shifted box, or nothing. */
export type Behaviour = 'exact' | 'shifted' | 'no-tags';

export const okvosRows: (OkvosRow & { behaviour: Behaviour })[] = [
  {
    id: 'q1',
    question: "Please find 'the red square that won' in the provided video. [q1]",
    ability: 'one-hop',
    clip: clips[0]!,
    oid: 1,
    behaviour: 'exact',
  },
  {
    id: 'q2',
    question: "Please find 'the blue car of the champion' in the provided video. [q2]",
    ability: 'multi-hop',
    clip: clips[1]!,
    oid: 1,
    behaviour: 'shifted',
  },
  {
    id: 'q3',
    question: "Please find 'the green ball left of the winner' in the provided video. [q3]",
    ability: 'relational',
    clip: clips[2]!,
    oid: 1,
    behaviour: 'no-tags',
  },
  {
    id: 'q4',
    question: "Please find 'the blue rectangle' in the provided video. [q4]",
    ability: 'in-video',
    clip: clips[1]!,
    oid: 2,
    behaviour: 'exact',
  },
];

function okvosParquet(rows: readonly OkvosRow[]): Buffer {
  const str = { type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' };
  const schema = [
    { name: 'root', num_children: 6 },
    { name: 'question', ...str },
    { name: 'images', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
    { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
    { name: 'element', ...str },
    { name: 'ability', ...str },
    { name: 'video', ...str },
    { name: 'oid', type: 'INT64', repetition_type: 'OPTIONAL' },
    { name: 'id', ...str },
  ];
  const images = Array.from({ length: FRAMES }, (_, i) => frameName(i));
  type WriteOptions = Parameters<typeof parquetWriteBuffer>[0];
  return Buffer.from(
    parquetWriteBuffer({
      columnData: [
        { name: 'question', data: rows.map((r) => r.question) },
        { name: 'images', data: rows.map(() => images) },
        { name: 'ability', data: rows.map((r) => r.ability) },
        { name: 'video', data: rows.map((r) => r.clip.video) },
        { name: 'oid', data: rows.map((r) => BigInt(r.oid)) },
        { name: 'id', data: rows.map((r) => r.id) },
      ] as WriteOptions['columnData'],
      schema: schema as unknown as WriteOptions['schema'],
    }),
  );
}

/** Writes `<root>/test.parquet` and `<root>/test/{JPEGImages,Annotations}`; returns the parquet path. */
export async function writeOkvos(root: string): Promise<string> {
  for (const row of okvosRows) {
    const fdir = join(root, 'test', 'JPEGImages', row.clip.video);
    const adir = join(root, 'test', 'Annotations', row.clip.video, String(row.oid));
    mkdirSync(fdir, { recursive: true });
    mkdirSync(adir, { recursive: true });
    for (let i = 0; i < FRAMES; i++) {
      writeFileSync(join(fdir, `${frameName(i)}.jpg`), await frameJpeg(row.clip, i));
      writeFileSync(join(adir, `${frameName(i)}.png`), await maskPng(row.clip, i));
    }
  }
  const parquet = join(root, 'test.parquet');
  writeFileSync(parquet, okvosParquet(okvosRows));
  return parquet;
}

/** The true box of a clip at frame id `fid`, in the policy's 0–1000 frame. */
export function expectedBox(c: Clip, fid: number): [number, number, number, number] {
  const b = c.box(fid / 5);
  return [
    Math.round((b.x0 / W) * 1000),
    Math.round((b.y0 / H) * 1000),
    Math.round(((b.x1 + 1) / W) * 1000),
    Math.round(((b.y1 + 1) / H) * 1000),
  ];
}

export const reasonSegRows: { stem: string; text: string; clip: Clip; behaviour: Behaviour }[] = [
  {
    stem: 'img_a',
    text: 'what is the red thing that drives fastest? [r1]',
    clip: clips[0]!,
    behaviour: 'exact',
  },
  { stem: 'img_b', text: 'the object a champion would ride [r2]', clip: clips[1]!, behaviour: 'shifted' },
  { stem: 'img_c', text: 'something round and green [r3]', clip: clips[2]!, behaviour: 'no-tags' },
];

/** A ReasonSeg folder: each image is frame 0 of a clip, its polygon the shape's box. */
export async function writeReasonSeg(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  for (const r of reasonSegRows) {
    writeFileSync(join(dir, `${r.stem}.jpg`), await frameJpeg({ ...r.clip, disc: false }, 0));
    const b = r.clip.box(0);
    writeFileSync(
      join(dir, `${r.stem}.json`),
      JSON.stringify({
        text: [r.text],
        is_sentence: true,
        shapes: [
          {
            label: 'target',
            points: [
              [b.x0, b.y0],
              [b.x1 + 1, b.y0],
              [b.x1 + 1, b.y1 + 1],
              [b.x0, b.y1 + 1],
            ],
            shape_type: 'polygon',
          },
        ],
      }),
    );
  }
  return dir;
}
