/**
 * Mask files: binary masks as 8-bit grayscale PNG with values 0/255 (what the reference writes and
 * OK-VOS ships), reading label/palette PNGs back into per-object binary masks, and mask sequences
 * (a propagated video mask) stored as one JSON of COCO RLE frames.
 */
import sharp from 'sharp';
import { BadMediaError } from './errors.js';
import { encodeRle, decodeRle, type BinaryMask, type CocoRle } from './rle.js';

export type { BinaryMask } from './rle.js';

/** An all-background mask. */
export function emptyMask(width: number, height: number): BinaryMask {
  return { width, height, data: new Uint8Array(width * height) };
}

/** Number of foreground pixels. */
export function maskArea(mask: BinaryMask): number {
  let n = 0;
  for (let i = 0; i < mask.data.length; i++) if (mask.data[i]) n++;
  return n;
}

/** A binary mask as a single-channel 8-bit PNG, 0 = background, 255 = object. */
export async function encodeMaskPng(mask: BinaryMask): Promise<Buffer> {
  const px = Buffer.alloc(mask.width * mask.height);
  for (let i = 0; i < px.length; i++) px[i] = mask.data[i] ? 255 : 0;
  return sharp(px, { raw: { width: mask.width, height: mask.height, channels: 1 } })
    .png({ compressionLevel: 9, palette: false })
    .toBuffer();
}

/** How a mask image's pixels become foreground. */
export type MaskRule =
  /** Any non-zero pixel is foreground (DAVIS/OK-VOS evaluation). */
  | 'nonzero'
  /** Only 255 is foreground (the reference's ground-truth rule for OK-VOS annotations). */
  | 'eq255';

/**
 * Reads a mask image (grayscale, RGB or palette PNG; anything sharp decodes) as one binary mask.
 * For palette PNGs sharp yields the palette colours, so `nonzero` means "not the background colour
 * black" and `eq255` means "white"; per-object palette indices need readMaskPng (mask-png.ts).
 */
export async function readBinaryMask(
  source: string | Buffer,
  rule: MaskRule = 'nonzero',
): Promise<BinaryMask> {
  const label = typeof source === 'string' ? source : 'mask buffer';
  let decoded;
  try {
    decoded = await sharp(source, { failOn: 'warning' })
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new BadMediaError(
      label,
      `is not a readable mask image: ${(err as Error).message.split('\n')[0]}`,
      err,
    );
  }
  const { data, info } = decoded;
  const n = info.width * info.height;
  const out = new Uint8Array(n);
  const c = info.channels;
  for (let i = 0; i < n; i++) {
    let fg = rule === 'eq255';
    for (let k = 0; k < c; k++) {
      const v = data[i * c + k]!;
      if (rule === 'nonzero') fg ||= v !== 0;
      else fg &&= v === 255;
    }
    out[i] = fg ? 1 : 0;
  }
  return { width: info.width, height: info.height, data: out };
}

/** Splits an RGB label image into one binary mask per distinct non-black colour. */
export async function readColourObjects(source: string | Buffer): Promise<Map<string, BinaryMask>> {
  const { data, info } = await sharp(source).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const n = info.width * info.height;
  const c = info.channels;
  const objects = new Map<string, BinaryMask>();
  for (let i = 0; i < n; i++) {
    let key = '';
    let zero = true;
    for (let k = 0; k < c; k++) {
      const v = data[i * c + k]!;
      if (v) zero = false;
      key += (k ? ',' : '') + v;
    }
    if (zero) continue;
    let m = objects.get(key);
    if (!m) {
      m = emptyMask(info.width, info.height);
      objects.set(key, m);
    }
    m.data[i] = 1;
  }
  return objects;
}

/** A propagated mask sequence (one object over a video's frames), stored as one JSON artifact. */
export interface MaskSequence {
  width: number;
  height: number;
  /** Frames with a mask; frames not listed have an empty mask. */
  frames: { index: number; rle: CocoRle }[];
}

export function toMaskSequence(
  width: number,
  height: number,
  masks: Iterable<[number, BinaryMask]>,
): MaskSequence {
  const frames: MaskSequence['frames'] = [];
  for (const [index, mask] of masks) {
    if (mask.width !== width || mask.height !== height) {
      throw new RangeError(
        `mask of frame ${index} is ${mask.width}×${mask.height}, the sequence is ${width}×${height}`,
      );
    }
    frames.push({ index, rle: encodeRle(mask) });
  }
  frames.sort((a, b) => a.index - b.index);
  return { width, height, frames };
}

/** The masks of a sequence by frame index. */
export function maskSequenceLookup(seq: MaskSequence): (index: number) => BinaryMask | undefined {
  const byIndex = new Map(seq.frames.map((f) => [f.index, f.rle]));
  return (index) => {
    const rle = byIndex.get(index);
    return rle ? decodeRle(rle) : undefined;
  };
}
