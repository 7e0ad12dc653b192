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
