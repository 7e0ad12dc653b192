/**
 * DAVIS region (J) and boundary (F) measures, exactly as `davis2017/metrics.py` defines them
 * (spec §9.1, §13.1), computed without building dilated images.
 *
 * Definitions reproduced:
 * - J = |P∩G| / |P∪G|, and 1 when the union is empty.
 * - Boundary map (`_seg2bmap` for same-size maps): with E, S, SE the east, south and south-east
 *   neighbours (zero beyond the last column/row), b = (s≠E) | (s≠S) | (s≠SE); then the last row is
 *   overwritten by (s≠E) alone, the last column by (s≠S) alone, and the bottom-right pixel is 0.
 * - Tolerance r = bound_th if bound_th ≥ 1, else ceil(bound_th · ‖(H, W)‖₂); each boundary map is
 *   dilated with `disk(r)` = {(dx, dy) : dx² + dy² ≤ r²} (cv2.dilate, nothing beyond the border).
 * - precision = |B_P ∩ dil(B_G)| / |B_P|, recall = |B_G ∩ dil(B_P)| / |B_G|, with the edge cases
 *   (empty P boundary, non-empty G: 1/0), (non-empty/empty: 0/1), (empty/empty: 1/1);
 *   F = 2PR / (P + R), 0 when P + R = 0.
 *
 * How it is fast: a boundary pixel p of P is in dil(B_G) iff some G boundary pixel lies in the disk
 * around p. Boundaries are stored per row as sorted x lists; for each of the 2r+1 rows of the disk
 * the half-width is fixed, and as p moves right along its row one cursor per disk row only moves
 * forward. Work is proportional to the number of boundary pixels (times 2r+1), not to the image
 * area times the disk area. Only rows that hold foreground are scanned for boundaries.
 *
 * Void pixels (DAVIS label 255 in a separate map) are not supported here; OK-VOS masks have none.
 * A pixel tolerance given as a non-integer ≥ 1 uses integer offsets with dx² + dy² ≤ r²; skimage
 * would build a half-integer grid there (the default, a fraction of the diagonal, is always whole).
 */
import type { BinaryMask } from './mask.js';

/** Boundary pixels of a mask, row by row: the x of row y are `xs[rowStart[y] .. rowStart[y+1])`, ascending. */
export interface BoundaryRows {
  width: number;
  height: number;
  rowStart: Int32Array;
  xs: Int32Array;
  count: number;
}

/** The DAVIS tolerance radius in pixels for a frame size and `bound_th`. */
export function boundaryTolerance(width: number, height: number, boundTh = 0.008): number {
  // np.linalg.norm((H, W)) = sqrt(H² + W²), an exactly rounded square root of an integer.
  return boundTh >= 1 ? boundTh : Math.ceil(boundTh * Math.sqrt(height * height + width * width));
}

/** Half-widths of the disk: hw[dy + r] = largest dx ≥ 0 with dx² + dy² ≤ r², for dy = −r..r. */
export function diskHalfWidths(r: number): Int32Array {
  const R = Math.floor(r);
  const r2 = r * r;
  const hw = new Int32Array(2 * R + 1);
  for (let dy = -R; dy <= R; dy++) {
    let dx = 0;
    while ((dx + 1) * (dx + 1) + dy * dy <= r2) dx++;
    hw[dy + R] = dx;
  }
  return hw;
}

/**
 * Reusable scratch space for one frame size, so evaluating many frames allocates nothing per frame.
 * Not safe to share between concurrent evaluations (there are none in one JS thread).
 */
export class BoundaryWorkspace {
  readonly width: number;
  readonly height: number;
  /** The two masks of the frame being evaluated (any non-zero value is foreground). */
  private srcA: Uint8Array;
  private srcB: Uint8Array;
  /** Per row: first and last foreground x, or -1. */
  private readonly firstA: Int32Array;
  private readonly lastA: Int32Array;
  private readonly firstB: Int32Array;
  private readonly lastB: Int32Array;
  private xsA: Int32Array;
  private xsB: Int32Array;
  private readonly rowStartA: Int32Array;
  private readonly rowStartB: Int32Array;

  constructor(width: number, height: number) {
    this.width = width;
    this.height = height;
    this.srcA = new Uint8Array(0);
    this.srcB = new Uint8Array(0);
    this.firstA = new Int32Array(height);
    this.lastA = new Int32Array(height);
    this.firstB = new Int32Array(height);
    this.lastB = new Int32Array(height);
    this.xsA = new Int32Array(1024);
    this.xsB = new Int32Array(1024);
    this.rowStartA = new Int32Array(height + 1);
    this.rowStartB = new Int32Array(height + 1);
  }

  /**
   * Record each row's first and last foreground x (-1 if none) and return the foreground count.
   * Background is skipped four pixels at a time through a 32-bit view when the buffer allows it.
   */
  private scan(src: Uint8Array, first: Int32Array, last: Int32Array): number {
    const w = this.width;
    const words =
      src.byteOffset % 4 === 0 ? new Uint32Array(src.buffer, src.byteOffset, src.length >> 2) : null;
    let area = 0;
    for (let y = 0; y < this.height; y++) {
      const start = y * w;
      const end = start + w;
      let f = -1;
      let i = start;
      if (words !== null) {
        while (i < end && (i & 3) !== 0) {
          if (src[i] !== 0) break;
          i++;
        }
        if (i < end && src[i] === 0) {
          let wi = i >> 2;
          const wEnd = end >> 2;
          while (wi < wEnd && words[wi] === 0) wi++;
          i = wi << 2;
        }
      }
      for (; i < end; i++) {
        if (src[i] !== 0) {
          f = i - start;
          break;
        }
      }
      if (f < 0) {
        first[y] = -1;
        last[y] = -1;
        continue;
      }
      let j = end - 1;
      while (src[j] === 0) j--;
      const l = j - start;
      for (let k = start + f; k <= j; k++) if (src[k] !== 0) area++;
      first[y] = f;
      last[y] = l;
    }
    return area;
  }

  /** `_seg2bmap` of a scanned mask, as rows of boundary x. */
  private boundary(which: 'A' | 'B'): BoundaryRows {
    const w = this.width;
    const h = this.height;
    const s = which === 'A' ? this.srcA : this.srcB;
    const first = which === 'A' ? this.firstA : this.firstB;
    const last = which === 'A' ? this.lastA : this.lastB;
    const rowStart = which === 'A' ? this.rowStartA : this.rowStartB;
    let xs = which === 'A' ? this.xsA : this.xsB;
    let n = 0;
    const push = (x: number): void => {
      if (n === xs.length) {
        const bigger = new Int32Array(xs.length * 2);
        bigger.set(xs);
        xs = bigger;
      }
      xs[n++] = x;
    };
    for (let y = 0; y < h; y++) {
      rowStart[y] = n;
      const f0 = first[y] ?? -1;
      const l0 = last[y] ?? -1;
      const lastRow = y === h - 1;
      const f1 = lastRow ? -1 : (first[y + 1] ?? -1);
      const l1 = lastRow ? -1 : (last[y + 1] ?? -1);
      if (f0 < 0 && f1 < 0) continue;
      // Every pixel of the 2×2 block at x is background outside [min first − 1, max last].
      const lo = Math.max(0, Math.min(f0 < 0 ? f1 : f0, f1 < 0 ? f0 : f1) - 1);
      const hi = Math.max(l0, l1);
      const row = y * w;
      if (lastRow) {
        const end = Math.min(hi, w - 2);
        for (let x = lo; x <= end; x++) if ((s[row + x] !== 0) !== (s[row + x + 1] !== 0)) push(x);
        // b[-1, -1] = 0
        continue;
      }
      const below = row + w;
      const end = Math.min(hi, w - 2);
      for (let x = lo; x <= end; x++) {
        const v = s[row + x] !== 0;
        if (v !== (s[row + x + 1] !== 0) || v !== (s[below + x] !== 0) || v !== (s[below + x + 1] !== 0))
          push(x);
      }
      if (hi >= w - 1) {
        // Last column: b[:, -1] = seg[:, -1] ^ s[:, -1]
        if ((s[row + w - 1] !== 0) !== (s[below + w - 1] !== 0)) push(w - 1);
      }
    }
    rowStart[h] = n;
    if (which === 'A') this.xsA = xs;
    else this.xsB = xs;
    return { width: w, height: h, rowStart, xs, count: n };
  }

  /**
   * J and F of a predicted mask against a ground-truth mask of this workspace's size
   * (`db_eval_iou(gt, pred)`, `f_measure(pred, gt)`).
   */
  evaluate(pred: Uint8Array, gt: Uint8Array, boundTh = 0.008): FrameScore {
    this.srcA = pred;
    this.srcB = gt;
    const areaP = this.scan(pred, this.firstA, this.lastA);
    const areaG = this.scan(gt, this.firstB, this.lastB);
    const J = this.jaccard(areaP, areaG);
    const bp = this.boundary('A');
    const bg = this.boundary('B');
    const r = boundaryTolerance(this.width, this.height, boundTh);
    const F = fMeasureFromBoundaries(bp, bg, r);
    return { J, F: F.F, precision: F.precision, recall: F.recall };
  }

  private jaccard(areaP: number, areaG: number): number {
    const w = this.width;
    const a = this.srcA;
    const b = this.srcB;
    let inter = 0;
    if (areaP > 0 && areaG > 0) {
      for (let y = 0; y < this.height; y++) {
        const lo = Math.max(this.firstA[y] ?? -1, this.firstB[y] ?? -1);
        const hi = Math.min(this.lastA[y] ?? -1, this.lastB[y] ?? -1);
        if ((this.firstA[y] ?? -1) < 0 || (this.firstB[y] ?? -1) < 0 || lo > hi) continue;
        const row = y * w;
        for (let x = lo; x <= hi; x++) if (a[row + x] !== 0 && b[row + x] !== 0) inter++;
      }
    }
    const union = areaP + areaG - inter;
    return union === 0 ? 1 : inter / union;
  }
}

/** Per-frame DAVIS scores. */
export interface FrameScore {
  J: number;
  F: number;
  precision: number;
  recall: number;
}

/** How many pixels of `a` lie within the disk of radius r around some pixel of `b`. */
export function countWithinDisk(a: BoundaryRows, b: BoundaryRows, r: number): number {
  const R = Math.floor(r);
  const hw = diskHalfWidths(r);
  const h = a.height;
  const cursor = new Int32Array(2 * R + 1);
  const stop = new Int32Array(2 * R + 1);
  // Disk rows checked nearest first, so a match usually ends the search early.
  const order: number[] = [0];
  for (let d = 1; d <= R; d++) order.push(d, -d);
  let matched = 0;
  for (let y = 0; y < h; y++) {
    const s0 = a.rowStart[y] ?? 0;
    const s1 = a.rowStart[y + 1] ?? 0;
    if (s0 === s1) continue;
    for (let k = 0; k <= 2 * R; k++) {
      const yy = y + k - R;
      if (yy < 0 || yy >= h) {
        cursor[k] = 0;
        stop[k] = 0;
      } else {
        cursor[k] = b.rowStart[yy] ?? 0;
        stop[k] = b.rowStart[yy + 1] ?? 0;
      }
    }
    for (let i = s0; i < s1; i++) {
      const x = a.xs[i] ?? 0;
      for (const dy of order) {
        const k = dy + R;
        let c = cursor[k] ?? 0;
        const e = stop[k] ?? 0;
        if (c === e) continue;
        const half = hw[k] ?? 0;
        const lo = x - half;
        while (c < e && (b.xs[c] ?? 0) < lo) c++;
        cursor[k] = c;
        if (c < e && (b.xs[c] ?? 0) <= x + half) {
          matched++;
          break;
        }
      }
    }
  }
  return matched;
}

/** Precision, recall and F from two boundary maps (DAVIS `f_measure` after `_seg2bmap`). */
export function fMeasureFromBoundaries(
  pred: BoundaryRows,
  gt: BoundaryRows,
  r: number,
): { precision: number; recall: number; F: number } {
  const nFg = pred.count;
  const nGt = gt.count;
  let precision: number;
  let recall: number;
  if (nFg === 0 && nGt > 0) {
    precision = 1;
    recall = 0;
  } else if (nFg > 0 && nGt === 0) {
    precision = 0;
    recall = 1;
  } else if (nFg === 0 && nGt === 0) {
    precision = 1;
    recall = 1;
  } else {
    precision = countWithinDisk(pred, gt, r) / nFg;
    recall = countWithinDisk(gt, pred, r) / nGt;
  }
  const F = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { precision, recall, F };
}

const workspaces = new Map<string, BoundaryWorkspace>();

/** The workspace for a frame size (kept for reuse; a handful of sizes at most in practice). */
export function workspaceFor(width: number, height: number): BoundaryWorkspace {
  const key = `${width}x${height}`;
  let ws = workspaces.get(key);
  if (ws === undefined) {
    if (workspaces.size >= 8) workspaces.clear();
    ws = new BoundaryWorkspace(width, height);
    workspaces.set(key, ws);
  }
  return ws;
}

/**
 * J and F of one frame: `pred` against `gt` (same size; any non-zero value is foreground).
 * Throws only on a size mismatch, which is a caller bug, with both sizes in the message.
 */
export function evaluateFrame(pred: BinaryMask, gt: BinaryMask, boundTh = 0.008): FrameScore {
  if (pred.width !== gt.width || pred.height !== gt.height) {
    throw new RangeError(
      `prediction is ${pred.width}×${pred.height} but ground truth is ${gt.width}×${gt.height}`,
    );
  }
  return workspaceFor(gt.width, gt.height).evaluate(pred.data, gt.data, boundTh);
}

/** J alone (`db_eval_iou` for one frame). */
export function regionJaccard(pred: BinaryMask, gt: BinaryMask): number {
  return evaluateFrame(pred, gt).J;
}
