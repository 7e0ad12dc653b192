"""The experiment tracker: per-step training metrics and evaluation summaries, besides S3, to the
trackers researchers already compare runs in. One adapter, `Tracking(backends=[...])`, in the style of
veRL's `verl/utils/tracking.py`, with a backend per tracker; the activity `tracker_log` (worker.py)
feeds it the flat dict the workflow made from the step's metrics.json (core/tracking.ts).

Durable execution retries activities and continues runs as new, so every backend is idempotent per
(run id, step): the tracker's run is the segflow run id (or evaluation id), found or created by that
id, and a step it already holds is not written again.

  mlflow       MlflowClient against SEGFLOW_TRACKER_MLFLOW_URI (else MLFLOW_TRACKING_URI). The run is
               the one tagged `segflow.run_id` in the experiment; metrics go with `step=k` unless the
               key already has a value at step k.
  tensorboard  One log dir per run id under SEGFLOW_TRACKER_TENSORBOARD_DIR, one event file per step
               (`….step-0000000k`), written aside and renamed in, so a step is either wholly there or
               absent and a retry that finds it does nothing.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import BadInputError
from .safe_keys import path_under, segment_problem

RUN_ID_TAG = "segflow.run_id"
KIND_TAG = "segflow.kind"
KINDS = ("training", "evaluation")
# MLflow's metric-name alphabet; the workflow's flattener (core/tracking.ts) already keeps to it
_KEY_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./ ")


@dataclass(frozen=True)
class TrackerSettings:
    mlflow_tracking_uri: str | None
    tensorboard_dir: str


def _env(*names: str) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def load_tracker_settings() -> TrackerSettings:
    return TrackerSettings(
        mlflow_tracking_uri=_env("SEGFLOW_TRACKER_MLFLOW_URI", "MLFLOW_TRACKING_URI"),
        tensorboard_dir=_env("SEGFLOW_TRACKER_TENSORBOARD_DIR") or ".segflow/tensorboard",
    )


class Backend(Protocol):
    def log(self, run_id: str, step: int, metrics: Mapping[str, float], kind: str, experiment: str) -> int:
        """Writes the metrics of `step` the run does not hold yet; returns how many it wrote."""
        ...


class MlflowBackend:
    """MLflow through its REST client (mlflow-skinny): works against any tracking server."""

    def __init__(self, tracking_uri: str):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self._runs: dict[tuple[str, str], str] = {}

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException:  # created by another tracker meanwhile
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    def _find(self, experiment_id: str, run_id: str) -> list:
        return self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'",
            order_by=["attributes.start_time ASC"],
            max_results=10,
        )

    def run_for(self, experiment: str, run_id: str, kind: str) -> str:
        """The MLflow run of a segflow run: found by its tag, else created. Two trackers creating it
        at once both keep the oldest and delete their own, so one run remains."""
        cached = self._runs.get((experiment, run_id))
        if cached is not None:
            return cached
        exp_id = self._experiment_id(experiment)
        found = self._find(exp_id, run_id)
        if not found:
            created = self.client.create_run(
                exp_id, run_name=run_id, tags={RUN_ID_TAG: run_id, KIND_TAG: kind}
            ).info.run_id
            found = self._find(exp_id, run_id)
            if found and found[0].info.run_id != created:
                self.client.delete_run(created)
        if not found:
            raise RuntimeError(f"MLflow run for {run_id!r} was created but is not found by its tag")
        mlflow_run = found[0].info.run_id
        self._runs[(experiment, run_id)] = mlflow_run
        return mlflow_run

    def _has_step(self, mlflow_run: str, key: str, step: int, latest_step: int | None) -> bool:
        if latest_step is None or latest_step < step:
            return False
        if latest_step == step:
            return True
        # an older step retried after newer ones were logged (rare): read the key's history
        return any(m.step == step for m in self.client.get_metric_history(mlflow_run, key))

    def log(self, run_id: str, step: int, metrics: Mapping[str, float], kind: str, experiment: str) -> int:
        from mlflow.entities import Metric

        mlflow_run = self.run_for(experiment, run_id, kind)
        run = self.client.get_run(mlflow_run)
        # the latest value of each key, with its step (one call instead of one history per key)
        latest = {m.key: m.step for m in getattr(run.data, "_metric_objs", [])}
        now = int(time.time() * 1000)
        todo = [
            Metric(key, float(value), now, step)
            for key, value in metrics.items()
            if not self._has_step(mlflow_run, key, step, latest.get(key))
        ]
        for i in range(0, len(todo), 1000):  # log_batch takes at most 1000 metrics
            self.client.log_batch(mlflow_run, metrics=todo[i : i + 1000])
        return len(todo)


class TensorBoardBackend:
    """TensorBoard event files (tensorboardX): `<dir>/<run id>/events.out.tfevents.….step-<k>`."""

    STALE_TMP_SECONDS = 600

    def __init__(self, root: str):
        self.root = Path(root)

    @staticmethod
    def suffix(step: int) -> str:
        return f".step-{step:08d}"

    def log(self, run_id: str, step: int, metrics: Mapping[str, float], kind: str, experiment: str) -> int:
        from tensorboardX import SummaryWriter

        logdir = path_under(self.root, run_id, what="tracker run id")
        logdir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_tmp(logdir)
        suffix = self.suffix(step)
        if any(p.name.endswith(suffix) for p in logdir.glob("events.out.tfevents.*")):
            return 0
        # Written in a hidden folder, then renamed in: a crash mid-write leaves no half step behind.
        tmp = logdir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            writer = SummaryWriter(logdir=str(tmp), filename_suffix=suffix)
            for key, value in metrics.items():
                writer.add_scalar(key, float(value), global_step=step)
            writer.close()
            (written,) = list(tmp.glob("events.out.tfevents.*"))
            written.rename(logdir / written.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return len(metrics)

    def _remove_stale_tmp(self, logdir: Path) -> None:
        cutoff = time.time() - self.STALE_TMP_SECONDS
        for p in logdir.glob(".tmp-*"):
            if p.stat().st_mtime < cutoff:
                shutil.rmtree(p, ignore_errors=True)


BACKENDS = ("mlflow", "tensorboard")


def _check(run_id: str, step: int, metrics: Mapping[str, float], kind: str) -> None:
    if not run_id or "/" in run_id or run_id.startswith(".") or segment_problem(run_id):
        raise BadInputError(f"tracker run id {run_id!r} must be a non-empty name without '/' or a leading '.'")
    if not isinstance(step, int) or step < 0:
        raise BadInputError(f"tracker step {step!r} of run {run_id} must be an integer >= 0")
    if kind not in KINDS:
        raise BadInputError(f"tracker kind {kind!r} of run {run_id} is not one of {list(KINDS)}")
    for key, value in metrics.items():
        if not key or not set(key) <= _KEY_CHARS:
            raise BadInputError(
                f"metric name {key!r} of run {run_id} step {step} has characters MLflow rejects "
                "(allowed: letters, digits, _ - . / and space)"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadInputError(f"metric {key!r} of run {run_id} step {step} is {value!r}, not a finite number")


class Tracking:
    """The backends a run logs to, built once per process (clients are reused across calls)."""

    def __init__(self, settings: TrackerSettings):
        self.settings = settings
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            if name == "mlflow":
                if not self.settings.mlflow_tracking_uri:
                    raise BadInputError(
                        "the tracker backend 'mlflow' needs a tracking server: set SEGFLOW_TRACKER_MLFLOW_URI "
                        "(or MLFLOW_TRACKING_URI) on the trainer worker, e.g. http://mlflow.internal:5000"
                    )
                self._backends[name] = MlflowBackend(self.settings.mlflow_tracking_uri)
            elif name == "tensorboard":
                self._backends[name] = TensorBoardBackend(self.settings.tensorboard_dir)
            else:
                raise BadInputError(f"tracker backend {name!r} is not one of {list(BACKENDS)}")
        return self._backends[name]

    def log(
        self,
        backends: list[str],
        run_id: str,
        step: int,
        metrics: Mapping[str, float],
        kind: str,
        experiment: str,
    ) -> dict[str, int]:
        """Logs one step to every backend; returns how many values each wrote (0: it had the step)."""
        _check(run_id, step, metrics, kind)
        # one step at a time per process: find-or-create and "has this step?" are check-then-write
        with self._lock:
            return {name: self.backend(name).log(run_id, step, metrics, kind, experiment) for name in backends}
