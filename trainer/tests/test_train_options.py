"""Trainer options for real VLM training (hyperparameters `dtype`, `gradientCheckpointing`,
`microBatchTokens`): a bf16 policy loads, trains and is saved in bf16 (a LoRA adapter in float32),
gradient checkpointing and token-budget micro-batches give the weights the plain update gives, the
packing rule is the documented one, and bad values are refused with the contract's message.

Tolerance, SAME = 1e-6 (max abs difference of any weight; the updates move weights by ~4e-3, LoRA's
by 1e-2). Checkpointing recomputes the same forward pass: bitwise equal here (measured 0). Other
micro-batches pad rows to other lengths, so the matrix products have other shapes and the
mini-batch's gradient is summed in another order: float32 rounding, measured <= 1e-6 relative per
gradient tensor. AdamW turns such rounding into steps of up to lr on weights whose gradient is within
~eps of zero (test_distributed.py's note): at lr 5e-3 with adamEps 1e-6 the weights differed by 7e-7,
too near SAME; lr 2e-3 with adamEps 1e-5 (used here) 8e-8 (the token budget of 480 and larger ones).

Uses a local directory store (local_store.py), so it needs no S3 server.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from segflow_trainer import update as update_mod
from segflow_trainer.errors import BadInputError
from segflow_trainer.hf_family import HfFamily
from segflow_trainer.tiny_qwen_vl import build_tiny_qwen_vl
from segflow_trainer.update import LoraSettings, fetch_policy, token_budget_chunks, update_policy

from .helpers import LocalDev, fixed_batch
from .test_vision import IMAGES, batch_doc

SAME = 1e-6
HP = {"learningRate": 2e-3, "adamEps": 1e-5, "seed": 7, "maxLength": 512, "miniBatches": 2, "klCoef": 0.05}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    torch.use_deterministic_algorithms(True)
    e = LocalDev(tmp_path_factory.mktemp("options"), "test/gpt2/")
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


# -- gradientCheckpointing --------------------------------------------------------------------------


@pytest.fixture
def checkpoints(monkeypatch):
    """How many layer calls went through torch's checkpoint (transformers binds it at enable time)."""
    import transformers.modeling_utils as mu

    calls = []
    real = mu.checkpoint

    def counting(fn, *args, **kw):
        calls.append(kw.get("use_reentrant"))
        return real(fn, *args, **kw)

    monkeypatch.setattr(mu, "checkpoint", counting)
    return calls


def test_gradient_checkpointing_gives_the_weights_of_the_plain_update(env, checkpoints):
    plain = update(env, "gc-off", env.v0, microBatchSize=2)
    assert not checkpoints
    ckpt = update(env, "gc-on", env.v0, microBatchSize=2, gradientCheckpointing=True)
    # 2 layers × 2 micro-batches (2 mini-batches of 2 trajectories, micro-batches of 2): the update's
    # forward passes only, not the log-prob passes (no_grad, eval)
    assert checkpoints == [False] * 4
    d = max_diff(weights(env, plain), weights(env, ckpt))
    print(f"gradient checkpointing, full GPT-2: max weight diff {d:.2e}")
    assert d <= SAME and moved(env, plain, env.v0) > 1e-3
    assert ckpt["metrics"]["gradNorm"] == pytest.approx(plain["metrics"]["gradNorm"], rel=1e-6)


# -- a vision-language policy: LoRA with checkpointing, bf16 -------------------------------------


@pytest.fixture(scope="module")
def vlm(env):
    """The tiny Qwen2.5-VL's version 0 and a batch of 4 trajectories with 3 images each; the first
    two carry sampled ids with the log-probs the float32 policy gives them (test_vision.batch_doc)."""
    folder = build_tiny_qwen_vl(env.tmp / "tiny-qwen-vl", seed=0)
    uri = env.store.uri_of("test/tiny-qwen-vl/")
    env.store.upload_folder(folder, uri)
    images = {u: env.store.put_bytes(f"test/img/{u.rsplit('/', 1)[1]}", data, "image/png")["uri"] for u, data in IMAGES.items()}
    fam = HfFamily.load(folder, uri, None, LoraSettings(), lambda _: folder, IMAGES.__getitem__)
    fam.eval()
    return {"uri": uri, "version": 0}, batch_doc(SimpleNamespace(images=images), "x", fam)


VLM_HP = {"learningRate": 1e-2, "maxLength": 4096, "miniBatches": 1, "microBatchSize": 1, "lora": {"rank": 4, "alpha": 8}}


def test_gradient_checkpointing_trains_a_lora_vlm_as_without(env, vlm, checkpoints):
    v0, doc = vlm
    plain = update(env, "vlm-gc-off", v0, doc, **VLM_HP)
    ckpt = update(env, "vlm-gc-on", v0, doc, **VLM_HP, gradientCheckpointing=True)
    assert checkpoints and set(checkpoints) == {False}  # the vision and the language layers
    a, b = weights(env, plain), weights(env, ckpt)
    d = max_diff(a, b)
    lora_b = max(float(v.abs().max()) for k, v in a.items() if "lora_B" in k)  # 0 before the update
    print(f"gradient checkpointing, LoRA tiny Qwen2.5-VL: max adapter diff {d:.2e} (lora_B moved to {lora_b:.2e})")
    assert d <= SAME and lora_b > 1e-3


def test_a_bf16_lora_vlm_trains_with_a_float32_adapter(env, vlm):
    v0, doc = vlm
    r = update(env, "vlm-bf16", v0, doc, **VLM_HP, dtype="bfloat16", gradientCheckpointing=True)
    m = r["metrics"]
    assert r["policy"]["kind"] == "lora" and m["rollout"]["images"] == 12
    # the batch's server log-probs are the float32 policy's: bf16 log-probs part from them, which
    # the consistency metrics show (float32: < 1e-4, test_vision.py)
    roll = m["rollout"]
    print(f"bf16 LoRA tiny Qwen2.5-VL: |trainer - server log-prob| mean {roll['logProbDiffMean']:.2e}, "
          f"max {roll['logProbDiffMax']:.2e} over {roll['comparedTokens']} tokens")
    assert roll["comparedTokens"] > 0 and roll["logProbDiffMax"] > 1e-3
    for k in ("loss", "pgLoss", "entropy", "gradNorm", "kl", "approxKl"):
        assert m[k] is None or math.isfinite(m[k]), k
    assert m["logProbShift"]["positive"] > 0 > m["logProbShift"]["negative"]
    # the adapter trains and is saved in float32 on the bf16 base (peft's autocast_adapter_dtype)
    assert {t.dtype for t in weights(env, r).values()} == {torch.float32}


def test_a_bf16_full_update_is_saved_in_bf16(env):
    r = update(env, "bf16-full", env.v0, microBatchSize=2, dtype="bfloat16")
    m = r["metrics"]
    for k in ("loss", "pgLoss", "entropy", "gradNorm", "kl", "approxKl"):
        assert math.isfinite(m[k]), k
    assert m["kl"] > 0  # the reference (version 0, loaded in bf16) was compared with
    w = weights(env, r)
    assert {t.dtype for t in w.values()} == {torch.bfloat16}
    folder = fetch_policy(env.store, r["policy"]["uri"], env.tmp / "read")
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    assert moved(env, r, env.v0) > 1e-3
    # a float32 step continues from it (loaded upcast, its bf16 AdamW state cast to float32)
    nxt = update_policy(env.store, put(env, "bf16-full-1", fixed_batch("bf16-full", 1)),
                        {"uri": r["policy"]["uri"], "version": 1},
                        {**HP, "runId": "bf16-full", "step": 1, "microBatchSize": 2}, env.work)
    assert {t.dtype for t in weights(env, nxt).values()} == {torch.float32}


# -- the contract ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hp", "message"),
    [
        ({"dtype": "fp8"}, "dtype: 'fp8' is not one of ['float32', 'bfloat16']"),
        ({"dtype": "float16"}, "dtype: 'float16' is not one of ['float32', 'bfloat16']"),
        ({"microBatchTokens": 0}, "microBatchTokens: 0 is less than the minimum of 1"),
        ({"microBatchTokens": 2.5}, "microBatchTokens: 2.5 is not of type 'integer'"),
        ({"gradientCheckpointing": "yes"}, "gradientCheckpointing: 'yes' is not of type 'boolean'"),
    ],
)
def test_bad_values_are_refused_with_the_contracts_message(env, hp, message):
    with pytest.raises(BadInputError) as err:
        update(env, "bad", env.v0, **hp)
    assert "does not match the hyperparameters contract" in str(err.value) and message in str(err.value)
