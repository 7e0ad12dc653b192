"""The trainer's telemetry, as on the TypeScript side (workers/telemetry.ts):

- SEGFLOW_METRICS_BIND_ADDRESS (host:port): the Temporal Runtime serves Prometheus `/metrics` there,
  the SDK's worker series and the trainer's `segflow_trainer_*` series recorded through
  `activity.metric_meter()` (so they leave through the same endpoint);
- SEGFLOW_OTLP_TRACES_ENDPOINT (an OTLP/HTTP `.../v1/traces` URL): `update_policy` is traced by
  `temporalio.contrib.opentelemetry.TracingInterceptor`, continuing the workflow's trace.
Both are off when unset.
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio import activity
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from .settings import TrainerSettings

log = logging.getLogger("segflow.trainer")

# The trainer's series (names shared with infra/grafana/segflow.json): one gauge per update metric.
TRAINER_GAUGES = {
    "loss": "segflow_trainer_loss",
    "pgLoss": "segflow_trainer_pg_loss",
    "pgClipFraction": "segflow_trainer_clip_fraction",
    "approxKl": "segflow_trainer_approx_kl",
    "kl": "segflow_trainer_kl",
    "entropy": "segflow_trainer_entropy",
    "gradNorm": "segflow_trainer_grad_norm",
    "learningRate": "segflow_trainer_learning_rate",
    "durationMs": "segflow_trainer_update_ms",
    # training–inference consistency on the sampled tokens (metrics.rollout)
    "rollout.logProbDiffMean": "segflow_trainer_rollout_logprob_diff_mean",
    "rollout.logProbDiffMax": "segflow_trainer_rollout_logprob_diff_max",
}
# Values that can be negative. The SDK's gauges take only values >= 0 (they raise otherwise), so these
# are two series, as in workflows/metrics.ts: sign="positive" holds max(v, 0), sign="negative"
# max(-v, 0); `sum without (sign) (x{sign="positive"}) - sum without (sign) (x{sign="negative"})` is v.
SIGNED = {"loss", "pgLoss", "approxKl", "kl"}


def runtime_for(settings: TrainerSettings) -> Runtime | None:
    """A Runtime serving Prometheus on the configured address; None keeps the SDK's default Runtime."""
    if not settings.metrics_bind_address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=settings.metrics_bind_address)))


def tracing_interceptors(settings: TrainerSettings) -> list[Any]:
    """The TracingInterceptor over an OTLP/HTTP exporter when an endpoint is set; none otherwise."""
    if not settings.otlp_traces_endpoint:
        return []
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from temporalio.contrib.opentelemetry import TracingInterceptor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint)))
    trace.set_tracer_provider(provider)
    return [TracingInterceptor(provider.get_tracer("segflow.trainer"))]


def _at(metrics: dict[str, Any], dotted: str) -> Any:
    """metrics["a"]["b"] for "a.b" (None where a level is missing)."""
    value: Any = metrics
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def record_update(run_id: str, metrics: dict[str, Any]) -> None:
    """The update's loss, clip fraction, grad norm, KL, entropy … as gauges tagged with the run.
    Called inside the activity; the SDK adds namespace, task_queue and activity_type. A metric never
    fails the update (its values are also in the result and the step's metrics.json)."""
    try:
        meter = activity.metric_meter()
        run = {"run_id": run_id}
        for key, name in TRAINER_GAUGES.items():
            value = _at(metrics, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            gauge = meter.create_gauge_float(name, f"trainer {key} of the last update")
            if key in SIGNED:
                gauge.set(max(float(value), 0.0), {**run, "sign": "positive"})
                gauge.set(max(-float(value), 0.0), {**run, "sign": "negative"})
            else:
                gauge.set(max(float(value), 0.0), run)
        if not metrics.get("reused"):
            meter.create_counter("segflow_trainer_updates", "policy updates made").add(1, run)
    except Exception as err:  # noqa: BLE001 - telemetry must not fail the activity
        log.warning("update metrics of run %s not recorded: %s", run_id, err)
