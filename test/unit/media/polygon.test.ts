import { test } from 'node:test';
import assert from 'node:assert/strict';
import { polygonPixels, rasteriseShapes } from '../../../activities/datasets/polygon.js';

const count = (a: Uint8Array) => a.reduce((s, v) => s + v, 0);

test('an axis-aligned rectangle with integer corners fills its outline inclusive (cv2.fillPoly + polylines)', () => {
  assert.equal(
    polygonPixels(
      [
        [10, 10],
        [20, 10],
        [20, 20],
        [10, 20],
      ],
      64,
      48,
    ).length,
    11 * 11,
  );
  // Fractional vertices are truncated like np.int32.
  assert.equal(
    polygonPixels(
      [
        [10.9, 10.9],
        [20.9, 10.9],
        [20.9, 20.9],
        [10.9, 20.9],
      ],
      64,
      48,
    ).length,
    11 * 11,
  );
});

test('a right triangle covers its lattice points, edges included', () => {
  // Vertices (0,0), (10,0), (0,10): lattice points with x, y >= 0 and x + y <= 10 → 66.
  assert.equal(
    polygonPixels(
      [
        [0, 0],
        [10, 0],
        [0, 10],
      ],
      32,
      32,
    ).length,
    66,
  );
});

test('pixels outside the image are clipped; a degenerate polygon is its outline', () => {
  assert.equal(
    polygonPixels(
      [
        [-5, -5],
        [5, -5],
        [5, 5],
        [-5, 5],
      ],
      32,
      32,
    ).length,
    6 * 6,
  );
  assert.equal(
    polygonPixels(
      [
        [2, 2],
        [8, 2],
      ],
      32,
      32,
    ).length,
    7,
  );
  assert.deepEqual(polygonPixels([], 32, 32), []);
});

test('LISA label map: the larger target is painted first, a smaller ignore region stays on top, "flag" is skipped', () => {
  const { target, ignore } = rasteriseShapes(
    [
      {
        label: 'ignore',
        points: [
          [4, 4],
          [6, 4],
          [6, 6],
          [4, 6],
        ],
      },
      {
        label: 'target',
        points: [
          [0, 0],
          [9, 0],
          [9, 9],
          [0, 9],
        ],
      },
      {
        label: 'flag',
        points: [
          [0, 0],
          [15, 0],
          [15, 15],
          [0, 15],
        ],
      },
    ],
    16,
    16,
  );
  assert.equal(count(ignore), 9);
  assert.equal(count(target), 100 - 9);
  assert.equal(target[5 * 16 + 5], 0);
  assert.equal(target[15 * 16 + 15], 0);
});
