/**
 * Scrubbing secrets out of texts that leave a process (error messages and their details, stack
 * traces, log lines): what reaches a workflow history, an S3 record, a report or a log must not carry
 * a credential. Pure; the process-wide list of known secret values lives in
 * activities/runtime/redact.ts, and the Python trainer applies the same rules
 * (segflow_trainer/redact.py, reading `SecretPatterns` from the exported `schemas/redaction.json`).
 *
 * Replaced by `***`:
 * - known secret values (API keys, the S3 secret key, codec keys, tokens: whatever the process is
 *   configured with), as written, JSON-escaped or percent-encoded; values shorter than
 *   `minSecretLength` are left alone (they would scrub ordinary words);
 * - the user-info of URLs (`https://user:pass@host` → `https://***@host`);
 * - the values of credential query parameters (`?key=`, `api_key=`, `token=`, `X-Amz-Signature=`,
 *   `X-Amz-Credential=` …, any case);
 * - `Bearer`/`Basic` tokens and `x-api-key: …` / `authorization=…` header values.
 */

export const REDACTED = '***';

export const SecretPatterns = {
  /** Query parameters whose values are credentials (compared case-insensitively). */
  queryParams: [
    'key',
    'apikey',
    'api_key',
    'api-key',
    'token',
    'access_token',
    'refresh_token',
    'id_token',
    'auth',
    'password',
    'passwd',
    'pwd',
    'secret',
    'client_secret',
    'sig',
    'signature',
    'x-amz-signature',
    'x-amz-credential',
    'x-amz-security-token',
    'x-goog-signature',
    'x-goog-credential',
    'x-goog-security-token',
  ],
  /** Header names whose values are credentials (`name: value`, `"name": "value"`, `name=value`). */
  headers: ['authorization', 'proxy-authorization', 'x-api-key', 'api-key', 'x-auth-token'],
  /** Known secret values shorter than this are not scrubbed. */
  minSecretLength: 8,
} as const;

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const userInfo = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>\\]+@/gi;
const queryParam = new RegExp(
  `([?&;])(${SecretPatterns.queryParams.map(escapeRe).join('|')})=(?!\\*\\*\\*)[^&#\\s"'<>;\\\\]*`,
  'gi',
);
const header = new RegExp(
  `\\b(${SecretPatterns.headers.map(escapeRe).join('|')})(["']?\\s*[:=]\\s*["']?)(?!(?:Bearer|Basic)\\s)(?!\\*\\*\\*)[^\\s"',;}]{8,}`,
  'gi',
);
const scheme = /\b(Bearer|Basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{8,}/g;

/** The forms a secret value can take inside a text (as is, JSON-escaped, percent-encoded). */
function forms(secret: string): string[] {
  const out = new Set([secret, JSON.stringify(secret).slice(1, -1)]);
  try {
    out.add(encodeURIComponent(secret));
  } catch {
    // a lone surrogate cannot be percent-encoded: the other forms still apply
  }
  return [...out];
}

/** `text` with known secret values and credential-shaped parts replaced by `***`. */
export function redactText(text: string, secrets: Iterable<string> = []): string {
  let out = text;
  const known = [...secrets]
    .filter((s) => s.length >= SecretPatterns.minSecretLength)
    .flatMap(forms)
    .sort((a, b) => b.length - a.length);
  for (const s of known) if (out.includes(s)) out = out.split(s).join(REDACTED);
  return out
    .replace(userInfo, `$1${REDACTED}@`)
    .replace(queryParam, `$1$2=${REDACTED}`)
    .replace(header, `$1$2${REDACTED}`)
    .replace(scheme, `$1 ${REDACTED}`);
}

/** Every string inside a JSON-like value redacted (objects and arrays copied, other values kept). */
export function redactValue<T>(value: T, secrets: Iterable<string> = []): T {
  const list = [...secrets];
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return redactText(v, list);
    if (depth > 20 || v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    if (Object.getPrototypeOf(v) !== Object.prototype) return v;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, depth + 1)]));
  };
  return walk(value, 0) as T;
}
