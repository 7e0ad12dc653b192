"""Process settings from the environment: the same variables as the TypeScript side
(core/config/schema.ts envBindings), with the dev stack's defaults.

The Temporal connection comes from the SDK's environment configuration (`temporalio.envconfig`:
the standard TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_GRPC_META_*
variables and the profiles of TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE), with segflow's own names on
top so that one ConfigMap/Secret serves the TypeScript workers and the trainer alike:
SEGFLOW_TEMPORAL_ADDRESS, SEGFLOW_TEMPORAL_NAMESPACE, SEGFLOW_TEMPORAL_TLS (true/false),
SEGFLOW_TEMPORAL_TLS_SERVER_NAME, TEMPORAL_TLS_CA, TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY (file paths).
The payload codec (codec.py) is on when SEGFLOW_CODEC_KEYS or SEGFLOW_CODEC_KEY_FILE is set, as on the
TypeScript side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .codec import payload_codec_from_env
from .errors import ConfigError

TRAINER_TASK_QUEUE = "segflow-trainer"
TRACKER_TASK_QUEUE = "segflow-tracker"


def _lookup(*names: str, default: str, env: Mapping[str, str]) -> str:
    for n in names:
        v = env.get(n)
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
class TemporalTls:
    """TLS to the Temporal frontend; PEM bytes read when the settings load (a missing file fails then)."""

    server_name: str | None = None
    server_root_ca_cert: bytes | None = field(default=None, repr=False)
    client_cert: bytes | None = field(default=None, repr=False)
    client_private_key: bytes | None = field(default=None, repr=False)

    @property
    def mutual(self) -> bool:
        return self.client_cert is not None


@dataclass(frozen=True)
class TemporalSettings:
    address: str
    namespace: str
    api_key: str | None = field(default=None, repr=False)
    tls: TemporalTls | None = None
    """None: plain gRPC (the dev stack); else TLS, with a client certificate for mTLS."""
    rpc_metadata: Mapping[str, str] = field(default_factory=dict, repr=False)
    profile: str | None = None
    """The envconfig profile the settings came from (TEMPORAL_PROFILE; None: "default")."""
    payload_codec: Any = field(default=None, repr=False)
    """codec.AesGcmPayloadCodec when SEGFLOW_CODEC_KEYS / SEGFLOW_CODEC_KEY_FILE is set: payloads are encrypted
    (the TypeScript side's format); None: they are not."""

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `temporalio.client.Client.connect` (the workers of the client inherit its
        data converter, so the payload codec covers them too)."""
        from temporalio.service import TLSConfig

        kw: dict[str, Any] = {"target_host": self.address, "namespace": self.namespace}
        if self.payload_codec is not None:
            import dataclasses

            import temporalio.converter

            kw["data_converter"] = dataclasses.replace(temporalio.converter.default(), payload_codec=self.payload_codec)
        if self.api_key:
            kw["api_key"] = self.api_key
        if self.tls is not None:
            t = self.tls
            plain = not (t.server_name or t.server_root_ca_cert or t.client_cert)
            kw["tls"] = True if plain else TLSConfig(
                domain=t.server_name,
                server_root_ca_cert=t.server_root_ca_cert,
                client_cert=t.client_cert,
                client_private_key=t.client_private_key,
            )
        if self.rpc_metadata:
            kw["rpc_metadata"] = dict(self.rpc_metadata)
        return kw

    def describe(self) -> str:
        """For the log: where, how, never the secrets."""
        how = "plain" if self.tls is None else ("mTLS" if self.tls.mutual else "TLS")
        codec = ", payloads encrypted" if self.payload_codec is not None else ""
        return f"{self.address} namespace {self.namespace} ({how}{', API key' if self.api_key else ''}{codec}" + (
            f", profile {self.profile})" if self.profile else ")"
        )


@dataclass(frozen=True)
class TrainerSettings:
    temporal: TemporalSettings
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
    keep_versions: int = 1
    """Finished versions kept in the work dir after their upload (SEGFLOW_TRAINER_KEEP_VERSIONS):
    the parent of the next step, which then needs no download; older ones are removed."""

    @property
    def temporal_address(self) -> str:
        return self.temporal.address

    @property
    def namespace(self) -> str:
        return self.temporal.namespace


def load_settings(env: Mapping[str, str] | None = None) -> TrainerSettings:
    """The settings from `env` (default: the process's environment)."""
    env = dict(os.environ) if env is None else dict(env)

    def _env(*names: str, default: str) -> str:
        return _lookup(*names, default=default, env=env)

    # As on the TypeScript side: unless endpoints are set, talk to the dev stack on its ports.
    dev_host = _env("SEGFLOW_DEV_HOST", default="127.0.0.1")
    dev_temporal = f"{dev_host}:{_env('SEGFLOW_DEV_TEMPORAL_PORT', default='7233')}"
    dev_s3 = f"http://{dev_host}:{_env('SEGFLOW_DEV_S3_PORT', default='8333')}"
    prefix = _env("SEGFLOW_S3_PREFIX", default="")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return TrainerSettings(
        temporal=load_temporal_settings(env, dev_temporal),
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
        keep_versions=_whole("SEGFLOW_TRAINER_KEEP_VERSIONS", _env("SEGFLOW_TRAINER_KEEP_VERSIONS", default="1"), 0),
    )


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def load_temporal_settings(env: Mapping[str, str], default_address: str) -> TemporalSettings:
    """The Temporal connection: the envconfig profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE, with the
    standard TEMPORAL_* variables applied over it), then segflow's variables over that.

    TLS is on when SEGFLOW_TEMPORAL_TLS says so, else when the profile/TEMPORAL_TLS says so, else
    when an API key, a CA, a client certificate or a server name is given. An API key implies TLS:
    with TLS explicitly off it is refused rather than sent in the clear. A client certificate needs
    its key (and the key its certificate); every file named must be readable."""
    from temporalio.envconfig import ClientConfigProfile

    config_file = env.get("TEMPORAL_CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"TEMPORAL_CONFIG_FILE={config_file}: no such file (a TOML file of Temporal client profiles)")
    profile_name = env.get("TEMPORAL_PROFILE") or None
    try:
        profile = ClientConfigProfile.load(profile=profile_name, override_env_vars=dict(env))
    except Exception as err:  # noqa: BLE001 - the bridge raises its own ConfigError type
        where = f"TEMPORAL_CONFIG_FILE={config_file}" if config_file else "the default Temporal config file"
        raise ConfigError(
            f"the Temporal client profile {profile_name or 'default'!r} (TEMPORAL_PROFILE) from {where} "
            f"does not load: {err}"
        ) from err

    ptls = profile.tls
    tls_flag = env.get("SEGFLOW_TEMPORAL_TLS", "").strip().lower()
    if tls_flag and tls_flag not in _TRUE + _FALSE:
        raise ConfigError(f"SEGFLOW_TEMPORAL_TLS={env['SEGFLOW_TEMPORAL_TLS']!r}: expected true or false")
    server_name = env.get("SEGFLOW_TEMPORAL_TLS_SERVER_NAME") or (ptls.server_name if ptls else None)
    ca = _pem(env, "TEMPORAL_TLS_CA", ptls.server_root_ca_cert if ptls else None, "server CA certificate")
    cert = _pem(env, "TEMPORAL_TLS_CERT", ptls.client_cert if ptls else None, "client certificate")
    key = _pem(env, "TEMPORAL_TLS_KEY", ptls.client_private_key if ptls else None, "client key")
    if (cert is None) != (key is None):
        have, missing = ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY") if key is None else ("TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CERT")
        raise ConfigError(
            f"mTLS is half configured: {have} (or the profile's/TEMPORAL_TLS_CLIENT_* {have.rsplit('_', 1)[1].lower()}) "
            f"is set but {missing} is not; a client certificate needs its private key: set both, or neither for "
            "server-only TLS"
        )

    if tls_flag:
        enabled, switch = tls_flag in _TRUE, f"SEGFLOW_TEMPORAL_TLS={env['SEGFLOW_TEMPORAL_TLS']}"
    elif ptls is not None and ptls.disabled is not None:
        enabled, switch = not ptls.disabled, "TEMPORAL_TLS (or the profile's tls.disabled)"
    else:
        enabled, switch = bool(profile.api_key or server_name or ca or cert), ""
    api_key = profile.api_key or None
    if not enabled and api_key:
        raise ConfigError(
            f"TLS is turned off ({switch}) but a Temporal API key is set (TEMPORAL_API_KEY or the profile's "
            "api_key): an API key is only sent over TLS; turn TLS on or unset the key"
        )
    if not enabled and (ca or cert or server_name):
        raise ConfigError(
            f"TLS is turned off ({switch}) but TLS settings are given (CA, client certificate or server name): "
            "turn TLS on or unset them"
        )
    return TemporalSettings(
        address=env.get("SEGFLOW_TEMPORAL_ADDRESS") or profile.address or default_address,
        namespace=env.get("SEGFLOW_TEMPORAL_NAMESPACE") or profile.namespace or "default",
        api_key=api_key,
        tls=TemporalTls(server_name, ca, cert, key) if enabled else None,
        rpc_metadata=dict(profile.grpc_meta),
        profile=profile_name,
        payload_codec=payload_codec_from_env(env),
    )


def _pem(env: Mapping[str, str], var: str, from_profile: Any, what: str) -> bytes | None:
    """PEM bytes from the segflow variable `var` (a path), else from the profile (a path or the data)."""
    path = env.get(var)
    label = f"{var}={path}"
    if not path:
        if from_profile is None:
            return None
        if isinstance(from_profile, (bytes, bytearray)):
            return bytes(from_profile)
        if isinstance(from_profile, str) and not isinstance(from_profile, Path) and "-----BEGIN" in from_profile:
            return from_profile.encode()
        path = str(from_profile)
        label = f"the Temporal {what} file {path} (TEMPORAL_TLS_*_PATH or the profile's tls section)"
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"{label}: the {what} cannot be read ({err.strerror or err})") from err
    if not data.strip():
        raise ConfigError(f"{label}: the {what} file is empty")
    return data


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


def _whole(name: str, raw: str, minimum: int) -> int:
    try:
        n = int(raw)
    except ValueError:
        n = minimum - 1
    if n < minimum:
        raise ConfigError(f"{name}={raw!r}: expected a whole number >= {minimum}")
    return n


def _choice(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise ValueError(f"{name}={raw!r}: expected one of {', '.join(allowed)}")
    return raw
