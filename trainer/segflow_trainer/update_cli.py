"""`update_policy` from the command line, one process or many under torchrun (sharded with FSDP,
distributed.py), and the launcher the worker uses when `SEGFLOW_TRAINER_NPROC` > 1.

    torchrun --standalone --nproc-per-node 8 -m segflow_trainer.update_cli \\
        --batch-ref '{"uri": "s3://segflow/runs/R/steps/3/batch.json", "sha256": "..."}' \\
        --policy-ref '{"uri": "s3://segflow/policies/R/v3/", "version": 3}' \\
        --hyperparameters '{"runId": "R", "step": 3, ...}' --result /tmp/update-result.json

(`python -m torch.distributed.run` is torchrun; run from trainer/ or with it on PYTHONPATH.) Each JSON
argument may also be `@FILE`. The store, the work dir and the thread count come from the worker's
environment (settings.py); `--local-store DIR` uses a directory in place of S3 (tests).

`--result FILE` receives, from process 0, `{"result": <update_policy's result>}`, or, from the first
process that fails, `{"error": {"type", "message"}}` (then the exit status is 1); `--progress FILE`
is rewritten by process 0 with `{phase, done, total}` as the update goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import psutil

from .errors import TYPED, BadInputError, classify

logger = logging.getLogger("segflow.trainer")

# The typed errors a process reports keep their type through the launcher (errors.classify: bad
# input, conflicts, configuration, exhausted memory or disk).
ERROR_TYPES: dict[str, type[Exception]] = {cls.type: cls for cls in TYPED}  # type: ignore[attr-defined]


class ShardedUpdateError(RuntimeError):
    """A sharded update that failed for a reason other than its input (retried like any failure)."""

    type = "ShardedUpdateError"


def _json_arg(raw: str) -> Any:
    text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
    try:
        return json.loads(text)
    except ValueError as err:
        raise BadInputError(f"not JSON: {raw[:200]!r}: {err}") from err


def _write_json(path: Path, doc: Any, exclusive: bool = False) -> bool:
    """Writes atomically; `exclusive`: only if nothing is there yet (returns whether it wrote)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    try:
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m segflow_trainer.update_cli", description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-ref", required=True, help="ArtifactRef JSON (or @FILE)")
    ap.add_argument("--policy-ref", required=True, help="{uri, version} JSON (or @FILE)")
    ap.add_argument("--hyperparameters", required=True, help="hyperparameters JSON (or @FILE)")
    ap.add_argument("--result", required=True, type=Path, help="where process 0 writes {result} (or a process {error})")
    ap.add_argument("--progress", type=Path, help="where process 0 keeps {phase, done, total}")
    ap.add_argument("--work-dir", type=Path, help="default: SEGFLOW_TRAINER_WORK_DIR")
    ap.add_argument("--local-store", type=Path, help="a directory in place of the S3 bucket (tests)")
    ap.add_argument("--attempt", type=int, default=0, help="the Temporal attempt number (names this attempt's folder)")
    a = ap.parse_args(argv)

    parallel = None
    ok = False
    try:
        import torch

        from .distributed import SINGLE_PROCESS, Fsdp
        from .settings import load_settings
        from .update import update_policy

        settings = load_settings()
        if settings.threads > 0:
            torch.set_num_threads(settings.threads)
        if torch.cuda.is_available():
            # cuBLAS is deterministic only with a fixed workspace; attention kernels without a
            # deterministic backward warn instead of failing the update
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            torch.use_deterministic_algorithms(True)
        sharded = int(os.environ.get("WORLD_SIZE", "1")) > 1
        parallel = Fsdp(settings.fsdp_param_dtype) if sharded else SINGLE_PROCESS
        if a.local_store:
            from .local_store import LocalStore

            store = LocalStore(a.local_store, settings.s3.bucket, settings.s3.prefix)
        else:
            from .store import Store

            store = Store(settings.s3)

        def progress(phase: str, done: int, total: int) -> None:
            if a.progress and parallel.is_main:
                _write_json(a.progress, {"phase": phase, "done": done, "total": total})

        result = update_policy(
            store,
            _json_arg(a.batch_ref),
            _json_arg(a.policy_ref),
            _json_arg(a.hyperparameters),
            a.work_dir or Path(settings.work_dir),
            progress,
            parallel=parallel,
            keep_versions=settings.keep_versions,
            attempt=a.attempt,
        )
        if parallel.is_main:
            _write_json(a.result, {"result": result})
        ok = True
        return 0
    except Exception as err:  # noqa: BLE001 - reported to the launcher through --result
        rank = os.environ.get("RANK", "0")
        traceback.print_exc()
        typed = classify(err) or err
        kind = getattr(typed, "type", None) or type(err).__name__
        _write_json(a.result, {"error": {"type": kind, "message": str(typed), "rank": int(rank)}}, exclusive=True)
        return 1
    finally:
        if parallel is not None:
            parallel.close(together=ok)


# -- the worker's side ------------------------------------------------------------------------------


# The environment variable that marks the processes of one sharded update (the value: its folder's name).
UPDATE_MARK = "SEGFLOW_SHARDED_UPDATE"


def torchrun_command(nproc: int, args: Sequence[str]) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
        "-m", "segflow_trainer.update_cli", *args,
    ]  # fmt: skip


async def run_sharded_update(
    nproc: int,
    batch_ref: Any,
    policy_ref: Any,
    hyperparameters: Any,
    work_dir: Path,
    heartbeat: Callable[[dict], None] = lambda progress: None,
    heartbeat_seconds: float = 2.0,
    extra_args: Sequence[str] = (),
    stop_grace_seconds: float = 15.0,
) -> dict:
    """Runs one update under `torchrun --nproc-per-node nproc` and returns its result. Calls
    `heartbeat({phase, done, total})` every `heartbeat_seconds` while it runs; cancelling the call
    stops the processes (SIGTERM, then SIGKILL after `stop_grace_seconds`). Errors: the update's own
    (the typed ones of errors.classify keep their types), else ShardedUpdateError with the
    tail of the processes' log."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    work_dir = Path(work_dir).resolve()
    runs = work_dir / "sharded"
    runs.mkdir(parents=True, exist_ok=True)
    # the name is only a label (the update validates the run id itself): anything but a plain name is dropped
    label = re.sub(r"[^A-Za-z0-9_-]", "_", f"{hyperparameters.get('runId', 'run')}-{hyperparameters.get('step', 'x')}")
    folder = Path(tempfile.mkdtemp(dir=runs, prefix=f"{label[:80]}-"))
    result_file, progress_file, log_file = folder / "result.json", folder / "progress.json", folder / "torchrun.log"
    for name, doc in (("batch-ref", batch_ref), ("policy-ref", policy_ref), ("hyperparameters", hyperparameters)):
        (folder / f"{name}.json").write_text(json.dumps(doc))
    args = [
        "--batch-ref", f"@{folder / 'batch-ref.json'}",
        "--policy-ref", f"@{folder / 'policy-ref.json'}",
        "--hyperparameters", f"@{folder / 'hyperparameters.json'}",
        "--result", str(result_file), "--progress", str(progress_file), "--work-dir", str(work_dir),
        *extra_args,
    ]  # fmt: skip
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])  # trainer/: the processes import segflow_trainer
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env[UPDATE_MARK] = folder.name  # every process of this update inherits it: _stop finds strays by it
    started = time.monotonic()
    with open(log_file, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *torchrun_command(nproc, args), stdout=log, stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True
        )
    waiter = asyncio.ensure_future(proc.wait())
    try:
        while True:
            heartbeat(_read_progress(progress_file))
            done, _ = await asyncio.wait([waiter], timeout=heartbeat_seconds)
            if done:
                break
    except BaseException:  # cancelled (or the caller failed): the processes go with it
        await _stop(proc, waiter, stop_grace_seconds, folder.name)
        raise
    status = waiter.result()
    doc = _read_json(result_file)
    if doc and "result" in doc:
        # Process 0 writes the result only once update_policy has returned, and that needs every
        # process through its last collective and the version committed: the update is complete. A
        # process that fails after that (gloo's teardown can abort a process under load,
        # "terminate called without an active exception") loses nothing, so the result stands; the
        # folder (its log) is kept and the exit status said.
        if status == 0:
            shutil.rmtree(folder, ignore_errors=True)  # a failed launch keeps its folder: the log
        else:
            logger.warning(
                "the sharded update reported its result, then a process exited with status %s (after the "
                "update was complete; the result stands); log %s",
                status,
                log_file,
            )
        return doc["result"]
    where = (
        f"{nproc} process{'es' if nproc > 1 else ''} under torchrun, exit status {status} after "
        f"{time.monotonic() - started:.0f} s; log {log_file}"
    )
    if doc and "error" in doc:
        e = doc["error"]
        cls = ERROR_TYPES.get(e.get("type", ""))
        if cls is not None:
            raise cls(e.get("message", ""))
        raise ShardedUpdateError(f"update_policy failed on process {e.get('rank')} ({where}): {e.get('type')}: {e.get('message')}")
    raise ShardedUpdateError(
        f"update_policy did not report a result ({where}); the log's last lines:\n{_tail(log_file)}"
    )


async def _stop(proc: asyncio.subprocess.Process, waiter: asyncio.Future, grace: float, mark: str) -> None:
    """Stops torchrun (SIGTERM to the session it leads, SIGKILL after `grace`), then any process of
    this update still running. torchrun starts each worker in a session of its own and stops them
    itself, but a signal that reaches it while it is still starting them (before it holds their
    handles) ends it with the started ones left running, holding their memory (a GPU's) for ever."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if waiter.done():
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        await asyncio.wait([waiter], timeout=wait)
    strays = _processes_marked(mark)
    if not strays:
        return
    logger.warning(
        "torchrun ended with %d process(es) of its update still running (pids %s): stopping them",
        len(strays),
        ", ".join(str(p.pid) for p in strays),
    )
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for p in strays:
            try:
                p.send_signal(sig)  # psutil refuses a pid that was reused meanwhile
            except psutil.NoSuchProcess:
                pass
        _, strays = await asyncio.to_thread(psutil.wait_procs, strays, timeout=wait)
        if not strays:
            return


def _processes_marked(mark: str) -> list[psutil.Process]:
    """The processes whose environment holds this update's mark (torchrun's descendants, wherever
    they were reparented)."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(UPDATE_MARK) == mark:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_progress(path: Path) -> dict:
    doc = _read_json(path)
    return doc if isinstance(doc, dict) else {"phase": "start", "done": 0, "total": 0}


def _tail(path: Path, lines: int = 30) -> str:
    """The log's last lines up to torchrun's report of the first failed process (what that process
    printed last, not torchrun's own traceback), else its last lines."""
    try:
        with open(path, errors="replace") as f:
            text = f.read().splitlines()
    except OSError:
        return "(no log)"
    end = next((i + 1 for i, line in enumerate(text) if "failed (exitcode:" in line), len(text))
    return "\n".join(text[max(0, end - lines) : end])


if __name__ == "__main__":
    sys.exit(main())
