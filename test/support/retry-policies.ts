// What a workflow's recorded history says about its retries: for every activity it scheduled, how
// long an outage may last before the call gives up (the waits between its attempts, as Temporal
// spaces them), checked against the run's outage tolerance.
import assert from 'node:assert/strict';
import type { temporal } from '@temporalio/proto';

type Duration = { seconds?: unknown; nanos?: number | null } | null | undefined;
const seconds = (d: Duration) => Number(d?.seconds ?? 0) + (d?.nanos ?? 0) / 1e9;

/** The waits between a retry policy's attempts, added up (Infinity: unlimited attempts). */
export function outageWindowSeconds(p: temporal.api.common.v1.IRetryPolicy): number {
  if (!p.maximumAttempts) return Infinity;
  const cap = seconds(p.maximumInterval) || Infinity;
  let waited = 0;
  let interval = seconds(p.initialInterval);
  for (let k = 1; k < p.maximumAttempts; k++) {
    waited += Math.min(interval, cap);
    interval *= p.backoffCoefficient ?? 2;
  }
  return waited;
}

/** Each activity the history scheduled, with the outage its retry policy outlasts. */
export function retryWindows(history: temporal.api.history.v1.IHistory): { name: string; seconds: number }[] {
  return (history.events ?? []).flatMap((e) => {
    const a = e.activityTaskScheduledEventAttributes;
    return a
      ? [{ name: a.activityType?.name ?? '?', seconds: outageWindowSeconds(a.retryPolicy ?? {}) }]
      : [];
  });
}

/**
 * Every activity the history scheduled retries an outage for at least `toleranceSeconds`; the
 * names in `expected` are among them (so the check cannot pass on a history that never got there).
 */
export function assertOutageTolerant(
  history: temporal.api.history.v1.IHistory,
  toleranceSeconds: number,
  expected: string[],
  label: string,
): void {
  const windows = retryWindows(history);
  const names = new Set(windows.map((w) => w.name));
  for (const n of expected) assert.ok(names.has(n), `${label}: ${n} among its activities (${[...names]})`);
  for (const w of windows) {
    assert.ok(
      w.seconds >= toleranceSeconds,
      `${label}: ${w.name} gives up after ${w.seconds} s of an outage, inside the ${toleranceSeconds} s tolerance`,
    );
  }
}
