/**
 * The Seg-Zero variant (spec §11): a single `<think>…</think><answer>{…}</answer>` turn with one box
 * and two points in 840×840 pixel space, and its five 0/1 reward terms (§11.3), in both the
 * "strict" (`seg_restrict.py`) and the "soft" (`seg.py`) flavours.
 *
 * Ground truth comes as the reference's strings `<box>(x1,y1),(x2,y2)</box>` and
 * `<points>(x1,y1),(x2,y2)</points>`. Nothing here throws, whatever the text.
 */
import { isPyDict, pyJsonLoads, type PyJsonObject, type PyJsonValue } from '../pycompat/pyjson.js';
import { PY_DIGIT_CLASS, PY_ISSPACE_CLASS, pyInt, pyStrip } from '../pycompat/text.js';

/** The user-turn template (paraphrased wording; tags and the JSON example are exact). */
export function segZeroUserPrompt(query: string): string {
  let q = query.toLowerCase();
  if (q.endsWith('.')) q = q.slice(0, -1);
  return (
    `Please find '${q}' with bbox and points. ` +
    'Compare the difference between objects and find the most closely matched one. ' +
    'Output the thinking process in <think> </think> and the final answer in <answer> </answer> tags. ' +
    'Output one bbox and the points of the two largest inscribed circles inside the object, in JSON format. ' +
    "i.e., <think> thinking process here </think><answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}</answer>"
  );
}

export type SegZeroFormat = 'strict' | 'soft';

const WS = PY_ISSPACE_CLASS;
const D = PY_DIGIT_CLASS;
/** `re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", s, re.DOTALL)` */
const THINKING_FORMAT = new RegExp(`^<think>[\\s\\S]*?</think>${WS}*<answer>[\\s\\S]*?</answer>$`, 'u');
/** `re.search(r'{[^}]+}', s)`: the first brace pair with no `}` inside (so no nesting). */
const FIRST_JSON = /\{[^}]+\}/u;
const GT_BOX = new RegExp(`<box>\\((${D}+),(${D}+)\\),\\((${D}+),(${D}+)\\)</box>`, 'u');
const GT_POINTS = new RegExp(`<points>\\((${D}+),(${D}+)\\),\\((${D}+),(${D}+)\\)</points>`, 'u');

/** The five terms; each is 0 or 1 and the total is their sum in [0, 5]. */
export interface SegZeroReward {
  thinkingFormat: number;
  segmentationFormat: number;
  iou: number;
  boxL1: number;
  pointL1: number;
  total: number;
  reasons: string[];
}

/** Thresholds of the Seg-Zero terms (840-space pixels). */
export interface SegZeroSettings {
  format: SegZeroFormat;
  /** @default 0.5 */
  iouThreshold: number;
  /** @default 10 */
  boxL1Threshold: number;
  /** @default 100 */
  pointDistanceThreshold: number;
}

export const SEGZERO_DEFAULTS: SegZeroSettings = {
  format: 'soft',
  iouThreshold: 0.5,
  boxL1Threshold: 10,
  pointDistanceThreshold: 100,
};

/** Python's `len(x)` for a decoded JSON value, or null where Python raises. */
function pyLenOf(v: PyJsonValue | undefined): number | null {
  if (typeof v === 'string') return Array.from(v).length;
  if (Array.isArray(v)) return v.length;
  if (isPyDict(v)) return Object.keys(v).length;
  return null;
}

/** A Python number for arithmetic (bool is an int); throws like Python on anything else. */
function num(v: PyJsonValue | undefined): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new TypeError('not a number');
}

/** Python `int(x)` for a JSON value: truncates floats, parses strings; throws where Python raises. */
function pyIntOf(v: PyJsonValue | undefined): number {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TypeError('cannot convert float to int');
    return Math.trunc(v);
  }
  if (typeof v === 'string') {
    const i = pyInt(v);
    if (i === null) throw new TypeError('invalid literal for int()');
    return i;
  }
  throw new TypeError('int() argument must be a number or string');
}

/** Index into a Python sequence (`list` or `str`); throws like Python when out of range. */
function at(v: PyJsonValue | undefined, i: number): PyJsonValue {
  if (Array.isArray(v)) {
    if (i >= v.length) throw new RangeError('list index out of range');
    return v[i] ?? null;
  }
  if (typeof v === 'string') {
    const chars = Array.from(v);
    if (i >= chars.length) throw new RangeError('string index out of range');
    return chars[i] ?? '';
  }
  throw new TypeError('not subscriptable');
}

/** Python `a <= b` between two values that must both be numbers here. */
function le(a: PyJsonValue, b: PyJsonValue): boolean {
  return num(a) <= num(b);
}

/** Python's two-argument `max`: keeps the first unless the second is greater (NaN-faithful). */
export function pyMax(a: number, b: number): number {
  return b > a ? b : a;
}
/** Python's two-argument `min`: keeps the first unless the second is smaller (NaN-faithful). */
export function pyMin(a: number, b: number): number {
  return b < a ? b : a;
}

/** `iou(box1, box2)` with the inclusive +1 convention; throws where the reference would. */
export function inclusiveBoxIou(b1: PyJsonValue, b2: PyJsonValue): number {
  const ix1 = pyMax(num(at(b1, 0)), num(at(b2, 0)));
  const iy1 = pyMax(num(at(b1, 1)), num(at(b2, 1)));
  const ix2 = pyMin(num(at(b1, 2)), num(at(b2, 2)));
  const iy2 = pyMin(num(at(b1, 3)), num(at(b2, 3)));
  const inter = ix1 < ix2 && iy1 < iy2 ? (ix2 - ix1 + 1) * (iy2 - iy1 + 1) : 0;
  const a1 = (num(at(b1, 2)) - num(at(b1, 0)) + 1) * (num(at(b1, 3)) - num(at(b1, 1)) + 1);
  const a2 = (num(at(b2, 2)) - num(at(b2, 0)) + 1) * (num(at(b2, 3)) - num(at(b2, 1)) + 1);
  const union = a1 + a2 - inter;
  if (union === 0) throw new RangeError('float division by zero');
  return inter / union;
}

function firstJson(predict: string): { ok: true; data: PyJsonValue } | { ok: false; reason: string } {
  const m = FIRST_JSON.exec(predict);
  if (m === null) return { ok: false, reason: 'no {…} object in the response' };
  const parsed = pyJsonLoads(m[0]);
  if (!parsed.ok) return { ok: false, reason: `the first {…} is not JSON (${parsed.error.message})` };
  return { ok: true, data: parsed.value };
}

function keysOf(data: PyJsonValue): string[] {
  // `data.keys()`: only dicts have it; anything else raises inside the reference's try.
  if (!isPyDict(data)) throw new TypeError("object has no attribute 'keys'");
  return Object.keys(data);
}

function bboxKey(data: PyJsonObject, format: SegZeroFormat): string | null {
  if (format === 'strict') return 'bbox';
  return Object.keys(data).find((k) => k.toLowerCase().includes('bbox')) ?? null;
}

function segmentationFormatOk(predict: string, format: SegZeroFormat): { ok: boolean; reason: string } {
  const j = firstJson(predict);
  if (!j.ok) return { ok: false, reason: j.reason };
  const data = j.data;
  try {
    if (format === 'strict') {
      if (!isPyDict(data)) {
        // `key not in data` on a list/str is membership, then `data['bbox']` raises: format 0.
        return { ok: false, reason: 'the answer JSON is not an object' };
      }
      for (const key of ['bbox', 'points_1', 'points_2']) {
        if (!(key in data)) return { ok: false, reason: `the answer has no "${key}"` };
      }
      const bbox = data['bbox'];
      if (!Array.isArray(bbox) || bbox.length !== 4)
        return { ok: false, reason: '"bbox" is not a list of 4' };
      for (const key of ['points_1', 'points_2']) {
        const p = data[key];
        if (!Array.isArray(p) || p.length !== 2) return { ok: false, reason: `"${key}" is not a list of 2` };
      }
      return { ok: true, reason: 'strict format: bbox[4], points_1[2], points_2[2]' };
    }
    let bKey: string | null = null;
    const pointKeys: string[] = [];
    for (const key of keysOf(data)) {
      if (key.toLowerCase().includes('bbox') && bKey === null) bKey = key;
      else if (key.toLowerCase().includes('point')) pointKeys.push(key);
    }
    if (bKey === null || pointKeys.length < 2)
      return { ok: false, reason: 'needs a bbox key and two point keys' };
    const obj = data as PyJsonObject;
    const bl = pyLenOf(obj[bKey]);
    if (bl === null) throw new TypeError('len() of a number');
    if (bl !== 4) return { ok: false, reason: `"${bKey}" does not have 4 elements` };
    for (const key of pointKeys.slice(0, 2)) {
      const pl = pyLenOf(obj[key]);
      if (pl === null) throw new TypeError('len() of a number');
      if (pl !== 2) return { ok: false, reason: `"${key}" does not have 2 elements` };
    }
    return { ok: true, reason: 'soft format: a bbox key of 4 and two point keys of 2' };
  } catch {
    return { ok: false, reason: 'the answer JSON has the wrong shape' };
  }
}

function gtBox(groundTruth: string): number[] | null {
  const m = GT_BOX.exec(pyStrip(groundTruth));
  if (m === null) return null;
  return [1, 2, 3, 4].map((i) => pyInt(m[i] ?? '') ?? 0);
}

function gtPoints(groundTruth: string): number[][] | null {
  const m = GT_POINTS.exec(groundTruth);
  if (m === null) return null;
  const v = [1, 2, 3, 4].map((i) => pyInt(m[i] ?? '') ?? 0);
  return [
    [v[0] ?? 0, v[1] ?? 0],
    [v[2] ?? 0, v[3] ?? 0],
  ];
}

/** The predicted box under the flavour's key rule, when `len(box) == 4`; throws where Python would. */
function predictedBox(data: PyJsonValue, format: SegZeroFormat): PyJsonValue | null {
  if (!isPyDict(data)) throw new TypeError('not a dict');
  const key = bboxKey(data, format);
  if (key === null) return null;
  if (!(key in data)) throw new RangeError(`KeyError: ${key}`);
  const box = data[key] ?? null;
  const len = pyLenOf(box);
  if (len === null) throw new TypeError('len() of a number');
  return len === 4 ? box : null;
}

function pointDistance(p1: number[][], p2: number[][]): number {
  const d = (a: number[] | undefined, b: number[] | undefined): number =>
    Math.sqrt(((a?.[0] ?? 0) - (b?.[0] ?? 0)) ** 2 + ((a?.[1] ?? 0) - (b?.[1] ?? 0)) ** 2);
  const dist1 = d(p1[0], p2[0]) + d(p1[1], p2[1]);
  const dist2 = d(p1[0], p2[1]) + d(p1[1], p2[0]);
  return Math.min(dist1, dist2) / 2;
}

/**
 * The Seg-Zero reward of one response against a ground-truth string. Never throws: every failure
 * the reference catches gives 0 for that term, with a reason.
 */
export function segZeroReward(
  predict: string,
  groundTruth: string,
  settings: SegZeroSettings = SEGZERO_DEFAULTS,
): SegZeroReward {
  const reasons: string[] = [];
  const thinkingFormat = THINKING_FORMAT.test(predict) ? 1 : 0;
  reasons.push(
    thinkingFormat === 1
      ? 'thinking format: <think>…</think> then <answer>…</answer> and nothing else'
      : 'thinking format 0: the response is not exactly <think>…</think> <answer>…</answer>',
  );
  const seg = segmentationFormatOk(predict, settings.format);
  const segmentationFormat = seg.ok ? 1 : 0;
  reasons.push(`segmentation format ${segmentationFormat}: ${seg.reason}`);

  let iou = 0;
  let boxL1 = 0;
  let pointL1 = 0;
  const gtB = gtBox(groundTruth);
  const gtP = gtPoints(groundTruth);
  const j = firstJson(predict);
  if (!j.ok) reasons.push(`accuracy 0: ${j.reason}`);
  else if (gtB === null) reasons.push('iou/box 0: the ground truth has no <box>(x1,y1),(x2,y2)</box>');
  else {
    try {
      const box = predictedBox(j.data, settings.format);
      if (box !== null) {
        const v = inclusiveBoxIou(box, gtB);
        iou = v > settings.iouThreshold ? 1 : 0;
        reasons.push(`box IoU ${v.toFixed(4)} ${iou ? '>' : '<='} ${settings.iouThreshold}`);
      } else reasons.push('iou 0: no predicted box of 4 elements');
    } catch {
      reasons.push('iou 0: the predicted box is malformed');
    }
    try {
      const box = predictedBox(j.data, settings.format);
      if (box !== null) {
        const l1 =
          (Math.abs(num(at(box, 0)) - (gtB[0] ?? 0)) +
            Math.abs(num(at(box, 1)) - (gtB[1] ?? 0)) +
            Math.abs(num(at(box, 2)) - (gtB[2] ?? 0)) +
            Math.abs(num(at(box, 3)) - (gtB[3] ?? 0))) /
          4;
        boxL1 = l1 < settings.boxL1Threshold ? 1 : 0;
        reasons.push(`box L1 ${l1.toFixed(2)} ${boxL1 ? '<' : '>='} ${settings.boxL1Threshold}`);
      } else reasons.push('box L1 0: no predicted box of 4 elements');
    } catch {
      reasons.push('box L1 0: the predicted box is malformed');
    }
  }
  if (j.ok) {
    try {
      if (gtP === null) throw new TypeError('no ground-truth points');
      const data = j.data;
      if (!isPyDict(data)) throw new TypeError('not a dict');
      // The reference reads the box (soft: first key containing "bbox") but only binds it when it
      // has 4 elements; an unbound box raises at the inside-box test.
      const box = predictedBox(data, settings.format);
      const keys =
        settings.format === 'strict'
          ? ['points_1', 'points_2']
          : Object.keys(data)
              .filter((k) => k.toLowerCase().includes('points'))
              .slice(0, 2);
      if (keys.length === 2) {
        const raw1 = data[keys[0] ?? ''];
        const raw2 = data[keys[1] ?? ''];
        if (raw1 === undefined || raw2 === undefined) throw new RangeError('KeyError');
        const p1 = [pyIntOf(at(raw1, 0)), pyIntOf(at(raw1, 1))];
        const p2 = [pyIntOf(at(raw2, 0)), pyIntOf(at(raw2, 1))];
        if (box === null) throw new TypeError('content_bbox is unbound');
        const inside = (p: number[]): boolean =>
          le(at(box, 0), p[0] ?? 0) &&
          le(p[0] ?? 0, at(box, 2)) &&
          le(at(box, 1), p[1] ?? 0) &&
          le(p[1] ?? 0, at(box, 3));
        if (inside(p1) && inside(p2)) {
          const d = pointDistance([p1, p2], gtP);
          pointL1 = d < settings.pointDistanceThreshold ? 1 : 0;
          reasons.push(
            `point distance ${d.toFixed(2)} ${pointL1 ? '<' : '>='} ${settings.pointDistanceThreshold}`,
          );
        } else reasons.push('point 0: a predicted point lies outside the predicted box');
      } else reasons.push('point 0: fewer than two "points" keys');
    } catch {
      reasons.push('point 0: the points, the box or the ground-truth points are malformed or missing');
    }
  }
  const total = thinkingFormat + segmentationFormat + iou + pointL1 + boxL1;
  return { thinkingFormat, segmentationFormat, iou, boxL1, pointL1, total, reasons };
}
