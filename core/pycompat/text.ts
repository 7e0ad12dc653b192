/**
 * Python string semantics the reference relies on, reproduced for JavaScript strings.
 *
 * The reference (Python) indexes strings by code point, strips with `str.isspace`, rounds half to
 * even and parses `int()` with Unicode digits. JavaScript differs on all four, and the differences
 * change rewards at the edges (a truncated observation, a keyframe written with Arabic-Indic
 * digits), so every place that mirrors Python goes through these helpers.
 */

/**
 * Characters for which Python's `str.isspace()` is true (also what `re`'s `\s` matches on `str`).
 * Unlike JavaScript's `\s` it includes U+001C–U+001F and U+0085 and excludes U+FEFF.
 */
export const PY_ISSPACE_CLASS =
  '[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';

/**
 * What `\s` matches in the third-party `regex` module (used by the Seg-ReSearch reward manager and
 * tools): the Unicode White_Space set, i.e. {@link PY_ISSPACE_CLASS} without U+001C–U+001F.
 */
export const PY_REGEX_WS_CLASS =
  '[\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';

/** What `\d` matches in Python regexes on `str`: any Unicode decimal digit (needs the `u` flag). */
export const PY_DIGIT_CLASS = '\\p{Nd}';

const ISSPACE = new RegExp(`^${PY_ISSPACE_CLASS}$`, 'u');
const LEADING_SPACE = new RegExp(`^${PY_ISSPACE_CLASS}+`, 'u');
const TRAILING_SPACE = new RegExp(`${PY_ISSPACE_CLASS}+$`, 'u');

/** Python `str.isspace()` for one character. */
export function isPySpace(ch: string): boolean {
  return ISSPACE.test(ch);
}

/** Python `str.strip()` with no argument. */
export function pyStrip(s: string): string {
  return s.replace(LEADING_SPACE, '').replace(TRAILING_SPACE, '');
}

/** The code points of a string, as Python sees them (lone surrogates are kept as their own). */
export function codePoints(s: string): number[] {
  const out: number[] = [];
  for (const ch of s) out.push(ch.codePointAt(0) ?? 0);
  return out;
}

/** Python `len(s)`: the number of code points. */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Python `s[start:end]` for non-negative indices (code points, not UTF-16 units). */
export function pySlice(s: string, start: number, end?: number): string {
  const chars = Array.from(s);
  return chars.slice(start, end).join('');
}

/**
 * Python 3 `round(x)` for a float: round half to even, exactly (no epsilon). Returns a number
 * whose value is an integer. Non-finite input is returned unchanged (Python would raise).
 */
export function pyRound(x: number): number {
  if (!Number.isFinite(x)) return x;
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

const DIGIT_RUN = /^\p{Nd}$/u;

/** The value 0–9 of a Unicode decimal digit, or -1. */
function digitValue(ch: string): number {
  if (!DIGIT_RUN.test(ch)) return -1;
  const cp = ch.codePointAt(0) ?? 0;
  // Unicode Nd characters come in contiguous runs whose lengths are multiples of ten and whose
  // first code point has value 0 (checked against the whole table in the unit tests).
  let zero = cp;
  while (zero > 0 && DIGIT_RUN.test(String.fromCodePoint(zero - 1))) zero--;
  return (cp - zero) % 10;
}

/**
 * Python `int(s)` for base 10: surrounding whitespace, an optional sign, Unicode decimal digits,
 * single underscores between digits. Returns `null` where Python raises `ValueError`.
 * Values beyond 2^53 lose precision (Python keeps them exact); no caller compares such values.
 */
export function pyInt(s: string): number | null {
  const t = pyStrip(s);
  const chars = Array.from(t);
  let i = 0;
  let sign = 1;
  if (chars[0] === '+' || chars[0] === '-') {
    sign = chars[0] === '-' ? -1 : 1;
    i = 1;
  }
  if (i >= chars.length) return null;
  let value = 0;
  let lastWasDigit = false;
  for (; i < chars.length; i++) {
    const ch = chars[i] ?? '';
    if (ch === '_') {
      if (!lastWasDigit) return null;
      lastWasDigit = false;
      continue;
    }
    const d = digitValue(ch);
    if (d < 0) return null;
    value = value * 10 + d;
    lastWasDigit = true;
  }
  if (!lastWasDigit) return null;
  return sign * value;
}

/** Python `s.count(sub)` (non-overlapping occurrences, `sub` non-empty). */
export function pyCount(s: string, sub: string): number {
  if (sub.length === 0) return pyLen(s) + 1;
  let n = 0;
  let at = s.indexOf(sub);
  while (at !== -1) {
    n++;
    at = s.indexOf(sub, at + sub.length);
  }
  return n;
}
