/**
 * The individual reward terms of Seg-ReSearch (spec §5), each reproducing
 * `verl_tool/workers/reward_manager/okvos.py` on any text, with a reason a person can read.
 */
import {
  isPyDict,
  isPyNumber,
  pyJsonLoads,
  type PyJsonObject,
  type PyJsonValue,
} from '../pycompat/pyjson.js';
import { extractAnswer, extractKeyframeId, type KeyframeMatch } from '../protocol/actions.js';
import {
  countThinkingThenSearch,
  firstThinkingThenAnswer,
  hasThinkingThenKeyframe,
  textSearchQueries,
} from '../protocol/scan.js';
import { inclusiveBoxIou } from '../protocol/segzero.js';
import { pyCount } from '../pycompat/text.js';

/** A term value with the reason it has that value. */
export interface Term {
  value: number;
  reason: string;
}

/**
 * Format F ∈ {0, 1} (spec §5.1): a `<thinking>…</thinking>` directly followed by `<keyframe> digits
 * </keyframe>`, and a `<thinking>…</thinking>` directly followed by `<answer>` whose content is JSON
 * with exactly the keys `bbox_2d` (4 numbers) and `point_2d` (2 numbers). Both pairs may span turns.
 */
export function formatTerm(response: string): Term {
  if (!hasThinkingThenKeyframe(response)) {
    return { value: 0, reason: 'format 0: no <thinking>…</thinking> followed by <keyframe> N </keyframe>' };
  }
  const content = firstThinkingThenAnswer(response);
  if (content === null) {
    return { value: 0, reason: 'format 0: no <thinking>…</thinking> followed by <answer>…</answer>' };
  }
  const parsed = pyJsonLoads(content);
  if (!parsed.ok) return { value: 0, reason: `format 0: the answer is not JSON (${parsed.error.message})` };
  const a = parsed.value;
  if (!isPyDict(a)) return { value: 0, reason: 'format 0: the answer JSON is not an object' };
  const keys = Object.keys(a);
  if (keys.length !== 2 || !('bbox_2d' in a) || !('point_2d' in a)) {
    return {
      value: 0,
      reason: `format 0: the answer keys are {${keys.join(', ')}}, not exactly {bbox_2d, point_2d}`,
    };
  }
  const b = a['bbox_2d'];
  const p = a['point_2d'];
  if (!Array.isArray(b) || b.length !== 4 || !b.every(isPyNumber)) {
    return { value: 0, reason: 'format 0: "bbox_2d" is not a list of 4 numbers' };
  }
  if (!Array.isArray(p) || p.length !== 2 || !p.every(isPyNumber)) {
    return { value: 0, reason: 'format 0: "point_2d" is not a list of 2 numbers' };
  }
  return { value: 1, reason: 'format 1: thinking → keyframe and thinking → well-formed answer' };
}

/** The number of `<thinking>…</thinking><search>…</search>` steps (before the budget cap). */
export function searchStepCount(response: string): number {
  return countThinkingThenSearch(response);
}

/** TPR = 1 − (1 − p)^k, k = min(search steps, budget) + F (spec §5.3). */
export function taperingProcessReward(
  searchSteps: number,
  format: number,
  p: number,
  budget: number,
): Term & { k: number } {
  const k = Math.min(searchSteps, budget) + format;
  const value = 1 - (1 - p) ** k;
  return {
    value,
    k,
    reason: `TPR ${value.toPrecision(6)}: k = min(${searchSteps} search steps, budget ${budget}) + F ${format} = ${k}, p = ${p}`,
  };
}

/** The first `text_search` query as the IGR reads it (raw text of the JSON string), or null. */
export function firstTextSearchQuery(response: string): string | null {
  return textSearchQueries(response, 1)[0] ?? null;
}

/** All `text_search` queries in order (for the stepwise ablation). */
export function allTextSearchQueries(response: string): string[] {
  return textSearchQueries(response);
}

/**
 * IGR ∈ {0, 1} from the cosine similarities between the first `text_search` query and every
 * reference step (spec §5.2): 1 iff the maximum is strictly above the threshold. No query → 0.
 * A NaN similarity never wins (as `numpy.max` would propagate NaN and NaN > t is false).
 */
export function initialGuidanceReward(
  query: string | null,
  similarities: readonly number[],
  threshold: number,
): Term {
  if (query === null) return { value: 0, reason: 'IGR 0: no text_search call' };
  if (similarities.length === 0) return { value: 0, reason: 'IGR 0: no reference steps to compare with' };
  let max = -Infinity;
  let sawNaN = false;
  for (const s of similarities) {
    if (Number.isNaN(s)) sawNaN = true;
    else if (s > max) max = s;
  }
  if (sawNaN) return { value: 0, reason: 'IGR 0: a similarity is NaN' };
  const value = max > threshold ? 1 : 0;
  return {
    value,
    reason: `IGR ${value}: best similarity ${max.toFixed(4)} ${value ? '>' : '<='} ${threshold}`,
  };
}

/** Ground truth of one frame (spec §2): 0–1000 box and point, normalised areas. */
export interface FrameGroundTruth {
  bbox_2d: [number, number, number, number];
  point_2d: [number, number];
  area: number;
  max_conn_area: number;
}

/** Ground truth of a sample: frame id (decimal string) → that frame's ground truth. */
export type SampleGroundTruth = Record<string, FrameGroundTruth>;

/** The four outcome terms and what they were computed from. */
export interface OutcomeTerms {
  iou: Term;
  box: Term;
  point: Term;
  frame: Term;
  /** The keyframe id string the terms used, or null. */
  keyframe: string | null;
}

const zero = (reason: string): Term => ({ value: 0, reason });

function num(v: PyJsonValue | undefined): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new TypeError('not a number');
}

function item(v: PyJsonValue | undefined, i: number): PyJsonValue {
  if (Array.isArray(v)) {
    if (i >= v.length) throw new RangeError('index out of range');
    return v[i] ?? null;
  }
  if (typeof v === 'string') {
    const chars = Array.from(v);
    if (i >= chars.length) throw new RangeError('index out of range');
    return chars[i] ?? '';
  }
  if (isPyDict(v)) throw new RangeError('KeyError');
  throw new TypeError('not subscriptable');
}

function field(pred: PyJsonValue, key: string): PyJsonValue {
  if (!isPyDict(pred)) throw new TypeError('the answer is not an object');
  if (!(key in pred)) throw new RangeError(`the answer has no "${key}"`);
  return pred[key] ?? null;
}

function why(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** R_iou: inclusive IoU(pred box, GT box) > threshold; any malformed input gives 0. */
export function iouTerm(pred: PyJsonValue, gt: PyJsonObject, threshold: number): Term {
  try {
    const v = inclusiveBoxIou(field(pred, 'bbox_2d'), gt['bbox_2d'] ?? null);
    const value = v > threshold ? 1 : 0;
    return { value, reason: `R_iou ${value}: box IoU ${v.toFixed(4)} ${value ? '>' : '<='} ${threshold}` };
  } catch (e) {
    return zero(`R_iou 0: ${why(e)}`);
  }
}

/** R_box: mean |Δ| of the four box coordinates < threshold. */
export function boxTerm(pred: PyJsonValue, gt: PyJsonObject, threshold: number): Term {
  try {
    const b1 = field(pred, 'bbox_2d');
    const b2 = gt['bbox_2d'] ?? null;
    let sum = 0;
    for (let i = 0; i < 4; i++) sum += Math.abs(num(item(b1, i)) - num(item(b2, i)));
    const l1 = sum / 4;
    const value = l1 < threshold ? 1 : 0;
    return {
      value,
      reason: `R_box ${value}: mean box L1 ${l1.toFixed(2)} ${value ? '<' : '>='} ${threshold}`,
    };
  } catch (e) {
    return zero(`R_box 0: ${why(e)}`);
  }
}

/** R_point: predicted point inside the PREDICTED box (inclusive) and within the distance of the GT point. */
export function pointTerm(pred: PyJsonValue, gt: PyJsonObject, threshold: number): Term {
  try {
    const p = field(pred, 'point_2d');
    const b = field(pred, 'bbox_2d');
    // Python's chained `b0 <= p0 <= b2 and b1 <= p1 <= b3`, evaluated left to right, short-circuit.
    const inside =
      num(item(b, 0)) <= num(item(p, 0)) &&
      num(item(p, 0)) <= num(item(b, 2)) &&
      num(item(b, 1)) <= num(item(p, 1)) &&
      num(item(p, 1)) <= num(item(b, 3));
    if (!inside) return zero('R_point 0: the predicted point is outside the predicted box');
    const g = gt['point_2d'] ?? null;
    const d = Math.sqrt((num(item(p, 0)) - num(item(g, 0))) ** 2 + (num(item(p, 1)) - num(item(g, 1))) ** 2);
    const value = d < threshold ? 1 : 0;
    return {
      value,
      reason: `R_point ${value}: distance to the GT point ${d.toFixed(2)} ${value ? '<' : '>='} ${threshold}`,
    };
  } catch (e) {
    return zero(`R_point 0: ${why(e)}`);
  }
}

/** The GT JSON string (or object) as a dict of frames; null when it is not a JSON object. */
export function parseGroundTruth(gt: string | SampleGroundTruth): PyJsonObject | null {
  if (typeof gt !== 'string') return gt as unknown as PyJsonObject;
  const parsed = pyJsonLoads(gt);
  return parsed.ok && isPyDict(parsed.value) ? parsed.value : null;
}

/**
 * The four outcome terms (spec §5.5). All are 0 when the keyframe or the answer JSON cannot be
 * parsed or the keyframe is not a key of the ground truth; otherwise each term is computed on its
 * own, so a malformed field zeroes only the terms that need it (e.g. a misspelt `point_2_d` keeps
 * R_iou, R_box and R_frame). R_frame is the chosen frame's `max_conn_area`.
 */
export function outcomeTerms(
  response: string,
  groundTruth: PyJsonObject,
  settings: {
    iouThreshold: number;
    boxL1Threshold: number;
    pointDistanceThreshold: number;
    keyframeMatch: KeyframeMatch;
  },
): OutcomeTerms {
  const keyframe = extractKeyframeId(response, settings.keyframeMatch);
  const all0 = (reason: string): OutcomeTerms => ({
    iou: zero(`R_iou 0: ${reason}`),
    box: zero(`R_box 0: ${reason}`),
    point: zero(`R_point 0: ${reason}`),
    frame: zero(`R_frame 0: ${reason}`),
    keyframe,
  });
  if (keyframe === null) return all0('no <keyframe> N </keyframe> in the response');
  const answer = extractAnswer(response);
  if (answer.kind === 'missing') return all0('no single-line <answer>…</answer> in the response');
  if (answer.kind === 'invalid-json') return all0(`the answer is not JSON (${answer.error})`);
  if (!Object.prototype.hasOwnProperty.call(groundTruth, keyframe)) {
    const keys = Object.keys(groundTruth);
    return all0(
      `keyframe ${keyframe} is not a ground-truth frame [${keys.join(', ')}] (target absent or frame not sampled)`,
    );
  }
  const gtv = groundTruth[keyframe];
  if (!isPyDict(gtv)) return all0(`the ground truth of frame ${keyframe} is not an object`);
  const pred = answer.value;
  const mca = 'max_conn_area' in gtv ? gtv['max_conn_area'] : 0;
  const frame: Term = isPyNumber(mca)
    ? { value: Number(mca), reason: `R_frame ${Number(mca).toFixed(4)}: max_conn_area of frame ${keyframe}` }
    : zero(`R_frame 0: frame ${keyframe} has no numeric max_conn_area`);
  return {
    iou: iouTerm(pred, gtv, settings.iouThreshold),
    box: boxTerm(pred, gtv, settings.boxL1Threshold),
    point: pointTerm(pred, gtv, settings.pointDistanceThreshold),
    frame,
    keyframe,
  };
}

/** `response.count('<search>')`, the logged `num_search`. */
export function numSearch(response: string): number {
  return pyCount(response, '<search>');
}

/**
 * The in-training validation metric `acc` (spec §5.7, `okvos_val.py`): the RAW inclusive box IoU
 * between the answer and the ground truth of the LAST keyframe (videos), or the sample's own
 * ground truth object (images: `forVideo` false). 0 whenever anything is missing or malformed.
 */
export function validationAccuracy(
  response: string,
  groundTruth: string | SampleGroundTruth,
  forVideo = true,
): Term {
  const gt = parseGroundTruth(groundTruth);
  if (gt === null) return zero('acc 0: the ground truth is not a JSON object');
  let target: PyJsonValue | undefined = gt;
  if (forVideo) {
    const frame = extractKeyframeId(response, 'last');
    if (frame === null) return zero('acc 0: no <keyframe> N </keyframe> in the response');
    if (!Object.prototype.hasOwnProperty.call(gt, frame))
      return zero(`acc 0: keyframe ${frame} is not a ground-truth frame`);
    target = gt[frame];
  }
  const answer = extractAnswer(response);
  if (answer.kind !== 'json') return zero('acc 0: no parseable single-line answer');
  try {
    if (!isPyDict(target)) throw new TypeError('the ground truth entry is not an object');
    const v = inclusiveBoxIou(field(answer.value, 'bbox_2d'), target['bbox_2d'] ?? null);
    return { value: v, reason: `acc ${v.toFixed(4)}: raw box IoU at the last keyframe` };
  } catch (e) {
    return zero(`acc 0: ${why(e)}`);
  }
}
