import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Task queues of the architecture. Host-specific queues append `@<hostId>`. */
export const TaskQueues = {
  /** Workflows and light activities (parse, reward, metrics). */
  orchestrator: 'segflow',
  /** Search backends: rate-limited per queue, cached. */
  search: 'segflow-search',
  /** Video decode, frame sampling, resizing, overlays. */
  media: 'segflow-media',
  /** Calls to the co-located policy server (GPU host role). */
  policy: 'segflow-policy',
  /** SAM2 image/video through onnxruntime (GPU host role). */
  segment: 'segflow-segment',
  /** The Python trainer worker. */
  trainer: 'segflow-trainer',
  /** The experiment tracker (`tracker_log`), served by the Python trainer worker apart from its updates. */
  tracker: 'segflow-tracker',
} as const;

export type WorkerRole = Exclude<keyof typeof TaskQueues, 'trainer' | 'tracker'>;

export const workerRoles: readonly WorkerRole[] = ['orchestrator', 'search', 'media', 'policy', 'segment'];

/** The host-pinned variant of a GPU queue: all turns of one trajectory go to one host. */
export function hostQueue(queue: string, hostId: string): string {
  return `${queue}@${hostId}`;
}

/**
 * Custom search attributes the workflows set, so runs can be filtered in the Temporal Web UI
 * (e.g. `SegflowRunId="r1" AND SegflowStopReason="max_turns_reached"`: the failed trajectories of
 * run r1). The dev stack registers them at start; production clusters register them once (README).
 * SQL visibility allows about 10 Keyword, 3 Int and 3 Double attributes per namespace: this set uses
 * 6 Keyword, 2 Int and 1 Double.
 */
export const SearchAttributes = {
  /** training run id, evaluation id or query id; set on every child too */
  SegflowRunId: 'Keyword',
  /** trainingRun: steps done; rolloutGroup/rollout children: the step they belong to */
  SegflowStep: 'Int',
  SegflowPolicyVersion: 'Int',
  SegflowDataset: 'Keyword',
  /** trainingRun: mean reward of the last step */
  SegflowReward: 'Double',
  SegflowQueryKind: 'Keyword',
  /** trainingRun: the phase in progress (sampling, rollouts, batch, update, sync, metrics, paused) */
  SegflowPhase: 'Keyword',
  /** rollout: why the trajectory ended (model_chose_to_finish, max_turns_reached, …) */
  SegflowStopReason: 'Keyword',
  /** rollout: the answer's status (ok, no_answer, no_keyframe, …) */
  SegflowAnswerStatus: 'Keyword',
} as const;

/** The typed keys of {@link SearchAttributes}, for `upsertSearchAttributes([...])` and `typedSearchAttributes`. */
export const SearchAttributeKeys = {
  runId: defineSearchAttributeKey('SegflowRunId', SearchAttributeType.KEYWORD),
  step: defineSearchAttributeKey('SegflowStep', SearchAttributeType.INT),
  policyVersion: defineSearchAttributeKey('SegflowPolicyVersion', SearchAttributeType.INT),
  dataset: defineSearchAttributeKey('SegflowDataset', SearchAttributeType.KEYWORD),
  reward: defineSearchAttributeKey('SegflowReward', SearchAttributeType.DOUBLE),
  queryKind: defineSearchAttributeKey('SegflowQueryKind', SearchAttributeType.KEYWORD),
  phase: defineSearchAttributeKey('SegflowPhase', SearchAttributeType.KEYWORD),
  stopReason: defineSearchAttributeKey('SegflowStopReason', SearchAttributeType.KEYWORD),
  answerStatus: defineSearchAttributeKey('SegflowAnswerStatus', SearchAttributeType.KEYWORD),
} as const;

/**
 * What kind of work a workflow start is, for its task-queue priority (config `priority.*`).
 * Children and activities inherit the priority of the workflow that starts them.
 */
export type WorkKind = 'interactive' | 'evaluation' | 'training';

/**
 * The Temporal priority of a workflow start: the configured key of its kind (lower goes first) and
 * the run id as fairness key, so concurrent runs of one kind share the GPU queues evenly.
 */
export function priorityFor(
  settings: { interactive: number; evaluation: number; training: number; fairness: boolean },
  kind: WorkKind,
  runId: string,
): { priorityKey: number; fairnessKey?: string } {
  return {
    priorityKey: settings[kind],
    // Fairness keys are limited to 64 bytes; run ids are safe ids (ASCII), so a slice keeps them valid.
    ...(settings.fairness ? { fairnessKey: runId.slice(0, 64) } : {}),
  };
}
