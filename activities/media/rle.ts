/**
 * COCO run-length encoding of binary masks, compatible with pycocotools (`mask.encode`,
 * `mask.decode`, `mask.area`, `mask.toBbox`): runs are counted in column-major (Fortran) order,
 * starting with a run of zeros, and `counts` may be the uncompressed number list or pycocotools'
 * compressed string (LEB128-like, 5 bits per char, deltas against the count two back).
 * Pure: no Node built-ins, so it can move to core/ unchanged.
 */

import type { BinaryMask } from '../../core/metrics/mask.js';

/** core's binary mask: `data[y * width + x]` is non-zero inside the object (row-major). */
export type { BinaryMask };

/** COCO RLE as pycocotools writes it: `size` is [height, width]. */
export interface CocoRle {
  size: [number, number];
  counts: string;
}

/** COCO RLE with the counts as numbers (the `iscrowd` annotation form). */
export interface CocoRleCounts {
  size: [number, number];
  counts: number[];
}

/** Run lengths of a row-major mask in column-major order, starting with zeros. */
export function maskToCounts(mask: BinaryMask): number[] {
  const { width: w, height: h, data } = mask;
  if (data.length !== w * h) throw new RangeError(`mask data has ${data.length} values, expected ${w}×${h}`);
  const counts: number[] = [];
  let current = 0;
  let run = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = data[y * w + x] ? 1 : 0;
      if (v !== current) {
        counts.push(run);
        run = 0;
        current = v;
      }
      run++;
    }
  }
  counts.push(run);
  return counts;
}

/** Inverse of {@link maskToCounts}. */
export function countsToMask(counts: readonly number[], height: number, width: number): BinaryMask {
  const data = new Uint8Array(width * height);
  let pos = 0;
  let value = 0;
  for (const run of counts) {
    if (!Number.isInteger(run) || run < 0)
      throw new RangeError(`RLE run ${run} is not a non-negative integer`);
    if (pos + run > width * height)
      throw new RangeError(`RLE runs cover more than ${height}×${width} pixels`);
    if (value) {
      for (let k = pos; k < pos + run; k++) {
        const x = Math.floor(k / height);
        data[(k - x * height) * width + x] = 1;
      }
    }
    pos += run;
    value ^= 1;
  }
  if (pos !== width * height) {
    throw new RangeError(`RLE runs cover ${pos} pixels, the mask has ${height}×${width} = ${width * height}`);
  }
  return { width, height, data };
}

/** pycocotools `rleToString`: the compressed counts string. */
export function countsToString(counts: readonly number[]): string {
  let out = '';
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i]!;
    if (i > 2) x -= counts[i - 2]!;
    let more = true;
    while (more) {
      let c = ((x % 32) + 32) % 32;
      x = Math.floor(x / 32);
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      out += String.fromCharCode(c + 48);
    }
  }
  return out;
}

/** pycocotools `rleFrString`: counts from the compressed string. */
export function stringToCounts(s: string): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    let c = 0;
    while (more) {
      if (p >= s.length) throw new RangeError(`RLE string ends inside a number at position ${p}`);
      c = s.charCodeAt(p) - 48;
      if (c < 0 || c > 63) throw new RangeError(`RLE string has an invalid character at position ${p}`);
      x += (c & 0x1f) * 32 ** k;
      more = (c & 0x20) !== 0;
      p++;
      k++;
    }
    if (c & 0x10) x -= 32 ** k;
    if (counts.length > 2) x += counts[counts.length - 2]!;
    counts.push(x);
  }
  return counts;
}

/** `pycocotools.mask.encode`: a mask to compressed COCO RLE. */
export function encodeRle(mask: BinaryMask): CocoRle {
  return { size: [mask.height, mask.width], counts: countsToString(maskToCounts(mask)) };
}

/** `pycocotools.mask.decode`: compressed or uncompressed COCO RLE to a mask. */
export function decodeRle(rle: CocoRle | CocoRleCounts): BinaryMask {
  const [h, w] = rle.size;
  const counts = typeof rle.counts === 'string' ? stringToCounts(rle.counts) : rle.counts;
  return countsToMask(counts, h, w);
}

/** `pycocotools.mask.area`. */
export function rleArea(rle: CocoRle | CocoRleCounts): number {
  const counts = typeof rle.counts === 'string' ? stringToCounts(rle.counts) : rle.counts;
  let area = 0;
  for (let i = 1; i < counts.length; i += 2) area += counts[i]!;
  return area;
}

/** `pycocotools.mask.toBbox`: [x, y, width, height] of the foreground, zeros when empty. */
export function rleToBbox(rle: CocoRle | CocoRleCounts): [number, number, number, number] {
  const [h] = rle.size;
  const counts = typeof rle.counts === 'string' ? stringToCounts(rle.counts) : rle.counts;
  let xs = Infinity;
  let xe = -Infinity;
  let ys = Infinity;
  let ye = -Infinity;
  let pos = 0;
  for (let i = 0; i < counts.length; i++) {
    const run = counts[i]!;
    if (i % 2 === 1 && run > 0) {
      const start = pos;
      const end = pos + run - 1;
      const x0 = Math.floor(start / h);
      const x1 = Math.floor(end / h);
      xs = Math.min(xs, x0);
      xe = Math.max(xe, x1);
      if (x0 === x1) {
        ys = Math.min(ys, start % h);
        ye = Math.max(ye, end % h);
      } else {
        ys = 0;
        ye = h - 1;
      }
    }
    pos += run;
  }
  if (xs === Infinity) return [0, 0, 0, 0];
  return [xs, ys, xe - xs + 1, ye - ys + 1];
}

/** Whether two masks have the same size and pixels. */
export function masksEqual(a: BinaryMask, b: BinaryMask): boolean {
  if (a.width !== b.width || a.height !== b.height || a.data.length !== b.data.length) return false;
  for (let i = 0; i < a.data.length; i++) if ((a.data[i] ? 1 : 0) !== (b.data[i] ? 1 : 0)) return false;
  return true;
}
