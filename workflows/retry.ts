/**
 * Retries that outlast an outage. Every call a rollout, a query or an evaluation sample makes to a
 * server (policy, search, S3, the media and segment workers) retries with exponential backoff from
 * 1 s, capped at a maximum interval, for as many attempts as it takes the waits between them to add
 * up to the run's outage tolerance: a server that is down for minutes delays the work instead of
 * failing it. Non-retryable errors (bad input, config) still fail at once.
 */
import type { RetryPolicy } from '@temporalio/workflow';

/** @see RolloutInput.outageToleranceSeconds */
export const DEFAULT_OUTAGE_TOLERANCE_SECONDS = 900;

/** Attempts whose waits (1 s, 2 s, 4 s, … capped at `maximumIntervalSeconds`) add up to the tolerance. */
export function outageAttempts(toleranceSeconds: number, maximumIntervalSeconds: number): number {
  let waited = 0;
  let interval = 1;
  let attempts = 1;
  while (waited < toleranceSeconds) {
    waited += Math.min(interval, maximumIntervalSeconds);
    interval *= 2;
    attempts += 1;
  }
  return attempts;
}

export function outageRetry(toleranceSeconds: number, maximumIntervalSeconds: number): RetryPolicy {
  return {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: `${maximumIntervalSeconds} seconds`,
    maximumAttempts: outageAttempts(toleranceSeconds, maximumIntervalSeconds),
  };
}
