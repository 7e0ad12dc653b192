"""Process settings from the environment: the same variables as the TypeScript side
(core/config/schema.ts envBindings), with the dev stack's defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass

TRAINER_TASK_QUEUE = "segflow-trainer"
TRACKER_TASK_QUEUE = "segflow-tracker"


def _env(*names: str, default: str) -> str:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return default


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    region: str
    bucket: str
    prefix: str
    access_key_id: str
    secret_access_key: str
    force_path_style: bool


@dataclass(frozen=True)
class TrainerSettings:
    temporal_address: str
    namespace: str
    task_queue: str
    tracker_task_queue: str
    s3: S3Settings
    work_dir: str
    """Local cache of downloaded policy folders (git-ignored under the repo by default)."""
    threads: int
    """torch intra-op threads; 0 = torch's default. Exact resume needs the same count on restart."""
    heartbeat_seconds: float
    metrics_bind_address: str | None = None
    """host:port serving Prometheus `/metrics` (SEGFLOW_METRICS_BIND_ADDRESS); None: no endpoint."""
    otlp_traces_endpoint: str | None = None
    """OTLP/HTTP traces URL (SEGFLOW_OTLP_TRACES_ENDPOINT); None: not traced."""
    service_name: str = "segflow-trainer"
    """`service.name` of the trainer's spans (SEGFLOW_SERVICE_NAME)."""
    nproc: int = 1
    """Processes of one policy update (SEGFLOW_TRAINER_NPROC): 1 runs it in the worker's process; N > 1
    runs it sharded with FSDP under `torchrun --nproc-per-node N` (one per GPU; gloo on CPU)."""
    fsdp_param_dtype: str = "float32"
    """Compute dtype of a sharded update (SEGFLOW_TRAINER_FSDP_PARAM_DTYPE: float32 | bfloat16 |
    float16); weights, gradient reduction and AdamW state stay float32."""


def load_settings() -> TrainerSettings:
    # As on the TypeScript side: unless endpoints are set, talk to the dev stack on its ports.
    dev_host = _env("SEGFLOW_DEV_HOST", default="127.0.0.1")
    dev_temporal = f"{dev_host}:{_env('SEGFLOW_DEV_TEMPORAL_PORT', default='7233')}"
    dev_s3 = f"http://{dev_host}:{_env('SEGFLOW_DEV_S3_PORT', default='8333')}"
    prefix = _env("SEGFLOW_S3_PREFIX", default="")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return TrainerSettings(
        temporal_address=_env("SEGFLOW_TEMPORAL_ADDRESS", "TEMPORAL_ADDRESS", default=dev_temporal),
        namespace=_env("SEGFLOW_TEMPORAL_NAMESPACE", "TEMPORAL_NAMESPACE", default="default"),
        task_queue=_env("SEGFLOW_TRAINER_TASK_QUEUE", default=TRAINER_TASK_QUEUE),
        tracker_task_queue=_env("SEGFLOW_TRACKER_TASK_QUEUE", default=TRACKER_TASK_QUEUE),
        s3=S3Settings(
            endpoint=_env("SEGFLOW_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", default=dev_s3),
            region=_env("SEGFLOW_S3_REGION", "AWS_REGION", default="us-east-1"),
            bucket=_env("SEGFLOW_S3_BUCKET", default="segflow"),
            prefix=prefix,
            access_key_id=_env("AWS_ACCESS_KEY_ID", default="segflow"),
            secret_access_key=_env("AWS_SECRET_ACCESS_KEY", default="segflow-dev-secret"),
            force_path_style=_env("SEGFLOW_S3_FORCE_PATH_STYLE", default="true") in ("true", "1"),
        ),
        work_dir=_env("SEGFLOW_TRAINER_WORK_DIR", default=".segflow/trainer"),
        threads=int(_env("SEGFLOW_TRAINER_THREADS", default="0")),
        heartbeat_seconds=float(_env("SEGFLOW_TRAINER_HEARTBEAT_SECONDS", default="2")),
        metrics_bind_address=_env("SEGFLOW_METRICS_BIND_ADDRESS", default="") or None,
        otlp_traces_endpoint=_env("SEGFLOW_OTLP_TRACES_ENDPOINT", default="") or None,
        service_name=_env("SEGFLOW_SERVICE_NAME", default="segflow-trainer"),
        nproc=_nproc(_env("SEGFLOW_TRAINER_NPROC", default="1")),
        fsdp_param_dtype=_choice(
            "SEGFLOW_TRAINER_FSDP_PARAM_DTYPE", _env("SEGFLOW_TRAINER_FSDP_PARAM_DTYPE", default="float32"),
            ("float32", "bfloat16", "float16"),
        ),
    )


def _nproc(raw: str) -> int:
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(
            f"SEGFLOW_TRAINER_NPROC={raw!r}: expected a whole number >= 1 (1: updates run in the worker's "
            "process; N > 1: sharded over N processes under torchrun, one per GPU)"
        )
    return n


def _choice(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise ValueError(f"{name}={raw!r}: expected one of {', '.join(allowed)}")
    return raw
