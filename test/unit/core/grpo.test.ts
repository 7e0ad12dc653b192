// GRPO/DAPO math on hand-computed values (the Python trainer is checked against the same numbers).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  dynamicSamplingDecision,
  dynamicSamplingFilter,
  groupAdvantages,
  groupStatistics,
} from '../../../core/grpo/advantages.js';
import { DAPO_CLIP_HIGHER_LOSS, GRPO_LOSS, ppoLoss, ppoTokenLoss } from '../../../core/grpo/loss.js';
import { broadcastAdvantage, buildResponseMask, rewardTokenIndex } from '../../../core/grpo/masks.js';

const near = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

void test('group advantages use the unbiased std and eps 1e-6', () => {
  const { advantages, groups } = groupAdvantages([
    { groupId: 'p', reward: 1 },
    { groupId: 'p', reward: 0 },
    { groupId: 'p', reward: 0 },
    { groupId: 'p', reward: 1 },
  ]);
  // mean 0.5, unbiased std sqrt(1/3) = 0.5773502691896258
  assert.deepEqual(groups.get('p'), { mean: 0.5, std: Math.sqrt(1 / 3), size: 4 });
  near(advantages[0] ?? NaN, 0.5 / (Math.sqrt(1 / 3) + 1e-6));
  near(advantages[0] ?? NaN, 0.8660239037870368);
  near(advantages[1] ?? NaN, -0.8660239037870368);
});

void test('a group of one has mean 0 and std 1; a constant group gets zero advantages', () => {
  const { advantages } = groupAdvantages([
    { groupId: 'solo', reward: 2.5 },
    { groupId: 'flat', reward: 3 },
    { groupId: 'flat', reward: 3 },
  ]);
  near(advantages[0] ?? NaN, 2.5 / (1 + 1e-6));
  assert.deepEqual(advantages.slice(1), [0, 0]);
  assert.deepEqual(groupStatistics([4]), { mean: 0, std: 1 });
  assert.throws(() => groupStatistics([]), /at least one/);
});

void test('advantages are returned in input order across interleaved groups, and sum to ~0 per group', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          groupId: fc.constantFrom('a', 'b', 'c'),
          reward: fc.double({ min: 0, max: 5, noNaN: true }),
        }),
        {
          minLength: 1,
          maxLength: 40,
        },
      ),
      (trajs) => {
        const { advantages, groups } = groupAdvantages(trajs);
        assert.equal(advantages.length, trajs.length);
        for (const [id, g] of groups) {
          if (g.size < 2) continue;
          const sum = trajs.reduce((acc, t, i) => acc + (t.groupId === id ? (advantages[i] ?? 0) : 0), 0);
          assert.ok(Math.abs(sum) < 1e-6, `group ${id} sums to ${sum}`);
        }
      },
    ),
  );
});

void test('DAPO dynamic sampling drops zero-variance groups but keeps groups of one', () => {
  const r = dynamicSamplingFilter([
    { groupId: 'flat', reward: 1 },
    { groupId: 'mixed', reward: 0 },
    { groupId: 'flat', reward: 1 },
    { groupId: 'solo', reward: 0 },
    { groupId: 'mixed', reward: 2 },
  ]);
  assert.deepEqual(r, { keptIndices: [1, 3, 4], keptGroups: ['mixed', 'solo'], droppedGroups: ['flat'] });
});

void test('the numpy-std rule reproduces NumPy keeping equal rewards whose mean is off by one ulp', () => {
  const same01 = [0.1, 0.1, 0.1].map((reward) => ({ groupId: 'g', reward }));
  assert.deepEqual(dynamicSamplingFilter(same01, 'identical').keptGroups, []);
  // np.std([0.1, 0.1, 0.1]) == 1.3877787807814457e-17 > 0
  assert.deepEqual(dynamicSamplingFilter(same01, 'numpy-std').keptGroups, ['g']);
  const same1 = [1, 1].map((reward) => ({ groupId: 'g', reward }));
  assert.deepEqual(dynamicSamplingFilter(same1, 'numpy-std').keptGroups, []);
});

void test('dynamic sampling asks for more batches until enough groups survive', () => {
  assert.deepEqual(
    dynamicSamplingDecision({
      survivingGroups: ['a', 'b'],
      promptBatchSize: 3,
      generationBatches: 1,
      maxGenerationBatches: 0,
    }),
    { status: 'generate-more', have: 2, need: 3 },
  );
  assert.deepEqual(
    dynamicSamplingDecision({
      survivingGroups: ['a', 'b', 'c', 'd'],
      promptBatchSize: 3,
      generationBatches: 2,
      maxGenerationBatches: 0,
    }),
    { status: 'ready', groups: ['a', 'b', 'c'] },
  );
  assert.equal(
    dynamicSamplingDecision({
      survivingGroups: [],
      promptBatchSize: 3,
      generationBatches: 4,
      maxGenerationBatches: 4,
    }).status,
    'exhausted',
  );
});

void test('PPO-clip per token: hand values for clipping, clip-higher and dual clip', () => {
  // A = 1, ratio 1.5: clipped at 1.2 → loss −1.2.
  let t = ppoTokenLoss(Math.log(1.5), 0, 1);
  near(t.ratio, 1.5);
  near(t.loss, -1.2);
  assert.equal(t.clipped, true);
  // A = 1, ratio 1.25: GRPO clips (−1.2); clip-higher 0.3 does not (−1.25).
  near(ppoTokenLoss(Math.log(1.25), 0, 1, GRPO_LOSS).loss, -1.2);
  t = ppoTokenLoss(Math.log(1.25), 0, 1, DAPO_CLIP_HIGHER_LOSS);
  near(t.loss, -1.25);
  assert.equal(t.clipped, false);
  // A = −1, ratio 0.5: max(0.5, 0.8) = 0.8, below the dual-clip cap 3.
  t = ppoTokenLoss(Math.log(0.5), 0, -1);
  near(t.loss, 0.8);
  assert.deepEqual([t.clipped, t.dualClipped], [true, false]);
  // A = −1, ratio 5: max(5, 1.2) = 5, capped by dual clip at 3.
  t = ppoTokenLoss(Math.log(5), 0, -1);
  near(t.loss, 3);
  assert.equal(t.dualClipped, true);
  // A = −2, ratio 0.9 (inside the clip range): loss = −A·ρ = 1.8.
  near(ppoTokenLoss(Math.log(0.9), 0, -2).loss, 1.8);
  // The log-ratio is clamped to ±20 before exp.
  near(ppoTokenLoss(50, 0, 0.5).ratio, Math.exp(20));
});

void test('token-mean loss ignores observation tokens', () => {
  const traj = buildResponseMask([
    { kind: 'action', tokens: 2 },
    { kind: 'observation', tokens: 3 },
    { kind: 'action', tokens: 1 },
  ]);
  assert.deepEqual([...traj.responseMask], [1, 1, 0, 0, 0, 1]);
  assert.equal(rewardTokenIndex(traj), 5);
  const adv = broadcastAdvantage(1, traj.responseMask);
  assert.deepEqual([...adv], [1, 1, 0, 0, 0, 1]);
  const logProbs = [Math.log(1.5), 0, 123, -77, 5, Math.log(0.5)];
  const old = [0, 0, 0, 0, 0, 0];
  const r = ppoLoss({ logProbs, oldLogProbs: old, advantages: adv, mask: traj.responseMask });
  // tokens: −1.2 (clipped), −1 (ratio 1), −0.8 (ratio 0.5 clipped up to 0.8 → max(−0.5, −0.8) = −0.5)
  near(r.loss, (-1.2 - 1 - 0.5) / 3);
  assert.equal(r.tokens, 3);
  near(r.clipFraction, 1 / 3);
  near(r.approxKl, -(Math.log(1.5) + Math.log(0.5)) / 3);
  // Truncation keeps the first maxLength tokens.
  assert.deepEqual(
    [
      ...buildResponseMask(
        [
          { kind: 'action', tokens: 4 },
          { kind: 'observation', tokens: 4 },
        ],
        6,
      ).responseMask,
    ],
    [1, 1, 1, 1, 0, 0],
  );
  assert.throws(
    () => ppoLoss({ logProbs: [0], oldLogProbs: [0, 0], advantages: [0], mask: [1] }),
    /differ in length/,
  );
});
