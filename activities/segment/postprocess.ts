/**
 * Mask post-processing (no I/O): SAM2's small-hole fill on low-res logits, the bilinear upsample
 * (PyTorch `F.interpolate(mode="bilinear", align_corners=False)`) to the original size with the
 * > threshold cut, and bfloat16 packing of memory features. Written by hand: these are a few loops
 * over 65k / 1M elements that no maintained library does with PyTorch's exact index rules.
 */

/**
 * `fill_holes_in_mask_scores`: background components (logit ≤ 0, 8-connected, as
 * `get_connected_components` labels them) of area ≤ maxArea become 0.1. Returns a new array.
 */
export function fillHoles(
  logits: Float32Array,
  width: number,
  height: number,
  maxArea: number,
): Float32Array {
  const out = Float32Array.from(logits);
  if (maxArea <= 0) return out;
  const n = width * height;
  const seen = new Uint8Array(n);
  const stack = new Int32Array(n);
  const component = new Int32Array(n);
  for (let start = 0; start < n; start++) {
    if (seen[start] || logits[start]! > 0) continue;
    let top = 0;
    let size = 0;
    stack[top++] = start;
    seen[start] = 1;
    while (top > 0) {
      const p = stack[--top]!;
      component[size++] = p;
      const x = p % width;
      const y = (p - x) / width;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if ((dx === 0 && dy === 0) || xx < 0 || xx >= width) continue;
          const q = yy * width + xx;
          if (!seen[q] && logits[q]! <= 0) {
            seen[q] = 1;
            stack[top++] = q;
          }
        }
      }
    }
    if (size <= maxArea) for (let i = 0; i < size; i++) out[component[i]!] = 0.1;
  }
  return out;
}

function sourceIndex(outSize: number, inSize: number): { i0: Int32Array; i1: Int32Array; w1: Float32Array } {
  const scale = inSize / outSize;
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w1 = new Float32Array(outSize);
  for (let d = 0; d < outSize; d++) {
    const real = Math.max(0, scale * (d + 0.5) - 0.5);
    const idx = Math.floor(real);
    i0[d] = idx;
    i1[d] = idx < inSize - 1 ? idx + 1 : idx;
    w1[d] = real - idx;
  }
  return { i0, i1, w1 };
}

/**
 * The bilinear (align_corners=False) resize, row by row: each output row mixes two source rows,
 * each first resized across (kept for the next output rows, which mostly reuse them). The same
 * float64 arithmetic, in the same order, as the direct per-pixel formula
 * `(s[r0,a]·(1−wx) + s[r0,b]·wx)·(1−wy) + (s[r1,a]·(1−wx) + s[r1,b]·wx)·wy`.
 */
function bilinearRows(
  src: Float32Array,
  inW: number,
  inH: number,
  outW: number,
  outH: number,
  emit: (y: number, top: Float64Array, bottom: Float64Array, wy: number) => void,
): void {
  const xs = sourceIndex(outW, inW);
  const ys = sourceIndex(outH, inH);
  const w0 = Float64Array.from(xs.w1, (w) => 1 - w);
  const slots = [new Float64Array(outW), new Float64Array(outW)];
  const keys = [-1, -1];
  // the row `r` resized across, in a slot other than the one holding `keep`
  const across = (r: number, keep: number): Float64Array => {
    if (keys[0] === r) return slots[0]!;
    if (keys[1] === r) return slots[1]!;
    const s = keys[0] === keep ? 1 : 0;
    const row = slots[s]!;
    const base = r * inW;
    for (let x = 0; x < outW; x++)
      row[x] = src[base + xs.i0[x]!]! * w0[x]! + src[base + xs.i1[x]!]! * xs.w1[x]!;
    keys[s] = r;
    return row;
  };
  for (let y = 0; y < outH; y++) {
    const r0 = ys.i0[y]!;
    const r1 = ys.i1[y]!;
    const top = across(r0, r1);
    emit(y, top, across(r1, r0), ys.w1[y]!);
  }
}

/** Bilinear (align_corners=False) resize of a single-channel float map. */
export function resizeBilinear(
  src: Float32Array,
  inW: number,
  inH: number,
  outW: number,
  outH: number,
): Float32Array {
  const out = new Float32Array(outW * outH);
  bilinearRows(src, inW, inH, outW, outH, (y, top, bottom, wy) => {
    const base = y * outW;
    const wt = 1 - wy;
    for (let x = 0; x < outW; x++) out[base + x] = top[x]! * wt + bottom[x]! * wy;
  });
  return out;
}

/**
 * Low-res logits → a 0/255 mask of the original size (bilinear, then > threshold), without the
 * float image: each value is rounded to float32 (as the resized map stores it) and compared.
 */
export function logitsToMask(
  logits: Float32Array,
  side: number,
  width: number,
  height: number,
  threshold: number,
): { mask: Uint8Array; area: number } {
  const mask = new Uint8Array(width * height);
  let area = 0;
  bilinearRows(logits, side, side, width, height, (y, top, bottom, wy) => {
    const base = y * width;
    const wt = 1 - wy;
    for (let x = 0; x < width; x++) {
      if (Math.fround(top[x]! * wt + bottom[x]! * wy) > threshold) {
        mask[base + x] = 255;
        area++;
      }
    }
  });
  return { mask, area };
}

/** float32 → bfloat16 bits, round to nearest even (torch's `.to(torch.bfloat16)`). */
export function toBfloat16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i]!;
    if ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0) {
      out[i] = ((b >>> 16) | 0x0040) & 0xffff;
    } else {
      out[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
    }
  }
  return out;
}

/** bfloat16 bits → float32, written into `out` at `offset`. */
export function fromBfloat16(src: Uint16Array, out: Float32Array, offset = 0): void {
  const bits = new Uint32Array(out.buffer, out.byteOffset + offset * 4, src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
}
