/**
 * Reward activities (orchestrator queue). Rewards are pure core/ code, but they read the whole
 * decoded response, which lives in S3 with the trajectory, and IGR needs the embedding model,
 * which lives on the search role. So a reward is two cheap activities around one similarity call:
 * `rewardPlan` (which similarities are needed) → `searchQuerySimilarity` (search role) →
 * `rewardScore` (the breakdown, with segflow's outcome gate).
 */
import type { ArtifactRef } from '../../core/artifacts.js';
import {
  similarityRequests,
  scoreTrajectory,
  type RewardBreakdown,
  type SimilarityRequest,
} from '../../core/rewards/score.js';
import { rewardSettings, type RewardPresetName } from '../../core/rewards/settings.js';
import type { SampleGroundTruth } from '../../core/rewards/terms.js';
import { gateOutcome } from '../../core/rollout/reward-gate.js';
import type { AnswerStatus } from '../../core/rollout/agent-loop.js';
import { activityFailure } from '../errors.js';
import type { ArtifactStore } from '../storage/artifact-store.js';

export interface RewardContext {
  trajectory: ArtifactRef;
  groundTruth: SampleGroundTruth;
  /** Reference search steps: non-empty marks a search sample. */
  steps?: string[];
  /** @default "hierarchical" */
  preset?: RewardPresetName;
}

export interface RewardScoreInput extends RewardContext {
  /** Similarities, one array per request of `rewardPlan`, in order. */
  similarities: number[][];
  /** The rollout's answer check; with `gate` an unusable answer earns no outcome. */
  answerStatus: AnswerStatus;
  /** @default true */
  gate?: boolean;
}

export function createRewardActivities(deps: { store: ArtifactStore }) {
  const response = async (ref: ArtifactRef) =>
    (await deps.store.getJson<{ responseText: string }>(ref.uri)).responseText;
  return {
    async rewardPlan(input: RewardContext): Promise<SimilarityRequest[]> {
      try {
        const settings = rewardSettings(input.preset ?? 'hierarchical');
        return similarityRequests(
          {
            response: await response(input.trajectory),
            groundTruth: input.groundTruth,
            steps: input.steps ?? null,
          },
          settings,
        );
      } catch (err) {
        throw activityFailure(err);
      }
    },

    async rewardScore(input: RewardScoreInput): Promise<RewardBreakdown> {
      try {
        const settings = rewardSettings(input.preset ?? 'hierarchical');
        const rewardInput = {
          response: await response(input.trajectory),
          groundTruth: input.groundTruth,
          steps: input.steps ?? null,
        };
        const plan = similarityRequests(rewardInput, settings);
        const perStep: (number | null)[] = [];
        let firstQuery: number[] | null = null;
        plan.forEach((r, i) => {
          const sims = input.similarities[i] ?? [];
          if (r.purpose === 'igr') firstQuery = sims;
          else perStep[r.index] = sims[0] ?? null;
        });
        const breakdown = scoreTrajectory({ ...rewardInput, similarity: { firstQuery, perStep } }, settings);
        return input.gate === false ? breakdown : gateOutcome(breakdown, input.answerStatus);
      } catch (err) {
        throw activityFailure(err);
      }
    },
  };
}

export type RewardActivities = ReturnType<typeof createRewardActivities>;
