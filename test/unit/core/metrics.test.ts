// DAVIS J/F, statistics and ReasonSeg scores against golden values from the Python definitions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { readMaskPng } from '../../../activities/media/mask-png.js';
import { evaluateFrame, boundaryTolerance, diskHalfWidths } from '../../../core/metrics/davis.js';
import { evaluateFrameNaive, seg2bmap } from '../../../core/metrics/davis-naive.js';
import { npMean, npNanMean, npSum } from '../../../core/metrics/numpy.js';
import {
  davisStatistics,
  LISA_CONVENTION,
  queryScore,
  reasonSegScores,
  SEGZERO_CONVENTION,
  summariseByAbility,
} from '../../../core/metrics/summary.js';
import { sharedData } from '../../support/paths.js';
import { loadGolden, renderMask, type MaskSpec } from './golden-masks.js';

interface DavisGolden {
  synthetic: {
    name: string;
    pred: MaskSpec;
    gt: MaskSpec;
    J: number;
    F: number;
    precision: number;
    recall: number;
  }[];
  real: {
    pred: string;
    gt: string;
    J: number;
    F: number;
    precision: number;
    recall: number;
    predArea: number;
    gtArea: number;
  }[];
  statistics: { values: number[]; stats: [number, number, number] }[];
}
const golden = loadGolden<DavisGolden>('davis.json', { nanStrings: true });

function close(actual: number, expected: number, tol: number, what: string): void {
  if (Number.isNaN(expected)) assert.ok(Number.isNaN(actual), `${what}: expected NaN, got ${actual}`);
  else assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected}`);
}

void test('the tolerance of an 854×480 frame is 8 px and disk(8) has 197 pixels', () => {
  assert.equal(boundaryTolerance(854, 480), 8);
  const hw = diskHalfWidths(8);
  let n = 0;
  for (const h of hw) n += 2 * h + 1;
  assert.equal(n, 197);
});

void test('J and F equal the Python reference on synthetic edge cases and random masks', () => {
  assert.ok(golden.synthetic.length >= 30);
  for (const c of golden.synthetic) {
    const s = evaluateFrame(renderMask(c.pred), renderMask(c.gt));
    close(s.J, c.J, 1e-12, `${c.name} J`);
    close(s.F, c.F, 1e-12, `${c.name} F`);
    close(s.precision, c.precision, 1e-12, `${c.name} precision`);
    close(s.recall, c.recall, 1e-12, `${c.name} recall`);
  }
});

void test('edge cases follow the DAVIS table (both empty 1/1, empty prediction, empty ground truth)', () => {
  const byName = new Map(golden.synthetic.map((c) => [c.name, c]));
  const get = (n: string) => {
    const c = byName.get(n);
    assert.ok(c, n);
    return evaluateFrame(renderMask(c.pred), renderMask(c.gt));
  };
  assert.deepEqual(get('both empty'), { J: 1, F: 1, precision: 1, recall: 1 });
  assert.deepEqual(get('empty prediction'), { J: 0, F: 0, precision: 1, recall: 0 });
  assert.deepEqual(get('empty ground truth'), { J: 0, F: 0, precision: 0, recall: 1 });
  // A lone pixel in the bottom-right corner has no boundary at all (b[-1, -1] = 0) ...
  assert.deepEqual(get('one pixel, bottom-right corner, both'), { J: 1, F: 1, precision: 1, recall: 1 });
  // ... while one in the top-left corner does, and matches itself.
  assert.equal(get('one pixel, top-left corner, both').F, 1);
  assert.equal(get('one pixel, opposite corners').F, 0);
});

void test('J and F equal the Python reference on real 854×480 DAVIS masks', async () => {
  assert.ok(golden.real.length >= 20);
  for (const c of golden.real) {
    const pred = await readMaskPng(sharedData('davis_osvos', c.pred));
    const gt = await readMaskPng(sharedData('davis_osvos', c.gt));
    assert.equal(
      pred.data.reduce((a, b) => a + b, 0),
      c.predArea,
      `${c.pred} area`,
    );
    assert.equal(
      gt.data.reduce((a, b) => a + b, 0),
      c.gtArea,
      `${c.gt} area`,
    );
    const s = evaluateFrame(pred, gt);
    close(s.J, c.J, 1e-12, `${c.pred} vs ${c.gt} J`);
    close(s.F, c.F, 1e-12, `${c.pred} vs ${c.gt} F`);
  }
});

void test('the fast J&F agrees with the naive whole-image implementation on random masks', () => {
  const mask = fc
    .record({ w: fc.integer({ min: 1, max: 24 }), h: fc.integer({ min: 1, max: 20 }) })
    .chain(({ w, h }) =>
      fc.tuple(
        fc.constant(w),
        fc.constant(h),
        fc.uint8Array({ minLength: w * h, maxLength: w * h }),
        fc.uint8Array({ minLength: w * h, maxLength: w * h }),
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom(0, 100, 200, 250),
      ),
    );
  fc.assert(
    fc.property(mask, ([w, h, a, b, r, cut]) => {
      // Thresholding the random bytes gives masks from sparse to dense; values stay 0..255.
      const pred = { width: w, height: h, data: a.map((v) => (v > cut ? v : 0)) };
      const gt = { width: w, height: h, data: b.map((v) => (v > cut ? 255 : 0)) };
      const fast = evaluateFrame(pred, gt, r);
      const slow = evaluateFrameNaive(pred, gt, r);
      assert.equal(fast.J, slow.J);
      assert.equal(fast.F, slow.F);
    }),
    { numRuns: 400 },
  );
});

void test('seg2bmap matches the reference border rules on a 3×3 example', () => {
  // seg = [[0,1,0],[1,1,1],[0,1,0]]
  const m = { width: 3, height: 3, data: Uint8Array.from([0, 1, 0, 1, 1, 1, 0, 1, 0]) };
  // Interior: any of E, S, SE differs; last row: only E; last column: only S; corner: 0.
  assert.deepEqual([...seg2bmap(m)], [1, 1, 1, 1, 1, 1, 1, 1, 0]);
});

void test('DAVIS statistics (mean, recall, decay with uint8 bin edges) equal the reference', () => {
  for (const c of golden.statistics) {
    const s = davisStatistics(c.values);
    close(s.mean, c.stats[0], 0, `mean of ${c.values.length}`);
    close(s.recall, c.stats[1], 0, `recall of ${c.values.length}`);
    close(s.decay, c.stats[2], 0, `decay of ${c.values.length}`);
  }
});

void test('NumPy pairwise sums are reproduced bit for bit', () => {
  // 0.1 summed 1000 times: a left-to-right loop gives 99.9999999999986, NumPy 100.00000000000001.
  const xs = new Array<number>(1000).fill(0.1);
  assert.equal(npSum(xs), 100.00000000000001);
  assert.equal(npMean([1, 2, 3, 4]), 2.5);
  assert.equal(npNanMean([1, NaN, 3]), 2);
  assert.ok(Number.isNaN(npNanMean([NaN])));
});

void test('per-query, per-ability and overall J&F weight every query equally', () => {
  const q1 = queryScore('a', 'one-hop', [
    { J: 1, F: 0.5 },
    { J: 0, F: 0.5 },
  ]);
  const q2 = queryScore('b', 'multi-hop', [{ J: 0.2, F: 0.4 }]);
  const q3 = queryScore('c', 'in-video', [{ J: 0.8, F: 0.6 }]);
  assert.deepEqual(q1, { id: 'a', ability: 'one-hop', J: 0.5, F: 0.5 });
  const s = summariseByAbility([q1, q2, q3]);
  assert.deepEqual(s.perAbility['one-hop'], { J: 0.5, F: 0.5, JF: 0.5, count: 1 });
  assert.equal(s.perAbility['relational']?.count, 0);
  assert.ok(Number.isNaN(s.perAbility['relational']?.J ?? 0));
  assert.equal(s.overall.count, 3);
  assert.equal(s.overall.J, (0.5 + 0.2 + 0.8) / 3);
  assert.equal(s.overall.JF, (s.overall.J + s.overall.F) / 2);
});

void test('gIoU/cIoU: an empty union counts 1 under LISA, 0 under Seg-Zero, or is skipped', () => {
  const samples = [
    { intersection: 50, union: 100 },
    { intersection: 0, union: 0 },
    { intersection: 0, union: 30 },
  ];
  const lisa = reasonSegScores(samples, { ...LISA_CONVENTION, iouEpsilon: 0, ciouEpsilon: 0 });
  assert.equal(lisa.gIoU, (0.5 + 1 + 0) / 3);
  assert.equal(lisa.cIoU, 50 / 130);
  const sz = reasonSegScores(samples, SEGZERO_CONVENTION);
  assert.equal(sz.gIoU, (0.5 + 0 + 0) / 3);
  const skip = reasonSegScores(samples, { ...SEGZERO_CONVENTION, emptyUnion: 'skip' });
  assert.equal(skip.gIoU, 0.25);
  assert.equal(skip.skipped, 1);
  const withEps = reasonSegScores([{ intersection: 1, union: 1 }], LISA_CONVENTION);
  assert.equal(withEps.gIoU, 1 / (1 + 1e-5));
});
