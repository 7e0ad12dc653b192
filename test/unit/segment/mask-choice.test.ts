// Mask-choice rules of SAM2 (mask_decoder.py, sam2_base.py at 2b90b9f) on hand-worked outputs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_IMAGE_CONFIG } from '../../../activities/segment/contract.js';
import {
  argmax,
  chooseMask,
  LOW_RES_AREA,
  stabilityScore,
  useMultimask,
} from '../../../activities/segment/mask-choice.js';

const cfg = DEFAULT_IMAGE_CONFIG;

function masks(tokens: number, fill: (token: number, i: number) => number): Float32Array {
  const m = new Float32Array(tokens * LOW_RES_AREA);
  for (let t = 0; t < tokens; t++)
    for (let i = 0; i < LOW_RES_AREA; i++) m[t * LOW_RES_AREA + i] = fill(t, i);
  return m;
}

test('stability = area(>δ) / area(>−δ), 1 for an empty union', () => {
  assert.equal(stabilityScore([0.1, 0.04, -0.04, -0.1], 0.05), 1 / 3);
  assert.equal(stabilityScore([-1, -2], 0.05), 1);
  assert.equal(stabilityScore([5, 5, -5], 0.05), 1);
});

test('argmax returns the first of equal maxima, like torch.argmax', () => {
  assert.equal(argmax([0.9, 0.2, 0.7, 0.7], 1, 4), 2);
  assert.equal(argmax([0.1, 0.3, 0.3]), 1);
});

test('_use_multimask: ≤1 point on a prompted frame, 0 points when tracking, never for a box', () => {
  assert.equal(useMultimask(cfg, { isInitCondFrame: true, numPoints: 1 }), true);
  assert.equal(useMultimask(cfg, { isInitCondFrame: true, numPoints: 2 }), false);
  assert.equal(useMultimask(cfg, { isInitCondFrame: false, numPoints: 0 }), true);
  assert.equal(
    useMultimask({ ...cfg, multimask_output_for_tracking: false }, { isInitCondFrame: false, numPoints: 0 }),
    false,
  );
  assert.equal(
    useMultimask({ ...cfg, multimask_output_in_sam: false }, { isInitCondFrame: true, numPoints: 1 }),
    false,
  );
});

test('multimask: best IoU among tokens 1..3, pointer from the same token (use_multimask_token_for_obj_ptr)', () => {
  const m = masks(4, () => 1);
  const c = chooseMask(m, [0.99, 0.2, 0.7, 0.7], 4, true, cfg);
  assert.deepEqual([c.maskToken, c.pointerToken, c.rule], [2, 2, 'multimask-argmax']);
  assert.equal(c.iou, 0.7);
  const noTok = chooseMask(m, [0.99, 0.2, 0.7, 0.7], 4, true, {
    ...cfg,
    use_multimask_token_for_obj_ptr: false,
  });
  assert.equal(noTok.pointerToken, 0);
});

test('single mask (a box): token 0 when stable', () => {
  const m = masks(4, (t, i) => (i < 1000 ? 5 : -5));
  const c = chooseMask(m, [0.5, 0.1, 0.9, 0.3], 4, false, cfg);
  assert.deepEqual([c.maskToken, c.pointerToken, c.rule, c.iou], [0, 0, 'single-stable', 0.5]);
  assert.equal(c.stability, 1);
});

test('single mask, unstable token 0 (stability < 0.98): best multimask mask and IoU, pointer still token 0', () => {
  // 1000 logits clearly inside, 100 inside the ±0.05 band → 1000/1100 = 0.909 < 0.98
  const m = masks(4, (t, i) => (t > 0 ? 1 : i < 1000 ? 5 : i < 1100 ? 0.01 : -5));
  const c = chooseMask(m, [0.5, 0.1, 0.9, 0.3], 4, false, cfg);
  assert.deepEqual([c.maskToken, c.pointerToken, c.rule], [2, 0, 'single-unstable-fallback']);
  assert.equal(c.iou, 0.9);
  assert.ok(Math.abs(c.stability! - 1000 / 1100) < 1e-12);
  // just above the threshold stays on token 0: 1000 / 1020 = 0.9804
  const stable = masks(4, (t, i) => (i < 1000 ? 5 : i < 1020 ? 0.01 : -5));
  assert.equal(chooseMask(stable, [0.5, 0.1, 0.9, 0.3], 4, false, cfg).maskToken, 0);
  // with the dynamic rule off, token 0 regardless
  assert.equal(
    chooseMask(m, [0.5, 0.1, 0.9, 0.3], 4, false, { ...cfg, dynamic_multimask_via_stability: false }).rule,
    'single',
  );
});

test('samexporter decoder (3 multimask tokens): argmax IoU whatever the point count', () => {
  const m = masks(3, () => 0);
  assert.equal(chooseMask(m, [0.3, 0.8, 0.5], 3, false, cfg).maskToken, 1);
  assert.equal(chooseMask(m, [0.3, 0.8, 0.5], 3, true, cfg).maskToken, 1);
});
