/**
 * Parsing of assistant turns and final answers with the reference's exact first-match /
 * last-match rules (spec §3.4, §4). Every function here takes arbitrary text and never throws.
 *
 * The reference's lazy DOTALL regexes are evaluated by the linear-time scanners of `scan.ts`
 * (same matches, no catastrophic backtracking); the remaining regex mirrors Python's character
 * classes (`\s` and `\d` are Unicode-aware; the `u` flag makes positions code points). JSON is
 * decoded with Python's rules (`pyjson.ts`), so NaN/Infinity, error messages and positions match.
 */
import { isPyDict, isPyNumber, pyJsonLoads, type PyJsonValue } from '../pycompat/pyjson.js';
import { pyStr, pyRepr } from '../pycompat/pyrepr.js';
import { PY_DIGIT_CLASS, PY_REGEX_WS_CLASS, pyInt, pyStrip } from '../pycompat/text.js';
import { firstKeyframeContent, firstOneLineAnswer, searchBlocks } from './scan.js';
import { SEARCH_TOOL_NAMES, type SearchToolName } from './tags.js';

const WS = PY_REGEX_WS_CLASS;
const D = PY_DIGIT_CLASS;

/** `re.search(r'<keyframe>\s*(\d+)\s*</keyframe>', response, re.S)` (rewards, SAM2 prompting) */
const KEYFRAME_DIGITS = new RegExp(`<keyframe>${WS}*(${D}+)${WS}*</keyframe>`, 'u');
const KEYFRAME_DIGITS_ALL = new RegExp(KEYFRAME_DIGITS.source, 'gu');

/** Observation strings of the reference tools, verbatim (they are part of the trained context). */
export const ToolMessages = {
  noValidTool: 'No valid tool found for action',
  missingParameters: (missing: readonly string[]) => `Missing parameters: ${missing.join(', ')}`,
  invalidJson: (pythonError: string) => `Invalid JSON format in search query: ${pythonError}`,
  invalidToolName: (got: string) =>
    `Invalid 'name' parameter. Expected one of ${pyRepr([...SEARCH_TOOL_NAMES])}, but got '${got}'.`,
  keyframeNotAvailable: (available: readonly number[]) => `Frame index not in ${pyRepr([...available])}.`,
  keyframeInvalidFormat: 'Invalid keyframe selection format. Please use: <keyframe> integer </keyframe>',
  keyframeNoImages: 'No images available in the environment.',
  keyframeHighRes: 'Here is the high-res version of your selected frame: <image>',
  emptySearchQuery: '<information>Empty search query provided.</information>',
  /** Ours: where the reference's tool crashes on a JSON value that is not an object. */
  notAnObject: (got: string) =>
    `Invalid search action: expected a JSON object {"name": ..., "query": ...}, but got ${got}.`,
} as const;

/** A search action after parsing: either a call to run or the error observation to return. */
export type SearchAction =
  | { kind: 'call'; tool: SearchToolName; query: string; queryValue: PyJsonValue; payload: string }
  | { kind: 'error'; observation: string; payload: string };

/**
 * The search tool's `parse_action` + argument checks: applies when the action contains
 * `</search>` and at least one complete `<search>…</search>` block; uses the LAST block.
 * Returns `null` when the search tool would not accept the action at all.
 *
 * A non-string `query` is passed on as its Python `str()` (the reference forwards it untyped).
 * A JSON value that is not an object gets the reference's "Missing parameters" message where
 * Python's `in` test reports one missing, and otherwise (where the reference's tool crashes) an
 * explicit "expected a JSON object" observation.
 */
export function parseSearchAction(action: string): SearchAction | null {
  if (!action.includes('</search>')) return null;
  const blocks = searchBlocks(action);
  const last = blocks[blocks.length - 1];
  if (last === undefined) return null;
  const payload = pyStrip(last);
  const parsed = pyJsonLoads(payload);
  if (!parsed.ok)
    return { kind: 'error', observation: ToolMessages.invalidJson(parsed.error.message), payload };
  const value = parsed.value;
  // Python's `'query' not in value`: key test on a dict, element test on a list, substring test on
  // a string; on a number, bool or null the reference raises (its tool call crashes).
  const has = (key: string): boolean | null => {
    if (isPyDict(value)) return key in value;
    if (Array.isArray(value)) return value.some((el) => el === key);
    if (typeof value === 'string') return value.includes(key);
    return null;
  };
  const hasQuery = has('query');
  const hasName = has('name');
  if (hasQuery === null || hasName === null) {
    return { kind: 'error', observation: ToolMessages.notAnObject(pyRepr(value)), payload };
  }
  const missing: string[] = [];
  if (!hasQuery) missing.push('query');
  if (!hasName) missing.push('name');
  if (missing.length > 0)
    return { kind: 'error', observation: ToolMessages.missingParameters(missing), payload };
  if (!isPyDict(value))
    return { kind: 'error', observation: ToolMessages.notAnObject(pyRepr(value)), payload };
  const name = value['name'] ?? null;
  const queryValue = value['query'] ?? null;
  if (typeof name !== 'string' || !(SEARCH_TOOL_NAMES as readonly string[]).includes(name)) {
    return { kind: 'error', observation: ToolMessages.invalidToolName(pyStr(name)), payload };
  }
  return { kind: 'call', tool: name as SearchToolName, query: pyStr(queryValue), queryValue, payload };
}

/** The keyframe tool's `parse_action`: FIRST `<keyframe>…</keyframe>`, content must be a Python int. */
export type KeyframeAction = { kind: 'select'; frameId: number } | { kind: 'invalid'; observation: string };

/** Returns `null` when the action has no `</keyframe>` (not a keyframe action). */
export function parseKeyframeAction(action: string): KeyframeAction | null {
  if (!action.includes('</keyframe>')) return null;
  const content = firstKeyframeContent(action);
  const value = content === null ? null : pyInt(content);
  if (value === null) return { kind: 'invalid', observation: ToolMessages.keyframeInvalidFormat };
  return { kind: 'select', frameId: value };
}

/**
 * The keyframe tool's observation for a valid selection. `availableFrames` are the integer stems of
 * the sampled frames' file names, in prompt order.
 */
export function keyframeObservation(
  frameId: number,
  availableFrames: readonly number[],
): { ok: true; observation: string } | { ok: false; observation: string } {
  if (availableFrames.length === 0) return { ok: false, observation: ToolMessages.keyframeNoImages };
  if (!availableFrames.includes(frameId)) {
    return { ok: false, observation: ToolMessages.keyframeNotAvailable(availableFrames) };
  }
  return { ok: true, observation: ToolMessages.keyframeHighRes };
}

/** Where the tool server sends an action (spec §3.4, tools registered as `search,keyframe`). */
export type RoutedAction =
  | { tool: 'search'; action: SearchAction }
  | { tool: 'keyframe'; frameId: number }
  | { tool: 'none'; invalidReason: typeof ToolMessages.noValidTool };

/**
 * Route an action like the tool server: the search tool first (it accepts any text with a complete
 * `<search>` block and `</search>`), then the keyframe tool (valid int only), else no tool:
 * empty observation, invalid, not done.
 */
export function routeAction(action: string): RoutedAction {
  const search = parseSearchAction(action);
  if (search !== null) return { tool: 'search', action: search };
  const keyframe = parseKeyframeAction(action);
  if (keyframe !== null && keyframe.kind === 'select') return { tool: 'keyframe', frameId: keyframe.frameId };
  return { tool: 'none', invalidReason: ToolMessages.noValidTool };
}

/** Which `<keyframe>` match a consumer uses: training reward and SAM2 take the first, validation the last. */
export type KeyframeMatch = 'first' | 'last';

/**
 * The keyframe id as the reward reads it: `<keyframe>\s*(\d+)\s*</keyframe>` over the whole decoded
 * response, as the digit STRING (the reward looks it up verbatim among the ground-truth keys, so
 * `05` does not match `5`). `null` when there is none.
 */
export function extractKeyframeId(response: string, which: KeyframeMatch = 'first'): string | null {
  if (which === 'first') {
    const m = KEYFRAME_DIGITS.exec(response);
    return m === null ? null : pyStrip(m[1] ?? '');
  }
  let last: string | null = null;
  for (const m of response.matchAll(KEYFRAME_DIGITS_ALL)) last = pyStrip(m[1] ?? '');
  return last;
}

/** The final answer as the reward reads it: first single-line `<answer>…</answer>`, stripped, `json.loads`. */
export type AnswerExtraction =
  | { kind: 'missing' }
  | { kind: 'invalid-json'; text: string; error: string }
  | { kind: 'json'; text: string; value: PyJsonValue };

export function extractAnswer(response: string): AnswerExtraction {
  const raw = firstOneLineAnswer(response);
  if (raw === null) return { kind: 'missing' };
  const text = pyStrip(raw);
  const parsed = pyJsonLoads(text);
  if (!parsed.ok) return { kind: 'invalid-json', text, error: parsed.error.message };
  return { kind: 'json', text, value: parsed.value };
}

/** A box `[x1, y1, x2, y2]` and a point `[x, y]` in the policy's coordinate frame. */
export type Box = readonly [number, number, number, number];
export type Point = readonly [number, number];

/** The prompt for segmentation: keyframe id, box and point, each possibly absent. */
export interface FinalAnswer {
  /** Keyframe as an integer frame id (first match), or null. */
  keyframe: number | null;
  box: Box | null;
  point: Point | null;
  /** Human-readable reasons for anything missing. */
  problems: string[];
}

function numberList(v: PyJsonValue | undefined, n: number): number[] | null {
  if (!Array.isArray(v) || v.length < n) return null;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = v[i];
    if (!isPyNumber(x)) return null;
    out.push(Number(x));
  }
  return out;
}

/**
 * The segmentation prompt as `sam2_okvos.py` reads it: first keyframe, first single-line answer;
 * `bbox_2d` and `point_2d` taken when they hold numbers (extra elements ignored, as numpy would
 * fail only on fewer). Never throws.
 */
export function parseFinalAnswer(response: string): FinalAnswer {
  const problems: string[] = [];
  const fidText = extractKeyframeId(response, 'first');
  const keyframe = fidText === null ? null : pyInt(fidText);
  if (fidText === null) problems.push('no <keyframe> N </keyframe> in the response');
  const answer = extractAnswer(response);
  let box: Box | null = null;
  let point: Point | null = null;
  if (answer.kind === 'missing') problems.push('no single-line <answer>…</answer> in the response');
  else if (answer.kind === 'invalid-json') problems.push(`the answer is not JSON (${answer.error})`);
  else if (!isPyDict(answer.value)) problems.push('the answer JSON is not an object');
  else {
    const b = numberList(answer.value['bbox_2d'], 4);
    const p = numberList(answer.value['point_2d'], 2);
    if (b === null) problems.push('the answer has no "bbox_2d" with 4 numbers');
    else box = [b[0] ?? 0, b[1] ?? 0, b[2] ?? 0, b[3] ?? 0];
    if (p === null) problems.push('the answer has no "point_2d" with 2 numbers');
    else point = [p[0] ?? 0, p[1] ?? 0];
  }
  return { keyframe, box, point, problems };
}

/** The kind of an assistant turn, by the stop string or answer tag it ends with. */
export type TurnKind = 'search' | 'keyframe' | 'answer' | 'other';

/**
 * The turn grammar: `<thinking>…</thinking>` then exactly one of `<search>{json}</search>`,
 * `<keyframe> N </keyframe>` or `<answer>{json}</answer>`. Classifies a single generated turn by
 * what it ends with (generation stops right after `</search>` / `</keyframe>`; an answer turn ends
 * at end-of-sequence), and says whether it has the `<thinking>` part.
 */
export function classifyTurn(turn: string): { kind: TurnKind; hasThinking: boolean } {
  const trimmed = pyStrip(turn);
  const open = trimmed.indexOf('<thinking>');
  const hasThinking = open >= 0 && trimmed.indexOf('</thinking>', open + 10) >= 0;
  if (trimmed.endsWith('</search>')) return { kind: 'search', hasThinking };
  if (trimmed.endsWith('</keyframe>')) return { kind: 'keyframe', hasThinking };
  if (firstOneLineAnswer(trimmed) !== null) return { kind: 'answer', hasThinking };
  return { kind: 'other', hasThinking };
}
