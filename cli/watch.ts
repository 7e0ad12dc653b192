/**
 * When a `--watch` loop stops: each poll describes the workflow and asks {@link watchDecision} about
 * its status, so a run that fails, is terminated, cancelled or times out ends the loop (with a
 * non-zero exit) instead of being polled forever with its last phase.
 */
import type { WorkflowExecutionStatusName } from '@temporalio/client';
import type { WorkflowEnd } from './failure.js';

export type WatchDecision =
  /** Still going: poll again. */
  | { readonly done: false }
  /** Completed: stop, exit 0. */
  | { readonly done: true; readonly ok: true }
  /** Closed without completing: stop, print why, exit non-zero. */
  | { readonly done: true; readonly ok: false; readonly end: WorkflowEnd };

/**
 * The loop's decision for the status `describe()` reports for the workflow id (its latest run).
 * CONTINUED_AS_NEW only shows while the next run is being started, and PAUSED (a workflow paused on
 * the server) resumes, so both keep the loop polling; so do statuses this client does not know.
 */
export function watchDecision(status: WorkflowExecutionStatusName): WatchDecision {
  switch (status) {
    case 'COMPLETED':
      return { done: true, ok: true };
    case 'FAILED':
    case 'TERMINATED':
    case 'CANCELLED':
    case 'TIMED_OUT':
      return { done: true, ok: false, end: status };
    case 'RUNNING':
    case 'CONTINUED_AS_NEW':
    case 'PAUSED':
    case 'UNSPECIFIED':
    case 'UNKNOWN':
    default:
      return { done: false };
  }
}
