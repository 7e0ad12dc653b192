// The pure parts of training: seeded prompt order and cursor, config validation and defaults,
// learning-rate warm-up, per-step rollout metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { epochOrder, takeFromCursor } from '../../../activities/training/activities.js';
import {
  groupSeed,
  learningRateAt,
  parseTrainingConfig,
  policyModelName,
} from '../../../workflows/training-config.js';
import { rolloutMetrics } from '../../../workflows/training-metrics.js';
import { trainerHyperparameters } from '../../../workflows/training-step.js';
import { trainerHyperparametersSchema } from '../../../core/contracts/training.js';
import type { RolloutGroupResult } from '../../../workflows/rollout-group.js';

void test('epoch order is a seeded permutation: same seed same order, another seed or epoch another', () => {
  const a = epochOrder(50, 7, 0);
  assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual(epochOrder(50, 7, 0), a);
  assert.notDeepEqual(epochOrder(50, 8, 0), a);
  assert.notDeepEqual(epochOrder(50, 7, 1), a);
});

void test('the cursor walks the epoch order and crosses into the next epoch', () => {
  const first = takeFromCursor(5, 3, { epoch: 0, position: 0 }, 3);
  assert.deepEqual(first.indices, epochOrder(5, 3, 0).slice(0, 3));
  assert.deepEqual(first.cursor, { epoch: 0, position: 3 });
  const second = takeFromCursor(5, 3, first.cursor, 4);
  assert.deepEqual(second.indices, [...epochOrder(5, 3, 0).slice(3), ...epochOrder(5, 3, 1).slice(0, 2)]);
  assert.deepEqual(second.cursor, { epoch: 1, position: 2 });
  // Sampling in two calls equals sampling in one: a resumed run sees the same prompts.
  assert.deepEqual([...first.indices, ...second.indices], takeFromCursor(5, 3, { epoch: 0, position: 0 }, 7).indices);
  assert.throws(() => takeFromCursor(5, 3, { epoch: 0, position: 9 }, 1), /cursor position 9 is past the dataset's 5 samples/);
});

void test('group sampling seeds: reproducible, and the draws of neighbouring training seeds do not overlap', () => {
  assert.equal(groupSeed(0, 3, 0, 5), groupSeed(0, 3, 0, 5));
  // every trajectory's seed (group seed + 0..7) over 8 steps x 8 groups, for training seeds 0..3
  const draws = (seed: number) =>
    Array.from({ length: 8 }, (_, step) =>
      Array.from({ length: 8 }, (_, g) => Array.from({ length: 8 }, (_, i) => groupSeed(seed, step, 0, g) + i)),
    ).flat(2);
  const all = [0, 1, 2, 3].map(draws);
  for (const d of all) for (const x of d) assert.ok(Number.isSafeInteger(x) && x >= 0 && x < 2 ** 30 + 8);
  const seen = new Set(all.flat());
  assert.equal(seen.size, 4 * 8 * 8 * 8, 'two trajectories share a sampling seed');
  assert.notEqual(groupSeed(0, 0, 1, 0), groupSeed(0, 0, 0, 0)); // a new generation draws anew
});

const minimal = { dataset: 's3://segflow/datasets/indexes/x.json', initialPolicy: { uri: 's3://segflow/p/v0/' }, steps: 3 };

void test('config defaults are the reference 4B GRPO run (spec §6.1)', () => {
  const r = parseTrainingConfig(minimal);
  assert.ok(r.ok);
  const c = r.config;
  assert.deepEqual(
    [c.groupSize, c.promptsPerStep, c.learningRate, c.loss.clipLow, c.loss.clipHigh, c.loss.dualClipC, c.loss.klCoef, c.trainer.miniBatches, c.weightDecay],
    [8, 16, 1e-6, 0.2, 0.2, 3, 0, 2, 0.01],
  );
  assert.equal(c.dapo.enabled, false);
  assert.deepEqual(c.policyHosts, ['local']);
  assert.equal(c.initialPolicy.model, 'policy');
  // Parsing its own output again (continue-as-new carries it) changes nothing.
  assert.deepEqual(parseTrainingConfig(c), r);
});

void test('a bad config names every wrong field', () => {
  const r = parseTrainingConfig({
    ...minimal,
    dataset: '/tmp/x',
    steps: 0,
    loss: { clipLow: 1.5 },
    policyHosts: ['a b'],
    rollout: { sampling: { temperature: 0 } },
    extra: 1,
  });
  assert.equal(r.ok, false);
  if (r.ok) return;
  for (const field of [
    'dataset: must be an s3://',
    'steps:',
    'loss.clipLow:',
    'policyHosts.0:',
    'rollout.sampling.temperature: must be > 0',
    'extra',
  ]) {
    assert.ok(r.problems.includes(field), `${field} in ${r.problems}`);
  }
});

void test('trainer options reach the hyperparameters only when set', () => {
  const plain = parseTrainingConfig(minimal);
  assert.ok(plain.ok);
  const hp = trainerHyperparameters(plain.config, 'run-1', 0);
  for (const k of ['dtype', 'gradientCheckpointing', 'microBatchTokens']) assert.ok(!(k in hp), k);
  const opts = { dtype: 'bfloat16', gradientCheckpointing: true, microBatchTokens: 16384 } as const;
  const set = parseTrainingConfig({ ...minimal, trainer: opts });
  assert.ok(set.ok);
  const hp2 = trainerHyperparameters(set.config, 'run-1', 0);
  assert.deepEqual([hp2.dtype, hp2.gradientCheckpointing, hp2.microBatchTokens], ['bfloat16', true, 16384]);
  assert.ok(trainerHyperparametersSchema.safeParse(hp2).success);
  const bad = parseTrainingConfig({ ...minimal, trainer: { dtype: 'fp8', microBatchTokens: 0 } });
  assert.equal(bad.ok, false);
  if (!bad.ok) for (const f of ['trainer.dtype:', 'trainer.microBatchTokens:']) assert.ok(bad.problems.includes(f), `${f} in ${bad.problems}`);
});

void test('learning rate warms up linearly, then stays constant', () => {
  const r = parseTrainingConfig({ ...minimal, learningRate: 1e-3, warmupSteps: 4 });
  assert.ok(r.ok);
  assert.deepEqual([0, 1, 3, 9].map((s) => learningRateAt(r.config, s)), [2.5e-4, 5e-4, 1e-3, 1e-3]);
  assert.equal(policyModelName('run-1', 3), 'run-1-v3');
});

void test('rollout metrics: reward components, searches, stop reasons, response lengths', () => {
  const traj = (total: number, search: number, stop: string, tokens: number) => ({
    summary: { numSearch: search, turns: search + 2, completionTokens: tokens, stopReason: stop, answer: { status: 'ok' } },
    reward: { total, outcome: total - 1, format: 1, process: null, igr: search > 0 ? 1 : null, tpr: 0, iou: 0.5, box: 1, point: 1, frame: 0.8 },
    advantage: 0,
  });
  const groups = [
    { groupId: 'g0', rewardStd: 1, trajectories: [traj(4, 1, 'model_chose_to_finish', 30), traj(2, 0, 'max_turns_reached', 50)] },
    { groupId: 'g1', rewardStd: 0, trajectories: [traj(3, 2, 'model_chose_to_finish', 40)] },
  ] as unknown as RolloutGroupResult[];
  const m = rolloutMetrics(groups);
  assert.equal(m.trajectories, 3);
  assert.deepEqual(m.reward.total, { mean: 3, min: 2, max: 4 });
  assert.equal(m.reward.igr, 1);
  assert.equal(m.reward.process, null);
  assert.deepEqual(m.searchesPerTrajectory, { mean: 1, min: 0, max: 2 });
  assert.deepEqual(m.stopReasons, { model_chose_to_finish: 2, max_turns_reached: 1 });
  assert.deepEqual(m.responseTokens, { mean: 40, min: 30, max: 50 });
  assert.equal(m.groupRewardStd, 0.5);
});
