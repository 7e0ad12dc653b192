// Ground truth from masks against golden values from scipy / OpenCV (test/golden/groundtruth_reference.py).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { readMaskPng } from '../../../activities/media/mask-png.js';
import { squaredDistanceTransform } from '../../../core/groundtruth/edt.js';
import {
  buildSampleGroundTruth,
  largestComponentArea,
  maskGeometry,
  type SampledFrameMask,
} from '../../../core/groundtruth/ground-truth.js';
import type { SampleGroundTruth } from '../../../core/rewards/terms.js';
import { sharedData } from '../../support/paths.js';
import { loadGolden, renderMask, type MaskSpec } from './golden-masks.js';

interface Geometry {
  bbox: number[];
  point: number[];
  area: number;
  maxConnArea: number;
}
interface Golden {
  masks: { name: string; mask: MaskSpec; geometry: Geometry | null }[];
  real: { file: string; geometry: Geometry }[];
  samples: {
    sequence: string;
    frames: { frameId: number; file?: string | null; mask?: MaskSpec }[];
    groundTruth: SampleGroundTruth;
  }[];
}
const golden = loadGolden<Golden>('groundtruth.json');

void test('box, innermost point, area and largest 8-component equal scipy/OpenCV on synthetic masks', () => {
  assert.ok(golden.masks.length >= 20);
  for (const c of golden.masks) {
    const g = maskGeometry(renderMask(c.mask));
    assert.deepEqual(g, c.geometry, c.name);
  }
});

void test('scipy quirks are reproduced: the border is not background, a full mask measures from (−1, 0)', () => {
  const byName = new Map(golden.masks.map((m) => [m.name, m]));
  // A mask touching the left border is deepest AT the border.
  assert.deepEqual(
    maskGeometry(renderMask(byName.get('touching left border')?.mask as MaskSpec))?.point,
    [0, 4],
  );
  // A full 5×4 mask: distances to the virtual pixel (row −1, col 0) peak at the bottom-right.
  assert.deepEqual(maskGeometry(renderMask({ width: 5, height: 4, full: true }))?.point, [4, 3]);
  const d2 = squaredDistanceTransform(new Uint8Array(12).fill(1), 4, 3);
  assert.deepEqual([...d2], [1, 2, 5, 10, 4, 5, 8, 13, 9, 10, 13, 18]);
});

void test('the exact EDT equals a brute-force nearest-zero search on random masks', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 14 }),
      fc.integer({ min: 1, max: 12 }),
      fc.array(fc.boolean(), { minLength: 168, maxLength: 168 }),
      (w, h, bits) => {
        const data = Uint8Array.from(bits.slice(0, w * h), (b) => (b ? 1 : 0));
        if (!data.includes(0)) return;
        const d2 = squaredDistanceTransform(data, w, h);
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            let best = Infinity;
            for (let yy = 0; yy < h; yy++)
              for (let xx = 0; xx < w; xx++)
                if (data[yy * w + xx] === 0) best = Math.min(best, (x - xx) ** 2 + (y - yy) ** 2);
            assert.equal(d2[y * w + x], best, `(${x}, ${y}) of ${w}×${h}`);
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

void test('largest component uses 8-connectivity (diagonal neighbours join)', () => {
  const m = { width: 3, height: 3, data: Uint8Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]) };
  assert.equal(largestComponentArea(m), 3);
  const m4 = { width: 3, height: 3, data: Uint8Array.from([1, 0, 1, 0, 0, 0, 1, 0, 1]) };
  assert.equal(largestComponentArea(m4), 1);
});

void test('geometry equals scipy/OpenCV on real 854×480 DAVIS masks', async () => {
  assert.ok(golden.real.length >= 15);
  for (const c of golden.real) {
    const m = await readMaskPng(sharedData('davis_osvos', c.file));
    assert.deepEqual(maskGeometry(m), c.geometry, c.file);
  }
});

void test('the per-sample ground truth (0–1000, half-even rounding, normalised areas) equals the reference', async () => {
  for (const s of golden.samples) {
    const frames: SampledFrameMask[] = [];
    for (const f of s.frames) {
      if (f.mask !== undefined) frames.push({ frameId: f.frameId, mask: renderMask(f.mask) });
      else if (f.file === null || f.file === undefined) frames.push({ frameId: f.frameId, mask: null });
      else frames.push({ frameId: f.frameId, mask: await readMaskPng(sharedData('davis_osvos', f.file)) });
    }
    const gt = buildSampleGroundTruth(frames);
    assert.deepEqual(gt, s.groundTruth, s.sequence);
    assert.deepEqual(Object.keys(gt), Object.keys(s.groundTruth), `${s.sequence} key order`);
  }
});

void test('pixel coordinates are available too, and an all-empty sample has no frames', () => {
  const m = renderMask({ width: 10, height: 10, rects: [[2, 3, 4, 6]] });
  const gt = buildSampleGroundTruth([{ frameId: 4, mask: m }], { kind: 'pixels' });
  assert.deepEqual(gt['4']?.bbox_2d, [2, 3, 4, 6]);
  assert.deepEqual(buildSampleGroundTruth([{ frameId: 0, mask: renderMask({ width: 4, height: 4 }) }]), {});
});
