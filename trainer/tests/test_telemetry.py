"""The trainer's telemetry settings: off unless configured; configured, the Runtime serves /metrics."""

from __future__ import annotations

import random
import urllib.request

from segflow_trainer.settings import load_settings
from segflow_trainer.telemetry import runtime_for, tracing_interceptors


def test_metrics_and_tracing_are_off_by_default(monkeypatch):
    monkeypatch.delenv("SEGFLOW_METRICS_BIND_ADDRESS", raising=False)
    monkeypatch.delenv("SEGFLOW_OTLP_TRACES_ENDPOINT", raising=False)
    settings = load_settings()
    assert settings.metrics_bind_address is None
    assert runtime_for(settings) is None
    assert tracing_interceptors(settings) == []


def test_configured_runtime_serves_prometheus(monkeypatch):
    port = random.randint(40000, 49999)
    monkeypatch.setenv("SEGFLOW_METRICS_BIND_ADDRESS", f"127.0.0.1:{port}")
    settings = load_settings()
    assert settings.metrics_bind_address == f"127.0.0.1:{port}"
    runtime = runtime_for(settings)
    assert runtime is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200


def test_configured_tracing_gives_the_temporal_interceptor(monkeypatch):
    from temporalio.contrib.opentelemetry import TracingInterceptor

    monkeypatch.setenv("SEGFLOW_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    (interceptor,) = tracing_interceptors(load_settings())
    assert isinstance(interceptor, TracingInterceptor)


def test_update_metrics_take_negative_values(monkeypatch):
    """The SDK's gauges reject values < 0: a negative loss is recorded as its sign="negative" series."""
    recorded: dict[tuple, float] = {}

    class Gauge:
        def __init__(self, name):
            self.name = name

        def set(self, value, attrs):
            assert value >= 0, f"{self.name} set to {value}"
            recorded[(self.name, tuple(sorted(attrs.items())))] = value

    class Meter:
        def create_gauge_float(self, name, description=None, unit=None):
            return Gauge(name)

        def create_counter(self, name, description=None, unit=None):
            return type("C", (), {"add": lambda self, v, a: recorded.__setitem__((name, ()), v)})()

    from segflow_trainer import telemetry

    monkeypatch.setattr(telemetry.activity, "metric_meter", lambda: Meter())
    telemetry.record_update(
        "r1", {"loss": -0.25, "gradNorm": 1.5, "kl": None, "reused": False, "rollout": {"logProbDiffMax": 3e-6, "logProbDiffMean": None}}
    )
    run = ("run_id", "r1")
    assert recorded[("segflow_trainer_loss", (run, ("sign", "negative")))] == 0.25
    assert recorded[("segflow_trainer_loss", (run, ("sign", "positive")))] == 0.0
    assert recorded[("segflow_trainer_grad_norm", (run,))] == 1.5
    assert recorded[("segflow_trainer_rollout_logprob_diff_max", (run,))] == 3e-6
    assert not any(name == "segflow_trainer_rollout_logprob_diff_mean" for name, _ in recorded)
    assert not any(name == "segflow_trainer_kl" for name, _ in recorded)
