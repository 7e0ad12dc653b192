/**
 * segflow's error classes. Each carries a stable `type` (the Temporal ApplicationFailure type) and
 * whether retrying can help; `toApplicationFailure` maps them onto Temporal's retry machinery.
 */
import { ErrorTypes } from '../core/contracts/errors.js';
import { UnsafeKeyError } from '../core/contracts/safe-key.js';
import { redact, redactDeep, redactedCause } from './runtime/redact.js';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';

export class SegflowError extends Error {
  /** Stable name, used as the ApplicationFailure type. */
  readonly type: string;
  /** True when a retry may succeed (network, 5xx, 429); false for bad input. */
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>>;
  /** Server-suggested delay before the next attempt (429 Retry-After). */
  readonly retryAfterMs?: number;

  constructor(
    type: string,
    message: string,
    opts: { retryable: boolean; details?: Record<string, unknown>; cause?: unknown; retryAfterMs?: number },
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = type;
    this.type = type;
    this.retryable = opts.retryable;
    this.details = opts.details ?? {};
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs;
  }
}

/** Invalid configuration: never retryable. */
export class ConfigError extends SegflowError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorTypes.config, message, { retryable: false, details });
  }
}

/** An input (file, media, model output, request) that cannot be used as given. */
export class BadInputError extends SegflowError {
  constructor(message: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super(ErrorTypes.badInput, message, { retryable: false, details, cause });
  }
}

/** A dependency (S3, HTTP server) that failed in a way a retry may fix. */
export class TransientError extends SegflowError {
  constructor(
    message: string,
    details: Record<string, unknown> = {},
    cause?: unknown,
    retryAfterMs?: number,
  ) {
    super(ErrorTypes.transient, message, {
      retryable: true,
      details,
      cause,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  }
}

/**
 * Converts any thrown value into the ApplicationFailure Temporal should record, scrubbed of
 * secrets: its message, details and every cause's message and stack trace (runtime/redact.ts), so
 * no key, token or credentials-bearing URL an error text echoes reaches a history.
 */
export function toApplicationFailure(err: unknown): ApplicationFailure {
  if (err instanceof ApplicationFailure) {
    const copy = ApplicationFailure.create({
      message: redact(err.message),
      ...(err.type ? { type: err.type } : {}),
      nonRetryable: err.nonRetryable ?? false,
      details: redactDeep(err.details ?? []),
      cause: redactedCause(err.cause),
      ...(err.nextRetryDelay !== undefined && err.nextRetryDelay !== null
        ? { nextRetryDelay: err.nextRetryDelay }
        : {}),
      ...(err.category !== undefined && err.category !== null ? { category: err.category } : {}),
    });
    if (err.stack !== undefined) copy.stack = redact(err.stack);
    return copy;
  }
  // core's key guard cannot import these classes: a key built from bad input is bad input
  if (err instanceof UnsafeKeyError) {
    return toApplicationFailure(new BadInputError(err.message, { key: err.key, problem: err.problem }));
  }
  if (err instanceof SegflowError) {
    return ApplicationFailure.create({
      type: err.type,
      message: redact(err.message),
      nonRetryable: !err.retryable,
      details: [redactDeep(err.details)],
      cause: err.cause instanceof Error ? redactedCause(err.cause) : undefined,
      ...(err.retryAfterMs !== undefined ? { nextRetryDelay: err.retryAfterMs } : {}),
    });
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return ApplicationFailure.create({
    type: e.name || 'Error',
    message: redact(e.message),
    cause: redactedCause(e),
  });
}

/**
 * What an activity throws: Temporal's own failures (a CancelledFailure from the activity's
 * cancellation signal) pass through, so a cancellation stays a cancellation; everything else,
 * an ApplicationFailure an activity raised itself included, becomes a typed, scrubbed
 * ApplicationFailure.
 */
export function activityFailure(err: unknown): Error {
  if (err instanceof TemporalFailure && !(err instanceof ApplicationFailure)) return err;
  return toApplicationFailure(err);
}
