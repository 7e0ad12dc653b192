import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BadInputError } from '../../../activities/errors.js';
import { boxPoints, promptToPixels, toModelPoints } from '../../../activities/segment/prompts.js';

const size = { width: 1800, height: 1200 };

test('0–1000 box and point map to pixels with W/1000 and H/1000 separately', () => {
  const p = promptToPixels({ space: 'norm1000', box: [100, 200, 500, 600], point: [250, 500] }, size, 'img');
  assert.deepEqual(p.box, [180, 240, 900, 720]);
  assert.deepEqual(p.point, [450, 600]);
});

test('pixels → the 1024 model frame: x·1024/W, y·1024/H, box corners first with labels 2 and 3', () => {
  const pts = toModelPoints([...boxPoints([180, 240, 900, 720]), { x: 450, y: 600, label: 1 }], size);
  assert.deepEqual(Array.from(pts.labels), [2, 3, 1]);
  const expected = [
    180 * (1024 / 1800),
    240 * (1024 / 1200),
    900 * (1024 / 1800),
    720 * (1024 / 1200),
    256,
    512,
  ];
  Array.from(pts.coords).forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-3, `coord ${i}: ${v}`));
  assert.equal(pts.count, 3);
});

test('no points → one pad point labelled −1 (the graph adds its own pad as SAM2 does)', () => {
  const pts = toModelPoints([], size);
  assert.deepEqual(Array.from(pts.labels), [-1]);
  assert.deepEqual(Array.from(pts.coords), [0, 0]);
  assert.equal(pts.count, 0);
});

test('bad prompts are non-retryable errors naming the prompt', () => {
  assert.throws(
    () => promptToPixels({ space: 'pixels', box: [500, 10, 100, 20] }, size, 'truck.jpg'),
    (e: unknown) =>
      e instanceof BadInputError &&
      !e.retryable &&
      /truck\.jpg: box \[500, 10, 100, 20\] must have x1 ≤ x2/.test(e.message),
  );
  assert.throws(
    () => promptToPixels({ space: 'norm1000', point: [1200, 10] }, size, 'frame 3'),
    (e: unknown) =>
      e instanceof BadInputError &&
      /point \[1200, 10\] lies outside the image \(0–1000 frame\)/.test(e.message),
  );
  assert.throws(
    () => promptToPixels({ space: 'pixels', box: [0, 0, 1801, 10] }, size, 'x'),
    /outside the image \(1800×1200 pixels\)/,
  );
});
