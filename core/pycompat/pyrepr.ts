/**
 * Python `str()` / `repr()` of decoded JSON values, for observations that echo model input the
 * way the reference does (`... but got '{tool_name}'.`, `Frame index not in [0, 4, 7].`).
 *
 * Known difference: a decoded JSON float with an integral value (`1.0`) prints as `1` here, because
 * JavaScript has one number type; Python prints `1.0`.
 */
import type { PyJsonValue } from './pyjson.js';

const NON_PRINTABLE = /[\p{C}\p{Zl}\p{Zp}\p{Zs}]/u;

/** Python `repr(float)` (shortest round-trip digits, Python's exponent rules). */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  // JavaScript's toExponential() without an argument gives the shortest round-trip digits.
  const [mantissa = '0', expPart = '0'] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const exp = Number(expPart);
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = exp < 0 ? `-${String(-exp).padStart(2, '0')}` : `+${String(exp).padStart(2, '0')}`;
    return `${sign}${m}e${e}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac.length > 0 ? frac : '0'}`;
}

/** Python `repr(int)` for a JavaScript integer-valued number. */
function pyIntRepr(x: number): string {
  return Number.isSafeInteger(x) ? String(x) : BigInt(x).toString();
}

function pyNumberRepr(x: number): string {
  return Number.isInteger(x) ? pyIntRepr(x) : pyFloatRepr(x);
}

/** Python `repr(str)`. */
export function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else if (cp < 0x7f || ch === ' ') out += ch;
    else if (NON_PRINTABLE.test(ch)) {
      if (cp <= 0xff) out += `\\x${cp.toString(16).padStart(2, '0')}`;
      else if (cp <= 0xffff) out += `\\u${cp.toString(16).padStart(4, '0')}`;
      else out += `\\U${cp.toString(16).padStart(8, '0')}`;
    } else out += ch;
  }
  return out + quote;
}

/** Python `repr()` of a decoded JSON value. */
export function pyRepr(v: PyJsonValue): string {
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return pyNumberRepr(v);
  if (typeof v === 'string') return pyStrRepr(v);
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  return `{${Object.keys(v)
    .map((k) => `${pyStrRepr(k)}: ${pyRepr(v[k] ?? null)}`)
    .join(', ')}}`;
}

/** Python `str()` of a decoded JSON value (`f"{value}"`). */
export function pyStr(v: PyJsonValue): string {
  return typeof v === 'string' ? v : pyRepr(v);
}
