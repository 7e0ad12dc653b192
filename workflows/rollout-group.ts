/**
 * `rolloutGroup`: n trajectories of one prompt as child `rollout`s with deterministic ids
 * (`<groupId>/traj-<i>`), at most `concurrency` at a time; then each trajectory's hierarchical
 * reward (IGR similarity on the search role) and the group-normalised GRPO advantages. Children
 * are durable: a crash mid-group resumes the unfinished ones and keeps the finished ones.
 */
import { executeChild, proxyActivities } from '@temporalio/workflow';
import { mapLimit } from '../core/concurrency.js';
import { ArtifactKeys, WorkflowIds } from '../core/contracts/keys.js';
import { trajectorySummary } from '../core/monitor/details.js';
import { SearchAttributeKeys, TaskQueues } from '../core/queues.js';
import { groupAdvantages } from '../core/grpo/advantages.js';
import type { RewardBreakdown } from '../core/rewards/score.js';
import type { RewardPresetName } from '../core/rewards/settings.js';
import type { SampleGroundTruth } from '../core/rewards/terms.js';
import type { RewardActivities } from '../activities/rewards/activities.js';
import type { createEmbeddingActivities } from '../activities/embeddings/activities.js';
import { rollout, type RolloutInput, type RolloutSummary } from './rollout.js';

type EmbeddingActivities = ReturnType<typeof createEmbeddingActivities>;

export interface RolloutGroupInput {
  groupId: string;
  sample: RolloutInput['sample'] & { groundTruth: SampleGroundTruth; steps?: string[] };
  /** Trajectories per prompt. @default 8 */
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
}

export interface GroupTrajectory {
  summary: RolloutSummary;
  reward: RewardBreakdown;
  advantage: number;
}

export interface RolloutGroupResult {
  groupId: string;
  sampleId: string;
  trajectories: GroupTrajectory[];
  meanReward: number;
  /** Reward standard deviation (unbiased); 0 marks a group DAPO's filter drops. */
  rewardStd: number;
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

export async function rolloutGroup(input: RolloutGroupInput): Promise<RolloutGroupResult> {
  const n = input.n ?? 8;
  const concurrency = Math.max(1, input.concurrency ?? n);
  const summaries: RolloutSummary[] = new Array<RolloutSummary>(n);
  const baseSeed = input.policy?.sampling?.seed;

  const runChild = async (i: number): Promise<void> => {
    const trajectoryId = WorkflowIds.groupTrajectory(input.groupId, i);
    const sampling = input.policy?.sampling
      ? { ...input.policy.sampling, ...(baseSeed !== undefined ? { seed: baseSeed + i } : {}) }
      : undefined;
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
            id: input.sample.id,
            question: input.sample.question,
            ability: input.sample.ability,
            frames: input.sample.frames,
          },
          artifactPrefix: ArtifactKeys.groupTrajectory(input.artifactPrefix, i),
          ...(input.policy ? { policy: { ...input.policy, ...(sampling ? { sampling } : {}) } } : {}),
          ...(input.search ? { search: input.search } : {}),
          ...(input.settings ? { settings: input.settings } : {}),
          ...(input.runId ? { runId: input.runId } : {}),
        },
      ],
    });
  };

  // Sliding window: start the next child as soon as one finishes.
  await mapLimit(
    Array.from({ length: n }, (_, i) => i),
    concurrency,
    runChild,
  );

  const breakdowns: RewardBreakdown[] = [];
  for (const summary of summaries) {
    const context = {
      trajectory: summary.trajectory,
      groundTruth: input.sample.groundTruth,
      ...(input.sample.steps ? { steps: input.sample.steps } : {}),
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
  const { advantages, groups } = groupAdvantages(
    totals.map((reward) => ({ groupId: input.groupId, reward })),
  );
  // A group of one is reported as its own reward with no spread (DAPO drops it), not as the
  // advantage's mean-0/std-1 convention.
  const stats = groups.get(input.groupId)!;
  const mean = totals.length > 1 ? stats.mean : totals[0]!;
  const std = totals.length > 1 ? stats.std : 0;
  return {
    groupId: input.groupId,
    sampleId: input.sample.id,
    trajectories: summaries.map((summary, i) => ({
      summary,
      reward: breakdowns[i]!,
      advantage: advantages[i]!,
    })),
    meanReward: mean,
    rewardStd: std,
  };
}
