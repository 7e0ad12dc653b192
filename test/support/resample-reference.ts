// The straightforward resampler that activities/segment/resample.ts replaced (8d2bd12), kept as the
// reference the fast one must equal bit for bit (test/unit/segment/resample.test.ts). Not used at run time.
// The filters, their coefficients and the fixed-point scale are unchanged by the rewrite: shared with
// it; the loops below are the old ones.
import {
  coefficients,
  FILTERS,
  HALF,
  ONE,
  type Coefficients,
  type Resampler,
} from '../../activities/segment/resample.js';

export type { Resampler };

/** Pillow `normalize_coeffs_8bpc`: weights to 22-bit fixed point, rounded away from zero. */
function fixedPoint(c: Coefficients): Coefficients {
  const weights = c.weights.map((w) => (w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE)));
  return { ...c, weights };
}

function clip8(acc: number): number {
  const v = Math.floor(acc / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resizes interleaved 8-bit RGB `pixels` (width×height) to outW×outH and returns planar float
 * channels (3 × outW × outH, values on the 0..255 scale) the way `resampler` does.
 */
export function referenceResampleRgb(
  pixels: Uint8Array,
  width: number,
  height: number,
  outW: number,
  outH: number,
  resampler: Resampler,
): Float32Array {
  const filter = FILTERS[resampler];
  const eightBit = resampler === 'pil-bicubic';
  const horiz = coefficients(width, outW, filter);
  const vert = coefficients(height, outH, filter);
  const h = eightBit ? fixedPoint(horiz) : horiz;
  const v = eightBit ? fixedPoint(vert) : vert;
  // Only the input rows the vertical pass reads (Pillow's ybox) go through the horizontal pass.
  const rowFirst = v.first[0]!;
  const rowLast = v.first[outH - 1]! + v.count[outH - 1]!;
  const rows = rowLast - rowFirst;
  const needH = outW !== width;
  const needV = outH !== height;
  // Horizontal pass → tmp (rows × outW × 3, interleaved); rounded to 8 bits for PIL.
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
      let r = eightBit ? HALF : 0;
      let g = r;
      let b = r;
      for (let x = 0; x < n; x++) {
        const w = h.weights[k + x]!;
        const p = src + (lo + x) * 3;
        r += pixels[p]! * w;
        g += pixels[p + 1]! * w;
        b += pixels[p + 2]! * w;
      }
      const q = dst + o * 3;
      if (eightBit) {
        tmp[q] = clip8(r);
        tmp[q + 1] = clip8(g);
        tmp[q + 2] = clip8(b);
      } else {
        tmp[q] = r;
        tmp[q + 1] = g;
        tmp[q + 2] = b;
      }
    }
  }
  // Vertical pass → planar output.
  const plane = outW * outH;
  const out = new Float32Array(3 * plane);
  for (let o = 0; o < outH; o++) {
    const lo = needV ? v.first[o]! - rowFirst : o - rowFirst;
    const n = needV ? v.count[o]! : 1;
    const k = o * v.ksize;
    for (let xo = 0; xo < tmpW; xo++) {
      let r = needV && eightBit ? HALF : 0;
      let g = r;
      let b = r;
      for (let y = 0; y < n; y++) {
        const w = needV ? v.weights[k + y]! : 1;
        const p = ((lo + y) * tmpW + xo) * 3;
        r += tmp[p]! * w;
        g += tmp[p + 1]! * w;
        b += tmp[p + 2]! * w;
      }
      const q = o * outW + xo;
      if (needV && eightBit) {
        out[q] = clip8(r);
        out[plane + q] = clip8(g);
        out[2 * plane + q] = clip8(b);
      } else {
        out[q] = r;
        out[plane + q] = g;
        out[2 * plane + q] = b;
      }
    }
  }
  return out;
}
