/**
 * `rollout`: one trajectory of the multi-turn protocol as durable steps. Every generation is an
 * activity on the policy queue (the first on `segflow-policy`, the rest pinned to the host that
 * answered), every tool call an activity on its queue; a crash resumes at the last finished step.
 * The full trajectory goes to S3; the workflow returns a small summary and its reference.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  TimeoutFailure,
  defineQuery,
  log,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import { oneLine } from '../core/monitor/details.js';
import { ErrorTypes } from '../core/contracts/errors.js';
import { ArtifactKeys } from '../core/contracts/keys.js';
import type { RolloutSummary } from '../core/contracts/rollout.js';
import type { PolicyProtocol } from '../core/contracts/protocol.js';
import { hostQueue, SearchAttributeKeys, TaskQueues } from '../core/queues.js';
import { DEFAULT_ROLLOUT_SETTINGS, MAX_TURNS_CAP, type RolloutSettings } from '../core/rollout/turn-rules.js';
import {
  runAgentLoop,
  toPolicyMessages,
  type RolloutProgress,
  type AgentLoopResult,
  type RolloutSample,
} from '../core/rollout/agent-loop.js';
import type { PolicyTurnOutput, RolloutActivities } from '../activities/rollout/activities.js';
import type { PolicyGenerateInput } from '../activities/policy/activities.js';
import type { createSearchActivities } from '../activities/search/activities.js';
import type { MediaActivities } from '../activities/media/activities.js';
import { DEFAULT_OUTAGE_TOLERANCE_SECONDS, outageRetry } from './retry.js';

type SearchActivities = ReturnType<typeof createSearchActivities>;
type Sampling = NonNullable<PolicyGenerateInput['sampling']>;
type BackendName = NonNullable<Parameters<SearchActivities['searchTool']>[0]['backend']>;

export type { RolloutProgress, SampledFrameRef, TurnRecord } from '../core/rollout/agent-loop.js';

export interface RolloutInput {
  /** Deterministic id: request ids and S3 keys derive from it. */
  trajectoryId: string;
  sample: RolloutSample;
  policy?: {
    version?: number;
    model?: string;
    sampling?: Sampling;
    hostId?: string;
    /**
     * The version's S3 folder (a trained version of a run): a policy server that lost the adapter
     * `model` names (a restart) gets it loaded again instead of failing the turn.
     */
    uri?: string;
  } & PolicyProtocol;
  search?: { backend?: BackendName; topk?: number };
  settings?: Partial<RolloutSettings>;
  /** Where the trajectory is stored: `<prefix>/trajectory.json`. */
  artifactPrefix: string;
  /** Run id for per-run paid-call accounting. */
  runId?: string;
  /**
   * How long a turn pinned to the host that answered the first one (its KV/prefix cache) waits for
   * that host to pick it up before it goes to any host of the shared queue, with the whole context
   * (host affinity is a preference: a replaced or dead host never traps a trajectory).
   * @default 120
   */
  hostAffinitySeconds?: number;
  /**
   * How long the idempotent infrastructure calls of this trajectory (policy server, search
   * backend, S3 writes) keep retrying an outage (connection refused, 5xx, timeouts) before the
   * trajectory fails: they retry until the waits between attempts add up to this.
   * @default 900 (15 minutes: a vLLM restart reloads its model in minutes)
   */
  outageToleranceSeconds?: number;
}

/** The rollout's fault handling settings, as callers pass them through. */
export type RolloutFaultSettings = Pick<RolloutInput, 'outageToleranceSeconds' | 'hostAffinitySeconds'>;

/** The fault settings `from` sets (unset ones stay out, so a child's input carries only what was chosen). */
export function rolloutFaultSettings(from: RolloutFaultSettings): RolloutFaultSettings {
  return {
    ...(from.outageToleranceSeconds !== undefined
      ? { outageToleranceSeconds: from.outageToleranceSeconds }
      : {}),
    ...(from.hostAffinitySeconds !== undefined ? { hostAffinitySeconds: from.hostAffinitySeconds } : {}),
  };
}

/** @see RolloutInput.hostAffinitySeconds */
export const DEFAULT_HOST_AFFINITY_SECONDS = 120;

/** A call that no worker of its task queue picked up within its schedule-to-start timeout. */
export function notPickedUp(err: unknown): boolean {
  return (
    err instanceof ActivityFailure &&
    err.cause instanceof TimeoutFailure &&
    err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START
  );
}

/** The full trajectory as stored in S3: the agent loop's result with its ids, version and settings. */
export type Trajectory = Omit<AgentLoopResult, 'promptTokens' | 'completionTokens'> & {
  trajectoryId: string;
  sampleId: string;
  policyVersion: number;
  settings: RolloutSettings;
  /** Turns whose pinned host did not pick the call up in time and that ran on another host. */
  hostFallbacks?: HostFallback[];
};

export interface HostFallback {
  turn: number;
  /** The host the trajectory was pinned to. */
  from: string;
  /** The host that answered instead. */
  to: string;
}

/**
 * Histories recorded before the host fallback waited on the pinned queue for ever; a call that
 * timed out there is re-sent to the shared queue only where this patch is set.
 */
export const HOST_FALLBACK_PATCH = 'segflow-rollout-host-fallback';

export type { RolloutSummary } from '../core/contracts/rollout.js';

export const rolloutProgressQuery = defineQuery<RolloutProgress>('progress');

/**
 * Histories recorded before the outcome search attributes have no upsert at the end of a rollout;
 * replaying them must not add one, so the upsert runs only where this patch is set.
 */
export const OUTCOME_SEARCH_ATTRIBUTES_PATCH = 'segflow-rollout-outcome-search-attributes';

// Policy calls: one generation can take minutes on a loaded GPU; the activity heartbeats while it
// waits so a dead host is noticed in 30 s and the call is retried (as a fresh request) elsewhere.
const POLICY_ATTEMPT_SECONDS = 600;

// Search: network-bound and rate-limited; 429s come back with their Retry-After as the next delay.
const SEARCH_ATTEMPT_SECONDS = 120;

// Keyframe resize: CPU work on the media queue, seconds at most, that reads and writes S3, so it
// keeps retrying an S3 outage like the other infrastructure calls (3 attempts in 3 s failed every
// trajectory that reached its keyframe while S3 was down); bad media still fails fast (non-retryable).
const KEYFRAME_ATTEMPT_SECONDS = 120;

// Trajectory write: small S3 put with a deterministic key, idempotent, so retries are free.
const BOOKKEEPING_ATTEMPT_SECONDS = 60;

function infrastructure(toleranceSeconds: number) {
  return {
    search: proxyActivities<SearchActivities>({
      taskQueue: TaskQueues.search,
      startToCloseTimeout: `${SEARCH_ATTEMPT_SECONDS} seconds`,
      retry: outageRetry(toleranceSeconds, 60),
    }),
    media: proxyActivities<MediaActivities>({
      taskQueue: TaskQueues.media,
      startToCloseTimeout: `${KEYFRAME_ATTEMPT_SECONDS} seconds`,
      retry: outageRetry(toleranceSeconds, 30),
    }),
    bookkeeping: proxyActivities<RolloutActivities>({
      taskQueue: TaskQueues.orchestrator,
      startToCloseTimeout: `${BOOKKEEPING_ATTEMPT_SECONDS} seconds`,
      retry: outageRetry(toleranceSeconds, 30),
    }),
    policyOn(queue: string, scheduleToStartSeconds?: number) {
      return proxyActivities<RolloutActivities>({
        taskQueue: queue,
        ...(scheduleToStartSeconds !== undefined
          ? { scheduleToStartTimeout: `${scheduleToStartSeconds} seconds` }
          : {}),
        startToCloseTimeout: `${POLICY_ATTEMPT_SECONDS} seconds`,
        heartbeatTimeout: '30 seconds',
        retry: outageRetry(toleranceSeconds, 30),
      });
    },
  };
}

export async function rollout(input: RolloutInput): Promise<RolloutSummary> {
  const s: RolloutSettings = { ...DEFAULT_ROLLOUT_SETTINGS, ...input.settings };
  if (!(s.maxTurns >= 0 && s.maxTurns <= MAX_TURNS_CAP)) {
    throw ApplicationFailure.nonRetryable(
      `rollout ${input.trajectoryId}: settings.maxTurns = ${s.maxTurns}; at most ${MAX_TURNS_CAP}: each turn adds its activities to the rollout's history (docs/limits.md)`,
      ErrorTypes.badInput,
    );
  }
  const frameIds = input.sample.frames.map((f) => f.fid);
  if (frameIds.length === 0) {
    throw ApplicationFailure.nonRetryable(`sample ${input.sample.id} has no frames`, ErrorTypes.badInput);
  }
  const { search, media, bookkeeping, policyOn } = infrastructure(
    input.outageToleranceSeconds ?? DEFAULT_OUTAGE_TOLERANCE_SECONDS,
  );
  const progress: RolloutProgress = { turn: 0, step: 'think' };
  setHandler(rolloutProgressQuery, () => progress, {
    description: 'the turn in progress and its step (think, search, keyframe, answer, done)',
  });
  let hostId = input.policy?.hostId;
  let turn = 0;
  const affinitySeconds = input.hostAffinitySeconds ?? DEFAULT_HOST_AFFINITY_SECONDS;
  const hostFallbacks: HostFallback[] = [];

  const loop = await runAgentLoop(
    input.sample,
    s,
    {
      async generate({ messages, contextTokens }) {
        turn += 1;
        const request = {
          messages: toPolicyMessages(messages),
          ...(contextTokens !== undefined ? { contextTokens } : {}),
          ...(input.policy?.sampling ? { sampling: input.policy.sampling } : {}),
          ...(input.policy?.model ? { model: input.policy.model } : {}),
          ...(input.policy?.uri && input.policy.version
            ? { adapter: { uri: input.policy.uri, version: input.policy.version } }
            : {}),
        };
        let out: PolicyTurnOutput;
        if (hostId === undefined) {
          out = await policyOn(TaskQueues.policy).policyTurn.executeWithOptions(
            { summary: `turn ${turn} @ any host` },
            [request],
          );
        } else {
          const pinned = hostId;
          try {
            out = await policyOn(
              hostQueue(TaskQueues.policy, pinned),
              affinitySeconds,
            ).policyTurn.executeWithOptions({ summary: `turn ${turn} @ ${pinned}` }, [request]);
          } catch (err) {
            if (!notPickedUp(err) || !patched(HOST_FALLBACK_PATCH)) throw err;
            out = await policyOn(TaskQueues.policy).policyTurn.executeWithOptions(
              {
                summary: `turn ${turn} @ any host (host ${pinned} did not pick it up in ${affinitySeconds} s)`,
              },
              [request],
            );
            hostFallbacks.push({ turn, from: pinned, to: out.hostId });
            log.warn('the pinned policy host did not pick up the turn; it ran on another host', {
              trajectoryId: input.trajectoryId,
              turn,
              from: pinned,
              to: out.hostId,
            });
          }
        }
        hostId = out.hostId;
        return out;
      },
      async search({ tool, query }) {
        const result = await search.searchTool.executeWithOptions(
          { summary: `${tool}: "${oneLine(query, 60)}"` },
          [
            {
              tool,
              query,
              ...(input.runId ? { runId: input.runId } : {}),
              ...(input.search?.backend ? { backend: input.search.backend } : {}),
              ...(input.search?.topk ? { topk: input.search.topk } : {}),
            },
          ],
        );
        return {
          observation: result.observation,
          images: result.tool === 'image_search' ? result.images.map((i) => i.image) : [],
          backend: result.backend,
          cached: result.cached,
        };
      },
      keyframe: (frame) =>
        media.mediaKeyframe.executeWithOptions({ summary: `keyframe of turn ${turn} → 864²` }, [{ frame }]),
      onProgress: (p) => Object.assign(progress, p),
    },
    {
      ...(input.policy?.systemPrompts ? { systemPrompts: input.policy.systemPrompts } : {}),
      ...(input.policy?.coordinates ? { coordinates: input.policy.coordinates } : {}),
    },
  );
  const { messages, turns, responseText, stopReason, answer, searches, promptTokens, completionTokens } =
    loop;

  const policyVersion = input.policy?.version ?? 0;
  const trajectory: Trajectory = {
    trajectoryId: input.trajectoryId,
    sampleId: input.sample.id,
    policyVersion,
    messages,
    turns,
    responseText,
    stopReason,
    answer,
    searches,
    settings: s,
    ...(hostFallbacks.length > 0 ? { hostFallbacks } : {}),
  };
  const ref = await bookkeeping.saveTrajectory.executeWithOptions(
    { summary: `save trajectory · ${stopReason} · answer ${answer.status}` },
    [{ key: ArtifactKeys.trajectory(input.artifactPrefix), trajectory }],
  );
  if (patched(OUTCOME_SEARCH_ATTRIBUTES_PATCH)) {
    upsertSearchAttributes([
      { key: SearchAttributeKeys.stopReason, value: stopReason },
      { key: SearchAttributeKeys.answerStatus, value: answer.status },
    ]);
  }
  progress.step = 'done';
  log.info('rollout finished', {
    trajectoryId: input.trajectoryId,
    stopReason,
    answer: answer.status,
    turns: turns.length,
    searches: searches.length,
    workflowId: workflowInfo().workflowId,
  });
  return {
    trajectoryId: input.trajectoryId,
    stopReason,
    answer,
    turns: turns.length,
    numSearch: searches.length,
    searches,
    policyVersion,
    promptTokens,
    completionTokens,
    trajectory: ref,
  };
}
