/**
 * The pure parts of the Seg-ReSearch agent loop (spec §3.3): what a
 * generation means (an action to execute or a stop), observation truncation, and the answer check
 * that turns malformed output into a stop reason instead of a failure. Deterministic: the rollout
 * workflow and the in-process benchmark baseline run exactly this logic.
 */
import type { ArtifactRef } from '../artifacts.js';
import { ACTION_STOP_STRINGS } from '../protocol/tags.js';
import { parseFinalAnswer, type Box, type Point } from '../protocol/actions.js';

/**
 * Knobs of the loop; defaults are the 4B training script's (spec §3.3). The token budget
 * (max_response_length, max_action_length) is the policy client's: it knows the server's limits.
 */
export interface RolloutSettings {
  /** Tool calls allowed; generations are maxTurns + 1. @default 6 */
  maxTurns: number;
  /** Max tokens of one observation. @default 4096 */
  maxObsLength: number;
  /**
   * Characters per token used to size observations before the server has tokenised them (the
   * workflow holds no tokenizer; the server's usage counts stay authoritative for the budget).
   * @default 3.5
   */
  charsPerToken: number;
  /** Visual tokens charged per image when estimating the context. @default 196 */
  tokensPerImage: number;
}

/**
 * The most tool calls a rollout may be allowed: each turn adds about a dozen events to the
 * rollout's history and its observation to every later request (docs/limits.md).
 */
export const MAX_TURNS_CAP = 64;

export const DEFAULT_ROLLOUT_SETTINGS: RolloutSettings = {
  maxTurns: 6,
  maxObsLength: 4096,
  charsPerToken: 3.5,
  tokensPerImage: 196,
};

export const StopReasons = {
  /** The model ended without an action (EOS): the normal end after `<answer>`. */
  modelChoseToFinish: 'model_chose_to_finish',
  /** An action on the last allowed step (it is not executed). */
  maxTurnsReached: 'max_turns_reached',
  /** The generation hit its token cap (finish_reason "length"). */
  maxResponseLengthReached: 'max_response_length_reached',
  /** No token budget left before a generation. */
  maxModelLenExceeded: 'max_model_len_exceeded',
} as const;
export type StopReason = (typeof StopReasons)[keyof typeof StopReasons];

export type GenerationOutcome = { kind: 'action'; stop: string } | { kind: 'stop'; reason: StopReason };

/**
 * What a generation means: an action when it stopped on an action stop string (and turns remain),
 * else the matching stop reason. `step` counts generations from 0.
 */
export function classifyGeneration(
  text: string,
  finishReason: string,
  step: number,
  s: RolloutSettings,
): GenerationOutcome {
  const stop = ACTION_STOP_STRINGS.find((t) => text.trimEnd().endsWith(t));
  if (finishReason === 'stop' && stop !== undefined) {
    return step < s.maxTurns
      ? { kind: 'action', stop }
      : { kind: 'stop', reason: StopReasons.maxTurnsReached };
  }
  if (finishReason === 'length') return { kind: 'stop', reason: StopReasons.maxResponseLengthReached };
  // The policy client sends no request when the context budget is spent (spec §3.3).
  if (finishReason === StopReasons.maxModelLenExceeded)
    return { kind: 'stop', reason: StopReasons.maxModelLenExceeded };
  return { kind: 'stop', reason: StopReasons.modelChoseToFinish };
}

/**
 * Cuts an observation to its token budget as the reference does: text-only keeps the LAST part,
 * with images the FIRST part (never cutting inside an `<image>` placeholder); both get
 * "...(truncated)".
 */
export function truncateObservation(text: string, hasImages: boolean, s: RolloutSettings): string {
  const maxChars = Math.floor(s.maxObsLength * s.charsPerToken);
  if (text.length <= maxChars) return text;
  if (!hasImages) return `${text.slice(text.length - maxChars)}...(truncated)`;
  let cut = text.slice(0, maxChars);
  // Do not leave half of an `<image>` placeholder at the end.
  const open = cut.lastIndexOf('<');
  if (open >= 0 && '<image>'.startsWith(cut.slice(open)) && text.startsWith('<image>', open))
    cut = cut.slice(0, open);
  return `${cut}...(truncated)`;
}

/** Estimated tokens of an observation (used only until the server reports the real count). */
export function estimateTokens(text: string, images: number, s: RolloutSettings): number {
  return Math.ceil(text.length / s.charsPerToken) + images * s.tokensPerImage;
}

/** A chat message whose `<image>` placeholders refer, in order, to `images`. */
export interface RolloutMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
  images?: ArtifactRef[];
  /** An assistant turn's sampled token ids, when the server returned them (the trainer trains these). */
  tokenIds?: number[];
  /** The server's log-prob of each sampled token, when asked for (`policy.logprobs`). */
  logprobs?: number[];
}

/** What `checkAnswer` can say of a final answer; only `ok` is a usable segmentation prompt. */
export const AnswerStatuses = [
  'ok',
  'no_keyframe',
  'no_answer',
  'keyframe_not_sampled',
  'coordinates_out_of_range',
  'degenerate_box',
] as const;
export type AnswerStatus = (typeof AnswerStatuses)[number];

/** A usable segmentation prompt, or why there is none. */
export type CheckedAnswer =
  | { status: 'ok'; keyframe: number; box: Box; point: Point | null; problems: string[] }
  | {
      status: Exclude<AnswerStatus, 'ok'>;
      keyframe: number | null;
      box: Box | null;
      point: Point | null;
      problems: string[];
    };

/**
 * Validates the final answer against the sampled frames. Coordinates must lie in the policy's
 * frame: `extent` is 1000 (Qwen3-VL, 0–1000) or the resized frame's pixels (Qwen2.5-VL; see
 * `answerExtent`). A malformed answer is a status with reasons, never an exception: the rollout
 * ends normally with zero outcome reward.
 */
export function checkAnswer(
  response: string,
  sampledFrameIds: readonly number[],
  extent: number | { x: number; y: number } = 1000,
): CheckedAnswer {
  const ex = typeof extent === 'number' ? { x: extent, y: extent } : extent;
  const a = parseFinalAnswer(response);
  const fail = (status: Exclude<AnswerStatus, 'ok'>, why: string): CheckedAnswer => ({
    status,
    keyframe: a.keyframe,
    box: a.box,
    point: a.point,
    problems: [...a.problems, why],
  });
  if (a.keyframe === null) return fail('no_keyframe', 'no keyframe was chosen');
  if (!sampledFrameIds.includes(a.keyframe)) {
    return fail(
      'keyframe_not_sampled',
      `keyframe ${a.keyframe} is not one of the sampled frames [${sampledFrameIds.join(', ')}]`,
    );
  }
  if (a.box === null) return fail('no_answer', 'no usable bbox_2d');
  const inRange = (v: number, max: number) => Number.isFinite(v) && v >= 0 && v <= max;
  const xs = [a.box[0], a.box[2], ...(a.point ? [a.point[0]] : [])];
  const ys = [a.box[1], a.box[3], ...(a.point ? [a.point[1]] : [])];
  if (!xs.every((v) => inRange(v, ex.x)) || !ys.every((v) => inRange(v, ex.y))) {
    const range = ex.x === ex.y ? `[0, ${ex.x}]` : `x in [0, ${ex.x}] and y in [0, ${ex.y}]`;
    return fail(
      'coordinates_out_of_range',
      `coordinates must lie in ${range}: box ${JSON.stringify(a.box)}, point ${JSON.stringify(a.point)}`,
    );
  }
  if (a.box[2] <= a.box[0] || a.box[3] <= a.box[1]) {
    return fail('degenerate_box', `bbox_2d ${JSON.stringify(a.box)} has no area (need x1 < x2 and y1 < y2)`);
  }
  return { status: 'ok', keyframe: a.keyframe, box: a.box, point: a.point, problems: a.problems };
}
