/**
 * What an activity throws: Temporal's own failures (a CancelledFailure from the activity's
 * cancellation signal) pass through untouched so Temporal records a cancellation; everything else
 * becomes a typed ApplicationFailure (errors.ts).
 */
import { TemporalFailure } from '@temporalio/common';
import { toApplicationFailure } from '../errors.js';

export function activityFailure(err: unknown): Error {
  if (err instanceof TemporalFailure) return err;
  return toApplicationFailure(err);
}
