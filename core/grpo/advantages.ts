/**
 * GRPO group-normalised advantages and the DAPO dynamic-sampling filter (spec §6.2, §6.3).
 *
 * Numbers are float64 here; the reference trainer computes in float32 torch tensors, so values
 * agree to float32 precision (about 1e-7 relative), not bit for bit.
 */
import { npSum } from '../metrics/numpy.js';

/** One trajectory's scalar reward and the prompt group (uid) it belongs to. */
export interface GroupedReward {
  groupId: string;
  reward: number;
}

export interface AdvantageSettings {
  /**
   * Added to the group's standard deviation before dividing.
   * @default 1e-6
   */
  epsilon: number;
  /**
   * Divide by the group std (`norm_adv_by_std_in_grpo`); false gives plain mean-centring (Dr. GRPO).
   * @default true
   */
  normalizeByStd: boolean;
}

export const DEFAULT_ADVANTAGE_SETTINGS: AdvantageSettings = { epsilon: 1e-6, normalizeByStd: true };

/** Mean and unbiased (n − 1) standard deviation; a group of one has mean 0 and std 1 (verl's rule). */
export function groupStatistics(rewards: readonly number[]): { mean: number; std: number } {
  const n = rewards.length;
  if (n === 0) throw new RangeError('a group needs at least one trajectory');
  if (n === 1) return { mean: 0, std: 1 };
  let sum = 0;
  for (const r of rewards) sum += r;
  const mean = sum / n;
  let ss = 0;
  for (const r of rewards) ss += (r - mean) * (r - mean);
  return { mean, std: Math.sqrt(ss / (n - 1)) };
}

/** Each group's rewards in input order, groups in first-seen order. */
function rewardsByGroup(trajectories: readonly GroupedReward[]): Map<string, number[]> {
  const byGroup = new Map<string, number[]>();
  for (const t of trajectories) {
    const list = byGroup.get(t.groupId);
    if (list === undefined) byGroup.set(t.groupId, [t.reward]);
    else list.push(t.reward);
  }
  return byGroup;
}

/**
 * A_i = (R_i − mean_g) / (std_g + ε) for every trajectory, in input order, where g is its group.
 * Groups of one get mean 0 and std 1, so their advantage is R / (1 + ε).
 */
export function groupAdvantages(
  trajectories: readonly GroupedReward[],
  settings: AdvantageSettings = DEFAULT_ADVANTAGE_SETTINGS,
): { advantages: number[]; groups: Map<string, { mean: number; std: number; size: number }> } {
  const byGroup = rewardsByGroup(trajectories);
  const groups = new Map<string, { mean: number; std: number; size: number }>();
  for (const [id, rewards] of byGroup) groups.set(id, { ...groupStatistics(rewards), size: rewards.length });
  const advantages = trajectories.map((t) => {
    const g = groups.get(t.groupId) ?? { mean: 0, std: 1, size: 1 };
    return settings.normalizeByStd ? (t.reward - g.mean) / (g.std + settings.epsilon) : t.reward - g.mean;
  });
  return { advantages, groups };
}

/**
 * When a group counts as having no learning signal.
 * - `identical`: all its rewards are equal (the intent of DAPO's filter).
 * - `numpy-std`: `np.std(rewards) > 0` is false, computed like NumPy in float64. NumPy's mean of
 *   equal values can differ from them in the last bit (three rewards of 0.1 give std 1.4e-17), so
 *   some groups of equal rewards survive this test; it is here to reproduce the recipe exactly.
 */
export type ZeroVarianceRule = 'identical' | 'numpy-std';

function hasSignal(rewards: readonly number[], rule: ZeroVarianceRule): boolean {
  if (rewards.length <= 1) return true;
  if (rule === 'identical') return rewards.some((r) => r !== rewards[0]);
  // np.std: mean by pairwise sum / n, then sqrt(mean((x - mean)²)); > 0 iff some x ≠ mean.
  const mean = npSum(rewards) / rewards.length;
  return rewards.some((r) => r - mean !== 0);
}

/**
 * DAPO dynamic sampling (verl `recipe/dapo`): drop every prompt group whose rewards have zero
 * variance, except groups of size 1. Returns the indices of the kept trajectories (input order)
 * and the kept / dropped group ids (first-seen order).
 */
export function dynamicSamplingFilter(
  trajectories: readonly GroupedReward[],
  rule: ZeroVarianceRule = 'identical',
): { keptIndices: number[]; keptGroups: string[]; droppedGroups: string[] } {
  const byGroup = rewardsByGroup(trajectories);
  const keptGroups: string[] = [];
  const droppedGroups: string[] = [];
  for (const [id, rewards] of byGroup) (hasSignal(rewards, rule) ? keptGroups : droppedGroups).push(id);
  const kept = new Set(keptGroups);
  const keptIndices: number[] = [];
  trajectories.forEach((t, i) => {
    if (kept.has(t.groupId)) keptIndices.push(i);
  });
  return { keptIndices, keptGroups, droppedGroups };
}

/** Progress of the dynamic-sampling loop over generation batches. */
export type DynamicSamplingDecision =
  | { status: 'ready'; groups: string[] }
  | { status: 'generate-more'; have: number; need: number }
  | { status: 'exhausted'; have: number; need: number; generated: number };

/**
 * After a generation batch: enough surviving groups for a training step (`promptBatchSize`, e.g.
 * 16)? Keeps the first `promptBatchSize` surviving groups in order. `maxGenerationBatches` 0 means
 * no limit (the reference's `max_num_gen_batches: 0`).
 */
export function dynamicSamplingDecision(input: {
  survivingGroups: readonly string[];
  promptBatchSize: number;
  generationBatches: number;
  maxGenerationBatches: number;
}): DynamicSamplingDecision {
  const have = input.survivingGroups.length;
  const need = input.promptBatchSize;
  if (have >= need) return { status: 'ready', groups: input.survivingGroups.slice(0, need) };
  if (input.maxGenerationBatches > 0 && input.generationBatches >= input.maxGenerationBatches) {
    return { status: 'exhausted', have, need, generated: input.generationBatches };
  }
  return { status: 'generate-more', have, need };
}
