/**
 * The activity edge, shared by every activity module: input validation that names the activity
 * and every problem, and the activity context (heartbeats, cancellation) that is absent when the
 * same code runs from the CLI, a benchmark or a test.
 */
import { Context } from '@temporalio/activity';
import type { z } from 'zod';
import { BadInputError } from './errors.js';

/** Validates an activity input; a mismatch is a non-retryable BadInputError naming each problem. */
export function parseActivityInput<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`);
    throw new BadInputError(`${what} input is invalid: ${problems.join('; ')}`, { problems });
  }
  return r.data;
}

/** The running activity's context, or undefined outside an activity. */
export function currentActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Heartbeats when running as an activity; a no-op elsewhere. */
export function heartbeat(details?: unknown): void {
  currentActivity()?.heartbeat(details);
}

/**
 * Heartbeats every `ms` while running as an activity (for a call that reports no progress of its
 * own); returns the function that stops it. A no-op elsewhere.
 */
export function heartbeatEvery(ms: number): () => void {
  const ctx = currentActivity();
  if (!ctx) return () => undefined;
  const timer = setInterval(() => ctx.heartbeat(), ms);
  return () => clearInterval(timer);
}

/** The last heartbeat's details of an earlier attempt (to resume from), when running as an activity. */
export function lastHeartbeatDetails(): unknown {
  return currentActivity()?.info.heartbeatDetails;
}

/** The activity's cancellation signal, when running as an activity. */
export function cancellationSignal(): AbortSignal | undefined {
  return currentActivity()?.cancellationSignal;
}
