/**
 * The worker process's telemetry: the Temporal Runtime's Prometheus endpoint (SDK series and the
 * `segflow_*` series recorded through the SDK metric meters, activities/runtime/metrics.ts) and,
 * when `observability.tracing.otlpEndpoint` is set, OpenTelemetry traces through the Temporal
 * interceptors, exported over OTLP/HTTP.
 */
import { fileURLToPath } from 'node:url';
import { trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import type { ActivityInterceptorsFactory, RuntimeOptions, WorkerOptions } from '@temporalio/worker';
import type { SegflowConfig } from '../core/config/schema.js';

/** The Runtime's telemetry options: logs forwarded at WARN; Prometheus when a bind address is set. */
export function runtimeTelemetryOptions(config: SegflowConfig): RuntimeOptions['telemetryOptions'] {
  const { bindAddress } = config.observability.metrics;
  return {
    logging: { filter: { core: 'WARN', other: 'WARN' }, forward: {} },
    ...(bindAddress ? { metrics: { prometheus: { bindAddress } } } : {}),
  };
}

/**
 * The workflow bundle a worker loads: the traced one carries the OpenTelemetry workflow
 * interceptors (scripts/bundle-workflows.js builds both), since interceptor modules are fixed at
 * bundle time.
 */
export function workflowBundleFile(config: SegflowConfig): string {
  return config.observability.tracing.otlpEndpoint ? 'workflow-bundle-traced.js' : 'workflow-bundle.js';
}

export interface Tracing {
  /** Activity interceptors that continue the workflow's trace into each activity. */
  activityInterceptors: ActivityInterceptorsFactory[];
  /** The workflow interceptor module, for a worker that bundles at start-up. */
  workflowInterceptorModule: string;
  /** The sink through which workflow spans leave the workflow sandbox. */
  sinks: NonNullable<WorkerOptions['sinks']>;
  /** Flushes and stops the exporter. */
  shutdown(): Promise<void>;
}

/** Starts the tracer provider when tracing is configured; undefined when it is off. */
export function startTracing(config: SegflowConfig): Tracing | undefined {
  const { otlpEndpoint, serviceName } = config.observability.tracing;
  if (!otlpEndpoint) return undefined;
  const resource = new Resource({ 'service.name': serviceName, 'service.instance.id': config.worker.hostId });
  const processor: SpanProcessor = new BatchSpanProcessor(new OTLPTraceExporter({ url: otlpEndpoint }), {
    scheduledDelayMillis: 1000,
  });
  const provider = new NodeTracerProvider({ resource, spanProcessors: [processor] });
  provider.register();
  const tracer = trace.getTracer('segflow');
  return {
    activityInterceptors: [
      (ctx) => ({
        inbound: new OpenTelemetryActivityInboundInterceptor(ctx, { tracer }),
        outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
      }),
    ],
    workflowInterceptorModule: fileURLToPath(
      new URL('../workflows/tracing-interceptors.js', import.meta.url),
    ),
    sinks: { exporter: makeWorkflowExporter(processor, resource) },
    shutdown: () => provider.shutdown(),
  };
}
