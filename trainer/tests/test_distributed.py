"""Sharded updates (distributed.py, update_cli.py): two processes under torchrun (gloo, CPU, FSDP2)
give the weights one process gives, full and LoRA, across steps and across a change of the process
count (the optimizer state is saved in one format); the worker launches them when SEGFLOW_TRAINER_NPROC
> 1; bad settings and failed launches are named, cancelled ones stopped.

Tolerance, MAX_DIFF = 1e-5 (max abs difference of any weight, lr 5e-3, weights moved ~2e-2): each
process computes its micro-batches exactly as one process does (same composition, same padding,
one torch thread in every process here) and the gradients are summed over the processes; what
differs is float32 rounding: the order of additions (accumulation, reduce-scatter) and the global
gradient norm, summed over shards, which differs from one process's in its last bits (~3e-8
relative) and so scales the clipped gradient differently. AdamW turns such rounding into steps of up
to lr on weights whose gradient is within ~eps of zero: with the default adamEps 1e-8 the full update
with a KL term measured 3.8e-6 (step 0) and 7.9e-6 (step 1), too near the bound to be a stable test;
with adamEps 1e-6 (used here) 1.1e-8; without the KL term, and for LoRA, 0 (bitwise equal). A real
mistake (a process's micro-batches missing, another mini-batch order or loss normalisation) moves
weights by ~1e-3; what Adam's scale invariance could hide (gradients averaged instead of summed, a
per-process clip norm) the metrics catch: the loss, KL and gradient norm must match too.

Uses a local directory store (local_store.py), so it needs no S3 server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from segflow_trainer.errors import BadInputError
from segflow_trainer.settings import load_settings
from segflow_trainer.update import fetch_policy, update_policy
from segflow_trainer.update_cli import ShardedUpdateError, run_sharded_update

from .helpers import LocalDev

MAX_DIFF = 1e-5
HP = {
    "learningRate": 5e-3, "adamEps": 1e-6, "seed": 7, "maxLength": 512, "ppoEpochs": 2, "miniBatches": 2,
    "maxGradNorm": 0.5,
}  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    # one torch thread here and in each torchrun process (update_cli.py reads SEGFLOW_TRAINER_THREADS)
    torch.set_num_threads(1)
    mp = pytest.MonkeyPatch()
    mp.setenv("SEGFLOW_TRAINER_THREADS", "1")
    e = LocalDev(tmp_path_factory.mktemp("dist"))
    yield e
    mp.undo()
    torch.set_num_threads(threads)


def one(env, run, step, parent, **hp):
    return update_policy(env.store, env.batch(run, step), parent, {**HP, **hp, "runId": run, "step": step}, env.work)


def two(env, run, step, parent, **hp):
    return asyncio.run(
        run_sharded_update(
            2, env.batch(run, step), parent, {**HP, **hp, "runId": run, "step": step}, env.work,
            extra_args=["--local-store", str(env.store.root)],
        )
    )  # fmt: skip


def weights(env, result) -> dict[str, torch.Tensor]:
    folder = fetch_policy(env.store, result["policy"]["uri"], env.tmp / "read")
    name = "adapter_model.safetensors" if result["policy"]["kind"] == "lora" else "model.safetensors"
    return load_file(folder / name)


def max_diff(env, a, b) -> float:
    wa, wb = weights(env, a), weights(env, b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def parent(result) -> dict:
    return {"uri": result["policy"]["uri"], "version": result["policy"]["version"]}


def test_two_processes_update_a_full_model_as_one_does(env):
    t0 = time.monotonic()
    # micro-batches of 1: each mini-batch of 2 is one micro-batch per process; a KL term to version 0
    full = {"microBatchSize": 1, "klCoef": 0.05}
    a1 = one(env, "full-1p", 0, env.v0, **full)
    b1 = two(env, "full-2p", 0, env.v0, **full)
    moved = max_diff(env, a1, {"policy": {**a1["policy"], "uri": env.v0["uri"]}})
    d1 = max_diff(env, a1, b1)
    # the next step in one process from each: the two-process run saved its optimizer state gathered
    a2 = one(env, "full-1p", 1, parent(a1), **full)
    b2 = one(env, "full-2p", 1, parent(b1), **full)
    d2 = max_diff(env, a2, b2)
    print(f"full: weights moved {moved:.2e}; 1 vs 2 processes: step 0 {d1:.2e}, step 1 {d2:.2e} ({time.monotonic() - t0:.0f} s)")
    assert moved > 1e-3
    assert d1 <= MAX_DIFF and d2 <= MAX_DIFF
    for k in ("loss", "pgLoss", "entropy", "gradNorm", "approxKl", "kl"):
        assert b1["metrics"][k] == pytest.approx(a1["metrics"][k], rel=1e-4, abs=1e-7), k
    assert a1["metrics"]["gradNorm"] > HP["maxGradNorm"]  # clipping took part
    assert b1["metrics"]["updates"] == a1["metrics"]["updates"] == 4
    assert b1["metrics"]["logProbShift"] == pytest.approx(a1["metrics"]["logProbShift"], rel=1e-4)


def test_two_processes_continue_a_lora_run_as_one_does(env):
    # A LoRA step 0 in one process, then step 1 in one process and in two (the adapter and the optimizer
    # state sharded on load). Micro-batches of 4: one per mini-batch, so one process runs zero-weight ones.
    lora = {"lora": {"rank": 4, "alpha": 8}, "klCoef": 0.1, "microBatchSize": 4, "miniBatches": 1}
    a1 = one(env, "lora-1p", 0, env.v0, **lora)
    a2 = one(env, "lora-1p", 1, parent(a1), **lora)
    b2 = two(env, "lora-2p", 1, parent(a1), **lora)
    d = max_diff(env, a2, b2)
    print(f"lora: 1 vs 2 processes, step 1: {d:.2e}")
    assert b2["policy"]["kind"] == "lora" and d <= MAX_DIFF
    assert b2["metrics"]["kl"] == pytest.approx(a2["metrics"]["kl"], rel=1e-4, abs=1e-9)


def test_token_budget_micro_batches_and_checkpointing_shard_as_one_process_runs_them(env):
    # Token-budget micro-batches are dealt out like count ones: with 200 tokens the trajectories (72 to
    # 172 tokens) go alone or, the two shortest, together, so a mini-batch of 2 is one micro-batch (a
    # process runs a zero-weight one) or two. Checkpointing recomputes each block under FSDP's hooks.
    opts = {"microBatchTokens": 200, "gradientCheckpointing": True, "klCoef": 0.05}
    a = one(env, "mbt-1p", 0, env.v0, **opts)
    b = two(env, "mbt-2p", 0, env.v0, **opts)
    d = max_diff(env, a, b)
    print(f"microBatchTokens + gradientCheckpointing: 1 vs 2 processes {d:.2e}")
    assert d <= MAX_DIFF
    assert b["metrics"]["loss"] == pytest.approx(a["metrics"]["loss"], rel=1e-4, abs=1e-7)


def test_bad_process_counts_are_named(monkeypatch):
    for raw in ("0", "-2", "two"):
        monkeypatch.setenv("SEGFLOW_TRAINER_NPROC", raw)
        with pytest.raises(ValueError, match=f"SEGFLOW_TRAINER_NPROC='{raw}': expected a whole number >= 1"):
            load_settings()
    monkeypatch.setenv("SEGFLOW_TRAINER_NPROC", "8")
    assert load_settings().nproc == 8


def test_the_worker_runs_updates_sharded_when_told_and_names_their_errors(env):
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from segflow_trainer.worker import TrainerActivities

    acts = TrainerActivities(dataclasses.replace(load_settings(), nproc=2, work_dir=str(env.work), heartbeat_seconds=0.5))
    beats: list = []
    ae = ActivityEnvironment()
    ae.on_heartbeat = lambda *details: beats.append(details[0])
    # refused by the processes before any S3 access: the contract's message, non-retryable, as in one process
    with pytest.raises(ApplicationError, match="clipLow: 1.5 is greater than or equal to the maximum of 1") as err:
        asyncio.run(ae.run(acts.update_policy, {"uri": "s3://segflow/b.json"}, env.v0, {"runId": "w", "step": 0, "clipLow": 1.5}))
    assert err.value.type == "BadInputError" and err.value.non_retryable
    assert beats and beats[0]["processes"] == 2


def test_a_failed_sharded_update_says_why(env):
    # The update's own error keeps its type (non-retryable bad input) ...
    with pytest.raises(BadInputError, match="does not exist"):
        asyncio.run(
            run_sharded_update(
                1, {"uri": env.store.uri_of("test/missing.json")}, env.v0, {**HP, "runId": "bad", "step": 0}, env.work,
                extra_args=["--local-store", str(env.store.root)],
            )
        )  # fmt: skip
    # ... and processes that never report one give the exit status and the log's tail.
    with pytest.raises(ShardedUpdateError, match=r"(?s)did not report a result \(1 process under torchrun, exit status 1 .*unrecognized arguments: --no-such-flag"):
        asyncio.run(run_sharded_update(1, {"uri": "x"}, env.v0, {"runId": "bad", "step": 0}, env.work, extra_args=["--no-such-flag"]))


def test_a_result_reported_before_a_process_fails_in_teardown_stands(env, monkeypatch, caplog):
    # Process 0 writes the result only after the whole update (every collective, the version
    # committed); gloo's teardown can then abort a process under load. A stand-in for torchrun does
    # exactly that: writes a result, then aborts (SIGABRT, as "terminate called without an active
    # exception" does).
    import segflow_trainer.update_cli as cli

    script = (
        "import json, os, sys; a = sys.argv; r = a[a.index('--result') + 1]; "
        "json.dump({'result': {'policy': {'version': 1}}}, open(r, 'w')); os.abort()"
    )
    monkeypatch.setattr(cli, "torchrun_command", lambda nproc, args: [sys.executable, "-c", script, *args])
    with caplog.at_level("WARNING", logger="segflow.trainer"):
        got = asyncio.run(run_sharded_update(2, {"uri": "x"}, env.v0, {"runId": "teardown", "step": 0}, env.work))
    assert got == {"policy": {"version": 1}}
    assert "then a process exited with status -6" in caplog.text and "torchrun.log" in caplog.text
    # without a result, the same exit is a failure
    aborts = "import os; os.abort()"
    monkeypatch.setattr(cli, "torchrun_command", lambda nproc, args: [sys.executable, "-c", aborts, *args])
    with pytest.raises(ShardedUpdateError, match=r"did not report a result \(2 processes under torchrun, exit status -6"):
        asyncio.run(run_sharded_update(2, {"uri": "x"}, env.v0, {"runId": "teardown", "step": 0}, env.work))


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and text.encode() in (p / "cmdline").read_bytes():
                pids.append(int(p.name))
        except OSError:
            pass
    return pids


def test_cancelling_a_sharded_update_stops_its_processes(env):
    run = f"cancel-{uuid.uuid4().hex[:8]}"
    beats: list[dict] = []

    async def go():
        task = asyncio.ensure_future(
            run_sharded_update(
                2, env.batch(run), env.v0, {**HP, "runId": run, "step": 0}, env.work, heartbeat=beats.append,
                heartbeat_seconds=0.2, extra_args=["--local-store", str(env.store.root)],
            )
        )  # fmt: skip
        while len(_processes_mentioning(run)) < 3 and not task.done():  # torchrun and its 2 processes
            await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert beats and beats[0] == {"phase": "start", "done": 0, "total": 0}
    assert _processes_mentioning(run) == []
    assert not env.store.exists(f"policies/{run}/v1/segflow-policy.json")


def test_cancelling_stops_the_workers_a_torchrun_signalled_while_starting_them_left_behind(env, monkeypatch, caplog):
    # torchrun starts each worker in a session of its own and stops them itself, but a SIGTERM that
    # reaches it while it is still starting them ends it with the started ones left running. A
    # stand-in for torchrun does exactly that: it starts two workers in sessions of their own and dies
    # on the SIGTERM (the default action), as torchrun does before it holds their handles.
    import segflow_trainer.update_cli as cli

    run = f"orphans-{uuid.uuid4().hex[:8]}"
    script = (
        "import subprocess, sys, time\n"
        "for _ in range(2):\n"
        "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', *sys.argv[1:]], start_new_session=True)\n"
        "time.sleep(600)\n"
    )
    monkeypatch.setattr(cli, "torchrun_command", lambda nproc, args: [sys.executable, "-c", script, *args])

    async def go():
        task = asyncio.ensure_future(
            run_sharded_update(2, {"uri": "x"}, env.v0, {"runId": run, "step": 0}, env.work, heartbeat_seconds=0.2)
        )
        while len(_processes_mentioning(run)) < 3 and not task.done():
            await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        with caplog.at_level("WARNING", logger="segflow.trainer"):
            asyncio.run(go())
        assert _processes_mentioning(run) == []
        assert "torchrun ended with 2 process(es) of its update still running" in caplog.text
    finally:
        for pid in _processes_mentioning(run):  # a failed run leaves nothing behind either
            os.kill(pid, signal.SIGKILL)
