// core/grpo/loss.ts against the hand-computed PPO values the Python trainer's torch loss is tested
// with (trainer/tests/ppo_hand_values.json): both sides must agree on clip, clip-higher, dual clip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DAPO_CLIP_HIGHER_LOSS, GRPO_LOSS, ppoLoss, ppoTokenLoss } from '../../../core/grpo/loss.js';
import { repoRoot } from '../../support/paths.js';

interface HandValues {
  tokens: { why: string; ratio: number; advantage: number; settings: 'grpo' | 'dapo'; loss: number; clipped: boolean; dualClipped: boolean }[];
  tokenMean: { logProbs: number[]; oldLogProbs: number[]; advantages: number[]; mask: number[]; loss: number; clipFraction: number; tokens: number };
}

const hand = JSON.parse(readFileSync(join(repoRoot, 'trainer/tests/ppo_hand_values.json'), 'utf8')) as HandValues;
const settings = { grpo: GRPO_LOSS, dapo: DAPO_CLIP_HIGHER_LOSS };
const near = (a: number, b: number) => assert.ok(Math.abs(a - b) <= 1e-12, `${a} vs ${b}`);

for (const c of hand.tokens) {
  void test(`ppoTokenLoss: ${c.why}`, () => {
    const t = ppoTokenLoss(Math.log(c.ratio), 0, c.advantage, settings[c.settings]);
    near(t.loss, c.loss);
    near(t.ratio, c.ratio);
    assert.equal(t.clipped, c.clipped);
    assert.equal(t.dualClipped, c.dualClipped);
  });
}

void test('ppoLoss: token-mean over policy tokens matches the hand value', () => {
  const m = hand.tokenMean;
  const r = ppoLoss({ logProbs: m.logProbs, oldLogProbs: m.oldLogProbs, advantages: m.advantages, mask: m.mask });
  near(r.loss, m.loss);
  near(r.clipFraction, m.clipFraction);
  assert.equal(r.tokens, m.tokens);
});
