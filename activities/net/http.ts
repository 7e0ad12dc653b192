/**
 * HTTP calls to services segflow is configured to talk to (search APIs, retrieval servers, policy
 * servers): timeouts, cancellation, and errors classified the same way everywhere.
 *
 * - 429 and 503 with Retry-After → TransientError carrying `retryAfterMs` (Temporal's next retry
 *   delay through toApplicationFailure); other 429/5xx, 408, network failures and timeouts →
 *   TransientError.
 * - 401/403 → ConfigError (fix the key); other 4xx → BadInputError naming the request.
 * - Cancellation by the caller's AbortSignal rethrows the signal's reason untouched, so Temporal
 *   sees its own CancelledFailure.
 *
 * These hosts come from config, not from search results, so no request-forgery guard here (that is
 * guarded-fetch.ts, for URLs found in results).
 */
import { BadInputError, ConfigError, SegflowError, TransientError } from '../errors.js';

/** Parses Retry-After (seconds or an HTTP date) into milliseconds from now. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

export interface HttpCallOptions {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** JSON body (sets content-type) or a form / raw string body. */
  json?: unknown;
  body?: string | URLSearchParams;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** What the call is, for error messages: `"Serper text search"`. */
  what: string;
  /** Hint appended to 401/403 errors: `"set SERPER_API_KEY"`. */
  authHint?: string;
}

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
}

/** Classifies a non-2xx response. */
export function httpError(
  what: string,
  url: string,
  status: number,
  headers: Headers,
  body: string,
  authHint?: string,
): SegflowError {
  const snippet = body.slice(0, 300).replace(/\s+/g, ' ').trim();
  const details = { url, status, body: snippet };
  if (status === 429 || status === 503) {
    const retryAfterMs = parseRetryAfter(headers.get('retry-after'));
    return new TransientError(
      `${what} was rate limited or unavailable (HTTP ${status} from ${url})${retryAfterMs !== undefined ? `; retry after ${retryAfterMs} ms` : ''}`,
      details,
      undefined,
      retryAfterMs,
    );
  }
  if (status >= 500 || status === 408) {
    return new TransientError(`${what} failed with HTTP ${status} from ${url}: ${snippet}`, details);
  }
  if (status === 401 || status === 403) {
    return new ConfigError(
      `${what} was refused (HTTP ${status} from ${url})${authHint ? `: ${authHint}` : ''}: ${snippet}`,
      details,
    );
  }
  return new BadInputError(`${what} was rejected with HTTP ${status} from ${url}: ${snippet}`, details);
}

/** One request; returns the body text of a 2xx response or throws a classified error. */
export async function httpCall(url: string, options: HttpCallOptions): Promise<HttpResult> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  let body: string | URLSearchParams | undefined = options.body;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, {
      method: options.method ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      body,
      signal,
    });
    text = await res.text();
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason ?? err;
    if (timeout.aborted) {
      throw new TransientError(
        `${options.what} timed out after ${options.timeoutMs} ms (${url})`,
        { url },
        err,
      );
    }
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new TransientError(
      `${options.what} could not reach ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
      { url },
      err,
    );
  }
  if (!res.ok) throw httpError(options.what, url, res.status, res.headers, text, options.authHint);
  return { status: res.status, headers: res.headers, text };
}

/** A request whose 2xx answer must be JSON. */
export async function httpJson<T = unknown>(url: string, options: HttpCallOptions): Promise<T> {
  const res = await httpCall(url, options);
  try {
    return JSON.parse(res.text) as T;
  } catch {
    throw new TransientError(
      `${options.what} answered with invalid JSON from ${url}: ${res.text.slice(0, 200)}`,
      {
        url,
      },
    );
  }
}
