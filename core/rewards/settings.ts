/**
 * Every knob of the Seg-ReSearch reward (spec §5), with the reference's values as defaults, and the
 * presets for the paper's ablations.
 */
import type { KeyframeMatch } from '../protocol/actions.js';

/** How the process score P is formed for samples that have reference search steps. */
export type ProcessMode =
  /** P = igrWeight·IGR + tprWeight·TPR (the reference, spec §5.4). */
  | 'hierarchical'
  /**
   * Rigid step-wise ablation (our reading of the paper's "step-wise reward"; the exact paper
   * definition is unconfirmed, spec §12): the j-th `text_search` query must match the j-th
   * reference step. P = stepwiseMatchWeight·(matched steps / reference steps) + stepwiseFormatWeight·F,
   * where step j is matched when cos(query_j, step_j) > igrThreshold. No initial-guidance bonus, no
   * tapering: every step counts the same, and extra searches earn nothing.
   */
  | 'stepwise'
  /** No process term at all (outcome-only ablation). */
  | 'none';

export interface RewardSettings {
  /**
   * TPR per-step success probability p in TPR = 1 − (1 − p)^k.
   * @default 0.7
   */
  tprP: number;
  /**
   * Most `<thinking>…</thinking><search>…</search>` steps that count towards k.
   * @default 10
   */
  searchBudget: number;
  /**
   * IGR is 1 when the best cosine similarity between the first `text_search` query and a reference
   * step is strictly greater than this (also the step-match threshold of the stepwise mode).
   * @default 0.5
   */
  igrThreshold: number;
  /**
   * R_iou is 1 when the inclusive (+1) box IoU is strictly greater than this.
   * @default 0.5
   */
  iouThreshold: number;
  /**
   * R_box is 1 when the mean absolute difference of the four box coordinates (0–1000 units) is
   * strictly less than this.
   * @default 10
   */
  boxL1Threshold: number;
  /**
   * R_point is 1 when the predicted point lies inside the predicted box (inclusive) and its
   * Euclidean distance to the ground-truth point (0–1000 units) is strictly less than this.
   * @default 100
   */
  pointDistanceThreshold: number;
  /**
   * Which `<keyframe>` the outcome terms use: training takes the first, validation the last.
   * @default 'first'
   */
  keyframeMatch: KeyframeMatch;
  /** @default 'hierarchical' */
  processMode: ProcessMode;
  /**
   * Weight of IGR inside P (hierarchical mode).
   * @default 0.5
   */
  igrWeight: number;
  /**
   * Weight of TPR inside P (hierarchical mode).
   * @default 0.5
   */
  tprWeight: number;
  /**
   * Weight of the matched-step fraction inside P (stepwise mode).
   * @default 0.5
   */
  stepwiseMatchWeight: number;
  /**
   * Weight of the format term F inside P (stepwise mode).
   * @default 0.5
   */
  stepwiseFormatWeight: number;
  /** Weights of the terms of the total R = Σ weight·term. */
  weights: {
    /** @default 1 */
    iou: number;
    /** @default 1 */
    box: number;
    /** @default 1 */
    point: number;
    /** @default 1 */
    frame: number;
    /** @default 1 */
    process: number;
  };
}

/** The reference reward (spec §5): R = R_iou + R_box + R_point + R_frame + P ∈ [0, 5]. */
export const hierarchical: RewardSettings = Object.freeze({
  tprP: 0.7,
  searchBudget: 10,
  igrThreshold: 0.5,
  iouThreshold: 0.5,
  boxL1Threshold: 10,
  pointDistanceThreshold: 100,
  keyframeMatch: 'first',
  processMode: 'hierarchical',
  igrWeight: 0.5,
  tprWeight: 0.5,
  stepwiseMatchWeight: 0.5,
  stepwiseFormatWeight: 0.5,
  weights: Object.freeze({ iou: 1, box: 1, point: 1, frame: 1, process: 1 }),
}) as RewardSettings;

/** Outcome-only ablation: R = R_iou + R_box + R_point + R_frame ∈ [0, 4]; no IGR, TPR or format term. */
export const outcomeOnly: RewardSettings = Object.freeze({
  ...hierarchical,
  processMode: 'none',
  weights: Object.freeze({ ...hierarchical.weights, process: 0 }),
}) as RewardSettings;

/** Rigid step-wise ablation (see {@link ProcessMode} `'stepwise'`): R ∈ [0, 5]. */
export const stepwise: RewardSettings = Object.freeze({
  ...hierarchical,
  processMode: 'stepwise',
}) as RewardSettings;

/** The presets by name. */
export const REWARD_PRESETS = { hierarchical, outcomeOnly, stepwise } as const;
export type RewardPresetName = keyof typeof REWARD_PRESETS;

/** The default settings: the reference reward. */
export const DEFAULT_REWARD_SETTINGS = hierarchical;

/** Settings from a preset with some knobs changed. */
export function rewardSettings(
  preset: RewardPresetName = 'hierarchical',
  overrides: Partial<Omit<RewardSettings, 'weights'>> & { weights?: Partial<RewardSettings['weights']> } = {},
): RewardSettings {
  const base = REWARD_PRESETS[preset];
  return { ...base, ...overrides, weights: { ...base.weights, ...overrides.weights } };
}

/**
 * The largest total a trajectory can score under these settings (each 0/1 term at 1, R_frame at 1,
 * P at its maximum): 5 for the reference.
 */
export function maxTotal(s: RewardSettings): number {
  const pMax =
    s.processMode === 'none'
      ? 0
      : s.processMode === 'stepwise'
        ? Math.max(s.stepwiseMatchWeight + s.stepwiseFormatWeight, 1)
        : Math.max(s.igrWeight + s.tprWeight, 1);
  return s.weights.iou + s.weights.box + s.weights.point + s.weights.frame + s.weights.process * pMax;
}
