/**
 * NumPy's float64 reductions, so that means match the Python reference to the last bit:
 * `np.sum` on a contiguous float64 array is a pairwise sum (8 accumulators, blocks of 128), not a
 * left-to-right loop, and `np.nanmean` divides that sum (NaN as 0) by the number of non-NaN values.
 */

function pairwise(a: ArrayLike<number>, start: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i] ?? 0;
    return res;
  }
  if (n <= 128) {
    const r = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let j = 0; j < 8; j++) r[j] = a[start + j] ?? 0;
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j] = (r[j] ?? 0) + (a[start + i + j] ?? 0);
    }
    const [r0 = 0, r1 = 0, r2 = 0, r3 = 0, r4 = 0, r5 = 0, r6 = 0, r7 = 0] = r;
    let res = r0 + r1 + (r2 + r3) + (r4 + r5 + (r6 + r7));
    for (; i < n; i++) res += a[start + i] ?? 0;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwise(a, start, n2) + pairwise(a, start + n2, n - n2);
}

/** `np.sum(np.asarray(values, dtype=float64))`. */
export function npSum(values: ArrayLike<number>): number {
  return pairwise(values, 0, values.length);
}

/** `np.mean(values)`: NaN for an empty list (NumPy warns and returns nan). */
export function npMean(values: ArrayLike<number>): number {
  return values.length === 0 ? NaN : npSum(values) / values.length;
}

/** `np.nanmean(values)`: NaN values are ignored; NaN when none is left. */
export function npNanMean(values: ArrayLike<number>): number {
  const filled = new Float64Array(values.length);
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? NaN;
    if (Number.isNaN(v)) filled[i] = 0;
    else {
      filled[i] = v;
      count++;
    }
  }
  return count === 0 ? NaN : npSum(filled) / count;
}
