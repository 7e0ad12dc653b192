/**
 * How `segr` reports a workflow that did not complete: the failure's cause chain (each link with its
 * failure class, ApplicationFailure type and message) and the Web UI link, so a user never sees only
 * "Workflow execution failed". bin/segr.js prints every error that escapes a command through
 * {@link formatCliError}.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  ChildWorkflowFailure,
  TerminatedFailure,
  TimeoutFailure,
  type Workflow,
  type WorkflowResultType,
} from '@temporalio/common';
import { redact } from '../activities/runtime/redact.js';

/** One link of a cause chain. */
export interface FailureLink {
  /** The error class: `WorkflowFailedError`, `ActivityFailure`, `ApplicationFailure`, … */
  name: string;
  /** ApplicationFailure's `type` (the error class thrown in the activity or workflow). */
  type?: string;
  message: string;
  /** Where it happened and how retries ended, e.g. `activity policyTurn`, `retry state TIMEOUT`. */
  context: string[];
}

/** Cause chains are short; this only guards against a cycle. */
const MAX_DEPTH = 16;

/** Interesting retry states only: "not retryable" is the common case and says nothing. */
function retryContext(state: string | undefined): string[] {
  return state === 'MAXIMUM_ATTEMPTS_REACHED' || state === 'TIMEOUT' ? [`retry state ${state}`] : [];
}

function linkOf(err: Error): FailureLink {
  const context: string[] = [];
  let type: string | undefined;
  if (err instanceof ApplicationFailure) {
    if (err.type) type = err.type;
    if (err.nonRetryable) context.push('non-retryable');
  } else if (err instanceof ActivityFailure) {
    context.push(`activity ${err.activityType}`, ...retryContext(err.retryState));
  } else if (err instanceof ChildWorkflowFailure) {
    context.push(`child ${err.workflowType} ${err.execution.workflowId}`, ...retryContext(err.retryState));
  } else if (err instanceof TimeoutFailure) {
    if (err.timeoutType) context.push(`${err.timeoutType} timeout`);
  } else if (err instanceof WorkflowFailedError) {
    context.push(...retryContext(err.retryState));
  }
  return { name: err.name || err.constructor.name, ...(type ? { type } : {}), message: err.message, context };
}

/** The error and its causes, outermost first. A non-Error cause ends the chain as its string. */
export function failureChain(err: unknown): FailureLink[] {
  const chain: FailureLink[] = [];
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e !== undefined && e !== null && !seen.has(e) && chain.length < MAX_DEPTH) {
    seen.add(e);
    if (!(e instanceof Error)) {
      chain.push({ name: typeof e, message: String(e), context: [] });
      break;
    }
    chain.push(linkOf(e));
    e = e.cause;
  }
  return chain;
}

/** `ApplicationFailure PolicyServerError (non-retryable): policy server answered 500`. */
export function formatFailureLink(link: FailureLink): string {
  const head = [link.name, link.type].filter(Boolean).join(' ');
  const ctx = link.context.length > 0 ? ` (${link.context.join(', ')})` : '';
  return `${head}${ctx}${link.message ? `: ${link.message}` : ''}`;
}

/**
 * The cause chain as indented lines, outermost first:
 * ```
 *   WorkflowFailedError: Workflow execution failed
 *   caused by ActivityFailure (activity policyTurn): Activity task failed
 *   caused by ApplicationFailure PolicyServerError (non-retryable): policy server answered 500
 * ```
 * Multi-line messages (zod problem lists) keep their lines, indented under their link.
 */
export function formatFailureChain(err: unknown, indent = '  '): string {
  return formatLinks(failureChain(err), indent, false);
}

function formatLinks(links: FailureLink[], indent: string, firstIsCause: boolean): string {
  return links
    .map((link, i) =>
      `${indent}${i > 0 || firstIsCause ? 'caused by ' : ''}${formatFailureLink(link)}`.replace(
        /\n/g,
        `\n${indent}    `,
      ),
    )
    .join('\n');
}

/** How a closed workflow ended, in the names `describe().status.name` uses. */
export type WorkflowEnd = 'FAILED' | 'TERMINATED' | 'CANCELLED' | 'TIMED_OUT';

/** The end a `handle.result()` rejection stands for (its first cause says which). */
export function workflowEndOf(err: WorkflowFailedError): WorkflowEnd {
  const c = err.cause;
  if (c instanceof TerminatedFailure) return 'TERMINATED';
  if (c instanceof CancelledFailure) return 'CANCELLED';
  if (c instanceof TimeoutFailure) return 'TIMED_OUT';
  return 'FAILED';
}

const endVerb: Record<WorkflowEnd, string> = {
  FAILED: 'failed',
  TERMINATED: 'was terminated',
  CANCELLED: 'was cancelled',
  TIMED_OUT: 'timed out',
};

/** A workflow that a `segr` command started or watched did not complete. */
export class WorkflowNotCompletedError extends Error {
  override readonly name = 'WorkflowNotCompletedError';
  constructor(
    readonly workflowType: string,
    readonly workflowId: string,
    readonly end: WorkflowEnd,
    /** Web UI link of the workflow execution. */
    readonly uiLink: string,
    /** The `handle.result()` rejection (a WorkflowFailedError with the cause chain), if known. */
    override readonly cause?: Error,
  ) {
    super(`${workflowType} ${workflowId} ${endVerb[end]}`);
  }
}

/**
 * `handle.result()`, but a workflow that fails, is terminated, cancelled or times out rejects with a
 * {@link WorkflowNotCompletedError} naming the workflow and its Web UI link.
 */
export async function workflowResult<W extends Workflow>(
  handle: WorkflowHandle<W>,
  workflowType: string,
  uiLink: string,
): Promise<WorkflowResultType<W>> {
  try {
    return await handle.result();
  } catch (err) {
    if (err instanceof WorkflowFailedError)
      throw new WorkflowNotCompletedError(workflowType, handle.workflowId, workflowEndOf(err), uiLink, err);
    throw err;
  }
}

/** The reason a closed workflow ended as a `WorkflowNotCompletedError`, from its close event. */
export async function closedWorkflowError(
  handle: WorkflowHandle,
  workflowType: string,
  end: WorkflowEnd,
  uiLink: string,
): Promise<WorkflowNotCompletedError> {
  try {
    await handle.result();
  } catch (err) {
    if (err instanceof WorkflowFailedError)
      return new WorkflowNotCompletedError(workflowType, handle.workflowId, end, uiLink, err);
    return new WorkflowNotCompletedError(
      workflowType,
      handle.workflowId,
      end,
      uiLink,
      new Error(`its close event could not be read: ${err instanceof Error ? err.message : String(err)}`),
    );
  }
  return new WorkflowNotCompletedError(workflowType, handle.workflowId, end, uiLink);
}

/** A not-completed workflow: what ended, the cause chain and the Web UI link, one per line. */
export function formatWorkflowNotCompleted(err: WorkflowNotCompletedError, indent = '  '): string {
  const lines = [err.message];
  if (err.cause) lines.push(formatFailureChain(err.cause, indent));
  lines.push(`${indent}web ui: ${err.uiLink}`);
  return lines.join('\n');
}

/**
 * What `segr: …` prints for an error that escaped a command: a not-completed workflow with its
 * cause chain and link; any other error with its causes, if it has any.
 */
export function formatCliError(err: unknown): string {
  // scrubbed: a local worker's error (segr run/eval without --remote) may echo a key or URL
  return redact(formatUnscrubbed(err));
}

function formatUnscrubbed(err: unknown): string {
  if (err instanceof WorkflowNotCompletedError) return formatWorkflowNotCompleted(err);
  if (err instanceof Error && err.cause !== undefined)
    return [err.message, formatLinks(failureChain(err.cause), '  ', true)].join('\n');
  return err instanceof Error ? err.message : String(err);
}
