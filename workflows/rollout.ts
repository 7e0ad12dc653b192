/**
 * `rollout`: one trajectory of the multi-turn protocol as durable steps. Every generation is an
 * activity on the policy queue (the first on `segflow-policy`, the rest pinned to the host that
 * answered), every tool call an activity on its queue; a crash resumes at the last finished step.
 * The full trajectory goes to S3; the workflow returns a small summary and its reference.
 */
import {
  ApplicationFailure,
  defineQuery,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ArtifactRef } from '../core/artifacts.js';
import { hostQueue, TaskQueues } from '../core/queues.js';
import { buildPromptMessages, type Ability } from '../core/protocol/prompts.js';
import { routeAction, ToolMessages } from '../core/protocol/actions.js';
import {
  checkAnswer,
  classifyGeneration,
  DEFAULT_ROLLOUT_SETTINGS,
  estimateTokens,
  StopReasons,
  truncateObservation,
  type CheckedAnswer,
  type RolloutMessage,
  type RolloutSettings,
  type StopReason,
} from '../core/rollout/agent-loop.js';
import type { PolicyTurnOutput, RolloutActivities } from '../activities/rollout/activities.js';
import type { PolicyGenerateInput } from '../activities/policy/activities.js';
import type { createSearchActivities } from '../activities/search/activities.js';
import type { MediaActivities } from '../activities/media/activities.js';

type SearchActivities = ReturnType<typeof createSearchActivities>;
type Sampling = NonNullable<PolicyGenerateInput['sampling']>;
type BackendName = NonNullable<Parameters<SearchActivities['searchTool']>[0]['backend']>;

export interface SampledFrameRef {
  /** Frame id as shown to the policy (`frame {fid} <image>`). */
  fid: number;
  /** The policy-size copy (448²). */
  policy: ArtifactRef;
  /** The original frame (the keyframe tool resizes it to 864²). */
  original: ArtifactRef;
}

export interface RolloutInput {
  /** Deterministic id: request ids and S3 keys derive from it. */
  trajectoryId: string;
  sample: { id: string; question: string; ability: Ability; frames: SampledFrameRef[] };
  policy?: { version?: number; model?: string; sampling?: Sampling; hostId?: string };
  search?: { backend?: BackendName; topk?: number };
  settings?: Partial<RolloutSettings>;
  /** Where the trajectory is stored: `<prefix>/trajectory.json`. */
  artifactPrefix: string;
  /** Run id for per-run paid-call accounting. */
  runId?: string;
}

export interface TurnRecord {
  step: number;
  text: string;
  finishReason: string;
  promptTokens: number;
  completionTokens: number;
  latencyMs: number;
  hostId: string;
  action?: { tool: 'search' | 'keyframe' | 'none'; detail: string };
  observation?: { content: string; images: ArtifactRef[]; cached?: boolean };
}

export interface Trajectory {
  trajectoryId: string;
  sampleId: string;
  policyVersion: number;
  messages: RolloutMessage[];
  turns: TurnRecord[];
  /** The decoded response as the reward reads it: generations and observations, prompt excluded. */
  responseText: string;
  stopReason: StopReason;
  answer: CheckedAnswer;
  searches: { tool: string; query: string; backend: string; cached: boolean }[];
  settings: RolloutSettings;
}

export interface RolloutSummary {
  trajectoryId: string;
  stopReason: StopReason;
  answer: CheckedAnswer;
  turns: number;
  numSearch: number;
  /** Every search the policy made, in order. */
  searches: Trajectory['searches'];
  policyVersion: number;
  promptTokens: number;
  completionTokens: number;
  trajectory: ArtifactRef;
}

export interface RolloutProgress {
  turn: number;
  step: 'think' | 'search' | 'keyframe' | 'answer' | 'done';
  lastAction?: string;
}

export const rolloutProgressQuery = defineQuery<RolloutProgress>('progress');

// Policy calls: one generation can take minutes on a loaded GPU; the activity heartbeats while it
// waits so a dead host is noticed in 30 s and the call is retried (as a fresh request) elsewhere.
const policyOptions = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 5,
  },
} as const;

// Search: network-bound and rate-limited; 429s come back with their Retry-After as the next delay.
const search = proxyActivities<SearchActivities>({
  taskQueue: TaskQueues.search,
  startToCloseTimeout: '2 minutes',
  retry: {
    initialInterval: '2 seconds',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 6,
  },
});

// Keyframe resize: CPU work on the media queue, seconds at most; bad media fails fast (non-retryable).
const media = proxyActivities<MediaActivities>({
  taskQueue: TaskQueues.media,
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumAttempts: 3 },
});

// Trajectory write: small S3 put with a deterministic key, idempotent, so retries are free.
const bookkeeping = proxyActivities<RolloutActivities>({
  taskQueue: TaskQueues.orchestrator,
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumAttempts: 10 },
});

/** Chat messages for the policy activity: `<image>` placeholders become image parts, in order. */
function toPolicyMessages(messages: RolloutMessage[]): PolicyGenerateInput['messages'] {
  return messages.map((m) => {
    if (!m.images || m.images.length === 0) return { role: m.role, content: m.content };
    const parts: Exclude<PolicyGenerateInput['messages'][number]['content'], string> = [];
    const pieces = m.content.split('<image>');
    pieces.forEach((text, i) => {
      if (text) parts.push({ type: 'text', text });
      const image = m.images![i];
      if (i < pieces.length - 1 && image) parts.push({ type: 'image', image });
    });
    // More images than placeholders: the extras follow (as the reference appends placeholders).
    for (const image of m.images.slice(pieces.length - 1)) parts.push({ type: 'image', image });
    return { role: m.role, content: parts };
  });
}

function policyOn(queue: string) {
  return proxyActivities<RolloutActivities>({ taskQueue: queue, ...policyOptions });
}

export async function rollout(input: RolloutInput): Promise<RolloutSummary> {
  const s: RolloutSettings = { ...DEFAULT_ROLLOUT_SETTINGS, ...input.settings };
  const frameIds = input.sample.frames.map((f) => f.fid);
  if (frameIds.length === 0) {
    throw ApplicationFailure.nonRetryable(`sample ${input.sample.id} has no frames`, 'BadInputError');
  }
  const progress: RolloutProgress = { turn: 0, step: 'think' };
  setHandler(rolloutProgressQuery, () => progress);

  const prompt = buildPromptMessages({
    ability: input.sample.ability,
    frameIds,
    question: input.sample.question,
  });
  const messages: RolloutMessage[] = [
    prompt[0]!,
    { ...prompt[1]!, images: input.sample.frames.map((f) => f.policy) },
  ];
  const turns: TurnRecord[] = [];
  const searches: Trajectory['searches'] = [];
  let responseText = '';
  let hostId = input.policy?.hostId;
  let contextTokens = 0;
  let pendingObsTokens = 0;
  let stopReason: StopReason | undefined;
  let promptTokens = 0;
  let completionTokens = 0;

  for (let step = 0; step <= s.maxTurns; step++) {
    progress.turn = step;
    progress.step = 'think';
    const queue = hostId ? hostQueue(TaskQueues.policy, hostId) : TaskQueues.policy;
    const out: PolicyTurnOutput = await policyOn(queue).policyTurn({
      messages: toPolicyMessages(messages),
      ...(step > 0 ? { contextTokens: contextTokens + pendingObsTokens } : {}),
      ...(input.policy?.sampling ? { sampling: input.policy.sampling } : {}),
      ...(input.policy?.model ? { model: input.policy.model } : {}),
    });
    hostId ??= out.hostId;
    promptTokens += out.promptTokens;
    completionTokens += out.completionTokens;
    contextTokens = out.promptTokens + out.completionTokens;
    pendingObsTokens = 0;
    messages.push({ role: 'assistant', content: out.text });
    responseText += out.text;
    const turn: TurnRecord = {
      step,
      text: out.text,
      finishReason: out.finishReason,
      promptTokens: out.promptTokens,
      completionTokens: out.completionTokens,
      latencyMs: out.latencyMs,
      hostId: out.hostId,
    };
    turns.push(turn);

    const outcome = classifyGeneration(out.text, out.finishReason, step, s);
    if (outcome.kind === 'stop') {
      stopReason = outcome.reason;
      break;
    }
    const routed = routeAction(out.text);
    let obsText: string;
    let obsImages: ArtifactRef[] = [];
    if (routed.tool === 'search') {
      if (routed.action.kind === 'call') {
        progress.step = 'search';
        progress.lastAction = `${routed.action.tool}: ${routed.action.query}`;
        const result = await search.searchTool({
          tool: routed.action.tool,
          query: routed.action.query,
          ...(input.runId ? { runId: input.runId } : {}),
          ...(input.search?.backend ? { backend: input.search.backend } : {}),
          ...(input.search?.topk ? { topk: input.search.topk } : {}),
        });
        obsText = result.observation;
        obsImages = result.tool === 'image_search' ? result.images.map((i) => i.image) : [];
        searches.push({
          tool: routed.action.tool,
          query: routed.action.query,
          backend: result.backend,
          cached: result.cached,
        });
        turn.action = { tool: 'search', detail: progress.lastAction };
        turn.observation = { content: obsText, images: obsImages, cached: result.cached };
      } else {
        // Malformed search JSON: the tool's error string is the observation (the model may recover).
        obsText = routed.action.observation;
        turn.action = { tool: 'search', detail: 'invalid' };
        turn.observation = { content: obsText, images: [] };
      }
    } else if (routed.tool === 'keyframe') {
      progress.step = 'keyframe';
      progress.lastAction = `keyframe ${routed.frameId}`;
      const frame = input.sample.frames.find((f) => f.fid === routed.frameId);
      if (frame) {
        obsImages = [await media.mediaKeyframe({ frame: frame.original })];
        obsText = ToolMessages.keyframeHighRes;
      } else {
        obsText = ToolMessages.keyframeNotAvailable(frameIds);
      }
      turn.action = { tool: 'keyframe', detail: String(routed.frameId) };
      turn.observation = { content: obsText, images: obsImages };
    } else {
      obsText = '';
      turn.action = { tool: 'none', detail: routed.invalidReason };
      turn.observation = { content: '', images: [] };
    }
    obsText = truncateObservation(obsText, obsImages.length > 0, s);
    messages.push({ role: 'user', content: obsText, ...(obsImages.length ? { images: obsImages } : {}) });
    responseText += obsText;
    pendingObsTokens = estimateTokens(obsText, obsImages.length, s);
  }
  stopReason ??= StopReasons.maxTurnsReached;

  progress.step = 'answer';
  const answer = checkAnswer(responseText, frameIds);
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
  };
  const ref = await bookkeeping.saveTrajectory({
    key: `${input.artifactPrefix}/trajectory.json`,
    trajectory,
  });
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
