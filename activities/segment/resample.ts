/**
 * The two resizes the official SAM2 predictors apply before the image encoder, reproduced exactly:
 * - the video predictor (`sam2/utils/misc.py` `_load_img_as_tensor`): PIL `Image.resize` with its
 *   default bicubic filter on the 8-bit image (Pillow's `Resample.c`: separable, horizontal pass
 *   first, 22-bit fixed-point coefficients, each pass rounded to 8 bits);
 * - the image predictor (`sam2/utils/transforms.py`): torchvision `Resize` on the float tensor,
 *   bilinear with antialias (PyTorch's `_upsample_bilinear2d_aa`, which follows the same separable
 *   scheme with a triangle filter, in floating point, no rounding).
 *
 * Hand-written because no Node image library resamples like this: sharp/libvips place pixel
 * centres and round differently, and on SAM2 that moves grey levels by ±1, which the image
 * encoder turns into visibly different logits (test/integration/real-sam2.test.ts measures it).
 *
 * Speed (the video loop resizes every frame): the bicubic path works as Pillow does, in integers
 * (22-bit fixed-point weights, an 8-bit intermediate image, 4 taps unrolled) and writes the planar
 * float32 tensor through a 256-entry table per channel, so the normalisation costs no extra pass;
 * test/unit/segment/resample.test.ts holds it bit-equal to the plain version
 * (test/support/resample-reference.ts) and to Pillow.
 */

export type Resampler = 'pil-bicubic' | 'torch-bilinear-aa';

export interface Filter {
  support: number;
  weight(x: number): number;
}

const BICUBIC_A = -0.5;
export const FILTERS: Record<Resampler, Filter> = {
  'pil-bicubic': {
    support: 2,
    weight(x) {
      const a = BICUBIC_A;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
  'torch-bilinear-aa': {
    support: 1,
    weight(x) {
      const t = Math.abs(x);
      return t < 1 ? 1 - t : 0;
    },
  },
};

/** Per output index: the first input index and the normalised weights (Pillow `precompute_coeffs`). */
export interface Coefficients {
  first: Int32Array;
  count: Int32Array;
  /** `ksize` weights per output index */
  weights: Float64Array;
  ksize: number;
}

export function coefficients(inSize: number, outSize: number, filter: Filter): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * ksize);
  const inv = 1 / filterScale;
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    for (let x = 0; x < hi - lo; x++) {
      const w = filter.weight((x + lo - center + 0.5) * inv);
      weights[o * ksize + x] = w;
      total += w;
    }
    if (total !== 0) for (let x = 0; x < hi - lo; x++) weights[o * ksize + x]! /= total;
    first[o] = lo;
    count[o] = hi - lo;
  }
  return { first, count, weights, ksize };
}

const PRECISION_BITS = 32 - 8 - 2;
export const ONE = 2 ** PRECISION_BITS;
export const HALF = 2 ** (PRECISION_BITS - 1);

/**
 * Pillow's 8-bit coefficients (`normalize_coeffs_8bpc`: 22-bit fixed point, rounded away from zero),
 * laid out with the same number of taps T for every output so the loops need no per-pixel length: an
 * output with fewer taps gets zero weights, its window shifted to stay inside [lo, hi) (the input
 * range the pass reads). Zero weights add exact zeros: the integer sums are Pillow's.
 */
interface FixedTaps {
  first: Int32Array;
  /** T per output */
  kk: Int32Array;
  taps: number;
  /** The range of `acc >> 22` over every output and any 8-bit input (for the clip tables). */
  minShifted: number;
  maxShifted: number;
}

function fixedTaps(c: Coefficients, lo: number, hi: number): FixedTaps {
  const n = c.first.length;
  let taps = 0;
  for (let o = 0; o < n; o++) taps = Math.max(taps, c.count[o]!);
  const first = new Int32Array(n);
  const kk = new Int32Array(n * taps);
  let minAcc = HALF;
  let maxAcc = HALF;
  for (let o = 0; o < n; o++) {
    const start = Math.max(lo, Math.min(c.first[o]!, hi - taps));
    first[o] = start;
    let neg = 0;
    let pos = 0;
    for (let x = 0; x < c.count[o]!; x++) {
      const w = c.weights[o * c.ksize + x]!;
      const k = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
      kk[o * taps + c.first[o]! - start + x] = k;
      if (k < 0) neg += k;
      else pos += k;
    }
    minAcc = Math.min(minAcc, HALF + 255 * neg);
    maxAcc = Math.max(maxAcc, HALF + 255 * pos);
  }
  // Pillow sums in an INT32, and so does Math.imul here: the same sums while none leaves int32.
  if (minAcc < -(2 ** 31) || maxAcc >= 2 ** 31) throw new Error('resample: filter sums overflow int32');
  return { first, kk, taps, minShifted: minAcc >> PRECISION_BITS, maxShifted: maxAcc >> PRECISION_BITS };
}

/**
 * Pillow's `clip8` (the fixed-point sum shifted back to 8 bits, clamped to 0..255) as a table indexed
 * by `(acc >> 22) − minShifted`: no branches in the loops. `>>` is Pillow's arithmetic shift (a floor).
 */
function clipTable(t: FixedTaps): Uint8Array {
  const table = new Uint8Array(t.maxShifted - t.minShifted + 1);
  for (let i = 0; i < table.length; i++) table[i] = Math.min(255, Math.max(0, i + t.minShifted));
  return table;
}

/** `out = value × scale[c] − shift[c]` per channel, fused into the resize's last pass. */
export interface ChannelAffine {
  scale: readonly number[];
  shift: readonly number[];
}

/**
 * Resizes interleaved 8-bit RGB `pixels` (width×height) to outW×outH and returns planar float
 * channels (3 × outW × outH): the resized values on the 0..255 scale, or `value × scale − shift` per
 * channel when `affine` is given (the same float32 a separate pass over the planes would store).
 */
export function resampleRgb(
  pixels: Uint8Array,
  width: number,
  height: number,
  outW: number,
  outH: number,
  resampler: Resampler,
  affine?: ChannelAffine,
): Float32Array {
  const filter = FILTERS[resampler];
  const horiz = coefficients(width, outW, filter);
  const vert = coefficients(height, outH, filter);
  return resampler === 'pil-bicubic'
    ? resample8bpc(pixels, width, height, outW, outH, horiz, vert, affine)
    : resampleFloat(pixels, width, height, outW, outH, horiz, vert, affine);
}

/**
 * Pillow's `ImagingResampleHorizontal_8bpc` then `ImagingResampleVertical_8bpc` (each pass rounded
 * to 8 bits; a pass whose size does not change is skipped, as Pillow does), in int32 arithmetic
 * (Math.imul) as Pillow's; the vertical pass writes planar output through one table per channel
 * from the shifted sum straight to the float (clip to 0..255, then value or value × scale − shift).
 */
function resample8bpc(
  pixels: Uint8Array,
  width: number,
  height: number,
  outW: number,
  outH: number,
  horiz: Coefficients,
  vert: Coefficients,
  affine: ChannelAffine | undefined,
): Float32Array {
  const needH = outW !== width;
  const needV = outH !== height;
  // Only the input rows the vertical pass reads (Pillow's ybox) go through the horizontal pass.
  const rowFirst = needV ? vert.first[0]! : 0;
  const rows = needV ? vert.first[outH - 1]! + vert.count[outH - 1]! - rowFirst : height;
  const tmpW = needH ? outW : width;
  const stride = tmpW * 3;
  const tmp = needH
    ? horizontal8bpc(pixels, width, rowFirst, rows, outW, fixedTaps(horiz, 0, width))
    : pixels.subarray(rowFirst * stride, (rowFirst + rows) * stride);
  const plane = outW * outH;
  const out = new Float32Array(3 * plane);
  const value = (c: number, v: number) => (affine ? v * affine.scale[c]! - affine.shift[c]! : v);
  if (!needV) {
    const lut = new Float32Array(3 * 256);
    for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = value(c, v);
    for (let o = 0; o < outH; o++) {
      const q0 = o * outW;
      for (let x = 0, p = o * stride; x < tmpW; x++, p += 3) {
        out[q0 + x] = lut[tmp[p]!]!;
        out[plane + q0 + x] = lut[256 + tmp[p + 1]!]!;
        out[2 * plane + q0 + x] = lut[512 + tmp[p + 2]!]!;
      }
    }
    return out;
  }
  const t = fixedTaps(vert, rowFirst, rowFirst + rows);
  const clip = clipTable(t);
  // per channel c: lut[c * span + (acc >> 22) − minShifted] is the output float
  const span = clip.length;
  const lut = new Float32Array(3 * span);
  for (let c = 0; c < 3; c++) for (let i = 0; i < span; i++) lut[c * span + i] = value(c, clip[i]!);
  const bases = [-t.minShifted, span - t.minShifted, 2 * span - t.minShifted];
  const { first, kk, taps } = t;
  let o = 0;
  while (o < outH) {
    const q0 = o * outW;
    const row = (first[o]! - rowFirst) * stride;
    const k = o * taps;
    if (taps === 4 && o + 1 < outH && first[o + 1] === first[o]) {
      // two output rows from the same 4 input rows (an upscale's usual case): loads shared
      const q1 = q0 + outW;
      const w0 = kk[k]!;
      const w1 = kk[k + 1]!;
      const w2 = kk[k + 2]!;
      const w3 = kk[k + 3]!;
      const v0 = kk[k + 4]!;
      const v1 = kk[k + 5]!;
      const v2 = kk[k + 6]!;
      const v3 = kk[k + 7]!;
      const [b0, b1, b2] = bases as [number, number, number];
      for (let x = 0, p = row; x < tmpW; x++, p += 3) {
        let a0 = tmp[p]!;
        let a1 = tmp[p + stride]!;
        let a2 = tmp[p + 2 * stride]!;
        let a3 = tmp[p + 3 * stride]!;
        out[q0 + x] =
          lut[
            b0 +
              ((HALF + Math.imul(a0, w0) + Math.imul(a1, w1) + Math.imul(a2, w2) + Math.imul(a3, w3)) >> 22)
          ]!;
        out[q1 + x] =
          lut[
            b0 +
              ((HALF + Math.imul(a0, v0) + Math.imul(a1, v1) + Math.imul(a2, v2) + Math.imul(a3, v3)) >> 22)
          ]!;
        a0 = tmp[p + 1]!;
        a1 = tmp[p + 1 + stride]!;
        a2 = tmp[p + 1 + 2 * stride]!;
        a3 = tmp[p + 1 + 3 * stride]!;
        out[plane + q0 + x] =
          lut[
            b1 +
              ((HALF + Math.imul(a0, w0) + Math.imul(a1, w1) + Math.imul(a2, w2) + Math.imul(a3, w3)) >> 22)
          ]!;
        out[plane + q1 + x] =
          lut[
            b1 +
              ((HALF + Math.imul(a0, v0) + Math.imul(a1, v1) + Math.imul(a2, v2) + Math.imul(a3, v3)) >> 22)
          ]!;
        a0 = tmp[p + 2]!;
        a1 = tmp[p + 2 + stride]!;
        a2 = tmp[p + 2 + 2 * stride]!;
        a3 = tmp[p + 2 + 3 * stride]!;
        out[2 * plane + q0 + x] =
          lut[
            b2 +
              ((HALF + Math.imul(a0, w0) + Math.imul(a1, w1) + Math.imul(a2, w2) + Math.imul(a3, w3)) >> 22)
          ]!;
        out[2 * plane + q1 + x] =
          lut[
            b2 +
              ((HALF + Math.imul(a0, v0) + Math.imul(a1, v1) + Math.imul(a2, v2) + Math.imul(a3, v3)) >> 22)
          ]!;
      }
      o += 2;
      continue;
    }
    for (let c = 0; c < 3; c++) {
      const base = bases[c]!;
      const d0 = c * plane + q0;
      for (let x = 0, p = row + c; x < tmpW; x++, p += 3) {
        let acc = HALF;
        for (let y = 0, q = p; y < taps; y++, q += stride) acc += Math.imul(tmp[q]!, kk[k + y]!);
        out[d0 + x] = lut[base + (acc >> PRECISION_BITS)]!;
      }
    }
    o++;
  }
  return out;
}

/** The horizontal pass over `rows` input rows from `rowFirst`: interleaved 8-bit rows of outW. */
function horizontal8bpc(
  pixels: Uint8Array,
  width: number,
  rowFirst: number,
  rows: number,
  outW: number,
  t: FixedTaps,
): Uint8Array {
  const tmp = new Uint8Array(rows * outW * 3);
  const clip = clipTable(t);
  const off = -t.minShifted;
  const { first, kk, taps } = t;
  for (let y = 0; y < rows; y++) {
    const src = (y + rowFirst) * width * 3;
    for (let o = 0, q = y * outW * 3; o < outW; o++, q += 3) {
      const k = o * taps;
      const p = src + first[o]! * 3;
      if (taps === 4) {
        const w0 = kk[k]!;
        const w1 = kk[k + 1]!;
        const w2 = kk[k + 2]!;
        const w3 = kk[k + 3]!;
        for (let c = 0; c < 3; c++) {
          const acc =
            HALF +
            Math.imul(pixels[p + c]!, w0) +
            Math.imul(pixels[p + 3 + c]!, w1) +
            Math.imul(pixels[p + 6 + c]!, w2) +
            Math.imul(pixels[p + 9 + c]!, w3);
          tmp[q + c] = clip[off + (acc >> PRECISION_BITS)]!;
        }
        continue;
      }
      for (let c = 0; c < 3; c++) {
        let acc = HALF;
        for (let x = 0; x < taps; x++) acc += Math.imul(pixels[p + x * 3 + c]!, kk[k + x]!);
        tmp[q + c] = clip[off + (acc >> PRECISION_BITS)]!;
      }
    }
  }
  return tmp;
}

/** torchvision's bilinear antialias: the same separable scheme in floating point, no rounding. */
function resampleFloat(
  pixels: Uint8Array,
  width: number,
  height: number,
  outW: number,
  outH: number,
  h: Coefficients,
  v: Coefficients,
  affine: ChannelAffine | undefined,
): Float32Array {
  const rowFirst = v.first[0]!;
  const rowLast = v.first[outH - 1]! + v.count[outH - 1]!;
  const rows = rowLast - rowFirst;
  const needH = outW !== width;
  const needV = outH !== height;
  // Horizontal pass → tmp (rows × outW × 3, interleaved).
  const tmpW = needH ? outW : width;
  const tmp = new Float64Array(rows * tmpW * 3);
  for (let y = 0; y < rows; y++) {
    const src = (y + rowFirst) * width * 3;
    const dst = y * tmpW * 3;
    if (!needH) {
      for (let i = 0; i < width * 3; i++) tmp[dst + i] = pixels[src + i]!;
      continue;
    }
    for (let o = 0; o < outW; o++) {
      const lo = h.first[o]!;
      const n = h.count[o]!;
      const k = o * h.ksize;
      let r = 0;
      let g = 0;
      let b = 0;
      for (let x = 0; x < n; x++) {
        const w = h.weights[k + x]!;
        const p = src + (lo + x) * 3;
        r += pixels[p]! * w;
        g += pixels[p + 1]! * w;
        b += pixels[p + 2]! * w;
      }
      const q = dst + o * 3;
      tmp[q] = r;
      tmp[q + 1] = g;
      tmp[q + 2] = b;
    }
  }
  // Vertical pass → planar output (rounded to float32 before the affine map, as a separate pass would).
  const plane = outW * outH;
  const out = new Float32Array(3 * plane);
  const [sr, sg, sb] = affine ? affine.scale : [1, 1, 1];
  const [mr, mg, mb] = affine ? affine.shift : [0, 0, 0];
  for (let o = 0; o < outH; o++) {
    const lo = needV ? v.first[o]! - rowFirst : o - rowFirst;
    const n = needV ? v.count[o]! : 1;
    const k = o * v.ksize;
    for (let xo = 0; xo < tmpW; xo++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let y = 0; y < n; y++) {
        const w = needV ? v.weights[k + y]! : 1;
        const p = ((lo + y) * tmpW + xo) * 3;
        r += tmp[p]! * w;
        g += tmp[p + 1]! * w;
        b += tmp[p + 2]! * w;
      }
      const q = o * outW + xo;
      out[q] = Math.fround(r) * sr! - mr!;
      out[plane + q] = Math.fround(g) * sg! - mg!;
      out[2 * plane + q] = Math.fround(b) * sb! - mb!;
    }
  }
  return out;
}
