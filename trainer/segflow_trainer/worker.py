"""The trainer worker: polls `segflow-trainer` and serves `update_policy`; polls `segflow-tracker` and
serves `tracker_log` (tracker.py), apart so that logging a step never waits behind a long update.

    python -m segflow_trainer.worker          (from trainer/, or with trainer/ on PYTHONPATH)

Environment: the Temporal connection (settings.py: the SDK's environment configuration, i.e.
TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_PROFILE and
TEMPORAL_CONFIG_FILE, with segflow's SEGFLOW_TEMPORAL_ADDRESS, SEGFLOW_TEMPORAL_NAMESPACE (default
"default"), SEGFLOW_TEMPORAL_TLS, SEGFLOW_TEMPORAL_TLS_SERVER_NAME, TEMPORAL_TLS_CA/CERT/KEY on top), the S3
variables (SEGFLOW_S3_ENDPOINT, SEGFLOW_S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY),
SEGFLOW_TRAINER_WORK_DIR, SEGFLOW_TRAINER_THREADS, SEGFLOW_TRAINER_HEARTBEAT_SECONDS,
SEGFLOW_TRAINER_NPROC (1: updates run in this process; N > 1: each update runs sharded with FSDP
over N processes under torchrun, update_cli.py) with SEGFLOW_TRAINER_FSDP_PARAM_DTYPE, and
SEGFLOW_TRAINER_FAMILIES (comma-separated modules of policy families beyond the built-in Hugging
Face one, imported at start; family.py), where the tracker writes: SEGFLOW_TRACKER_MLFLOW_URI
(else MLFLOW_TRACKING_URI), SEGFLOW_TRACKER_TENSORBOARD_DIR (default .segflow/tensorboard), and the
observability settings SEGFLOW_METRICS_BIND_ADDRESS and SEGFLOW_OTLP_TRACES_ENDPOINT (telemetry.py;
both off when unset), and the payload codec SEGFLOW_CODEC_KEYS / SEGFLOW_CODEC_KEY_FILE with
SEGFLOW_CODEC_COMPRESS (codec.py; payloads are not encrypted when unset).

One update runs at a time (it owns the process's torch RNG and the CPU/GPU). The update runs in a
worker thread while the activity heartbeats its progress every few seconds, so a dead trainer is
noticed within the workflow's heartbeat timeout and the step is retried on another trainer. A
trainer that was only slow (its heartbeats did not arrive in time) learns it from its next heartbeat:
the SDK cancels the activity, and the update thread stops at its next phase or optimizer step
(UpdateCancelledError from the progress callback). Until it stops it is a zombie racing its retry;
that race is safe by construction (update.py, "Attempts"): each attempt writes only its own folder
and the version's manifest is created once.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
import concurrent.futures
import logging
import signal
import sys
import threading
from pathlib import Path

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from .errors import UpdateCancelledError, raise_mapped
from .redact import install_log_redaction
from .family import load_family_modules, registered_families
from .settings import TrainerSettings, load_settings
from .store import Store
from .tracker import Tracking, load_tracker_settings
from .telemetry import record_update, runtime_for, tracing_interceptors
from .update import clean_work_dir, update_policy
from .update_cli import run_sharded_update

log = logging.getLogger("segflow.trainer")


class TrainerActivities:
    def __init__(self, settings: TrainerSettings):
        self.settings = settings
        self.store = Store(settings.s3)
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="update")

    @activity.defn(name="update_policy")
    async def update_policy(self, batch_ref: dict, policy_ref: dict, hyperparameters: dict) -> dict:
        info = activity.info()
        progress = {"phase": "start", "done": 0, "total": 0, "attempt": info.attempt}
        cancelled = threading.Event()

        def report(phase: str, done: int, total: int) -> None:
            if cancelled.is_set():
                raise UpdateCancelledError(
                    f"update_policy attempt {info.attempt} of {hyperparameters.get('runId')} step "
                    f"{hyperparameters.get('step')} was cancelled (phase {progress['phase']})"
                )
            progress.update(phase=phase, done=done, total=total)

        def run() -> dict:
            return update_policy(
                self.store,
                batch_ref,
                policy_ref,
                hyperparameters,
                Path(self.settings.work_dir),
                report,
                keep_versions=self.settings.keep_versions,
                attempt=info.attempt,
            )

        log.info("update_policy %s step %s attempt %d", hyperparameters.get("runId"), hyperparameters.get("step"), info.attempt)
        if self.settings.nproc > 1:
            result = await self._sharded_update(batch_ref, policy_ref, hyperparameters, info.attempt)
        else:
            fut = asyncio.get_running_loop().run_in_executor(self.executor, run)
            try:
                while True:
                    activity.heartbeat(dict(progress))
                    done, _ = await asyncio.wait([fut], timeout=self.settings.heartbeat_seconds)
                    if done:
                        break
            except asyncio.CancelledError:
                # Timed out (the server answered a heartbeat with "not found"), cancelled, or the worker
                # is shutting down: the thread cannot be killed, it stops at its next progress call.
                cancelled.set()
                fut.add_done_callback(
                    lambda f: log.info(
                        "cancelled update_policy attempt %d stopped: %r", info.attempt, None if f.cancelled() else f.exception()
                    )
                )
                log.warning(
                    "update_policy %s step %s attempt %d cancelled (%s) in phase %s; stopping it",
                    hyperparameters.get("runId"),
                    hyperparameters.get("step"),
                    info.attempt,
                    activity.cancellation_details(),
                    progress["phase"],
                )
                raise
            try:
                result = fut.result()
            except BaseException as err:  # noqa: BLE001 - mapped onto Temporal's retry classes
                raise_mapped(err)
        record_update(str(hyperparameters.get("runId")), result["metrics"])
        log.info(
            "update_policy %s -> v%s (%s)",
            hyperparameters.get("runId"),
            result["policy"]["version"],
            "reused" if result["metrics"]["reused"] else f"{result['metrics']['durationMs']:.0f} ms",
        )
        return result

    async def _sharded_update(self, batch_ref: dict, policy_ref: dict, hyperparameters: dict, attempt: int) -> dict:
        """The update under torchrun, SEGFLOW_TRAINER_NPROC processes (update_cli.py); a cancelled
        activity stops them."""
        try:
            return await run_sharded_update(
                self.settings.nproc,
                batch_ref,
                policy_ref,
                hyperparameters,
                Path(self.settings.work_dir),
                heartbeat=lambda p: activity.heartbeat({**p, "attempt": attempt, "processes": self.settings.nproc}),
                heartbeat_seconds=self.settings.heartbeat_seconds,
                extra_args=("--attempt", str(attempt)),
            )
        except asyncio.CancelledError:
            raise
        except BaseException as err:  # noqa: BLE001 - mapped onto Temporal's retry classes
            raise_mapped(err)


class TrackerActivities:
    def __init__(self, tracking: Tracking):
        self.tracking = tracking

    @activity.defn(name="tracker_log")
    async def tracker_log(self, request: dict) -> dict:
        """`{runId, step, kind, metrics, backends, experiment}` → values written per backend."""

        def run() -> dict:
            return self.tracking.log(
                list(request.get("backends", [])),
                request.get("runId", ""),
                request.get("step", -1),
                request.get("metrics", {}),
                request.get("kind", ""),
                request.get("experiment") or "segflow",
            )

        try:
            written = await asyncio.to_thread(run)
        except BaseException as err:  # noqa: BLE001 - mapped onto Temporal's retry classes
            raise_mapped(err)
        log.info("tracker_log %s step %s -> %s", request.get("runId"), request.get("step"), written)
        return {"written": written}


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    install_log_redaction()  # no secret an error or a library echoes reaches the log
    settings = load_settings()
    load_family_modules()  # a family module that does not import stops the worker here, not mid-run
    log.info("policy families: %s", ", ".join(registered_families()))
    if settings.nproc > 1:
        log.info("updates run sharded (FSDP) over %d processes under torchrun", settings.nproc)
    import torch

    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    torch.use_deterministic_algorithms(True)
    log.info("connecting to Temporal at %s", settings.temporal.describe())
    client = await Client.connect(**settings.temporal.connect_kwargs(), runtime=runtime_for(settings))
    leftovers = clean_work_dir(Path(settings.work_dir))  # before any update: this worker owns the work dir
    if leftovers:
        log.info("removed %d leftovers of an earlier crash from %s", len(leftovers), settings.work_dir)
    acts = TrainerActivities(settings)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        activities=[acts.update_policy],
        max_concurrent_activities=1,
        interceptors=tracing_interceptors(settings),
        graceful_shutdown_timeout=timedelta(seconds=30),
    )
    tracker = Worker(
        client,
        task_queue=settings.tracker_task_queue,
        activities=[TrackerActivities(Tracking(load_tracker_settings())).tracker_log],
        max_concurrent_activities=4,
        interceptors=tracing_interceptors(settings),
        graceful_shutdown_timeout=timedelta(seconds=10),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker, tracker:
        log.info(
            "trainer polling %s and %s in namespace %s", settings.task_queue, settings.tracker_task_queue, settings.namespace
        )
        print(f"trainer polling {settings.task_queue}", flush=True)
        await stop.wait()
    acts.executor.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":
    asyncio.run(main())
