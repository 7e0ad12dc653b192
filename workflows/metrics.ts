/**
 * segflow's workflow-side series, recorded through the workflow metric meter: the SDK drops values
 * recorded while a workflow replays, so a step's values are emitted once, when the step is first
 * recorded. They come out of the orchestrator's Prometheus endpoint (workers/telemetry.ts) tagged
 * with namespace, task_queue and workflow_type by the SDK, and with run_id / eval_id here.
 */
import type { MetricGauge, MetricTags } from '@temporalio/common';
import { log, metricMeter } from '@temporalio/workflow';
import type { RolloutMetrics } from './training-metrics.js';

/** Metric names: one place, so the dashboard (infra/grafana/segflow.json) and the tests agree. */
export const WorkflowMetrics = {
  step: 'segflow_training_step',
  reward: 'segflow_reward_mean',
  keptGroups: 'segflow_groups_kept',
  droppedGroups: 'segflow_groups_dropped',
  stepMs: 'segflow_step_ms',
  samplesEvaluated: 'segflow_eval_samples_evaluated',
} as const;

/** What one recorded training step reports. */
export interface StepSeries {
  runId: string;
  step: number;
  rollouts: RolloutMetrics;
  keptGroups: number;
  droppedGroups: number;
  timings: { rolloutMs: number; updateMs: number; syncMs: number; totalMs: number };
}

/**
 * Sets a value that may be negative. The SDK's gauges take only values ≥ 0 (they throw otherwise,
 * inside the workflow), so a signed value is two series: `sign="positive"` holds max(v, 0) and
 * `sign="negative"` max(−v, 0); in PromQL, `sum without (sign) (x{sign="positive"}) - sum without
 * (sign) (x{sign="negative"})` is v again (infra/grafana/segflow.json does this).
 */
export function setSigned(gauge: MetricGauge, value: number, tags: MetricTags): void {
  gauge.set(Math.max(value, 0), { ...tags, sign: 'positive' });
  gauge.set(Math.max(-value, 0), { ...tags, sign: 'negative' });
}

/** Gauges of one training step: reward components, kept/dropped groups, step time by part. */
export function recordStepSeries(s: StepSeries): void {
  try {
    stepSeries(s);
  } catch (err) {
    // A metric must never fail the step: the values are also in the step's metrics.json.
    log.warn('step metrics not recorded', { runId: s.runId, step: s.step, error: String(err) });
  }
}

function stepSeries(s: StepSeries): void {
  const run = { run_id: s.runId };
  metricMeter.createGauge(WorkflowMetrics.step, 'int', '1', 'training steps recorded').set(s.step + 1, run);
  const reward = metricMeter.createGauge(WorkflowMetrics.reward, 'float', '1', 'mean reward of the step');
  const r = s.rollouts.reward;
  const components: Record<string, number | null> = {
    total: r.total.mean,
    outcome: r.outcome,
    format: r.format,
    process: r.process,
  };
  for (const [component, value] of Object.entries(components)) {
    if (value !== null) setSigned(reward, value, { ...run, component });
  }
  metricMeter.createGauge(WorkflowMetrics.keptGroups, 'int', '1', 'groups trained on').set(s.keptGroups, run);
  metricMeter
    .createGauge(WorkflowMetrics.droppedGroups, 'int', '1', 'groups dropped (no reward variance)')
    .set(s.droppedGroups, run);
  const ms = metricMeter.createGauge(WorkflowMetrics.stepMs, 'float', 'ms', 'step time by part');
  ms.set(Math.max(s.timings.totalMs, 0), { ...run, part: 'total' });
  ms.set(s.timings.rolloutMs, { ...run, part: 'rollout' });
  ms.set(s.timings.updateMs, { ...run, part: 'update' });
  ms.set(s.timings.syncMs, { ...run, part: 'sync' });
}

/** One evaluation sample done (scored or failed). */
export function recordSampleEvaluated(evalId: string): void {
  metricMeter
    .createCounter(WorkflowMetrics.samplesEvaluated, '1', 'evaluation samples evaluated')
    .add(1, { eval_id: evalId });
}
