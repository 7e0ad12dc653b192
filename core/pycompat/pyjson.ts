/**
 * `json.loads` exactly as CPython 3.11's C scanner does it, for model output.
 *
 * Why not `JSON.parse`: the reference parses answers and search actions with Python's `json`,
 * which accepts `NaN`, `Infinity` and `-Infinity`, reports errors with its own messages and
 * positions (they reach the model verbatim in the "Invalid JSON format in search query: …"
 * observation), counts positions in code points, and rejects a leading BOM. A reward that differs
 * from the reference on such text would train a different policy, so this is written by hand
 * from `Modules/_json.c` and checked against real Python in the golden tests.
 *
 * Known, documented difference: Python integers are unbounded; here every number is a double, so
 * integers beyond 2^53 lose precision. Nothing in the protocol compares such values.
 */
import { pyFloatRepr } from './pyrepr.js';

/** A value produced by Python's `json.loads`. Objects keep insertion order like Python dicts. */
export type PyJsonValue = null | boolean | number | string | PyJsonValue[] | PyJsonObject;
/** A decoded JSON object (a Python `dict` with `str` keys). */
export interface PyJsonObject {
  [key: string]: PyJsonValue;
}

/** Python's `json.JSONDecodeError`: message, position (code points), line and column. */
export class PyJsonDecodeError extends Error {
  override readonly name = 'PyJsonDecodeError';
  /** The message without the position, e.g. `Expecting value`. */
  readonly msg: string;
  /** Code-point offset into the document. */
  readonly pos: number;
  readonly lineno: number;
  readonly colno: number;
  constructor(msg: string, doc: readonly number[], pos: number) {
    let lineno = 1;
    let lastNewline = -1;
    for (let i = 0; i < pos && i < doc.length; i++) {
      if (doc[i] === 0x0a) {
        lineno++;
        lastNewline = i;
      }
    }
    const colno = pos - lastNewline;
    super(`${msg}: line ${lineno} column ${colno} (char ${pos})`);
    this.msg = msg;
    this.pos = pos;
    this.lineno = lineno;
    this.colno = colno;
  }
}

/** The outcome of {@link pyJsonLoads}: never throws. */
export type PyJsonResult = { ok: true; value: PyJsonValue } | { ok: false; error: PyJsonDecodeError };

class StopIteration {
  constructor(readonly pos: number) {}
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isWs(c: number | undefined): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}
function isAsciiDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}
function hexValue(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

function setKey(obj: PyJsonObject, key: string, value: PyJsonValue): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

function fromCodePoints(cps: readonly number[], start: number, end: number): string {
  let out = '';
  for (let i = start; i < end; i++) out += String.fromCodePoint(cps[i] ?? 0);
  return out;
}

class Scanner {
  private depth = 0;
  constructor(private readonly s: readonly number[]) {}

  private get endIdx(): number {
    return this.s.length - 1;
  }

  /** `scanstring_unicode`: `end` is the index just after the opening quote. */
  scanString(end: number): [string, number] {
    const s = this.s;
    const len = s.length;
    const begin = end - 1;
    let out = '';
    for (;;) {
      let next = end;
      let c = 0;
      for (; next < len; next++) {
        c = s[next] ?? 0;
        if (c === QUOTE || c === BACKSLASH) break;
        if (c <= 0x1f) throw new PyJsonDecodeError('Invalid control character at', s, next);
      }
      if (next === len) throw new PyJsonDecodeError('Unterminated string starting at', s, begin);
      out += fromCodePoints(s, end, next);
      next++;
      if (c === QUOTE) {
        end = next;
        break;
      }
      if (next === len) throw new PyJsonDecodeError('Unterminated string starting at', s, begin);
      c = s[next] ?? 0;
      if (c !== 0x75 /* u */) {
        end = next + 1;
        switch (c) {
          case QUOTE:
          case BACKSLASH:
          case 0x2f:
            break;
          case 0x62:
            c = 0x08;
            break;
          case 0x66:
            c = 0x0c;
            break;
          case 0x6e:
            c = 0x0a;
            break;
          case 0x72:
            c = 0x0d;
            break;
          case 0x74:
            c = 0x09;
            break;
          default:
            c = 0;
        }
        if (c === 0) throw new PyJsonDecodeError('Invalid \\escape', s, end - 2);
      } else {
        c = 0;
        next++;
        end = next + 4;
        if (end >= len) throw new PyJsonDecodeError('Invalid \\uXXXX escape', s, next - 1);
        for (; next < end; next++) {
          const h = hexValue(s[next]);
          if (h < 0) throw new PyJsonDecodeError('Invalid \\uXXXX escape', s, end - 5);
          c = (c << 4) | h;
        }
        // A high surrogate followed by `\u` + low surrogate joins into one code point.
        if (c >= 0xd800 && c <= 0xdbff && end + 6 < len && s[next] === BACKSLASH && s[next + 1] === 0x75) {
          next += 2;
          let c2 = 0;
          end += 6;
          for (; next < end; next++) {
            const h = hexValue(s[next]);
            if (h < 0) throw new PyJsonDecodeError('Invalid \\uXXXX escape', s, end - 5);
            c2 = (c2 << 4) | h;
          }
          if (c2 >= 0xdc00 && c2 <= 0xdfff) c = 0x10000 + ((c - 0xd800) << 10) + (c2 - 0xdc00);
          else end -= 6;
        }
      }
      out += String.fromCodePoint(c);
    }
    return [out, end];
  }

  private parseObject(idx: number): [PyJsonObject, number] {
    const s = this.s;
    const endIdx = this.endIdx;
    const obj: PyJsonObject = {};
    while (idx <= endIdx && isWs(s[idx])) idx++;
    if (idx > endIdx || s[idx] !== 0x7d /* } */) {
      for (;;) {
        if (idx > endIdx || s[idx] !== QUOTE) {
          throw new PyJsonDecodeError('Expecting property name enclosed in double quotes', s, idx);
        }
        const [key, afterKey] = this.scanString(idx + 1);
        idx = afterKey;
        while (idx <= endIdx && isWs(s[idx])) idx++;
        if (idx > endIdx || s[idx] !== 0x3a /* : */)
          throw new PyJsonDecodeError("Expecting ':' delimiter", s, idx);
        idx++;
        while (idx <= endIdx && isWs(s[idx])) idx++;
        const [val, afterVal] = this.scanOnce(idx);
        setKey(obj, key, val);
        idx = afterVal;
        while (idx <= endIdx && isWs(s[idx])) idx++;
        if (idx <= endIdx && s[idx] === 0x7d) break;
        if (idx > endIdx || s[idx] !== 0x2c /* , */)
          throw new PyJsonDecodeError("Expecting ',' delimiter", s, idx);
        idx++;
        while (idx <= endIdx && isWs(s[idx])) idx++;
      }
    }
    return [obj, idx + 1];
  }

  private parseArray(idx: number): [PyJsonValue[], number] {
    const s = this.s;
    const endIdx = this.endIdx;
    const arr: PyJsonValue[] = [];
    while (idx <= endIdx && isWs(s[idx])) idx++;
    if (idx > endIdx || s[idx] !== 0x5d /* ] */) {
      for (;;) {
        const [val, afterVal] = this.scanOnce(idx);
        arr.push(val);
        idx = afterVal;
        while (idx <= endIdx && isWs(s[idx])) idx++;
        if (idx <= endIdx && s[idx] === 0x5d) break;
        if (idx > endIdx || s[idx] !== 0x2c) throw new PyJsonDecodeError("Expecting ',' delimiter", s, idx);
        idx++;
        while (idx <= endIdx && isWs(s[idx])) idx++;
      }
    }
    return [arr, idx + 1];
  }

  private matchesAt(idx: number, word: string): boolean {
    for (let i = 0; i < word.length; i++) {
      if (this.s[idx + i] !== word.charCodeAt(i)) return false;
    }
    return true;
  }

  private matchNumber(start: number): [number, number] {
    const s = this.s;
    const endIdx = this.endIdx;
    let idx = start;
    if (s[idx] === 0x2d /* - */) {
      idx++;
      if (idx > endIdx) throw new StopIteration(start);
    }
    const c = s[idx] ?? -1;
    if (c >= 0x31 && c <= 0x39) {
      idx++;
      while (idx <= endIdx && isAsciiDigit(s[idx])) idx++;
    } else if (c === 0x30) {
      idx++;
    } else {
      throw new StopIteration(start);
    }
    if (idx < endIdx && s[idx] === 0x2e && isAsciiDigit(s[idx + 1])) {
      idx += 2;
      while (idx <= endIdx && isAsciiDigit(s[idx])) idx++;
    }
    if (idx < endIdx && (s[idx] === 0x65 || s[idx] === 0x45)) {
      const eStart = idx;
      idx++;
      if (idx < endIdx && (s[idx] === 0x2d || s[idx] === 0x2b)) idx++;
      while (idx <= endIdx && isAsciiDigit(s[idx])) idx++;
      if (!isAsciiDigit(s[idx - 1])) idx = eStart;
    }
    return [Number(fromCodePoints(s, start, idx)), idx];
  }

  /** `scan_once_unicode`. */
  scanOnce(idx: number): [PyJsonValue, number] {
    const s = this.s;
    if (idx >= s.length) throw new StopIteration(idx);
    switch (s[idx]) {
      case QUOTE:
        return this.scanString(idx + 1);
      case 0x7b: {
        // CPython raises RecursionError on deep nesting; a bounded depth keeps us from overflowing.
        if (++this.depth > 900) throw new StopIteration(idx);
        try {
          return this.parseObject(idx + 1);
        } finally {
          this.depth--;
        }
      }
      case 0x5b: {
        if (++this.depth > 900) throw new StopIteration(idx);
        try {
          return this.parseArray(idx + 1);
        } finally {
          this.depth--;
        }
      }
      case 0x6e:
        if (this.matchesAt(idx, 'null')) return [null, idx + 4];
        break;
      case 0x74:
        if (this.matchesAt(idx, 'true')) return [true, idx + 4];
        break;
      case 0x66:
        if (this.matchesAt(idx, 'false')) return [false, idx + 5];
        break;
      case 0x4e:
        if (this.matchesAt(idx, 'NaN')) return [NaN, idx + 3];
        break;
      case 0x49:
        if (this.matchesAt(idx, 'Infinity')) return [Infinity, idx + 8];
        break;
      case 0x2d:
        if (this.matchesAt(idx, '-Infinity')) return [-Infinity, idx + 9];
        break;
    }
    return this.matchNumber(idx);
  }
}

/**
 * Python's `json.loads(text)` for a `str`. Never throws: errors come back with Python's message,
 * e.g. `Expecting value: line 1 column 1 (char 0)`.
 */
export function pyJsonLoads(text: string): PyJsonResult {
  const doc: number[] = [];
  for (const ch of typeof text === 'string' ? text : String(text)) doc.push(ch.codePointAt(0) ?? 0);
  try {
    if (doc[0] === 0xfeff)
      throw new PyJsonDecodeError('Unexpected UTF-8 BOM (decode using utf-8-sig)', doc, 0);
    let idx = 0;
    while (idx < doc.length && isWs(doc[idx])) idx++;
    const scanner = new Scanner(doc);
    let value: PyJsonValue;
    let end: number;
    try {
      [value, end] = scanner.scanOnce(idx);
    } catch (e) {
      if (e instanceof StopIteration) throw new PyJsonDecodeError('Expecting value', doc, e.pos);
      throw e;
    }
    while (end < doc.length && isWs(doc[end])) end++;
    if (end !== doc.length) throw new PyJsonDecodeError('Extra data', doc, end);
    return { ok: true, value };
  } catch (e) {
    if (e instanceof PyJsonDecodeError) return { ok: false, error: e };
    /* c8 ignore next */
    return { ok: false, error: new PyJsonDecodeError(`Internal parser error: ${String(e)}`, doc, 0) };
  }
}

/** True for a Python `dict` (JSON object). */
export function isPyDict(v: PyJsonValue | undefined): v is PyJsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `isinstance(v, (int, float))`: numbers and booleans (a Python `bool` is an `int`). */
export function isPyNumber(v: PyJsonValue | undefined): v is number | boolean {
  return typeof v === 'number' || typeof v === 'boolean';
}

function dumpsString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += s[i];
  }
  return `${out}"`;
}

/**
 * Python's `json.dumps(value)` with its defaults (`ensure_ascii=True`, separators `', '` and
 * `': '`). Integral numbers print as ints (see {@link pyFloatRepr} for the one-number-type caveat).
 */
export function pyJsonDumps(v: PyJsonValue): string {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'NaN';
    if (v === Infinity) return 'Infinity';
    if (v === -Infinity) return '-Infinity';
    return Number.isInteger(v)
      ? Number.isSafeInteger(v)
        ? String(v)
        : BigInt(v).toString()
      : pyFloatRepr(v);
  }
  if (typeof v === 'string') return dumpsString(v);
  if (Array.isArray(v)) return `[${v.map((x) => pyJsonDumps(x)).join(', ')}]`;
  return `{${Object.keys(v)
    .map((k) => `${dumpsString(k)}: ${pyJsonDumps(v[k] ?? null)}`)
    .join(', ')}}`;
}
