"""A timed-out update can never race its retry (issue 20, item 6), on the dev stack's S3 (SeaweedFS,
whose conditional create is what commits a version).

The zombie: attempt 1 of a step stalls (its heartbeats stopped arriving, so Temporal timed it out)
while attempt 2 runs on another trainer and commits the version; then attempt 1 resumes and runs to
its end, with weights whose bytes differ from attempt 2's (another GPU). Whatever it does, the
committed manifest, the files it names and what a reader downloads stay attempt 2's."""

import asyncio
import dataclasses
import hashlib
import json
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from segflow_trainer.errors import PolicyVersionConflictError, UpdateCancelledError
from segflow_trainer.settings import load_settings
from segflow_trainer.update import MANIFEST, fetch_policy, update_policy

from .helpers import Dev, fixed_batch

HP = {"learningRate": 5e-3, "seed": 7, "maxLength": 512}


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    torch.use_deterministic_algorithms(True)
    d = Dev(tmp_path_factory.mktemp("attempts"))
    d.v0 = d.initial_policy()
    return d


class Stall:
    """A progress callback that pauses its update the first time it reaches `phase`, until released."""

    def __init__(self, phase: str, on_stall=lambda: None):
        self.phase, self.on_stall = phase, on_stall
        self.reached, self.release = threading.Event(), threading.Event()
        self.phases: list[str] = []

    def __call__(self, phase: str, done: int, total: int) -> None:
        self.phases.append(phase)
        if phase == self.phase and not self.reached.is_set():
            self.on_stall()
            self.reached.set()
            assert self.release.wait(300), "the test never released the stalled attempt"


class Attempt(threading.Thread):
    """update_policy in a thread of its own (the zombie's trainer); its result or error kept."""

    def __init__(self, *args, **kwargs):
        super().__init__(daemon=True)
        self.args, self.kwargs = args, kwargs
        self.result, self.error = None, None

    def run(self) -> None:
        try:
            self.result = update_policy(*self.args, **self.kwargs)
        except BaseException as err:  # noqa: BLE001 - inspected by the test
            self.error = err


def other_gpu_bytes(work: Path, run: str, version: int):
    """Makes the stalled attempt's staged weights differ from its retry's, as another GPU's would."""

    def perturb() -> None:
        path = work / "out" / run / f"v{version}" / "model.safetensors"
        tensors = load_file(path)
        name = sorted(tensors)[0]
        tensors[name] = tensors[name] + 0.01
        save_file(tensors, path, metadata={"format": "pt"})

    return perturb


def objects(dev, uri: str) -> dict[str, bytes]:
    """Every object under the prefix, by key relative to it, with its bytes."""
    base = dev.store.key_of(uri)
    return {k[len(base) :]: dev.store.get_bytes(f"s3://{dev.store.bucket}/{k}") for k in dev.store.list(uri)}


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def committed_state(dev, version_uri: str) -> dict:
    """The manifest's bytes, the files it names with their bytes, and every object of the version."""
    raw = dev.store.get_bytes(version_uri + MANIFEST)
    manifest = json.loads(raw)
    stored = objects(dev, version_uri)
    named = {rel: stored[manifest["filesDir"] + rel] for rel in manifest["files"]}
    return {"raw": raw, "manifest": manifest, "named": named, "objects": stored}


def assert_only_the_committed_attempt(dev, run: str, version: int, state: dict) -> None:
    """The version folder and the trainer state hold the committed attempt's objects and nothing else."""
    m = state["manifest"]
    assert set(state["objects"]) == {MANIFEST} | {m["filesDir"] + rel for rel in m["files"]}
    for rel, f in m["files"].items():  # the files it names are the bytes it lists
        assert (sha(state["named"][rel]), len(state["named"][rel])) == (f["sha256"], f["bytes"]), rel
    state_root = dev.store.uri_of(f"runs/{run}/trainer/v{version}/")
    assert {k.rsplit("/", 1)[0] + "/" for k in objects(dev, state_root)} == {m["filesDir"]}
    assert m["trainerState"] == state_root + m["filesDir"]


@pytest.mark.parametrize(
    "stall_at",
    [
        # after training and saving, before the upload: it uploads after the retry committed, then
        # loses the conditional create of the manifest
        "upload",
        # everything uploaded, about to create the manifest
        "commit",
        # before saving: the check before the upload finds the version made and it uploads nothing
        "save",
    ],
)
def test_a_zombie_that_resumes_after_its_retry_committed_changes_nothing(dev, stall_at):
    run = f"{dev.run_id}-zombie-{stall_at}"
    hp = {**HP, "runId": run, "step": 0}
    batch = dev.put_batch(fixed_batch(run), f"{run}.json")
    version_uri = dev.store.uri_of(f"policies/{run}/v1/")
    zombie_work, retry_work = dev.tmp / f"{run}-zombie", dev.tmp / f"{run}-retry"
    stall = Stall(stall_at, other_gpu_bytes(zombie_work, run, 1) if stall_at != "save" else lambda: None)
    zombie = Attempt(dev.store, batch, dev.v0, hp, zombie_work, stall, attempt=1)
    zombie.start()
    assert stall.reached.wait(300)

    retry = update_policy(dev.store, batch, dev.v0, hp, retry_work, attempt=2)
    assert retry["metrics"]["reused"] is False
    before = committed_state(dev, version_uri)
    assert before["manifest"]["filesDir"].startswith("attempts/2-")
    assert_only_the_committed_attempt(dev, run, 1, before)

    stall.release.set()
    zombie.join(300)
    assert not zombie.is_alive() and zombie.error is None, zombie.error
    # the zombie reports the version its retry made, as reused
    assert zombie.result["metrics"]["reused"] is True
    assert zombie.result["policy"] == retry["policy"]
    resumed = stall.phases[stall.phases.index(stall_at) + 1 :]
    assert ("upload" in resumed) == (stall_at == "upload"), resumed  # "save": stopped before uploading
    after = committed_state(dev, version_uri)
    assert after["raw"] == before["raw"]  # the manifest is unchanged
    assert after["named"] == before["named"]  # the files it names have the committed bytes
    assert_only_the_committed_attempt(dev, run, 1, after)  # the zombie's own folders are gone

    # a reader of the version (a fresh trainer; the zombie's trainer, whose cache must not hold its
    # own bytes) gets exactly the committed files
    for work in (dev.tmp / f"{run}-reader", zombie_work):
        folder = fetch_policy(dev.store, version_uri, work)
        got = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        assert got.pop(".complete") == version_uri.encode()
        assert got == {**before["named"], MANIFEST: before["raw"]}
    assert not (zombie_work / "out").exists() or not any((zombie_work / "out").rglob("*"))


def test_a_zombie_with_another_batch_is_refused_and_leaves_the_version_alone(dev):
    run = f"{dev.run_id}-conflict"
    hp = {**HP, "runId": run, "step": 0}
    other = fixed_batch(run)
    other["trajectories"][0]["advantage"] = 0.5
    stall = Stall("commit")
    zombie = Attempt(dev.store, dev.put_batch(other, f"{run}-other.json"), dev.v0, hp, dev.tmp / f"{run}-z", stall, attempt=1)
    zombie.start()
    assert stall.reached.wait(300)
    version_uri = dev.store.uri_of(f"policies/{run}/v1/")
    update_policy(dev.store, dev.put_batch(fixed_batch(run), f"{run}.json"), dev.v0, hp, dev.tmp / f"{run}-r", attempt=2)
    before = committed_state(dev, version_uri)
    stall.release.set()
    zombie.join(300)
    assert isinstance(zombie.error, PolicyVersionConflictError), zombie.error
    assert "refusing to apply step 0 a second time" in str(zombie.error)
    after = committed_state(dev, version_uri)
    assert (after["raw"], after["named"]) == (before["raw"], before["named"])
    assert_only_the_committed_attempt(dev, run, 1, after)


def test_an_attempt_whose_create_answer_was_lost_keeps_its_version(dev, monkeypatch):
    # The create succeeded but its answer was lost; the client's retry of the request is refused (412):
    # the manifest there is this attempt's own (its filesDir), so it is committed, not an orphan.
    run = f"{dev.run_id}-lost-answer"
    real = dev.store.put_bytes_if_absent

    def created_but_refused(key, body, content_type):
        assert real(key, body, content_type)
        return real(key, body, content_type)

    monkeypatch.setattr(dev.store, "put_bytes_if_absent", created_but_refused)
    r = update_policy(dev.store, dev.put_batch(fixed_batch(run), f"{run}.json"), dev.v0, {**HP, "runId": run, "step": 0}, dev.tmp / run)
    assert r["metrics"]["reused"] is False
    state = committed_state(dev, r["policy"]["uri"])
    assert state["manifest"]["weightsSha256"] == r["policy"]["weightsSha256"]
    assert_only_the_committed_attempt(dev, run, 1, state)


def test_an_attempt_whose_create_failed_unanswered_leaves_its_files_for_the_manifest_that_may_name_them(dev, monkeypatch):
    # The create reached the store but the connection broke every time (boto3 gave up): the update
    # fails, and must not delete the files the manifest it created names. Its retry reuses the version.
    run = f"{dev.run_id}-create-unanswered"
    hp = {**HP, "runId": run, "step": 0}
    batch = dev.put_batch(fixed_batch(run), f"{run}.json")
    real = dev.store.put_bytes_if_absent

    def created_then_broken(key, body, content_type):
        assert real(key, body, content_type)
        raise ConnectionError("the connection broke before the answer")

    with monkeypatch.context() as m:
        m.setattr(dev.store, "put_bytes_if_absent", created_then_broken)
        with pytest.raises(ConnectionError):
            update_policy(dev.store, batch, dev.v0, hp, dev.tmp / f"{run}-1", attempt=1)
    version_uri = dev.store.uri_of(f"policies/{run}/v1/")
    state = committed_state(dev, version_uri)
    assert_only_the_committed_attempt(dev, run, 1, state)
    again = update_policy(dev.store, batch, dev.v0, hp, dev.tmp / f"{run}-2", attempt=2)
    assert again["metrics"]["reused"] is True
    assert again["policy"]["weightsSha256"] == state["manifest"]["weightsSha256"]
    assert fetch_policy(dev.store, version_uri, dev.tmp / f"{run}-read").joinpath("model.safetensors").read_bytes() == state["named"]["model.safetensors"]


def test_a_cancelled_update_stops_and_removes_what_it_uploaded(dev):
    run = f"{dev.run_id}-cancel"
    hp = {**HP, "runId": run, "step": 0}
    batch = dev.put_batch(fixed_batch(run), f"{run}.json")

    def cancel_after_first_file(phase: str, done: int, total: int) -> None:
        if phase == "upload" and done == 1:
            raise UpdateCancelledError("cancelled")

    with pytest.raises(UpdateCancelledError):
        update_policy(dev.store, batch, dev.v0, hp, dev.tmp / f"{run}-1", cancel_after_first_file, attempt=1)
    assert objects(dev, dev.store.uri_of(f"policies/{run}/")) == {}
    assert objects(dev, dev.store.uri_of(f"runs/{run}/trainer/")) == {}
    # the retry makes the version as if nothing had happened
    r = update_policy(dev.store, batch, dev.v0, hp, dev.tmp / f"{run}-2", attempt=2)
    assert r["metrics"]["reused"] is False


def test_the_worker_stops_a_cancelled_update_at_its_next_step(dev, tmp_path, monkeypatch):
    # What the SDK does when a heartbeat learns the attempt timed out: it cancels the activity. The
    # update thread then stops at its next progress call, before it uploads anything.
    from temporalio import activity
    from temporalio.testing import ActivityEnvironment

    from segflow_trainer import worker
    from segflow_trainer.worker import TrainerActivities

    outcome: list[BaseException | dict] = []

    def recording_update(*args, **kwargs):
        try:
            outcome.append(worker_update(*args, **kwargs))
        except BaseException as err:
            outcome.append(err)
            raise
        return outcome[-1]

    worker_update = worker.update_policy
    monkeypatch.setattr(worker, "update_policy", recording_update)

    run = f"{dev.run_id}-worker-cancel"
    settings = dataclasses.replace(load_settings(), work_dir=str(tmp_path / "work"), heartbeat_seconds=0.05)
    acts = TrainerActivities(settings)
    env = ActivityEnvironment()
    beats: list[dict] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    batch = dev.put_batch(fixed_batch(run), f"{run}.json")
    hp = {**HP, "runId": run, "step": 0, "ppoEpochs": 40}  # long enough to be cancelled while training

    async def scenario() -> None:
        task = asyncio.ensure_future(env.run(acts.update_policy, batch, dev.v0, hp))
        while not any(b.get("phase") == "train" for b in beats):
            assert not task.done(), task
            await asyncio.sleep(0.05)
        env.cancel(activity.ActivityCancellationDetails(not_found=True, timed_out=True))
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    # the single update thread is free again only once the cancelled update has stopped
    acts.executor.submit(lambda: None).result(timeout=120)
    acts.executor.shutdown()
    assert len(outcome) == 1 and isinstance(outcome[0], UpdateCancelledError), outcome
    assert "(phase train)" in str(outcome[0])
    assert objects(dev, dev.store.uri_of(f"policies/{run}/")) == {}
    assert objects(dev, dev.store.uri_of(f"runs/{run}/trainer/")) == {}


def test_readers_take_old_versions_from_their_folder_and_refuse_files_that_are_not_the_committed_ones(tmp_path):
    from segflow_trainer.errors import BadInputError
    from segflow_trainer.local_store import LocalStore

    store = LocalStore(tmp_path / "bucket")

    def put(key: str, body: bytes) -> dict:
        ref = store.put_bytes(key, body, "application/octet-stream")
        return {"sha256": ref["sha256"], "bytes": ref["bytes"]}

    def read(uri: str, work: str) -> dict[str, bytes]:
        folder = fetch_policy(store, uri, tmp_path / work)
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".complete"}

    # a version written before attempts had folders: its manifest lists the files of the folder itself
    files = {"config.json": put("policies/r/v1/config.json", b"{}"), "sub/w.bin": put("policies/r/v1/sub/w.bin", b"old")}
    put("policies/r/v1/attempts/9-stray/sub/w.bin", b"stray")
    manifest = json.dumps({"files": files}).encode()
    store.put_bytes("policies/r/v1/" + MANIFEST, manifest, "application/json")
    assert read(store.uri_of("policies/r/v1/"), "a") == {"config.json": b"{}", "sub/w.bin": b"old", MANIFEST: manifest}

    # a file changed after its version was committed (what a zombie did before attempts had folders)
    put("policies/r/v1/sub/w.bin", b"new")
    with pytest.raises(BadInputError, match=r"file sub/w.bin \(.*\) has sha256 [0-9a-f]{64}, its manifest lists [0-9a-f]{64}: the stored file is not the committed one"):
        read(store.uri_of("policies/r/v1/"), "b")

    # a folder without a manifest (a base model, an initial policy): all of it but attempts/
    put("base/config.json", b"{}")
    put("base/attempts/1-x/config.json", b"{1}")
    assert read(store.uri_of("base/"), "c") == {"config.json": b"{}"}
