"""The trainer's work dir stays bounded over a long run: a finished version's folders become the
cached parent of the next step (no download), older versions of the run and their trainer state are
removed, and what a crash leaves behind is removed when the worker starts again."""

from pathlib import Path

import pytest
import torch

import json

from segflow_trainer import update
from segflow_trainer.update import MANIFEST, clean_work_dir, update_policy

from .helpers import LocalDev

HP = {"learningRate": 5e-3, "seed": 7, "maxLength": 512}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    torch.use_deterministic_algorithms(True)
    return LocalDev(tmp_path_factory.mktemp("workdir"))


def cached_uris(work: Path) -> list[str]:
    return sorted(p.read_text() for p in (work / "policies").glob("*/.complete"))


def counting_downloads(monkeypatch) -> list[str]:
    fetched: list[str] = []
    original = update.download_policy

    def download_policy(store, uri, dest):
        fetched.append(uri)
        return original(store, uri, dest)

    monkeypatch.setattr(update, "download_policy", download_policy)
    return fetched


def state_uri(env, version_uri: str) -> str:
    """The trainer state the version's manifest names (its committed attempt's folder)."""
    return json.loads(env.store.get_bytes(version_uri + MANIFEST))["trainerState"]


def steps(env, run: str, work: Path, n: int, keep: int, after=lambda r: None) -> list[dict]:
    parent, out = env.v0, []
    for k in range(n):
        r = update_policy(env.store, env.batch(run, k), parent, {**HP, "runId": run, "step": k}, work, keep_versions=keep)
        out.append(r)
        after(r)
        parent = {"uri": r["policy"]["uri"], "version": r["policy"]["version"]}
    return out


def test_three_updates_keep_one_version_and_download_each_parent_once(env, monkeypatch):
    work = env.tmp / "keep1"
    fetched = counting_downloads(monkeypatch)
    sizes = []
    run = "bounded"

    def check(r):
        v = r["policy"]["version"]
        # the reference (v0), the newest version and its trainer state: nothing older, no staging
        version = env.store.uri_of(f"policies/{run}/v{v}/")
        assert cached_uris(work) == sorted([env.v0["uri"], version, state_uri(env, version)])
        assert not (work / "out").exists() or not any((work / "out").rglob("*"))
        sizes.append(sum(p.stat().st_size for p in work.rglob("*") if p.is_file()))

    results = steps(env, run, work, 3, keep=1, after=check)
    # only v0 was ever downloaded: each step's parent was the previous step's own output
    assert fetched == [env.v0["uri"]]
    assert max(sizes) - min(sizes) < 0.05 * min(sizes), sizes
    # the kept copy is the version as stored: a fresh trainer that downloads v2 computes the same v3
    redo = update_policy(
        env.store,
        env.batch(run, 2),
        {"uri": results[1]["policy"]["uri"], "version": 2},
        {**HP, "runId": run + "-redo", "step": 2},
        env.tmp / "fresh",
    )
    assert redo["policy"]["weightsSha256"] == results[2]["policy"]["weightsSha256"]
    v3 = env.store.uri_of(f"policies/{run}/v3/")
    cached = next(p.parent for p in (work / "policies").glob("*/.complete") if p.read_text() == v3)
    assert (cached / MANIFEST).is_file() and (cached / "model.safetensors").is_file()


@pytest.mark.parametrize("keep, kept", [(0, []), (2, [2, 3])])
def test_keep_versions(env, keep, kept):
    work, run = env.tmp / f"keep{keep}", f"keep-{keep}"
    steps(env, run, work, 3, keep=keep)
    versions = [u for u in cached_uris(work) if f"/policies/{run}/" in u]
    states = [u for u in cached_uris(work) if f"/runs/{run}/trainer/" in u]
    assert versions == [env.store.uri_of(f"policies/{run}/v{v}/") for v in kept]
    assert states == [state_uri(env, env.store.uri_of(f"policies/{run}/v{v}/")) for v in kept]
    assert env.v0["uri"] in cached_uris(work)  # the reference stays: every step's KL and v0 need it


def test_a_restart_removes_what_a_crash_left(tmp_path):
    work = tmp_path / "work"
    staged = work / "out" / "r" / "v4"
    staged.mkdir(parents=True)
    (staged / "model.safetensors").write_bytes(b"x" * 100)
    unfinished = work / "policies" / "aaaa"  # a download that never finished: no .complete
    unfinished.mkdir(parents=True)
    (unfinished / "model.safetensors.part123").write_bytes(b"x")
    done = work / "policies" / "bbbb"
    done.mkdir()
    (done / ".complete").write_text("s3://segflow/policies/r/v3/")
    (done / "config.json").write_text("{}")
    (done / "model.safetensors.part99").write_bytes(b"x")
    removed = clean_work_dir(work)
    assert set(removed) == {work / "out", unfinished, done / "model.safetensors.part99"}
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file()) == [
        "policies/bbbb/.complete",
        "policies/bbbb/config.json",
    ]
    assert clean_work_dir(work) == []
