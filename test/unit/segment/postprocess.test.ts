import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  fillHoles,
  fromBfloat16,
  logitsToMask,
  resizeBilinear,
  toBfloat16,
} from '../../../activities/segment/postprocess.js';

test('bilinear resize matches F.interpolate(align_corners=False) on a 2×2 → 4×4 case', () => {
  const out = resizeBilinear(Float32Array.of(0, 1, 2, 3), 2, 2, 4, 4);
  assert.deepEqual(
    Array.from(out),
    [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3],
  );
});

test('bilinear downsample 4 → 2 averages pixel pairs (src = 2d + 0.5)', () => {
  const out = resizeBilinear(Float32Array.of(0, 1, 2, 3), 4, 1, 2, 1);
  assert.deepEqual(Array.from(out), [0.5, 2.5]);
});

test('logitsToMask thresholds > 0 after the upsample and counts the area', () => {
  const { mask, area } = logitsToMask(Float32Array.of(-1, 1, -1, 1), 2, 4, 2, 0);
  // columns: src x = [−0.25→0, 0.25, 0.75, 1.25→1] → values −1, −0.5, 0.5, 1
  assert.deepEqual(Array.from(mask), [0, 0, 255, 255, 0, 0, 255, 255]);
  assert.equal(area, 4);
});

test('hole fill: small background components (8-connected) become 0.1, large ones stay', () => {
  const w = 8;
  const h = 8;
  const logits = new Float32Array(w * h).fill(3);
  // a 2-pixel hole joined only diagonally, and a 9-pixel background block in the corner
  logits[2 * w + 2] = -1;
  logits[3 * w + 3] = -1;
  for (let y = 5; y < 8; y++) for (let x = 5; x < 8; x++) logits[y * w + x] = -2;
  const filled = fillHoles(logits, w, h, 8);
  assert.equal(filled[2 * w + 2], Math.fround(0.1));
  assert.equal(filled[3 * w + 3], Math.fround(0.1));
  assert.equal(filled[6 * w + 6], -2);
  assert.equal(logits[2 * w + 2], -1, 'input untouched');
  // 8-connectivity: the diagonal pair is ONE component of area 2, so max area 1 keeps it
  const strict = fillHoles(logits, w, h, 1);
  assert.equal(strict[2 * w + 2], -1);
  assert.equal(strict[3 * w + 3], -1);
});

test('bfloat16 rounds to nearest even and round-trips exactly representable values', () => {
  const f = new Float32Array([1, -2.5, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -7, 0]);
  const b = toBfloat16(f);
  assert.deepEqual(Array.from(b), [0x3f80, 0xc020, 0x3f80, 0x3f82, 0x3f81, 0]);
  const back = new Float32Array(f.length);
  fromBfloat16(b, back);
  assert.deepEqual(Array.from(back), [1, -2.5, 1, 1 + 4 * 2 ** -8, 1 + 2 ** -7, 0]);
});

/** The per-pixel formula (PyTorch's index rules, float64, stored as float32) the row-wise code keeps. */
function directBilinear(src: Float32Array, inW: number, inH: number, outW: number, outH: number) {
  const index = (outSize: number, inSize: number, d: number) => {
    const real = Math.max(0, (inSize / outSize) * (d + 0.5) - 0.5);
    const i0 = Math.floor(real);
    return { i0, i1: i0 < inSize - 1 ? i0 + 1 : i0, w1: Math.fround(real - i0) };
  };
  const out = new Float32Array(outW * outH);
  for (let y = 0; y < outH; y++) {
    const ys = index(outH, inH, y);
    for (let x = 0; x < outW; x++) {
      const xs = index(outW, inW, x);
      const top = src[ys.i0 * inW + xs.i0]! * (1 - xs.w1) + src[ys.i0 * inW + xs.i1]! * xs.w1;
      const bottom = src[ys.i1 * inW + xs.i0]! * (1 - xs.w1) + src[ys.i1 * inW + xs.i1]! * xs.w1;
      out[y * outW + x] = top * (1 - ys.w1) + bottom * ys.w1;
    }
  }
  return out;
}

test('the row-wise bilinear resize and mask equal the per-pixel formula bit for bit (up, down, odd sizes)', () => {
  let seed = 7;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    return seed / 2 ** 31 - 0.5;
  };
  for (const [inW, inH, outW, outH] of [
    [256, 256, 960, 540],
    [256, 256, 97, 301],
    [5, 3, 5, 3],
    [1, 4, 6, 2],
  ] as const) {
    const src = Float32Array.from({ length: inW * inH }, random);
    const want = directBilinear(src, inW, inH, outW, outH);
    const got = resizeBilinear(src, inW, inH, outW, outH);
    assert.ok(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), `${inW}×${inH} → ${outW}×${outH}`);
    if (inW === inH) {
      const { mask, area } = logitsToMask(src, inW, outW, outH, 0.01);
      assert.deepEqual(
        Array.from(mask),
        Array.from(want, (v) => (v > 0.01 ? 255 : 0)),
      );
      assert.equal(area, want.filter((v) => v > 0.01).length);
    }
  }
});
