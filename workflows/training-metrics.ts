/**
 * Per-step rollout metrics of a training run, computed from the rolloutGroup results the workflow
 * already holds (pure, deterministic): reward components, searches per trajectory, stop reasons,
 * answer statuses and response lengths.
 */
import type { RolloutGroupResult } from './rollout-group.js';

export interface Distribution {
  mean: number;
  min: number;
  max: number;
}

export interface RolloutMetrics {
  /** Trajectories that finished (the ones scored and trained on). */
  trajectories: number;
  /** Trajectories that failed after their retries (not scored, not trained on). */
  failedTrajectories: number;
  groups: number;
  reward: {
    total: Distribution;
    outcome: number;
    format: number;
    process: number | null;
    igr: number | null;
    tpr: number;
    iou: number;
    box: number;
    point: number;
    frame: number;
  };
  searchesPerTrajectory: Distribution;
  turnsPerTrajectory: Distribution;
  /** Completion tokens the policy generated per trajectory (the server's counts). */
  responseTokens: Distribution;
  stopReasons: Record<string, number>;
  answerStatus: Record<string, number>;
  /** Mean of the groups' unbiased reward std (0: no learning signal). */
  groupRewardStd: number;
}

function dist(xs: readonly number[]): Distribution {
  if (xs.length === 0) return { mean: 0, min: 0, max: 0 };
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const x of xs) {
    sum += x;
    min = Math.min(min, x);
    max = Math.max(max, x);
  }
  return { mean: sum / xs.length, min, max };
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function meanOrNull(xs: readonly (number | null)[]): number | null {
  const known = xs.filter((x): x is number => x !== null);
  return known.length === 0 ? null : mean(known);
}

function count(keys: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) out[k] = (out[k] ?? 0) + 1;
  return out;
}

export function rolloutMetrics(groups: readonly RolloutGroupResult[]): RolloutMetrics {
  const trajectories = groups.flatMap((g) => g.trajectories);
  const rewards = trajectories.map((t) => t.reward);
  return {
    trajectories: trajectories.length,
    failedTrajectories: groups.reduce((n, g) => n + (g.failed?.length ?? 0), 0),
    groups: groups.length,
    reward: {
      total: dist(rewards.map((r) => r.total ?? 0)),
      outcome: mean(rewards.map((r) => r.outcome)),
      format: mean(rewards.map((r) => r.format)),
      process: meanOrNull(rewards.map((r) => r.process)),
      igr: meanOrNull(rewards.map((r) => r.igr)),
      tpr: mean(rewards.map((r) => r.tpr)),
      iou: mean(rewards.map((r) => r.iou)),
      box: mean(rewards.map((r) => r.box)),
      point: mean(rewards.map((r) => r.point)),
      frame: mean(rewards.map((r) => r.frame)),
    },
    searchesPerTrajectory: dist(trajectories.map((t) => t.summary.numSearch)),
    turnsPerTrajectory: dist(trajectories.map((t) => t.summary.turns)),
    responseTokens: dist(trajectories.map((t) => t.summary.completionTokens)),
    stopReasons: count(trajectories.map((t) => t.summary.stopReason)),
    answerStatus: count(trajectories.map((t) => t.summary.answer.status)),
    groupRewardStd: mean(groups.map((g) => g.rewardStd)),
  };
}
