/**
 * `rolloutGroup`: n trajectories of one prompt as child `rollout`s with deterministic ids
 * (`<groupId>/traj-<i>`), at most `concurrency` at a time; then each trajectory's hierarchical
 * reward (IGR similarity on the search role) and the group-normalised GRPO advantages. Children
 * are durable: a crash mid-group resumes the unfinished ones and keeps the finished ones.
 *
 * A trajectory that fails after its retries (an outage longer than its tolerance, a lost host) is
 * a failed trajectory of the group: no reward, no advantage, not trained on, listed in `failed`.
 * The group itself fails only when it is cancelled; the training step decides how many failed
 * trajectories it accepts (`rollout.maxFailedFraction`).
 *
 * Size: a training step runs hundreds of groups, so its history must not hold every trajectory's
 * summary. With `sampleRecord` the group loads its prompt from the prepared record itself (the
 * parent holds a reference), and with `storeResult` it stores its full result in S3
 * (`<artifactPrefix>/group.json`) and returns a {@link StoredGroupResult}: the rewards, a metrics
 * tally and the reference, a few KB whatever the trajectories' length (docs/limits.md). Both are
 * chosen by the input, so a recorded history replays the path it took.
 */
import {
  ApplicationFailure,
  executeChild,
  isCancellation,
  log,
  patched,
  proxyActivities,
} from '@temporalio/workflow';
import type { ArtifactRef } from '../core/artifacts.js';
import { mapLimit } from '../core/concurrency.js';
import { ErrorTypes } from '../core/contracts/errors.js';
import { ArtifactKeys, WorkflowIds } from '../core/contracts/keys.js';
import { trajectorySummary } from '../core/monitor/details.js';
import { SearchAttributeKeys, TaskQueues } from '../core/queues.js';
import { groupAdvantages } from '../core/grpo/advantages.js';
import type { RewardBreakdown } from '../core/rewards/score.js';
import type { RewardPresetName } from '../core/rewards/settings.js';
import type { SampleGroundTruth } from '../core/rewards/terms.js';
import type { RewardActivities } from '../activities/rewards/activities.js';
import type { TrainingActivities } from '../activities/training/activities.js';
import type { createEmbeddingActivities } from '../activities/embeddings/activities.js';
import { describeFailure } from '../core/evaluation/rerun.js';
import { rollout, rolloutFaultSettings, type RolloutInput, type RolloutSummary } from './rollout.js';
import { tallyGroup, type RolloutTally } from './training-metrics.js';
import { TrainingLimits } from './training-config.js';

/**
 * Histories recorded before failure isolation failed the group with its first failed child;
 * replaying them must do the same, so a failed child is caught only where this patch is set.
 */
export const TRAJECTORY_FAILURE_ISOLATION_PATCH = 'segflow-group-trajectory-failure-isolation';

type EmbeddingActivities = ReturnType<typeof createEmbeddingActivities>;

/** The prompt of a group: what the rollouts see, and the ground truth the rewards score against. */
export type GroupSample = RolloutInput['sample'] & { groundTruth: SampleGroundTruth; steps?: string[] };

export interface RolloutGroupInput {
  groupId: string;
  /** The prompt; or, with `sampleRecord`, absent. */
  sample?: GroupSample;
  /** The prepared sample record (`segflow.sample/1`) the group loads its prompt from. */
  sampleRecord?: ArtifactRef;
  /**
   * Store the full result at `<artifactPrefix>/group.json` and return a
   * {@link StoredGroupResult}. @default false
   */
  storeResult?: boolean;
  /** Trajectories per prompt, at most {@link TrainingLimits.groupSize}. @default 8 */
  n?: number;
  /** Children running at once. @default n */
  concurrency?: number;
  policy?: RolloutInput['policy'];
  search?: RolloutInput['search'];
  settings?: RolloutInput['settings'];
  /** @default { preset: "hierarchical", gate: true } */
  reward?: { preset?: RewardPresetName; gate?: boolean };
  /** Children store under `<prefix>/traj/<i>/`. */
  artifactPrefix: string;
  runId?: string;
  /** The training step the group belongs to: the `SegflowStep` search attribute of its rollouts. */
  step?: number;
  /** Each rollout's outage tolerance (RolloutInput.outageToleranceSeconds). */
  outageToleranceSeconds?: number;
  /** Each rollout's host affinity (RolloutInput.hostAffinitySeconds). */
  hostAffinitySeconds?: number;
}

export interface FailedTrajectory {
  index: number;
  trajectoryId: string;
  /** The failure with its causes. */
  error: string;
}

export interface GroupTrajectory {
  summary: RolloutSummary;
  reward: RewardBreakdown;
  advantage: number;
}

export interface RolloutGroupResult {
  groupId: string;
  sampleId: string;
  /** The trajectories that finished, with their rewards and advantages (among themselves). */
  trajectories: GroupTrajectory[];
  /** Trajectories that failed after their retries (absent in results recorded before isolation). */
  failed?: FailedTrajectory[];
  meanReward: number;
  /** Reward standard deviation (unbiased); 0 marks a group DAPO's filter drops. */
  rewardStd: number;
}

/** How many failures a stored group result names (the rest are counted). */
export const STORED_FAILURES = 3;
const STORED_ERROR_CHARS = 500;

/**
 * What a group returns with `storeResult`: what the training step decides on (the rewards for the
 * DAPO filter, the oldest policy version for staleness, the failures) and a metrics tally; the
 * trajectories stay in S3 behind `stored`. Its size depends on the group size only.
 */
export interface StoredGroupResult {
  groupId: string;
  sampleId: string;
  /** The full {@link RolloutGroupResult} JSON. */
  stored: ArtifactRef;
  /** Each finished trajectory's total reward, in order. */
  rewards: number[];
  /** The oldest policy version among the finished trajectories; null when none finished. */
  oldestPolicyVersion: number | null;
  /** Trajectories that failed after their retries. */
  failedCount: number;
  /** The first {@link STORED_FAILURES} of them, errors cut to 500 characters. */
  failed: FailedTrajectory[];
  meanReward: number;
  rewardStd: number;
  tally: RolloutTally;
}

/** A group's rewards and the oldest policy version among its trajectories (null when none finished). */
export function groupOutline(result: RolloutGroupResult): {
  rewards: number[];
  oldestPolicyVersion: number | null;
} {
  return {
    rewards: result.trajectories.map((t) => t.reward.total ?? 0),
    oldestPolicyVersion:
      result.trajectories.length === 0
        ? null
        : Math.min(...result.trajectories.map((t) => t.summary.policyVersion)),
  };
}

/** The small form of a group's result, once the full one is stored at `stored`. */
export function storedGroupResult(result: RolloutGroupResult, stored: ArtifactRef): StoredGroupResult {
  const failed = result.failed ?? [];
  return {
    groupId: result.groupId,
    sampleId: result.sampleId,
    stored,
    ...groupOutline(result),
    failedCount: failed.length,
    failed: failed.slice(0, STORED_FAILURES).map((f) => ({
      ...f,
      error: f.error.length > STORED_ERROR_CHARS ? `${f.error.slice(0, STORED_ERROR_CHARS)}…` : f.error,
    })),
    meanReward: result.meanReward,
    rewardStd: result.rewardStd,
    tally: tallyGroup(result),
  };
}

/** Whether a group's result is the stored form. */
export function isStoredGroupResult(r: RolloutGroupResult | StoredGroupResult): r is StoredGroupResult {
  return 'stored' in r;
}

// Reward bookkeeping: small S3 reads and pure scoring; idempotent.
const rewards = proxyActivities<RewardActivities>({
  taskQueue: TaskQueues.orchestrator,
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumAttempts: 10 },
});

// The IGR embedding model runs where the encoder is loaded (search role); CPU-bound, seconds.
const embeddings = proxyActivities<EmbeddingActivities>({
  taskQueue: TaskQueues.search,
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '2 seconds', maximumAttempts: 5 },
});

// Loading a prepared sample record and storing the group's result: small S3 reads/writes under
// deterministic keys, idempotent, retried freely.
const groupStore = proxyActivities<TrainingActivities>({
  taskQueue: TaskQueues.orchestrator,
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumAttempts: 10 },
});

export async function rolloutGroup(
  input: RolloutGroupInput,
): Promise<RolloutGroupResult | StoredGroupResult> {
  const n = input.n ?? 8;
  if (!Number.isInteger(n) || n < 1 || n > TrainingLimits.groupSize) {
    throw ApplicationFailure.nonRetryable(
      `group ${input.groupId}: n = ${n} trajectories; a group runs 1 to ${TrainingLimits.groupSize} (groupSize)`,
      ErrorTypes.badInput,
    );
  }
  const sample = input.sample ?? (await loadSample(input));
  const concurrency = Math.max(1, input.concurrency ?? n);
  const summaries: (RolloutSummary | undefined)[] = new Array<RolloutSummary | undefined>(n);
  const failed: FailedTrajectory[] = [];
  const baseSeed = input.policy?.sampling?.seed;

  const runChild = async (i: number): Promise<void> => {
    const trajectoryId = WorkflowIds.groupTrajectory(input.groupId, i);
    const sampling = input.policy?.sampling
      ? { ...input.policy.sampling, ...(baseSeed !== undefined ? { seed: baseSeed + i } : {}) }
      : undefined;
    try {
      summaries[i] = await executeChild(rollout, {
        workflowId: trajectoryId,
        taskQueue: TaskQueues.orchestrator,
        staticSummary: trajectorySummary({
          index: i,
          temperature: sampling?.temperature,
          seed: sampling?.seed,
        }),
        typedSearchAttributes: [
          ...(input.runId ? [{ key: SearchAttributeKeys.runId, value: input.runId }] : []),
          ...(input.step !== undefined ? [{ key: SearchAttributeKeys.step, value: input.step }] : []),
        ],
        args: [
          {
            trajectoryId,
            sample: {
              id: sample.id,
              question: sample.question,
              ability: sample.ability,
              frames: sample.frames,
            },
            artifactPrefix: ArtifactKeys.groupTrajectory(input.artifactPrefix, i),
            ...(input.policy ? { policy: { ...input.policy, ...(sampling ? { sampling } : {}) } } : {}),
            ...(input.search ? { search: input.search } : {}),
            ...(input.settings ? { settings: input.settings } : {}),
            ...(input.runId ? { runId: input.runId } : {}),
            ...rolloutFaultSettings(input),
          },
        ],
      });
    } catch (err) {
      if (isCancellation(err) || !patched(TRAJECTORY_FAILURE_ISOLATION_PATCH)) throw err;
      const error = describeFailure(err);
      log.warn('trajectory failed after its retries; the group goes on without it', {
        groupId: input.groupId,
        trajectoryId,
        error,
      });
      failed.push({ index: i, trajectoryId, error });
    }
  };

  // Sliding window: start the next child as soon as one finishes.
  await mapLimit(
    Array.from({ length: n }, (_, i) => i),
    concurrency,
    runChild,
  );

  failed.sort((a, b) => a.index - b.index);
  const finished = summaries.filter((x): x is RolloutSummary => x !== undefined);
  const breakdowns: RewardBreakdown[] = [];
  for (const summary of finished) {
    const context = {
      trajectory: summary.trajectory,
      groundTruth: sample.groundTruth,
      ...(sample.steps ? { steps: sample.steps } : {}),
      ...(input.reward?.preset ? { preset: input.reward.preset } : {}),
    };
    const plan = await rewards.rewardPlan(context);
    const similarities: number[][] = [];
    for (const request of plan) {
      similarities.push(
        (await embeddings.searchQuerySimilarity({ query: request.query, references: request.refs })).scores,
      );
    }
    breakdowns.push(
      await rewards.rewardScore({
        ...context,
        similarities,
        answerStatus: summary.answer.status,
        ...(input.reward?.gate === false ? { gate: false } : {}),
      }),
    );
  }
  const totals = breakdowns.map((b) => b.total ?? 0);
  if (totals.length === 0) {
    return finish(input, {
      groupId: input.groupId,
      sampleId: sample.id,
      trajectories: [],
      failed,
      meanReward: 0,
      rewardStd: 0,
    });
  }
  const { advantages, groups } = groupAdvantages(
    totals.map((reward) => ({ groupId: input.groupId, reward })),
  );
  // A group of one is reported as its own reward with no spread (DAPO drops it), not as the
  // advantage's mean-0/std-1 convention.
  const stats = groups.get(input.groupId)!;
  const mean = totals.length > 1 ? stats.mean : totals[0]!;
  const std = totals.length > 1 ? stats.std : 0;
  return finish(input, {
    groupId: input.groupId,
    sampleId: sample.id,
    trajectories: finished.map((summary, i) => ({
      summary,
      reward: breakdowns[i]!,
      advantage: advantages[i]!,
    })),
    ...(failed.length > 0 ? { failed } : {}),
    meanReward: mean,
    rewardStd: std,
  });
}

async function loadSample(input: RolloutGroupInput): Promise<GroupSample> {
  if (!input.sampleRecord) {
    throw ApplicationFailure.nonRetryable(
      `group ${input.groupId} has neither a sample nor a sampleRecord`,
      ErrorTypes.badInput,
    );
  }
  return groupStore.trainingLoadSample.executeWithOptions({ summary: 'load the prompt' }, [
    { record: input.sampleRecord },
  ]);
}

/** The result as the caller asked for it: whole, or stored and summarised. */
async function finish(
  input: RolloutGroupInput,
  result: RolloutGroupResult,
): Promise<RolloutGroupResult | StoredGroupResult> {
  if (!input.storeResult) return result;
  const stored = await groupStore.trainingSaveGroup.executeWithOptions(
    { summary: `store the group's ${result.trajectories.length} trajectories` },
    [{ key: ArtifactKeys.groupResult(input.artifactPrefix), result }],
  );
  return storedGroupResult(result, stored);
}
