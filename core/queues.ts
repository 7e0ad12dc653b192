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
 * Custom search attributes the workflows set, so runs can be filtered in the Temporal Web UI.
 * The dev stack registers them at start; production clusters register them once (README).
 */
export const SearchAttributes = {
  SegflowRunId: 'Keyword',
  SegflowStep: 'Int',
  SegflowPolicyVersion: 'Int',
  SegflowDataset: 'Keyword',
  SegflowReward: 'Double',
  SegflowQueryKind: 'Keyword',
} as const;
