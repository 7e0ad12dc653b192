/**
 * segflow's outcome gate. The reference reward scores each outcome term on its own, so an answer
 * SAM2 cannot use (coordinates outside 0–1000, a box with no area) can still earn R_point and
 * R_frame. Training on such answers teaches the policy output that inference rejects, so the
 * rollout group zeroes the outcome of any answer that `checkAnswer` did not accept. Turn it off
 * (`reward.gate: false` in the rolloutGroup input, workflows/rollout-group.ts; `reward.gate` in the
 * training config) to train with the reference reward exactly.
 */
import type { RewardBreakdown } from './score.js';
import type { AnswerStatus } from '../rollout/turn-rules.js';

export function gateOutcome(reward: RewardBreakdown, status: AnswerStatus): RewardBreakdown {
  if (status === 'ok' || reward.outcome === 0) return reward;
  return {
    ...reward,
    iou: 0,
    box: 0,
    point: 0,
    frame: 0,
    outcome: 0,
    total: reward.process,
    reasons: [
      ...reward.reasons,
      `outcome gated to 0: the answer was not usable for segmentation (${status})`,
    ],
  };
}
