/**
 * Per-step rollout metrics of a training run (pure, deterministic): reward components, searches per
 * trajectory, stop reasons, answer statuses and response lengths, from mergeable per-group tallies
 * (a group's tally is all the workflow keeps of its trajectories).
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

/** Count, sum, min and max of a series: what a {@link Distribution} is made of, and mergeable. */
export interface Moments {
  n: number;
  sum: number;
  min: number;
  max: number;
}

/** A mean over the values that are known (the IGR and process terms are null for some presets). */
export interface KnownMean {
  n: number;
  sum: number;
}

/**
 * The rollout metrics' raw material for some groups: sums, counts and extremes that merge by
 * addition, so a step's metrics come from one small tally per group (what `rolloutGroup` returns
 * when its result is stored in S3) instead of every trajectory's summary in the workflow.
 */
export interface RolloutTally {
  groups: number;
  trajectories: number;
  failedTrajectories: number;
  total: Moments;
  /** Sums over the finished trajectories. */
  outcome: number;
  format: number;
  tpr: number;
  iou: number;
  box: number;
  point: number;
  frame: number;
  process: KnownMean;
  igr: KnownMean;
  searches: Moments;
  turns: Moments;
  responseTokens: Moments;
  stopReasons: Record<string, number>;
  answerStatus: Record<string, number>;
  /** Sum of the groups' unbiased reward std. */
  groupRewardStd: number;
}

// min and max are 0 while n is 0 (no Infinity: tallies travel as JSON, which has none).
const noMoments = (): Moments => ({ n: 0, sum: 0, min: 0, max: 0 });

function add(m: Moments, x: number): void {
  m.min = m.n === 0 ? x : Math.min(m.min, x);
  m.max = m.n === 0 ? x : Math.max(m.max, x);
  m.n += 1;
  m.sum += x;
}

function addKnown(k: KnownMean, x: number | null): void {
  if (x === null) return;
  k.n += 1;
  k.sum += x;
}

function mergeMoments(a: Moments, b: Moments): Moments {
  if (a.n === 0) return { ...b };
  if (b.n === 0) return { ...a };
  return { n: a.n + b.n, sum: a.sum + b.sum, min: Math.min(a.min, b.min), max: Math.max(a.max, b.max) };
}

function mergeCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** The tally of no group (the identity of {@link mergeTallies}). */
export function emptyTally(): RolloutTally {
  return {
    groups: 0,
    trajectories: 0,
    failedTrajectories: 0,
    total: noMoments(),
    outcome: 0,
    format: 0,
    tpr: 0,
    iou: 0,
    box: 0,
    point: 0,
    frame: 0,
    process: { n: 0, sum: 0 },
    igr: { n: 0, sum: 0 },
    searches: noMoments(),
    turns: noMoments(),
    responseTokens: noMoments(),
    stopReasons: {},
    answerStatus: {},
    groupRewardStd: 0,
  };
}

/** One group's tally from its full result. */
export function tallyGroup(group: RolloutGroupResult): RolloutTally {
  const t = emptyTally();
  t.groups = 1;
  t.failedTrajectories = group.failed?.length ?? 0;
  t.groupRewardStd = group.rewardStd;
  for (const { reward: r, summary } of group.trajectories) {
    t.trajectories += 1;
    add(t.total, r.total ?? 0);
    t.outcome += r.outcome;
    t.format += r.format;
    t.tpr += r.tpr;
    t.iou += r.iou;
    t.box += r.box;
    t.point += r.point;
    t.frame += r.frame;
    addKnown(t.process, r.process);
    addKnown(t.igr, r.igr);
    add(t.searches, summary.numSearch);
    add(t.turns, summary.turns);
    add(t.responseTokens, summary.completionTokens);
    t.stopReasons[summary.stopReason] = (t.stopReasons[summary.stopReason] ?? 0) + 1;
    t.answerStatus[summary.answer.status] = (t.answerStatus[summary.answer.status] ?? 0) + 1;
  }
  return t;
}

/** The tally of the union of the groups of `a` and `b`. */
export function mergeTallies(a: RolloutTally, b: RolloutTally): RolloutTally {
  return {
    groups: a.groups + b.groups,
    trajectories: a.trajectories + b.trajectories,
    failedTrajectories: a.failedTrajectories + b.failedTrajectories,
    total: mergeMoments(a.total, b.total),
    outcome: a.outcome + b.outcome,
    format: a.format + b.format,
    tpr: a.tpr + b.tpr,
    iou: a.iou + b.iou,
    box: a.box + b.box,
    point: a.point + b.point,
    frame: a.frame + b.frame,
    process: { n: a.process.n + b.process.n, sum: a.process.sum + b.process.sum },
    igr: { n: a.igr.n + b.igr.n, sum: a.igr.sum + b.igr.sum },
    searches: mergeMoments(a.searches, b.searches),
    turns: mergeMoments(a.turns, b.turns),
    responseTokens: mergeMoments(a.responseTokens, b.responseTokens),
    stopReasons: mergeCounts(a.stopReasons, b.stopReasons),
    answerStatus: mergeCounts(a.answerStatus, b.answerStatus),
    groupRewardStd: a.groupRewardStd + b.groupRewardStd,
  };
}

function dist(m: Moments): Distribution {
  return m.n === 0 ? { mean: 0, min: 0, max: 0 } : { mean: m.sum / m.n, min: m.min, max: m.max };
}

/** The metrics of a tally. */
export function metricsFromTally(t: RolloutTally): RolloutMetrics {
  const mean = (sum: number) => (t.trajectories === 0 ? 0 : sum / t.trajectories);
  const known = (k: KnownMean) => (k.n === 0 ? null : k.sum / k.n);
  return {
    trajectories: t.trajectories,
    failedTrajectories: t.failedTrajectories,
    groups: t.groups,
    reward: {
      total: dist(t.total),
      outcome: mean(t.outcome),
      format: mean(t.format),
      process: known(t.process),
      igr: known(t.igr),
      tpr: mean(t.tpr),
      iou: mean(t.iou),
      box: mean(t.box),
      point: mean(t.point),
      frame: mean(t.frame),
    },
    searchesPerTrajectory: dist(t.searches),
    turnsPerTrajectory: dist(t.turns),
    responseTokens: dist(t.responseTokens),
    stopReasons: t.stopReasons,
    answerStatus: t.answerStatus,
    groupRewardStd: t.groups === 0 ? 0 : t.groupRewardStd / t.groups,
  };
}

export function rolloutMetrics(groups: readonly RolloutGroupResult[]): RolloutMetrics {
  return metricsFromTally(groups.map(tallyGroup).reduce(mergeTallies, emptyTally()));
}
