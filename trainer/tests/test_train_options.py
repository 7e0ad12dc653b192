"""Trainer options for real VLM training: token-budget micro-batches (`microBatchTokens`) give the
weights one-trajectory micro-batches give, the packing rule is the documented one, and bad values are
refused with the contract's message.

Tolerance, SAME = 1e-6 (max abs difference of any weight; the updates move weights by ~4e-3). Other
micro-batches pad rows to other lengths, so the matrix products have other shapes and the
mini-batch's gradient is summed in another order: float32 rounding, measured <= 1e-6 relative per
gradient tensor. AdamW turns such rounding into steps of up to lr on weights whose gradient is within
~eps of zero (test_distributed.py's note): at lr 5e-3 with adamEps 1e-6 the weights differed by 7e-7,
too near SAME; lr 2e-3 with adamEps 1e-5 (used here) 8e-8 (the token budget of 480 and larger ones).

Uses a local directory store (local_store.py), so it needs no S3 server.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from segflow_trainer import update as update_mod
from segflow_trainer.errors import BadInputError
from segflow_trainer.local_store import LocalStore
from segflow_trainer.tiny_model import build_tiny_model
from segflow_trainer.update import fetch_policy, token_budget_chunks, update_policy

from .helpers import BAD, GOOD, SYSTEM, fixed_batch

SAME = 1e-6
HP = {"learningRate": 2e-3, "adamEps": 1e-5, "seed": 7, "maxLength": 512, "miniBatches": 2, "klCoef": 0.05}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    torch.use_deterministic_algorithms(True)
    tmp = tmp_path_factory.mktemp("options")

    class Env:
        pass

    e = Env()
    e.tmp, e.store, e.work = tmp, LocalStore(tmp / "bucket"), tmp / "work"
    folder = build_tiny_model(tmp / "v0", corpus=[SYSTEM, GOOD, BAD], seed=0, vocab_size=512, n_positions=512)
    e.v0 = {"uri": e.store.uri_of("test/gpt2/"), "version": 0}
    e.store.upload_folder(folder, e.v0["uri"])
    return e


def put(env, run: str, doc: dict) -> dict:
    return env.store.put_bytes(f"test/{run}/batch.json", json.dumps(doc).encode(), "application/json")


def update(env, run: str, parent: dict, doc: dict | None = None, **hp):
    doc = doc if doc is not None else fixed_batch(run)
    return update_policy(env.store, put(env, run, {**doc, "runId": run}), parent, {**HP, **hp, "runId": run, "step": 0}, env.work)


def weights(env, result) -> dict[str, torch.Tensor]:
    folder = fetch_policy(env.store, result["policy"]["uri"], env.tmp / "read")
    name = "adapter_model.safetensors" if result["policy"]["kind"] == "lora" else "model.safetensors"
    return load_file(folder / name)


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def moved(env, result, parent: dict) -> float:
    """How far the update moved the weights (full versions only)."""
    before = load_file(fetch_policy(env.store, parent["uri"], env.tmp / "read") / "model.safetensors")
    return max_diff(weights(env, result), before)


# -- microBatchTokens -------------------------------------------------------------------------------


def test_token_budget_packs_consecutive_trajectories_by_their_padded_size():
    lengths = {0: 10, 1: 30, 2: 20, 3: 50, 4: 5, 5: 5, 6: 5, 7: 200, 8: 40}
    # [10, 30] costs 30 × 2 = 60; adding 20 costs 30 × 3 = 90 > 64 (the sum, 60, would have fit)
    assert token_budget_chunks([0, 1, 2], lengths, 64) == [[0, 1], [2]]
    # in the given order, never reordered; 7 alone exceeds the budget and goes alone
    assert token_budget_chunks([3, 4, 5, 6, 7, 8, 0], lengths, 100) == [[3, 4], [5, 6], [7], [8, 0]]
    # 5 × 3 = 15 fits exactly; [4, 5, 6, 0] would cost 10 × 4 = 40
    assert token_budget_chunks([4, 5, 6, 0], lengths, 15) == [[4, 5, 6], [0]]
    assert token_budget_chunks([7], lengths, 1) == [[7]]
    assert token_budget_chunks([], lengths, 10) == []
    # a budget of at least the longest × the count is one micro-batch
    assert token_budget_chunks(list(lengths), lengths, 200 * len(lengths)) == [list(lengths)]


def test_token_budget_micro_batches_give_the_weights_of_one_trajectory_micro_batches(env, monkeypatch):
    made: list[list[list[int]]] = []
    real = update_mod.token_budget_chunks
    monkeypatch.setattr(update_mod, "token_budget_chunks", lambda *a: made.append(real(*a)) or made[-1])
    doc = fixed_batch("x")
    doc["trajectories"] += [dict(t, trajectoryId=t["trajectoryId"] + "b") for t in doc["trajectories"]]
    one = update(env, "mbt-one", env.v0, doc, microBatchSize=1)
    assert not made
    # the trajectories are 72, 93, 156 and 172 tokens long (twice each): a 480-token budget packs 1 to 3 (order: seed 7)
    packed = update(env, "mbt-480", env.v0, doc, microBatchSize=1, microBatchTokens=480)
    sizes = sorted({len(c) for chunks in made for c in chunks})
    d = max_diff(weights(env, one), weights(env, packed))
    print(f"microBatchTokens 480: micro-batch sizes {sizes}; vs microBatchSize 1: max weight diff {d:.2e}, "
          f"moved {moved(env, one, env.v0):.2e}")
    assert sizes == [1, 2, 3]
    assert d <= SAME and moved(env, one, env.v0) > 1e-3
    for k in ("loss", "pgLoss", "entropy", "gradNorm", "kl"):
        assert packed["metrics"][k] == pytest.approx(one["metrics"][k], rel=1e-5, abs=1e-8), k


# -- the contract ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hp", "message"),
    [
        ({"microBatchTokens": 0}, "microBatchTokens: 0 is less than the minimum of 1"),
        ({"microBatchTokens": 2.5}, "microBatchTokens: 2.5 is not of type 'integer'"),
    ],
)
def test_bad_values_are_refused_with_the_contracts_message(env, hp, message):
    with pytest.raises(BadInputError) as err:
        update(env, "bad", env.v0, **hp)
    assert "does not match the hyperparameters contract" in str(err.value) and message in str(err.value)
