/**
 * segflow's own activity-side series, recorded through the activity's SDK metric meter so they are
 * served from the same Prometheus endpoint as the SDK's (workers/telemetry.ts). The meter already
 * tags each value with namespace, task_queue and activity_type. Outside an activity (the CLI calling
 * the same code, a unit test) the values go to the SDK's no-op meter.
 */
import { Context } from '@temporalio/activity';
import { noopMetricMeter, type MetricMeter } from '@temporalio/common';

/** Metric names: one place, so the dashboard (infra/grafana/segflow.json) and the tests agree. */
export const ActivityMetrics = {
  searchLatency: 'segflow_search_latency',
  searchCacheHits: 'segflow_search_cache_hits',
  searchCalls: 'segflow_search_calls',
  searchPaidCalls: 'segflow_search_paid_calls',
  sam2FrameMs: 'segflow_sam2_frame_ms',
  policyLatency: 'segflow_policy_generate_latency',
  policyTokensPerSecond: 'segflow_policy_tokens_per_second',
  policyCompletionTokens: 'segflow_policy_completion_tokens',
} as const;

function meter(): MetricMeter {
  try {
    return Context.current().metricMeter;
  } catch {
    return noopMetricMeter;
  }
}

/** One search: its latency, whether the cache (or an identical in-flight search) answered it. */
export function recordSearch(backend: string, tool: string, ms: number, cached: boolean): void {
  const m = meter();
  const tags = { backend, tool };
  m.createHistogram(ActivityMetrics.searchLatency, 'float', 'ms', 'search activity latency').record(ms, tags);
  m.createCounter(ActivityMetrics.searchCalls, '1', 'searches').add(1, tags);
  if (cached)
    m.createCounter(ActivityMetrics.searchCacheHits, '1', 'searches the cache answered').add(1, tags);
}

/** One call of a paid search backend (the same event the paid-call ledger records). */
export function recordPaidSearchCall(backend: string): void {
  meter()
    .createCounter(ActivityMetrics.searchPaidCalls, '1', 'paid search backend calls')
    .add(1, { backend });
}

/** SAM2 compute time per frame of one segmentation (`kind` image or video). */
export function recordSam2(kind: 'image' | 'video', ms: number, frames: number): void {
  if (frames <= 0) return;
  meter()
    .createHistogram(ActivityMetrics.sam2FrameMs, 'float', 'ms', 'SAM2 milliseconds per frame')
    .record(ms / frames, { kind });
}

/**
 * One policy turn. The client does not stream, so time-to-first-token is not observable: the whole
 * request's latency and the completion's tokens per second are recorded instead.
 */
export function recordPolicyTurn(ms: number, completionTokens: number): void {
  const m = meter();
  // No model tag: model names carry the run and the policy version (one series per version).
  const tags = {};
  m.createHistogram(ActivityMetrics.policyLatency, 'float', 'ms', 'policy turn latency').record(ms, tags);
  m.createCounter(ActivityMetrics.policyCompletionTokens, '1', 'completion tokens').add(
    completionTokens,
    tags,
  );
  if (ms > 0 && completionTokens > 0) {
    m.createHistogram(
      ActivityMetrics.policyTokensPerSecond,
      'float',
      '1',
      'completion tokens per second',
    ).record((completionTokens * 1000) / ms, tags);
  }
}
