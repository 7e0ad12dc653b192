/**
 * Logging a training step or an evaluation summary to the experiment trackers (core/tracking.ts),
 * from a workflow: nothing unless backends are configured, so runs without a tracker schedule no
 * activity (and their histories replay as before).
 */
import { isCancellation, log, proxyActivities } from '@temporalio/workflow';
import { ErrorTypes } from '../core/contracts/errors.js';
import { TaskQueues } from '../core/queues.js';
import { flattenMetrics, type TrackerActivities, type TrackerBackend } from '../core/tracking.js';

// The Python tracker on `segflow-tracker`: a few HTTP calls or a small file per step, idempotent per
// (run, step), so retried freely. A tracker that stays down costs its steps in the tracker (S3 has
// them), never the run: after the attempts the failure is logged and the workflow goes on.
const tracker = proxyActivities<TrackerActivities>({
  taskQueue: TaskQueues.tracker,
  startToCloseTimeout: '2 minutes',
  retry: {
    initialInterval: '2 seconds',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 8,
    nonRetryableErrorTypes: [ErrorTypes.badInput],
  },
});

/** Logs `metrics` (flattened) as `step` of the tracker run `runId`, when `config` names backends. */
export async function trackMetrics(
  config: { backends: TrackerBackend[]; experiment?: string } | undefined,
  entry: { runId: string; step: number; kind: 'training' | 'evaluation'; metrics: unknown },
): Promise<void> {
  if (!config || config.backends.length === 0) return;
  try {
    await tracker.tracker_log({
      runId: entry.runId,
      step: entry.step,
      kind: entry.kind,
      metrics: flattenMetrics(entry.metrics),
      backends: config.backends,
      experiment: config.experiment ?? 'segflow',
    });
  } catch (err) {
    if (isCancellation(err)) throw err;
    log.warn('experiment tracker failed; the metrics are in S3 only for this step', {
      runId: entry.runId,
      step: entry.step,
      error: err instanceof Error ? err.message : String(err),
    });
  }
}
