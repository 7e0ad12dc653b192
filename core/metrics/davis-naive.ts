/**
 * A straightforward transcription of `davis2017/metrics.py` over whole images: full boundary maps,
 * dilation by visiting the whole disk at every pixel (what `cv2.dilate` computes, without its
 * optimisations), then sums. Slow on purpose: it is the baseline of the J&F benchmark and an
 * independent oracle for the fast implementation in the tests.
 */
import { boundaryTolerance } from './davis.js';
import type { BinaryMask } from './mask.js';

/** `_seg2bmap(seg)` for same-size maps, as a 0/1 image. */
export function seg2bmap(m: BinaryMask): Uint8Array {
  const { width: w, height: h, data } = m;
  const seg = (x: number, y: number): number => (x < w && y < h && data[y * w + x] !== 0 ? 1 : 0);
  const b = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = seg(x, y);
      const e = x + 1 < w ? seg(x + 1, y) : 0;
      const so = y + 1 < h ? seg(x, y + 1) : 0;
      const se = x + 1 < w && y + 1 < h ? seg(x + 1, y + 1) : 0;
      b[y * w + x] = s ^ e || s ^ so || s ^ se ? 1 : 0;
    }
  }
  for (let x = 0; x < w; x++) b[(h - 1) * w + x] = seg(x, h - 1) ^ (x + 1 < w ? seg(x + 1, h - 1) : 0);
  for (let y = 0; y < h; y++) b[y * w + w - 1] = seg(w - 1, y) ^ (y + 1 < h ? seg(w - 1, y + 1) : 0);
  b[h * w - 1] = 0;
  return b;
}

/** `cv2.dilate(b, disk(r))`: each pixel is the maximum over the disk around it, inside the image. */
export function dilateDiskNaive(b: Uint8Array, w: number, h: number, r: number): Uint8Array {
  const R = Math.floor(r);
  const offsets: [number, number][] = [];
  for (let dy = -R; dy <= R; dy++)
    for (let dx = -R; dx <= R; dx++) if (dx * dx + dy * dy <= r * r) offsets.push([dx, dy]);
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let v = 0;
      for (const [dx, dy] of offsets) {
        const xx = x + dx;
        const yy = y + dy;
        if (xx >= 0 && xx < w && yy >= 0 && yy < h && b[yy * w + xx] !== 0) {
          v = 1;
          break;
        }
      }
      out[y * w + x] = v;
    }
  }
  return out;
}

/** J and F of one frame the straightforward way. */
export function evaluateFrameNaive(
  pred: BinaryMask,
  gt: BinaryMask,
  boundTh = 0.008,
): { J: number; F: number } {
  const { width: w, height: h } = gt;
  let inter = 0;
  let union = 0;
  for (let i = 0; i < w * h; i++) {
    const p = pred.data[i] !== 0;
    const g = gt.data[i] !== 0;
    if (p && g) inter++;
    if (p || g) union++;
  }
  const J = union === 0 ? 1 : inter / union;
  const r = boundaryTolerance(w, h, boundTh);
  const fgB = seg2bmap(pred);
  const gtB = seg2bmap(gt);
  const fgDil = dilateDiskNaive(fgB, w, h, r);
  const gtDil = dilateDiskNaive(gtB, w, h, r);
  let nFg = 0;
  let nGt = 0;
  let fgMatch = 0;
  let gtMatch = 0;
  for (let i = 0; i < w * h; i++) {
    nFg += fgB[i] ?? 0;
    nGt += gtB[i] ?? 0;
    fgMatch += (fgB[i] ?? 0) & (gtDil[i] ?? 0);
    gtMatch += (gtB[i] ?? 0) & (fgDil[i] ?? 0);
  }
  let precision: number;
  let recall: number;
  if (nFg === 0 && nGt > 0) [precision, recall] = [1, 0];
  else if (nFg > 0 && nGt === 0) [precision, recall] = [0, 1];
  else if (nFg === 0 && nGt === 0) [precision, recall] = [1, 1];
  else [precision, recall] = [fgMatch / nFg, gtMatch / nGt];
  const F = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { J, F };
}
