// Bank and pointer selection against cases worked by hand from sam2_base.py
// `_prepare_memory_conditioned_features` (facebookresearch/sam2 2b90b9f).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_IMAGE_CONFIG } from '../../../activities/segment/contract.js';
import {
  planMemory,
  selectClosestCondFrames,
  type BankConfig,
} from '../../../activities/segment/memory-bank.js';

const sam21: BankConfig = DEFAULT_IMAGE_CONFIG;
const tracked = (frames: number[]) => (f: number) => frames.includes(f);
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

test('forward frame 10 of 30, keyframe 0: cond + frames 4..9 (farthest first), pointers cond@10 then 9..1', () => {
  const plan = planMemory(sam21, {
    frameIdx: 10,
    reverse: false,
    numFrames: 30,
    condFrames: [0],
    hasOutput: tracked(range(1, 9)),
  });
  assert.deepEqual(
    plan.memory.map((m) => [m.frame, m.tposRow]),
    [
      [0, 6],
      [4, 5],
      [5, 4],
      [6, 3],
      [7, 2],
      [8, 1],
      [9, 0],
    ],
  );
  assert.deepEqual(
    plan.pointers.map((p) => [p.frame, p.offset]),
    [[0, 10], ...range(1, 9).map((k) => [10 - k, k])],
  );
  assert.equal(plan.pointers[0]!.pos, 10 / 15);
  assert.equal(plan.pointers[1]!.pos, 1 / 15);
});

test('first tracked frame after the keyframe: F = 1, P = 1', () => {
  const plan = planMemory(sam21, {
    frameIdx: 6,
    reverse: false,
    numFrames: 30,
    condFrames: [5],
    hasOutput: tracked([]),
  });
  assert.deepEqual(
    plan.memory.map((m) => [m.frame, m.tposRow]),
    [[5, 6]],
  );
  assert.deepEqual(
    plan.pointers.map((p) => [p.frame, p.offset, p.pos]),
    [[5, 1, 1 / 15]],
  );
});

test('deep in the forward pass: F = 7 and P = 16 (cond + 15 pointers)', () => {
  const plan = planMemory(sam21, {
    frameIdx: 40,
    reverse: false,
    numFrames: 50,
    condFrames: [5],
    hasOutput: tracked(range(6, 39)),
  });
  assert.equal(plan.memory.length, 7);
  assert.equal(plan.pointers.length, 16);
  assert.deepEqual(plan.pointers[0], { frame: 5, offset: 35, pos: 35 / 15 });
  assert.deepEqual(plan.pointers.at(-1), { frame: 25, offset: 15, pos: 1 });
});

test('reverse pass at keyframe−1 sees the forward frames k+1..k+5 and pointers k+1..k+14', () => {
  const k = 5;
  const plan = planMemory(sam21, {
    frameIdx: k - 1,
    reverse: true,
    numFrames: 30,
    condFrames: [k],
    hasOutput: tracked(range(k + 1, 29)),
  });
  // t_rel 6..2 → frames 10..6 (rows 5..1); t_rel 1 → frame 5 is the cond frame, not a non-cond output
  assert.deepEqual(
    plan.memory.map((m) => [m.frame, m.tposRow]),
    [
      [5, 6],
      [10, 5],
      [9, 4],
      [8, 3],
      [7, 2],
      [6, 1],
    ],
  );
  // cond pointer: (4 − 5)·(−1) = +1; then t_diff 2..15 → frames 6..19
  assert.deepEqual(
    plan.pointers.map((p) => [p.frame, p.offset]),
    [[5, 1], ...range(2, 15).map((d) => [k - 1 + d, d])],
  );
});

test('only_obj_ptrs_in_the_past_for_eval keeps cond pointers behind the tracking direction', () => {
  const fwd = planMemory(sam21, {
    frameIdx: 5,
    reverse: false,
    numFrames: 20,
    condFrames: [2, 8],
    hasOutput: tracked([]),
  });
  assert.deepEqual(
    fwd.memory.map((m) => m.frame),
    [2, 8],
  );
  assert.deepEqual(
    fwd.pointers.map((p) => [p.frame, p.offset]),
    [[2, 3]],
  );
  const rev = planMemory(sam21, {
    frameIdx: 5,
    reverse: true,
    numFrames: 20,
    condFrames: [2, 8],
    hasOutput: tracked([]),
  });
  assert.deepEqual(
    rev.pointers.map((p) => [p.frame, p.offset]),
    [[8, 3]],
  );
  const all = planMemory(
    { ...sam21, only_obj_ptrs_in_the_past_for_eval: false },
    { frameIdx: 5, reverse: false, numFrames: 20, condFrames: [2, 8], hasOutput: tracked([]) },
  );
  assert.deepEqual(
    all.pointers.map((p) => [p.frame, p.offset]),
    [
      [2, 3],
      [8, -3],
    ],
  );
});

test("unsigned pointer offsets (SAM2 v1 style) use |t − t'|", () => {
  const plan = planMemory(
    { ...sam21, use_signed_tpos_enc_to_obj_ptrs: false, only_obj_ptrs_in_the_past_for_eval: false },
    { frameIdx: 3, reverse: false, numFrames: 20, condFrames: [9], hasOutput: tracked([]) },
  );
  assert.deepEqual(
    plan.pointers.map((p) => p.offset),
    [6],
  );
});

test('short videos: M = min(num_frames, 16) normalises the pointer positions', () => {
  const plan = planMemory(sam21, {
    frameIdx: 4,
    reverse: false,
    numFrames: 5,
    condFrames: [0],
    hasOutput: tracked([1, 2, 3]),
  });
  assert.deepEqual(
    plan.pointers.map((p) => [p.frame, p.pos]),
    [
      [0, 1],
      [3, 0.25],
      [2, 0.5],
      [1, 0.75],
    ],
  );
});

test('memory stride 2 picks every other frame plus the last one', () => {
  const cfg = { ...sam21, memory_temporal_stride_for_eval: 2 };
  const fwd = planMemory(cfg, {
    frameIdx: 10,
    reverse: false,
    numFrames: 40,
    condFrames: [0],
    hasOutput: tracked(range(1, 39)),
  });
  assert.deepEqual(
    fwd.memory.map((m) => m.frame),
    [0, 2, 4, 6, 8, 9],
  );
  const rev = planMemory(cfg, {
    frameIdx: 10,
    reverse: true,
    numFrames: 40,
    condFrames: [39],
    hasOutput: tracked(range(0, 38)),
  });
  assert.deepEqual(
    rev.memory.map((m) => m.frame),
    [39, 20, 18, 16, 14, 12, 11],
  );
});

test('select_closest_cond_frames: nearest before and after, then the closest, the rest usable as plain memory', () => {
  assert.deepEqual(selectClosestCondFrames(5, [0, 3, 7, 12], 2), { selected: [3, 7], unselected: [0, 12] });
  assert.deepEqual(selectClosestCondFrames(5, [0, 3, 7, 12], 3), { selected: [3, 7, 0], unselected: [12] });
  assert.deepEqual(selectClosestCondFrames(5, [0, 3], -1), { selected: [0, 3], unselected: [] });
  const plan = planMemory(
    { ...sam21, max_cond_frames_in_attn: 2 },
    { frameIdx: 5, reverse: false, numFrames: 20, condFrames: [0, 3, 7, 12], hasOutput: tracked([4]) },
  );
  // unselected cond frame 0 sits at t_rel 5 → attended as a plain memory with row 4
  assert.deepEqual(
    plan.memory.map((m) => [m.frame, m.tposRow, m.isCond]),
    [
      [3, 6, true],
      [7, 6, true],
      [0, 4, false],
      [4, 0, false],
    ],
  );
});
