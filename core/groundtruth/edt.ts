/**
 * Exact Euclidean distance transform (Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled
 * Functions", 2012): O(W·H), squared distances as exact integers.
 *
 * Semantics follow `scipy.ndimage.distance_transform_edt(mask)`, which the reference uses for the
 * ground-truth point: every non-zero pixel gets its distance to the nearest ZERO pixel of the image;
 * the area beyond the border is NOT background (a mask touching the border keeps growing
 * distances towards it). Zero pixels get 0.
 *
 * A mask with no zero pixel at all has no background to measure from; SciPy then returns the
 * distance to the virtual pixel (row −1, column 0), i.e. sqrt((y + 1)² + x²). That quirk is
 * reproduced, because it decides the reference's point for a full-frame mask.
 */

/**
 * Squared EDT of a mask (non-zero = foreground), row-major, as a Float64Array of exact integers.
 */
export function squaredDistanceTransform(data: Uint8Array, width: number, height: number): Float64Array {
  const w = width;
  const h = height;
  const INF = Number.POSITIVE_INFINITY;
  const out = new Float64Array(w * h);
  // Pass 1, columns: squared distance to the nearest zero in the same column (∞ if none).
  const col = new Float64Array(w * h);
  let anyZero = false;
  for (let x = 0; x < w; x++) {
    let last = -1;
    for (let y = 0; y < h; y++) {
      const i = y * w + x;
      if (data[i] === 0) {
        last = y;
        col[i] = 0;
        anyZero = true;
      } else col[i] = last < 0 ? INF : (y - last) * (y - last);
    }
    last = -1;
    for (let y = h - 1; y >= 0; y--) {
      const i = y * w + x;
      if (data[i] === 0) last = y;
      else if (last >= 0) {
        const d = (last - y) * (last - y);
        if (d < (col[i] ?? INF)) col[i] = d;
      }
    }
  }
  if (!anyZero) {
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = (y + 1) * (y + 1) + x * x;
    return out;
  }
  // Pass 2, rows: lower envelope of parabolas (x − q)² + col(q) over the finite sites q.
  // Breakpoints are kept as exact fractions num/den (den > 0) so that ties cannot flip.
  const v = new Int32Array(w);
  const zNum = new Float64Array(w + 1);
  const zDen = new Float64Array(w + 1);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    let k = -1;
    for (let q = 0; q < w; q++) {
      const fq = col[row + q] ?? INF;
      if (fq === INF) continue;
      if (k < 0) {
        k = 0;
        v[0] = q;
        zNum[0] = -INF;
        zDen[0] = 1;
        zNum[1] = INF;
        zDen[1] = 1;
        continue;
      }
      for (;;) {
        const p = v[k] ?? 0;
        const fp = col[row + p] ?? 0;
        const sNum = fq + q * q - (fp + p * p);
        const sDen = 2 * (q - p);
        // s <= z[k] ?
        const zn = zNum[k] ?? 0;
        const zd = zDen[k] ?? 1;
        const sLeq = zn === -INF ? false : sNum * zd <= zn * sDen;
        if (sLeq) {
          k--;
          continue;
        }
        k++;
        v[k] = q;
        zNum[k] = sNum;
        zDen[k] = sDen;
        zNum[k + 1] = INF;
        zDen[k + 1] = 1;
        break;
      }
    }
    // k >= 0 here: some column has a zero, so every row has a finite site.
    let j = 0;
    for (let q = 0; q < w; q++) {
      // while z[j+1] < q
      for (;;) {
        const zn = zNum[j + 1] ?? INF;
        const zd = zDen[j + 1] ?? 1;
        if (zn !== INF && zn < q * zd) j++;
        else break;
      }
      const p = v[j] ?? 0;
      out[row + q] = (q - p) * (q - p) + (col[row + p] ?? 0);
    }
  }
  return out;
}
