"""The experiment tracker against a real MLflow server (the full `mlflow` package from PyPI in
.venv/trackers, scripts/setup-trackers.sh) and real TensorBoard event files, read back through each
tracker's own reader (test/support/tracker_readback.py: MlflowClient, TensorBoard's
EventAccumulator). The activity is called the way Temporal calls it (ActivityEnvironment)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from segflow_trainer.tracker import Tracking, TrackerSettings
from segflow_trainer.worker import TrackerActivities

REPO = Path(__file__).resolve().parents[2]
TRACKERS_BIN = REPO / ".venv" / "trackers" / "bin"
READBACK = REPO / "test" / "support" / "tracker_readback.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    if not (TRACKERS_BIN / "mlflow").exists():
        pytest.fail(f"the trackers venv is missing: run `bash scripts/setup-trackers.sh` ({TRACKERS_BIN})")
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = open(root / "server.log", "w")
    server = subprocess.Popen(
        [
            str(TRACKERS_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--default-artifact-root", (root / "artifacts").as_uri(),
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                pytest.fail(f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield uri
    server.terminate()
    server.wait(timeout=30)
    log.close()


def readback(*args: str) -> dict:
    out = subprocess.run(
        [str(TRACKERS_BIN / "python"), str(READBACK), *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def call_activity(tracking: Tracking, req: dict) -> dict:
    return asyncio.run(ActivityEnvironment().run(TrackerActivities(tracking).tracker_log, req))


def request(run_id: str, step: int, metrics: dict, backends=("mlflow", "tensorboard")) -> dict:
    return {
        "runId": run_id,
        "step": step,
        "kind": "training",
        "metrics": metrics,
        "backends": list(backends),
        "experiment": "tracker-test",
    }


def test_a_retried_step_leaves_one_value_per_step(mlflow_uri, tmp_path):
    tracking = Tracking(TrackerSettings(mlflow_tracking_uri=mlflow_uri, tensorboard_dir=str(tmp_path / "tb")))
    steps = {0: {"reward/total/mean": 0.25, "trainer/loss": -0.125}, 1: {"reward/total/mean": 0.5, "trainer/loss": 0.0625}}

    first = call_activity(tracking, request("run-retry", 0, steps[0]))
    assert first == {"written": {"mlflow": 2, "tensorboard": 2}}
    # the same step again (an activity retry), then step 1, then step 0 once more (a late retry)
    assert call_activity(tracking, request("run-retry", 0, steps[0])) == {"written": {"mlflow": 0, "tensorboard": 0}}
    call_activity(tracking, request("run-retry", 1, steps[1]))
    assert call_activity(tracking, request("run-retry", 0, steps[0])) == {"written": {"mlflow": 0, "tensorboard": 0}}
    # a fresh process (the worker restarted): nothing cached, the step is still found in the trackers
    again = Tracking(TrackerSettings(mlflow_tracking_uri=mlflow_uri, tensorboard_dir=str(tmp_path / "tb")))
    assert call_activity(again, request("run-retry", 1, steps[1])) == {
        "written": {"mlflow": 0, "tensorboard": 0}
    }

    want = {key: [[k, steps[k][key]] for k in (0, 1)] for key in steps[0]}
    ml = readback("mlflow", mlflow_uri, "tracker-test", "run-retry")
    assert ml["runs"] == 1 and ml["name"] == "run-retry"
    assert ml["metrics"] == want
    tb = readback("tensorboard", str(tmp_path / "tb" / "run-retry"))
    assert tb["metrics"] == want  # values exact in float32
    assert len(list((tmp_path / "tb" / "run-retry").glob("events.out.tfevents.*"))) == 2
    assert not list((tmp_path / "tb" / "run-retry").glob(".tmp-*"))


def test_runs_are_kept_apart_by_segflow_run_id(mlflow_uri, tmp_path):
    tracking = Tracking(TrackerSettings(mlflow_tracking_uri=mlflow_uri, tensorboard_dir=str(tmp_path / "tb")))
    tracking.log(["mlflow"], "run-a", 0, {"x": 1.0}, "training", "tracker-test")
    tracking.log(["mlflow"], "run-b", 0, {"x": 2.0}, "evaluation", "tracker-test")
    a = readback("mlflow", mlflow_uri, "tracker-test", "run-a")
    b = readback("mlflow", mlflow_uri, "tracker-test", "run-b")
    assert (a["runs"], a["metrics"]) == (1, {"x": [[0, 1.0]]})
    assert (b["runs"], b["metrics"], b["tags"]["segflow.kind"]) == (1, {"x": [[0, 2.0]]}, "evaluation")


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (request("run", 0, {"x": 1.0}, backends=["wandb"]), "tracker backend 'wandb' is not one of"),
        (request("run", 0, {"bad:name": 1.0}, backends=["tensorboard"]), "metric name 'bad:name'"),
        (request("run", 0, {"x": float("nan")}, backends=["tensorboard"]), "not a finite number"),
        (request("../up", 0, {"x": 1.0}, backends=["tensorboard"]), "tracker run id '../up'"),
    ],
)
def test_bad_input_fails_without_retry(tmp_path, req, message):
    tracking = Tracking(TrackerSettings(mlflow_tracking_uri=None, tensorboard_dir=str(tmp_path)))
    with pytest.raises(ApplicationError, match=message) as err:
        call_activity(tracking, req)
    assert err.value.non_retryable


def test_mlflow_without_a_server_names_the_setting(tmp_path):
    tracking = Tracking(TrackerSettings(mlflow_tracking_uri=None, tensorboard_dir=str(tmp_path)))
    with pytest.raises(ApplicationError, match="SEGFLOW_TRACKER_MLFLOW_URI"):
        call_activity(tracking, request("run", 0, {"x": 1.0}))
