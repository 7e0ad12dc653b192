import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  countsToString,
  decodeRle,
  encodeRle,
  maskToCounts,
  masksEqual,
  rleArea,
  rleToBbox,
  stringToCounts,
  type BinaryMask,
} from '../../../activities/media/rle.js';
import { repoRoot } from '../../support/paths.js';

interface Golden {
  synthetic: { name: string; height: number; width: number; counts: string; area: number; bbox: number[] }[];
}
const golden = JSON.parse(
  readFileSync(join(repoRoot, 'test/fixtures/golden/media/coco-rle.json'), 'utf8'),
) as Golden;

/** The formulas of make-coco-rle.py. */
function synth(name: string, h: number, w: number): BinaryMask {
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      let v: boolean;
      switch (name) {
        case 'checker':
          v = (x * 3 + y * 5) % 7 < 3;
          break;
        case 'empty':
          v = false;
          break;
        case 'full':
        case 'single':
          v = true;
          break;
        case 'circle':
          v = (x - 20) ** 2 + (y - 18) ** 2 < 150;
          break;
        case 'bigruns':
          v = x >= 50 && x < 350 && y >= 10 && y < 290 && !((x - 200) ** 2 + (y - 150) ** 2 < 90 ** 2);
          break;
        case 'stripes':
          v = x % 13 === 0 || y > 900;
          break;
        default:
          throw new Error(name);
      }
      data[y * w + x] = v ? 1 : 0;
    }
  return { width: w, height: h, data };
}

test('encodeRle matches pycocotools mask.encode byte for byte (compressed counts string)', () => {
  for (const g of golden.synthetic) {
    const rle = encodeRle(synth(g.name, g.height, g.width));
    assert.deepEqual(rle.size, [g.height, g.width], g.name);
    assert.equal(rle.counts, g.counts, g.name);
  }
});

test('decodeRle of pycocotools strings gives the original masks; area and toBbox agree with pycocotools', () => {
  for (const g of golden.synthetic) {
    const rle = { size: [g.height, g.width] as [number, number], counts: g.counts };
    assert.ok(masksEqual(decodeRle(rle), synth(g.name, g.height, g.width)), g.name);
    assert.equal(rleArea(rle), g.area, g.name);
    assert.deepEqual(rleToBbox(rle), g.bbox, g.name);
  }
});

test('counts are column-major and start with a run of zeros', () => {
  // 2×3, row-major: [1 0 0 / 1 1 0] → columns: (1,1) (0,1) (0,0)
  const mask = { width: 3, height: 2, data: Uint8Array.from([1, 0, 0, 1, 1, 0]) };
  assert.deepEqual(maskToCounts(mask), [0, 2, 1, 1, 2]);
  assert.deepEqual(decodeRle({ size: [2, 3], counts: [0, 2, 1, 1, 2] }).data, mask.data);
});

test('RLE round-trips any mask, both as counts and as the compressed string', () => {
  const arb = fc
    .record({ w: fc.integer({ min: 1, max: 40 }), h: fc.integer({ min: 1, max: 40 }), seed: fc.integer() })
    .chain(({ w, h }) =>
      fc
        .uint8Array({ minLength: w * h, maxLength: w * h, max: 1 })
        .map((data) => ({ width: w, height: h, data })),
    );
  fc.assert(
    fc.property(arb, (mask) => {
      const counts = maskToCounts(mask);
      assert.deepEqual(stringToCounts(countsToString(counts)), counts);
      assert.ok(masksEqual(decodeRle(encodeRle(mask)), mask));
      assert.equal(
        rleArea(encodeRle(mask)),
        mask.data.reduce((a, b) => a + b, 0),
      );
    }),
    { numRuns: 300 },
  );
});

test('large counts and negative deltas survive the string form', () => {
  const counts = [0, 268_000_000, 5, 1, 200_000_000, 3, 7];
  assert.deepEqual(stringToCounts(countsToString(counts)), counts);
});

test('malformed RLE is rejected with a message', () => {
  assert.throws(() => decodeRle({ size: [2, 2], counts: [1, 1] }), /cover 2 pixels/);
  assert.throws(() => decodeRle({ size: [2, 2], counts: [3, 3] }), /more than 2×2/);
  assert.throws(() => stringToCounts('0\x7f'), /invalid character/);
  assert.throws(() => stringToCounts('P'), /ends inside a number/);
});
