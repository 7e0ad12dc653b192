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
import { gateOutcome } from '../../core/rewards/gate.js';
import type { AnswerStatus } from '../../core/rollout/turn-rules.js';
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

/** One decoded response to score: what {@link scoreResponse} needs besides the settings. */
export interface ResponseRewardInput {
  /** The trajectory's `responseText`. */
  response: string;
  groundTruth: SampleGroundTruth;
  /** Reference search steps: non-empty marks a search sample. */
  steps?: string[];
  /** @default "hierarchical" */
  preset?: RewardPresetName;
  /**
   * Similarities, one array per request of `similarityRequests`, in order. Omitted: none are
   * known, so IGR is unknown and `total` and `process` may be null (the outcome terms never need them).
   */
  similarities?: number[][];
  /** The rollout's answer check; with `gate` an unusable answer earns no outcome. */
  answerStatus: AnswerStatus;
  /** @default true */
  gate?: boolean;
}

/**
 * The reward breakdown of one response under a preset, with segflow's outcome gate
 * ({@link gateOutcome}) unless `gate` is false. Pure; never throws (see `scoreTrajectory`).
 * Shared by `rewardScore` (training) and the evaluation's per-sample outcome reward.
 */
export function scoreResponse(input: ResponseRewardInput): RewardBreakdown {
  const settings = rewardSettings(input.preset ?? 'hierarchical');
  const rewardInput = {
    response: input.response,
    groundTruth: input.groundTruth,
    steps: input.steps ?? null,
  };
  let similarity: { firstQuery: number[] | null; perStep: (number | null)[] } | null = null;
  const given = input.similarities;
  if (given) {
    const perStep: (number | null)[] = [];
    let firstQuery: number[] | null = null;
    similarityRequests(rewardInput, settings).forEach((r, i) => {
      const sims = given[i] ?? [];
      if (r.purpose === 'igr') firstQuery = sims;
      else perStep[r.index] = sims[0] ?? null;
    });
    similarity = { firstQuery, perStep };
  }
  const breakdown = scoreTrajectory({ ...rewardInput, similarity }, settings);
  return input.gate === false ? breakdown : gateOutcome(breakdown, input.answerStatus);
}

/** The `responseText` of a stored trajectory.json. */
export async function readResponseText(store: ArtifactStore, ref: ArtifactRef): Promise<string> {
  return (await store.getInputJson<{ responseText: string }>(ref.uri, 'trajectory')).responseText;
}

export function createRewardActivities(deps: { store: ArtifactStore }) {
  const response = async (ref: ArtifactRef) =>
    (await deps.store.getJson<{ responseText: string }>(ref.uri)).responseText;
  return {
    async rewardPlan(input: RewardContext): Promise<SimilarityRequest[]> {
      const settings = rewardSettings(input.preset ?? 'hierarchical');
      return similarityRequests(
        {
          response: await response(input.trajectory),
          groundTruth: input.groundTruth,
          steps: input.steps ?? null,
        },
        settings,
      );
    },

    async rewardScore(input: RewardScoreInput): Promise<RewardBreakdown> {
      const { trajectory, ...rest } = input;
      return scoreResponse({ ...rest, response: await response(trajectory) });
    },
  };
}

export type RewardActivities = ReturnType<typeof createRewardActivities>;
