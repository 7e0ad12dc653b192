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
import {
  emptyTally,
  mergeTallies,
  metricsFromTally,
  rolloutMetrics,
  tallyGroup,
} from '../../../workflows/training-metrics.js';
import { trainerHyperparameters } from '../../../workflows/training-step.js';
import { trainerHyperparametersSchema } from '../../../core/contracts/training.js';
import {
  isStoredGroupResult,
  storedGroupResult,
  type RolloutGroupResult,
} from '../../../workflows/rollout-group.js';

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

void test('a step keeps one tally per group: merged tallies give the metrics of all the groups at once', () => {
  const traj = (total: number, search: number, stop: string, tokens: number, igr: number | null) => ({
    summary: { numSearch: search, turns: search + 2, completionTokens: tokens, stopReason: stop, answer: { status: search > 0 ? 'ok' : 'no_answer' }, policyVersion: 3 },
    reward: { total, outcome: total - 1, format: 1, process: igr, igr, tpr: 0.5, iou: 0.5, box: 1, point: 0, frame: 0.8 },
    advantage: 0,
  });
  const groups = [
    { groupId: 'g0', rewardStd: 1.2, trajectories: [traj(4, 1, 'model_chose_to_finish', 30, 0.5), traj(1, 0, 'max_turns_reached', 50, null)] },
    { groupId: 'g1', rewardStd: 0, trajectories: [], failed: [{ index: 0, trajectoryId: 'g1/traj-0', error: 'x' }] },
    { groupId: 'g2', rewardStd: 0.3, trajectories: [traj(3, 2, 'model_chose_to_finish', 40, 1), traj(2.5, 3, 'max_turns_reached', 10, null)] },
  ] as unknown as RolloutGroupResult[];
  const merged = groups.map(tallyGroup).reduce(mergeTallies, emptyTally());
  // through JSON, as tallies travel in workflow results and continue-as-new inputs
  const m = metricsFromTally(JSON.parse(JSON.stringify(merged)) as typeof merged);
  assert.equal(m.trajectories, 4);
  assert.equal(m.failedTrajectories, 1);
  assert.equal(m.groups, 3);
  assert.deepEqual(m.reward.total, { mean: 2.625, min: 1, max: 4 });
  assert.equal(m.reward.igr, 0.75);
  assert.deepEqual(m.responseTokens, { mean: 32.5, min: 10, max: 50 });
  assert.deepEqual(m.stopReasons, { model_chose_to_finish: 2, max_turns_reached: 2 });
  assert.deepEqual(m.answerStatus, { ok: 3, no_answer: 1 });
  assert.equal(m.groupRewardStd, 0.5);
  // an empty group's tally changes nothing but the group count (its min/max are not 0s)
  assert.deepEqual(metricsFromTally(mergeTallies(tallyGroup(groups[1]!), tallyGroup(groups[0]!))).reward.total, { mean: 2.5, min: 1, max: 4 });
  assert.deepEqual(rolloutMetrics(groups), m);
});

void test('a stored group result keeps the rewards, the oldest version, the first failures and the tally', () => {
  const long = 'e'.repeat(2000);
  const result = {
    groupId: 'r/step-0/gen-0/group-1',
    sampleId: 's1',
    trajectories: [2, 0].map((total, i) => ({
      summary: { trajectoryId: `t${i}`, numSearch: 0, turns: 2, completionTokens: 5, stopReason: 'model_chose_to_finish', answer: { status: 'ok' }, policyVersion: 4 - i },
      reward: { total, outcome: total, format: 1, process: null, igr: null, tpr: 0, iou: 0, box: 0, point: 0, frame: 0 },
      advantage: total - 1,
    })),
    failed: [0, 1, 2, 3, 4].map((i) => ({ index: 2 + i, trajectoryId: `t${2 + i}`, error: long })),
    meanReward: 1,
    rewardStd: 1.41,
  } as unknown as RolloutGroupResult;
  const ref = { uri: 's3://segflow/runs/r/group.json', sha256: 'a'.repeat(64), bytes: 9, contentType: 'application/json' };
  const stored = storedGroupResult(result, ref);
  assert.ok(isStoredGroupResult(stored) && !isStoredGroupResult(result));
  assert.deepEqual(stored.rewards, [2, 0]);
  assert.equal(stored.oldestPolicyVersion, 3);
  assert.equal(stored.failedCount, 5);
  assert.equal(stored.failed.length, 3);
  assert.ok(stored.failed[0]!.error.length <= 501);
  assert.deepEqual(stored.tally, tallyGroup(result));
  assert.ok(JSON.stringify(stored).length < 4000, 'a few KB whatever the trajectories hold');
});

void test('fan-out caps: a config past a cap fails naming the key, the cap and docs/limits.md', () => {
  const bad = parseTrainingConfig({
    ...minimal,
    promptsPerStep: 4096,
    groupSize: 300,
    generationBatchesPerRun: 5,
    rollout: { groupConcurrency: 5000, settings: { maxTurns: 100 } },
    policyHosts: Array.from({ length: 257 }, (_, i) => `h${i}`),
  });
  assert.equal(bad.ok, false);
  if (!bad.ok) {
    for (const m of [
      /promptsPerStep: at most 2048: .*docs\/limits\.md/,
      /groupSize: at most 256: /,
      /generationBatchesPerRun: at most 4: /,
      /rollout\.groupConcurrency: at most 2048: /,
      /rollout\.settings\.maxTurns: at most 64: /,
      /policyHosts: at most 256 hosts/,
    ])
      assert.match(bad.problems, m);
  }
  const atCaps = parseTrainingConfig({ ...minimal, promptsPerStep: 2048, groupSize: 256, generationBatchesPerRun: 4 });
  assert.ok(atCaps.ok);
  const defaults = parseTrainingConfig(minimal);
  assert.ok(defaults.ok);
  assert.equal(defaults.config.generationBatchesPerRun, 2);
});
