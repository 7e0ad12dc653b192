"""Shared by the trainer tests: a tiny model uploaded to the dev S3 (real SeaweedFS) and batches."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from segflow_trainer.settings import load_settings
from segflow_trainer.store import Store
from segflow_trainer.tiny_model import build_tiny_model

SYSTEM = "You find the target object. Think in <thinking>, call tools, answer in <answer>."


def trajectory(tid: str, answer: str, advantage: float, search: str | None = "red car") -> dict:
    msgs = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Please find 'the red car' in frame 0 <image> frame 1 <image>"},
    ]
    if search:
        msgs += [
            {"role": "assistant", "content": '<thinking>I should search.</thinking>\n<search> {"name": "text_search", "query": "' + search + '"} </search>'},
            {"role": "user", "content": "<information>1. (Title: Red car) A red car won the race.</information>"},
        ]
    msgs.append({"role": "assistant", "content": answer})
    return {"trajectoryId": tid, "groupId": "g0", "advantage": advantage, "reward": advantage, "messages": msgs}


GOOD = '<thinking>It is in the middle.</thinking>\n<answer> {"bbox_2d": [200, 250, 700, 800], "point_2d": [450, 500]} </answer>'
BAD = "<thinking>No idea.</thinking>\n<keyframe> 9999 </keyframe> I believe it is the red one."


def fixed_batch(run_id: str, step: int = 0) -> dict:
    return {
        "schema": "segflow.batch/1",
        "runId": run_id,
        "step": step,
        "policyVersion": step,
        "trajectories": [
            trajectory("t0", GOOD, 1.0),
            trajectory("t1", GOOD.replace("200", "210"), 0.8, search=None),
            trajectory("t2", BAD, -1.0, search="blue bus"),
            trajectory("t3", BAD.replace("9999", "77"), -0.8, search=None),
        ],
    }


class Dev:
    def __init__(self, tmp: Path):
        self.settings = load_settings()
        self.store = Store(self.settings.s3)
        self.tmp = tmp
        self.run_id = f"pytest-{uuid.uuid4().hex[:10]}"
        self.work_dir = tmp / "work"

    def initial_policy(self) -> dict:
        folder = build_tiny_model(self.tmp / "v0", corpus=[SYSTEM, GOOD, BAD], seed=0, vocab_size=512, n_positions=512)
        uri = self.store.uri_of(f"test/trainer/{self.run_id}/initial/")
        self.store.upload_folder(folder, uri)
        return {"uri": uri, "version": 0}

    def put_batch(self, doc: dict, name: str = "batch.json") -> dict:
        return self.store.put_bytes(
            f"test/trainer/{self.run_id}/{name}", json.dumps(doc).encode(), "application/json"
        )


class LocalDev:
    """The tiny model as version 0 in a directory store (segflow_trainer/local_store.py) under
    `tmp`: for tests that need no S3 server (and torchrun processes that share the folder)."""

    def __init__(self, tmp: Path, key: str = "test/initial/"):
        from segflow_trainer.local_store import LocalStore

        self.tmp, self.store, self.work = tmp, LocalStore(tmp / "bucket"), tmp / "work"
        folder = build_tiny_model(tmp / "v0", corpus=[SYSTEM, GOOD, BAD], seed=0, vocab_size=512, n_positions=512)
        self.v0 = {"uri": self.store.uri_of(key), "version": 0}
        self.store.upload_folder(folder, self.v0["uri"])

    def batch(self, run: str, step: int = 0) -> dict:
        """The fixed batch of `run`'s step, stored; its ArtifactRef."""
        return self.store.put_bytes(f"test/{run}/b{step}.json", json.dumps(fixed_batch(run, step)).encode(), "application/json")
