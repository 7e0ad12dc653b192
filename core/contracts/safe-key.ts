/**
 * The one guard for S3 keys and file paths built from input (workflow ids, run and evaluation ids,
 * sample ids, names an S3 listing or a search server returns): each `/`-separated segment must be a
 * plain name, so nothing built from input can climb out of the prefix it is put under.
 *
 * A segment is refused when it is empty (`a//b`, a leading `/`: an absolute path), `.` or `..`,
 * holds a backslash or a control character (NUL, newline, DEL …), or percent-decodes to a `.`/`..`
 * step (`%2e%2e%2fx`: S3 keys are literal, but the same text may become a local path or a URL
 * somewhere that decodes it). The activity-side wrappers (ArtifactStore, `pathUnder`) turn a refusal
 * into a non-retryable BadInputError; the Python trainer has the same rules (segflow_trainer/safe_keys.py).
 * Pure: safe to import from workflows.
 */

/** Why `segment` cannot be one segment of a key or path, or undefined when it can. */
export function segmentProblem(segment: string): string | undefined {
  if (segment === '') return 'an empty segment (a leading "/" or "//")';
  if (segment === '.' || segment === '..') return `a "${segment}" segment`;
  if (segment.includes('\\')) return 'a backslash';
  if (/[\u0000-\u001f\u007f]/.test(segment)) return 'a control character';
  let decoded = segment;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    // not valid percent-encoding: the text is taken literally
  }
  if (decoded !== segment && decoded.split(/[/\\]/).some((p) => p === '.' || p === '..')) {
    return `a percent-encoded "." or ".." step (${JSON.stringify(decoded)})`;
  }
  return undefined;
}

/**
 * Why `key` is not a safe relative key, or undefined when it is. A key naming a prefix may end in
 * one `/`; the empty key (a whole bucket or prefix) is allowed only when `allowEmpty`.
 */
export function keyProblem(key: string, opts: { allowEmpty?: boolean } = {}): string | undefined {
  if (key === '') return opts.allowEmpty ? undefined : 'it is empty';
  const segments = (key.endsWith('/') ? key.slice(0, -1) : key).split('/');
  for (const s of segments) {
    const problem = segmentProblem(s);
    if (problem) return `it has ${problem}`;
  }
  return undefined;
}

/** A key or path built from input that would leave its prefix. */
export class UnsafeKeyError extends Error {
  constructor(
    readonly key: string,
    readonly problem: string,
    readonly what: string = 'key',
  ) {
    super(
      `unsafe ${what} ${JSON.stringify(key)}: ${problem}; names built from ids and inputs must be ` +
        'plain path segments (no "..", no leading or double "/", no backslash or control characters)',
    );
    this.name = 'UnsafeKeyError';
  }
}

/** Throws UnsafeKeyError when `key` is not a safe relative key (see keyProblem). */
export function checkKey(key: string, what = 'key', opts: { allowEmpty?: boolean } = {}): string {
  const problem = keyProblem(key, opts);
  if (problem) throw new UnsafeKeyError(key, problem, what);
  return key;
}

/**
 * `prefix/part/part…`: the parts (each may hold several `/`-separated segments) joined under
 * `prefix`, every segment checked. `prefix` may be empty or end in `/`; a last part ending in `/`
 * names a prefix.
 */
export function keyUnder(prefix: string, ...parts: string[]): string {
  const head = prefix.replace(/\/+$/, '');
  if (head) checkKey(head, 'key prefix');
  for (const [i, p] of parts.entries()) {
    const last = i === parts.length - 1;
    checkKey(last ? p : p.replace(/\/$/, ''), 'key part');
  }
  const tail = parts.map((p, i) => (i < parts.length - 1 ? p.replace(/\/$/, '') : p)).join('/');
  return head ? (tail ? `${head}/${tail}` : `${head}/`) : tail;
}
