"""update_policy on the dev stack's S3: the update moves log-probs the right way, versions are
idempotent per (run, step), redoing a step gives the same weights, LoRA works, bad input is named."""

import json
import os
import random

import numpy as np
import pytest
import torch

from segflow_trainer.batch import parse_batch, tokenize_trajectory
from segflow_trainer.errors import BadInputError, PolicyVersionConflictError
from segflow_trainer.hf_family import token_log_probs
from segflow_trainer.update import MANIFEST, fetch_policy, load_rng_state, rng_state, set_rng_state, update_policy

from .helpers import Dev, fixed_batch

HP = {"learningRate": 5e-3, "seed": 7, "maxLength": 512}


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    torch.use_deterministic_algorithms(True)
    d = Dev(tmp_path_factory.mktemp("trainer"))
    d.v0 = d.initial_policy()
    return d


def response_log_probs(dev, policy_uri, batch_doc):
    """Mean log-prob of each trajectory's policy tokens under the policy stored at policy_uri."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = fetch_policy(dev.store, policy_uri, dev.tmp / "eval")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    out = []
    for t in parse_batch(json.dumps(batch_doc).encode(), "b").trajectories:
        tt = tokenize_trajectory(tok, t, 512)
        ids = torch.tensor([tt.input_ids])
        with torch.no_grad():
            lp, _ = token_log_probs(model, ids, torch.ones_like(ids))
        mask = torch.tensor(tt.loss_mask[1:], dtype=torch.float32)
        out.append(float((lp[0] * mask).sum() / mask.sum()))
    return out


def test_update_raises_positive_and_lowers_negative_log_probs(dev):
    doc = fixed_batch(dev.run_id)
    batch = dev.put_batch(doc)
    before = response_log_probs(dev, dev.v0["uri"], doc)
    r = update_policy(dev.store, batch, dev.v0, {**HP, "runId": dev.run_id, "step": 0}, dev.work_dir)
    assert r["policy"]["version"] == 1
    assert r["policy"]["uri"] == dev.store.uri_of(f"policies/{dev.run_id}/v1/")
    after = response_log_probs(dev, r["policy"]["uri"], doc)
    advs = [t["advantage"] for t in doc["trajectories"]]
    for adv, b, a in zip(advs, before, after):
        assert (a > b) if adv > 0 else (a < b), f"advantage {adv}: mean log-prob {b} -> {a}"
    m = r["metrics"]
    assert m["logProbShift"]["positive"] > 0 > m["logProbShift"]["negative"]
    assert m["reused"] is False and m["trajectories"] == 4 and m["responseTokens"] > 0
    # The version folder holds its manifest and the attempt's folder, a save_pretrained folder the
    # manifest names; trainer state lives apart, in the attempt's folder of its own.
    base = dev.store.key_of(r["policy"]["uri"])
    manifest = json.loads(dev.store.get_bytes(r["policy"]["uri"] + MANIFEST))
    assert manifest["filesDir"].startswith("attempts/0-")
    assert manifest["trainerState"] == dev.store.uri_of(f"runs/{dev.run_id}/trainer/v1/{manifest['filesDir']}")
    files = base + manifest["filesDir"]
    assert set(dev.store.list(r["policy"]["uri"])) == {base + MANIFEST} | {files + n for n in manifest["files"]}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])
    state = set(dev.store.list(manifest["trainerState"]))
    assert {dev.store.key_of(manifest["trainerState"]) + n for n in ("optimizer.pt", "rng.pt")} == state
    dev.v1 = r


def test_retry_reuses_the_step_and_never_applies_it_twice(dev):
    batch = dev.put_batch(fixed_batch(dev.run_id))
    r = update_policy(dev.store, batch, dev.v0, {**HP, "runId": dev.run_id, "step": 0}, dev.work_dir)
    assert r["metrics"]["reused"] is True
    assert r["policy"]["weightsSha256"] == dev.v1["policy"]["weightsSha256"]
    # Another batch for the same step would fork the run: refused, not applied.
    other = fixed_batch(dev.run_id)
    other["trajectories"][0]["advantage"] = 0.5
    with pytest.raises(PolicyVersionConflictError, match="refusing to apply step 0 a second time"):
        update_policy(dev.store, dev.put_batch(other, "other.json"), dev.v0, {**HP, "runId": dev.run_id, "step": 0}, dev.work_dir)


def test_redoing_an_unfinished_step_gives_the_same_weights(dev):
    # A crash before the manifest was written: the step is redone from v1's stored state.
    hp = {**HP, "runId": dev.run_id, "step": 1}
    batch = dev.put_batch(fixed_batch(dev.run_id, 1), "b1.json")
    parent = {"uri": dev.v1["policy"]["uri"], "version": 1}
    first = update_policy(dev.store, batch, parent, hp, dev.work_dir)
    dev.store.client.delete_object(Bucket=dev.store.bucket, Key=dev.store.key_of(first["policy"]["uri"] + MANIFEST))
    again = update_policy(dev.store, batch, parent, hp, dev.tmp / "fresh-work")
    assert again["metrics"]["reused"] is False
    assert again["policy"]["weightsSha256"] == first["policy"]["weightsSha256"]
    assert again["policy"]["version"] == 2


def test_lora_updates_an_adapter_and_continues_from_it(dev):
    run = dev.run_id + "-lora"
    lora = {**HP, "runId": run, "lora": {"rank": 4, "alpha": 8}, "klCoef": 0.1, "learningRate": 1e-2}
    batch = dev.put_batch(fixed_batch(run), "lora.json")
    r1 = update_policy(dev.store, batch, dev.v0, {**lora, "step": 0}, dev.work_dir)
    assert r1["policy"]["kind"] == "lora"
    keys = {k.rsplit("/", 1)[1] for k in dev.store.list(r1["policy"]["uri"])}
    assert {"adapter_config.json", "adapter_model.safetensors", MANIFEST} <= keys
    assert r1["metrics"]["kl"] is not None and r1["metrics"]["logProbShift"]["positive"] > 0
    r2 = update_policy(dev.store, batch, {"uri": r1["policy"]["uri"], "version": 1}, {**lora, "step": 1}, dev.work_dir)
    assert r2["policy"]["version"] == 2 and r2["policy"]["weightsSha256"] != r1["policy"]["weightsSha256"]


@pytest.mark.parametrize(
    "hp, message",
    [
        ({"step": 0, "learningRate": 1e-3}, "hyperparameters contract: \\(root\\): 'runId' is a required property"),
        ({"runId": "r", "step": -1}, "step: -1 is less than the minimum of 0"),
        ({"runId": "r", "step": 0, "learningRate": "fast"}, "learningRate: 'fast' is not of type 'number'"),
        ({"runId": "r", "step": 0, "clipLow": 1.5}, "clipLow: 1.5 is greater than or equal to the maximum of 1"),
        ({"runId": "r", "step": 0, "lr": 1}, r"Additional properties are not allowed \('lr' was unexpected\)"),
        ({"runId": "r", "step": 0, "temperature": 0}, "temperature: 0 is less than or equal to the minimum of 0"),
    ],
)
def test_bad_hyperparameters(dev, hp, message):
    with pytest.raises(BadInputError, match=message):
        update_policy(dev.store, {"uri": "s3://segflow/none"}, dev.v0, hp, dev.work_dir)


def test_bad_refs(dev):
    hp = {**HP, "runId": dev.run_id + "-bad", "step": 0}
    with pytest.raises(BadInputError, match="policy_ref does not match the policy-ref contract: uri: "):
        update_policy(dev.store, {"uri": "s3://segflow/x"}, {"uri": "/local/path", "version": 0}, hp, dev.work_dir)
    batch = dev.put_batch(fixed_batch(dev.run_id), "sha.json")
    with pytest.raises(BadInputError, match="it changed after it was assembled"):
        update_policy(dev.store, {**batch, "sha256": "0" * 64}, dev.v0, hp, dev.work_dir)
    with pytest.raises(BadInputError, match="does not exist"):
        update_policy(dev.store, {"uri": dev.store.uri_of("test/trainer/missing.json")}, dev.v0, hp, dev.work_dir)
    with pytest.raises(BadInputError, match="is empty or does not exist"):
        update_policy(dev.store, batch, {"uri": dev.store.uri_of("test/trainer/no-model/"), "version": 0}, hp, dev.work_dir)


def test_adam_eps_reaches_the_optimizer_and_its_saved_state(dev):
    run = dev.run_id + "-eps"
    batch = dev.put_batch(fixed_batch(run), "eps.json")
    r = update_policy(dev.store, batch, dev.v0, {**HP, "runId": run, "step": 0, "adamEps": 1e-3}, dev.work_dir)
    state_uri = json.loads(dev.store.get_bytes(r["policy"]["uri"] + MANIFEST))["trainerState"]
    state = fetch_policy(dev.store, state_uri, dev.tmp / "eps-state")
    saved = torch.load(state / "optimizer.pt", weights_only=True)
    assert [g["eps"] for g in saved["param_groups"]] == [1e-3]
    with pytest.raises(BadInputError, match="adamEps: 0 is less than or equal to the minimum of 0"):
        update_policy(dev.store, batch, r["policy"], {**HP, "runId": run, "step": 1, "adamEps": 0}, dev.work_dir)


def _draws() -> list[float]:
    return [random.random(), random.gauss(0, 1), float(np.random.standard_normal()), float(np.random.rand()), float(torch.rand(1))]


def test_the_rng_state_round_trips_exactly_through_a_weights_only_file(tmp_path):
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's state
    np.random.standard_normal(3)  # and one in NumPy's
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = _draws()
    _draws()
    set_rng_state(load_rng_state(tmp_path / "rng.pt"))
    assert _draws() == expected
    torch.load(tmp_path / "rng.pt", weights_only=True)  # no pickled objects in it


def test_an_rng_state_of_the_earlier_format_is_still_read_and_gives_the_same_draws(tmp_path):
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}, tmp_path / "rng.pt")
    expected = _draws()
    set_rng_state(load_rng_state(tmp_path / "rng.pt"))
    assert _draws() == expected


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_trainer_state_files_that_hold_code_are_refused_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": 2, "python": _Payload(marker)}, tmp_path / "rng.pt")
    with pytest.raises(BadInputError, match="refused rather than unpickled"):
        load_rng_state(tmp_path / "rng.pt")
    torch.save({"state": {}, "param_groups": [_Payload(marker)]}, tmp_path / "optimizer.pt")
    from segflow_trainer.update import _load_optimizer_state

    with pytest.raises(BadInputError, match="refused rather than unpickled"):
        _load_optimizer_state(tmp_path / "optimizer.pt")
    assert not marker.exists()
