import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  linspaceIndices,
  sampleFrames,
  sampleWithAnchor,
  seededIndex,
} from '../../../activities/media/sampling.js';
import { selectExpression } from '../../../activities/media/frames.js';
import { policyFrameSize, roundUpToFactor } from '../../../activities/media/image.js';
import { repoRoot } from '../../support/paths.js';

const golden = JSON.parse(
  readFileSync(join(repoRoot, 'test/fixtures/golden/media/linspace-numpy.json'), 'utf8'),
) as [number, number, number[]][];

test('linspaceIndices equals numpy linspace(0, T-1, K, dtype=int) (all frames when T <= K)', () => {
  for (const [t, k, expected] of golden) assert.deepEqual(linspaceIndices(t, k), expected, `T=${t} K=${k}`);
  assert.deepEqual(linspaceIndices(200, 6), [0, 39, 79, 119, 159, 199]);
  assert.deepEqual(linspaceIndices(0, 6), []);
});

test('linspace indices are sorted, distinct, in range, first 0 and last T-1', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 2, max: 64 }), (t, k) => {
      const idx = linspaceIndices(t, k);
      assert.equal(idx.length, Math.min(t, k));
      assert.equal(idx[0], 0);
      assert.equal(idx[idx.length - 1], t - 1);
      for (let i = 1; i < idx.length; i++) assert.ok(idx[i]! > idx[i - 1]!);
    }),
  );
});

test('the training anchor replaces the closest sampled index (earlier on ties) and the result is sorted', () => {
  // uniform [0, 39, 79, 119, 159, 199]; 60 is 21 from 39 and 19 from 79 → 79 replaced
  assert.deepEqual(sampleWithAnchor(200, 6, 60), [0, 39, 60, 119, 159, 199]);
  // 59 is exactly 20 from 39 and 79: Python's min keeps the first → 39 replaced
  assert.deepEqual(sampleWithAnchor(200, 6, 59), [0, 59, 79, 119, 159, 199]);
  assert.deepEqual(sampleWithAnchor(200, 6, 79), [0, 39, 79, 119, 159, 199]);
  // short videos show every frame, nothing replaced
  assert.deepEqual(sampleWithAnchor(5, 6, 3), [0, 1, 2, 3, 4]);
  assert.throws(() => sampleWithAnchor(200, 6, 200), /outside the video's frames \[0, 199\]/);
  fc.assert(
    fc.property(fc.integer({ min: 7, max: 3000 }), fc.integer({ min: 2, max: 6 }), fc.nat(), (t, k, a) => {
      const anchor = a % t;
      const idx = sampleWithAnchor(t, k, anchor);
      assert.ok(idx.includes(anchor));
      assert.equal(idx.length, k);
      assert.deepEqual(
        [...idx].sort((x, y) => x - y),
        idx,
      );
    }),
  );
});

test('sampleFrames: the seeded anchor choice is deterministic and training without a visible target fails', () => {
  const a = sampleFrames({ total: 100, count: 6, anchorCandidates: [10, 50, 90], seed: 'sample-7' });
  const b = sampleFrames({ total: 100, count: 6, anchorCandidates: [10, 50, 90], seed: 'sample-7' });
  assert.deepEqual(a, b);
  assert.ok([10, 50, 90].includes(a.anchor!));
  assert.ok(a.indices.includes(a.anchor!));
  assert.deepEqual(sampleFrames({ total: 100, count: 6 }).indices, linspaceIndices(100, 6));
  assert.throws(() => sampleFrames({ total: 100, anchorCandidates: [] }), /no annotated frame/);
  const counts = new Array(3).fill(0);
  for (let i = 0; i < 300; i++) counts[seededIndex(`s${i}`, 3)]++;
  assert.ok(
    counts.every((c) => c > 60),
    `seeded choice is spread: ${counts}`,
  );
});

test('policy size: 448 rounded up to the patch factor, squashed square', () => {
  assert.deepEqual(policyFrameSize(32), { width: 448, height: 448 });
  assert.deepEqual(policyFrameSize(28), { width: 448, height: 448 });
  assert.equal(roundUpToFactor(450, 32), 480);
  assert.equal(roundUpToFactor(864, 28), 868);
});

test('the ffmpeg select expression covers exactly the wanted frames, as ranges', () => {
  assert.equal(selectExpression([5, 0, 39, 1, 2]), 'between(n\\,0\\,2)+eq(n\\,5)+eq(n\\,39)');
  assert.equal(selectExpression([7, 7]), 'eq(n\\,7)');
});
