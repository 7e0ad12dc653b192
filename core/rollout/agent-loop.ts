/**
 * The Seg-ReSearch agent loop (spec §3.3) over abstract operations: generate, search, keyframe.
 * The `rollout` workflow runs it with activities as the operations (each a durable step); the
 * orchestration benchmark runs the very same loop with direct calls, to price durability.
 * Deterministic given the operations' results.
 */
import type { ArtifactRef } from '../artifacts.js';
import { routeAction, ToolMessages } from '../protocol/actions.js';
import { buildPromptMessages, type Ability } from '../protocol/prompts.js';
import type { SearchToolName } from '../protocol/tags.js';
import type { SearchRecord } from '../contracts/rollout.js';
import type { PolicyProtocol } from '../contracts/protocol.js';
import { answerExtent } from '../protocol/coordinates.js';
import {
  checkAnswer,
  classifyGeneration,
  estimateTokens,
  StopReasons,
  truncateObservation,
  type CheckedAnswer,
  type RolloutMessage,
  type RolloutSettings,
  type StopReason,
} from './turn-rules.js';

export interface SampledFrameRef {
  /** Frame id as shown to the policy (`frame {fid} <image>`). */
  fid: number;
  /** The policy-size copy (448²). */
  policy: ArtifactRef;
  /** The original frame (the keyframe tool resizes it to 864²). */
  original: ArtifactRef;
}

export interface RolloutSample {
  id: string;
  question: string;
  ability: Ability;
  frames: SampledFrameRef[];
}

export interface Generation {
  text: string;
  finishReason: string;
  promptTokens: number;
  completionTokens: number;
  latencyMs: number;
  /** The host whose policy server answered. */
  hostId: string;
  /** The sampled token ids and their log-probs, when the server returned them. */
  tokenIds?: number[];
  logprobs?: number[];
  /** True when the server dropped the stop string and the client put it back (not in tokenIds). */
  stopReappended?: boolean;
}

export interface SearchObservation {
  observation: string;
  images: ArtifactRef[];
  backend: string;
  cached: boolean;
}

export interface RolloutOps {
  /** One generation; `contextTokens` is the context so far (absent on the first turn). */
  generate(req: { step: number; messages: RolloutMessage[]; contextTokens?: number }): Promise<Generation>;
  search(req: { tool: SearchToolName; query: string }): Promise<SearchObservation>;
  /** The high-resolution keyframe image. */
  keyframe(frame: ArtifactRef): Promise<ArtifactRef>;
  onProgress?(progress: RolloutProgress): void;
}

/** One turn of the trajectory: the generation, the action it asked for and what came back. */
export type TurnRecord = Generation & {
  step: number;
  action?: { tool: 'search' | 'keyframe' | 'none'; detail: string };
  observation?: { content: string; images: ArtifactRef[]; cached?: boolean };
};

export interface RolloutProgress {
  turn: number;
  step: 'think' | 'search' | 'keyframe' | 'answer' | 'done';
  lastAction?: string;
}

export interface AgentLoopResult {
  messages: RolloutMessage[];
  turns: TurnRecord[];
  /** The decoded response as the reward reads it: generations and observations, prompt excluded. */
  responseText: string;
  stopReason: StopReason;
  answer: CheckedAnswer;
  searches: SearchRecord[];
  promptTokens: number;
  completionTokens: number;
}

/** A chat message as the policy activity takes it: images as S3 references, in place. */
export interface PolicyMessage {
  role: RolloutMessage['role'];
  content: string | ({ type: 'text'; text: string } | { type: 'image'; image: ArtifactRef })[];
}

/** `<image>` placeholders become image parts, in order; extra images follow (as the reference appends placeholders). */
export function toPolicyMessages(messages: readonly RolloutMessage[]): PolicyMessage[] {
  return messages.map((m) => {
    if (!m.images || m.images.length === 0) return { role: m.role, content: m.content };
    const parts: Exclude<PolicyMessage['content'], string> = [];
    const pieces = m.content.split('<image>');
    pieces.forEach((text, i) => {
      if (text) parts.push({ type: 'text', text });
      const image = m.images![i];
      if (i < pieces.length - 1 && image) parts.push({ type: 'image', image });
    });
    for (const image of m.images.slice(pieces.length - 1)) parts.push({ type: 'image', image });
    return { role: m.role, content: parts };
  });
}

/**
 * The turn's sampled token ids (and log-probs) as the trainer needs them: only when they are the
 * whole text (a stop string the client re-appended is not among them) and the log-probs match them.
 */
function sampledTokens(out: Generation): Pick<RolloutMessage, 'tokenIds' | 'logprobs'> {
  if (!out.tokenIds?.length || out.stopReappended) return {};
  const logprobs = out.logprobs?.length === out.tokenIds.length ? { logprobs: out.logprobs } : {};
  return { tokenIds: out.tokenIds, ...logprobs };
}

/**
 * Runs one trajectory. `protocol` carries what differs for this policy: system prompts from a
 * prompt file (used verbatim) and the coordinate frame its answers are checked in.
 */
export async function runAgentLoop(
  sample: RolloutSample,
  s: RolloutSettings,
  ops: RolloutOps,
  protocol: PolicyProtocol = {},
): Promise<AgentLoopResult> {
  const frameIds = sample.frames.map((f) => f.fid);
  const progress: RolloutProgress = { turn: 0, step: 'think' };
  const report = () => ops.onProgress?.({ ...progress });
  const prompt = buildPromptMessages({
    ability: sample.ability,
    frameIds,
    question: sample.question,
    ...(protocol.systemPrompts ? { systemPromptOverride: protocol.systemPrompts } : {}),
  });
  const messages: RolloutMessage[] = [
    prompt[0]!,
    { ...prompt[1]!, images: sample.frames.map((f) => f.policy) },
  ];
  const turns: TurnRecord[] = [];
  const searches: AgentLoopResult['searches'] = [];
  let responseText = '';
  let contextTokens = 0;
  let pendingObsTokens = 0;
  let stopReason: StopReason | undefined;
  let promptTokens = 0;
  let completionTokens = 0;

  for (let step = 0; step <= s.maxTurns; step++) {
    progress.turn = step;
    progress.step = 'think';
    report();
    const out = await ops.generate({
      step,
      messages,
      ...(step > 0 ? { contextTokens: contextTokens + pendingObsTokens } : {}),
    });
    promptTokens += out.promptTokens;
    completionTokens += out.completionTokens;
    contextTokens = out.promptTokens + out.completionTokens;
    pendingObsTokens = 0;
    messages.push({ role: 'assistant', content: out.text, ...sampledTokens(out) });
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
        report();
        const result = await ops.search({ tool: routed.action.tool, query: routed.action.query });
        obsText = result.observation;
        obsImages = result.images;
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
      report();
      const frame = sample.frames.find((f) => f.fid === routed.frameId);
      if (frame) {
        obsImages = [await ops.keyframe(frame.original)];
        obsText = ToolMessages.keyframeHighRes;
      } else {
        obsText = ToolMessages.keyframeNotAvailable(frameIds);
      }
      turn.action = { tool: 'keyframe', detail: String(routed.frameId) };
      turn.observation = { content: obsText, images: obsImages };
    } else {
      // No tool accepts the action: an empty observation, not done (the tool server's rule).
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
  report();
  return {
    messages,
    turns,
    responseText,
    stopReason,
    answer: checkAnswer(responseText, frameIds, answerExtent(protocol.coordinates)),
    searches,
    promptTokens,
    completionTokens,
  };
}
