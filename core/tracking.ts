/**
 * The experiment tracker's side of the workflows (pure; safe in workflow code): which trackers a run
 * logs to, the request of the Python `tracker_log` activity (trainer/segflow_trainer/tracker.py, on
 * the `segflow-tracker` queue), and the flattener that turns a step's metrics.json or an evaluation's
 * summary into the flat name → number map trackers take.
 */
import { z } from 'zod';

export const trackerBackends = ['mlflow', 'tensorboard'] as const;
export type TrackerBackend = (typeof trackerBackends)[number];

/** Where a run's metrics go besides S3 (a training config's or an evaluation input's `tracker`). */
export const trackerConfigSchema = z.strictObject({
  /** Trackers to log to; empty: none (the trainer worker says where each writes, README). @default [] */
  backends: z.array(z.enum(trackerBackends)).default([]),
  /** MLflow experiment the run goes to. @default "segflow" */
  experiment: z.string().min(1).default('segflow'),
});
export type TrackerConfig = z.output<typeof trackerConfigSchema>;

export interface TrackerLogRequest {
  /** The tracker's run: the segflow run id (or evaluation id), so retries append to one run. */
  runId: string;
  step: number;
  kind: 'training' | 'evaluation';
  metrics: Record<string, number>;
  backends: TrackerBackend[];
  experiment: string;
}

/** The Python tracker's activity (name as registered there). */
export interface TrackerActivities {
  tracker_log(request: TrackerLogRequest): Promise<{ written: Partial<Record<TrackerBackend, number>> }>;
}

/**
 * `{rollouts: {reward: {total: {mean: 0.5}}}, skipped: false}` → `{"rollouts/reward/total/mean": 0.5,
 * "skipped": 0}`: finite numbers, and booleans as 0/1, under their `/`-joined path (TensorBoard
 * groups by the first part); strings, nulls, NaN (null in JSON) and arrays are left out. Characters
 * MLflow rejects in a name (anything but letters, digits, `_ - . /` and space, e.g. from a stop
 * reason or an ability name used as a key) become `_`.
 */
export function flattenMetrics(value: unknown, prefix = ''): Record<string, number> {
  const out: Record<string, number> = {};
  const walk = (v: unknown, path: string): void => {
    if (typeof v === 'number') {
      if (Number.isFinite(v) && path) out[path] = v;
    } else if (typeof v === 'boolean') {
      if (path) out[path] = v ? 1 : 0;
    } else if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, child] of Object.entries(v)) {
        const name = k.replace(/[^A-Za-z0-9_\-. ]/g, '_');
        walk(child, path ? `${path}/${name}` : name);
      }
    }
  };
  walk(value, prefix);
  return out;
}
