/**
 * What a re-run of an evaluation may reuse: which failed samples were an outage (evaluated again)
 * rather than a legitimate outcome (scored, as the reference scores a missing prediction), and
 * which settings differ between the stored results and a new run. Pure (the workflow classifies
 * its children's failures with it; the plan activity compares fingerprints with it).
 */
import { ApplicationFailure, TerminatedFailure, TimeoutFailure } from '@temporalio/common';
import { ErrorTypes } from '../contracts/errors.js';
import type { EvaluationFingerprint } from '../contracts/evaluation.js';

/**
 * Failure types that are the sample's or the model's own doing, so a re-run would fail the same
 * way: the sample's data or media cannot be used, the request built from it was rejected (a prompt
 * past the context length, a 4xx other than 404), the model asked for a URL the guard refuses.
 * These are scored as an empty prediction with the error recorded. Every other failure (5xx,
 * connection refused, timeouts, S3 or a search API unreachable, missing or mismatched model files,
 * configuration, a terminated child, a type segflow does not know) is an outage.
 */
export const LEGITIMATE_FAILURE_TYPES: readonly string[] = [
  ErrorTypes.badInput,
  ErrorTypes.badMedia,
  ErrorTypes.blockedUrl,
];

export interface SampleFailure {
  /** True: an outage (not scored, evaluated again on a re-run); false: scored as an empty prediction. */
  infrastructure: boolean;
  /** The Temporal failure type that decided it (`TransientError`, `Timeout`, …). */
  type: string;
  /** The failure's message with its causes. */
  message: string;
}

/**
 * A failure's message with its causes ("Activity task failed: …: the real reason"); also how
 * rolloutGroup records a failed trajectory.
 */
export function describeFailure(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 5; depth++) {
    parts.push(e.message);
    e = e.cause;
  }
  return parts.length ? parts.join(': ') : String(err);
}

/**
 * Classifies the failure of a sample's rollout or segmentation, after its retries. The first
 * ApplicationFailure along the cause chain (child workflow → activity → the activity's error)
 * names the type; a timeout or termination met before one is an outage. A `BadInputError` whose
 * HTTP status is 404 is an outage too: the policy or search server does not know the model or the
 * endpoint (an adapter lost in a restart, a wrong name), which says nothing about the sample.
 */
export function classifySampleFailure(err: unknown): SampleFailure {
  const message = describeFailure(err);
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++) {
    if (e instanceof ApplicationFailure) {
      const type = e.type ?? 'Error';
      const status = (e.details?.[0] as { status?: unknown } | undefined)?.status;
      const legitimate = LEGITIMATE_FAILURE_TYPES.includes(type) && status !== 404;
      return { infrastructure: !legitimate, type, message };
    }
    if (e instanceof TimeoutFailure)
      return { infrastructure: true, type: `Timeout(${e.timeoutType})`, message };
    if (e instanceof TerminatedFailure) return { infrastructure: true, type: 'Terminated', message };
    e = e.cause;
  }
  return { infrastructure: true, type: err instanceof Error ? err.name : typeof err, message };
}

/** Every leaf of a JSON value by its dotted path (arrays and primitives are leaves). */
function leaves(value: unknown, path: string, out: Map<string, string>): Map<string, string> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    if (entries.length === 0) out.set(path, 'null');
    for (const [k, v] of entries) leaves(v, path ? `${path}.${k}` : k, out);
  } else {
    out.set(path, value === undefined ? 'null' : JSON.stringify(value));
  }
  return out;
}

/**
 * What differs between the fingerprint an evaluation's results were stored with and a new run's:
 * one `path: stored → new` line per differing setting (`policy.version: 1 → 2`), empty when equal.
 * A missing setting and `null` (the workers' default) are the same.
 */
export function fingerprintDifferences(
  stored: EvaluationFingerprint,
  current: EvaluationFingerprint,
): string[] {
  const a = leaves(stored, '', new Map());
  const b = leaves(current, '', new Map());
  const out: string[] = [];
  for (const path of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(path) ?? 'null';
    const y = b.get(path) ?? 'null';
    if (x !== y) out.push(`${path}: ${x.slice(0, 120)} → ${y.slice(0, 120)}`);
  }
  return out;
}
