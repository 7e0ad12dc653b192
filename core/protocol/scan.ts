/**
 * Linear-time equivalents of the reference's reward regexes.
 *
 * The reference matches DOTALL lazy patterns such as
 * `<thinking>.*?</thinking>\s*<search>.*?</search>` with a backtracking engine. On adversarial text
 * (thousands of `<thinking>` with no closing partner) that is quadratic or worse, in Python and in
 * JavaScript alike, and a reward must finish on any text. Each function below returns exactly what
 * the regex returns (same match, same groups) in one forward pass; the argument for each is in its
 * comment, and the unit tests compare them with the literal regexes on random tag soup.
 *
 * The key fact used throughout: the separators are either whitespace runs followed by `<` or `"`
 * (so a greedy `\s*` can only match the maximal run), or lazy `.*?` whose failure for one start
 * position implies failure for every later one.
 */
import { PY_DIGIT_CLASS, pyStrip } from '../pycompat/text.js';

/** `\s` of the `regex` module (all BMP). */
const REGEX_WS = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005,
  0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** End of the maximal `\s*` run starting at `i` (UTF-16 index; all `\s` characters are BMP). */
function skipWs(s: string, i: number): number {
  while (i < s.length && REGEX_WS.has(s.charCodeAt(i))) i++;
  return i;
}

const DIGIT = new RegExp(`^${PY_DIGIT_CLASS}$`, 'u');

/** End of the maximal `\d*` run at `i` (digits may be astral: step by code point). */
function skipDigits(s: string, i: number): number {
  for (;;) {
    const cp = s.codePointAt(i);
    if (cp === undefined || !DIGIT.test(String.fromCodePoint(cp))) return i;
    i += cp > 0xffff ? 2 : 1;
  }
}

/** Text at `i` is `lit`? */
function at(s: string, i: number, lit: string): boolean {
  return s.startsWith(lit, i);
}

/**
 * If `</thinking>\s*{tag}` starts at `b`, the index just after `{tag}`; else -1.
 * `\s*` is followed by `<`, which is not whitespace, so it is the maximal run.
 */
function closeThenTag(s: string, b: number, tag: string): number {
  const t = skipWs(s, b + '</thinking>'.length);
  return at(s, t, tag) ? t + tag.length : -1;
}

/**
 * `re.search(r"<thinking>.*?</thinking>\s*<keyframe>\s*(\d+)\s*</keyframe>", s, re.S)` is not None.
 *
 * The tail after `</thinking>` is deterministic (whitespace, digits and `<` are disjoint), so a
 * match exists iff some `</thinking>` at b with that tail lies at or after the first `<thinking>`
 * plus its length. Tails of different b are disjoint, so the scan is linear.
 */
export function hasThinkingThenKeyframe(s: string): boolean {
  const a = s.indexOf('<thinking>');
  if (a < 0) return false;
  for (let b = s.indexOf('</thinking>', a + 10); b >= 0; b = s.indexOf('</thinking>', b + 1)) {
    const k = closeThenTag(s, b, '<keyframe>');
    if (k < 0) continue;
    const d0 = skipWs(s, k);
    const d1 = skipDigits(s, d0);
    if (d1 === d0) continue;
    if (at(s, skipWs(s, d1), '</keyframe>')) return true;
  }
  return false;
}

/**
 * Group 1 of `re.search(r"<thinking>.*?</thinking>\s*<answer>\s*(.*?)\s*</answer>", s, re.S)`,
 * stripped (the reference strips it), or null when there is no match.
 *
 * For a `</thinking>` at b followed by `\s*<answer>`, the rest matches iff a `</answer>` follows,
 * and the group is the text up to the FIRST `</answer>` minus the whitespace around it. Validity of
 * b does not depend on which `<thinking>` starts the match, so the match starts at the first
 * `<thinking>` and uses the first valid b after it.
 */
export function firstThinkingThenAnswer(s: string): string | null {
  const a = s.indexOf('<thinking>');
  if (a < 0) return null;
  for (let b = s.indexOf('</thinking>', a + 10); b >= 0; b = s.indexOf('</thinking>', b + 1)) {
    const g = closeThenTag(s, b, '<answer>');
    if (g < 0) continue;
    const c = s.indexOf('</answer>', g);
    if (c < 0) return null;
    return pyStrip(s.slice(g, c));
  }
  return null;
}

/**
 * `len(re.findall(r"<thinking>.*?</thinking>\s*<search>.*?</search>", s, re.S))`.
 *
 * From a start `<thinking>` at a, the lazy parts take the first `</thinking>` followed by
 * `\s*<search>` and then the first `</search>`; if that `</search>` is missing, every later start
 * fails too, so the count stops. Matches never overlap, and the scan only moves forward.
 */
export function countThinkingThenSearch(s: string): number {
  let count = 0;
  let pos = 0;
  for (;;) {
    const a = s.indexOf('<thinking>', pos);
    if (a < 0) return count;
    let searchEnd = -1;
    for (let b = s.indexOf('</thinking>', a + 10); b >= 0; b = s.indexOf('</thinking>', b + 1)) {
      searchEnd = closeThenTag(s, b, '<search>');
      if (searchEnd >= 0) break;
    }
    if (searchEnd < 0) return count;
    const c = s.indexOf('</search>', searchEnd);
    if (c < 0) return count;
    count++;
    pos = c + '</search>'.length;
  }
}

/**
 * Group 1 of every match of `\{"name":\s*"text_search".*?"query":\s*"(.*?)"\}` (DOTALL), in order:
 * the raw (not JSON-unescaped) query strings of the `text_search` calls, as the IGR reads them.
 *
 * From a start at a, the lazy `.*?` takes the first `"query":\s*"` after `"text_search"`, and the
 * group runs to the first `"}` after the opening quote; if there is no `"}`, no later start can
 * match either.
 */
export function textSearchQueries(s: string, limit = Infinity): string[] {
  const out: string[] = [];
  let pos = 0;
  while (out.length < limit) {
    let a = s.indexOf('{"name":', pos);
    let afterName = -1;
    while (a >= 0) {
      const t = skipWs(s, a + '{"name":'.length);
      if (at(s, t, '"text_search"')) {
        afterName = t + '"text_search"'.length;
        break;
      }
      a = s.indexOf('{"name":', a + 1);
    }
    if (afterName < 0) return out;
    let g0 = -1;
    for (let q = s.indexOf('"query":', afterName); q >= 0; q = s.indexOf('"query":', q + 1)) {
      const t = skipWs(s, q + '"query":'.length);
      if (at(s, t, '"')) {
        g0 = t + 1;
        break;
      }
    }
    if (g0 < 0) return out;
    const c = s.indexOf('"}', g0);
    if (c < 0) return out;
    out.push(s.slice(g0, c));
    pos = c + 2;
  }
  return out;
}

/** Every `<search>…</search>` block's inner text (`re.findall(r"<search>(.*?)</search>", s, re.S)`). */
export function searchBlocks(s: string): string[] {
  const out: string[] = [];
  let pos = 0;
  for (;;) {
    const a = s.indexOf('<search>', pos);
    if (a < 0) return out;
    const c = s.indexOf('</search>', a + 8);
    if (c < 0) return out;
    out.push(s.slice(a + 8, c));
    pos = c + 9;
  }
}

/**
 * Group 1 of `re.search(r"<keyframe>\s*(.*?)\s*</keyframe>", s, re.DOTALL)`, stripped, or null:
 * the text between the first `<keyframe>` and the first `</keyframe>` after it.
 */
export function firstKeyframeContent(s: string): string | null {
  const a = s.indexOf('<keyframe>');
  if (a < 0) return null;
  const c = s.indexOf('</keyframe>', a + 10);
  if (c < 0) return null;
  return pyStrip(s.slice(a + 10, c));
}

/**
 * Group 1 of `re.search(r'<answer>(.*?)</answer>', s)` (no DOTALL: `.` excludes only `\n`), or null:
 * the first `<answer>` whose line still holds a `</answer>` after it, up to that `</answer>`.
 */
export function firstOneLineAnswer(s: string): string | null {
  let nextClose = -2;
  let nextNewline = -2;
  for (let a = s.indexOf('<answer>'); a >= 0; a = s.indexOf('<answer>', a + 1)) {
    const g = a + 8;
    if (nextClose !== -1 && nextClose < g) nextClose = s.indexOf('</answer>', g);
    if (nextClose < 0) return null;
    if (nextNewline !== -1 && nextNewline < g) nextNewline = s.indexOf('\n', g);
    if (nextNewline < 0 || nextClose < nextNewline) return s.slice(g, nextClose);
  }
  return null;
}
