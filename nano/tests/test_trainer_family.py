"""The nano policy family (nano/trainer_family.py) through the trainer's update_policy (dev S3): the
trainer sees the trajectory's images, its log-probs are the ones the policy server reported when it
sampled the turn, an update moves them the advantage's way, and a version is a loadable nano checkpoint.

It needs the trainer's environment (.venv/trainer: temporalio, transformers) with trainer/ and the
repository root on PYTHONPATH, and the dev stack's S3: test/activity/trainer/pytest.test.ts and
scripts/test-portability.sh run it there. The nano venv (test/unit/nano/world.test.ts) skips it.
"""

import io
import json
import uuid
from pathlib import Path

import pytest
import torch
from PIL import Image

pytest.importorskip("temporalio", reason="the trainer's environment runs this (test/activity/trainer/pytest.test.ts)")

from nano import policy_model as pm  # noqa: E402
from nano.trainer_family import NanoFamily  # noqa: E402  (registers the family)
from segflow_trainer.batch import parse_batch  # noqa: E402
from segflow_trainer.errors import BadInputError  # noqa: E402
from segflow_trainer.family import PolicyFamily  # noqa: E402
from segflow_trainer.settings import load_settings  # noqa: E402
from segflow_trainer.store import Store  # noqa: E402
from segflow_trainer.update import MANIFEST, fetch_policy, update_policy  # noqa: E402


class Dev:
    """The dev stack's S3, a run id of this test module, and its scratch folders."""

    def __init__(self, tmp: Path):
        self.store = Store(load_settings().s3)
        self.tmp = tmp
        self.run_id = f"pytest-{uuid.uuid4().hex[:10]}"
        self.work_dir = tmp / "work"

    def put_batch(self, doc: dict, name: str) -> dict:
        return self.store.put_bytes(f"test/trainer/{self.run_id}/{name}", json.dumps(doc).encode(), "application/json")

STOPS = ["</search>", "</keyframe>"]
# One Adam step moves every weight by about the learning rate whatever its gradient; through the
# nano policy's pointer (a sharpened attention whose centre sets every coordinate's mean) a random
# model's number log-probs swing by nats at 1e-3 (measured: the positive-advantage shift -3.3 at
# 1e-3, -0.30 at 3e-4). 1e-4 keeps this one-step check in the first-order regime it tests.
HP = {"learningRate": 1e-4, "seed": 3, "maxLength": 640}

F32_U = 2.0**-24  # float32 unit roundoff


def rounding_tolerance(model, item, temperature: float = 1.0) -> torch.Tensor:
    """Per response token, how far two float32 paths may put its log-prob apart. The server's cached
    decode (1-row matmuls) and the trainer's forward pass (L-row GEMM, causal SDPA) sum each 96- or
    192-term dot product in other orders, and AVX2/AVX-512 kernels and thread counts reorder them
    again. lp = z_t - logsumexp(z) carries ulps of |z_t| and |lse|, up to ~100 here and far above
    |lp| for a confident token, so |lp| is the wrong scale; the V-term sum in logsumexp adds <= V*u.
    Measured: cached vs full <= 8u(|z_t| + |lse|) on AVX-512, AVX2 and SSE4.2 kernels at 1 and 2
    threads; weights jittered by 1 +- 64u (5x the ~sqrt(96)u of a reordered sum) give <= 120u(...).
    256u(|z_t| + |lse|) + V*u is <= ~3e-3 nat here; bugs are far larger: an off-by-one position
    >= 100 nats, swapped images 0.12, temperature 0.5 instead of 1 up to 107."""
    with torch.no_grad():
        h, centre = model.forward_hidden([item.prompt])
        pos = item.prompt.offsets()
        idx = torch.tensor([pos[i] - 1 for i in item.response])
        z = model.logits(h[0, idx], centre[0, idx]).double() / temperature
    z_t = z.gather(-1, torch.tensor([item.prompt.ids[i] for i in item.response])[:, None])[:, 0]
    return 256 * F32_U * (z_t.abs() + torch.logsumexp(z, -1).abs()) + z.shape[-1] * F32_U


def assert_within_rounding(got: torch.Tensor, want, tol: torch.Tensor) -> None:
    gap = (got.double() - torch.as_tensor(want, dtype=torch.float64)).abs()
    worst = int(torch.argmax(gap / tol))
    assert (gap <= tol).all(), f"token {worst}: log-prob gap {gap[worst].item():.3g} > rounding bound {tol[worst].item():.3g}"


def jpeg(colour: tuple[int, int, int], box: tuple[int, int, int, int]) -> bytes:
    img = Image.new("RGB", (96, 96), (20, 20, 20))
    img.paste(colour, box)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    torch.use_deterministic_algorithms(True)
    d = Dev(tmp_path_factory.mktemp("nano"))
    tok = pm.Tokenizer.build(["the", "red", "square", "find", "frame", "please", "it", "is", "here", "look", "kelvith", "appearance"])
    folder = d.tmp / "v0"
    pm.save(pm.new_model(tok, seed=0), str(folder))
    uri = d.store.uri_of(f"test/trainer/{d.run_id}/nano-v0/")
    d.store.upload_folder(folder, uri)
    d.v0 = {"uri": uri, "version": 0}
    d.model = pm.load(str(folder))
    d.frames = [
        d.store.put_bytes(f"test/trainer/{d.run_id}/f{i}.jpg", jpeg((200, 30, 30), (10 + 20 * i, 30, 40 + 20 * i, 60)), "image/jpeg")
        for i in range(2)
    ]
    d.keyframe = d.store.put_bytes(f"test/trainer/{d.run_id}/k.jpg", jpeg((200, 30, 30), (30, 30, 60, 60)), "image/jpeg")
    return d


def pil(dev, ref) -> Image.Image:
    return Image.open(io.BytesIO(dev.store.get_bytes(ref["uri"])))


def sample_trajectory(dev, seed: int, sampled_ids: bool = False) -> tuple[list[dict], list[list[float]]]:
    """A two-turn trajectory sampled as nano/policy_server.py samples (grammar on): keyframe, then
    (after the high-res keyframe) an answer. Returns the batch messages and each turn's reported
    log-probs of its content tokens. `sampled_ids`: the assistant messages carry the server's
    `tokenIds` and `logprobs` (every generated token, a final `<eos>` too), as the rollouts store them."""
    system = {"role": "system", "content": "plain system prompt"}
    user_text = "Please find 'the red square'. frame 0 <image> frame 1 <image>"
    batch_msgs = [system, {"role": "user", "content": user_text, "images": [{"uri": f["uri"]} for f in dev.frames]}]
    wire = [
        system,
        {"role": "user", "content": [
            {"type": "text", "text": "Please find 'the red square'. frame 0 "},
            {"type": "image_url", "image_url": {"url": pil(dev, dev.frames[0])}},
            {"type": "text", "text": " frame 1 "},
            {"type": "image_url", "image_url": {"url": pil(dev, dev.frames[1])}},
        ]},
    ]
    reported = []
    for turn in range(2):
        prompt = pm.encode_conversation(dev.model, wire, add_generation_prompt=True)
        out = pm.generate(dev.model, prompt, 60, STOPS, temperature=1.0, seed=seed + turn, constrained=True)
        # the content tokens (an <eos> that ends the answer is not part of the text)
        n = len(out["ids"]) - (1 if out["ids"][-1] == dev.model.tok.id("<eos>") else 0)
        reported.append(out["logprobs"][:n])
        wire.append({"role": "assistant", "content": out["text"]})
        batch_msgs.append({"role": "assistant", "content": out["text"],
                           **({"tokenIds": out["ids"], "logprobs": out["logprobs"]} if sampled_ids else {})})
        if turn == 0:
            obs = "Here is the high-res version of your selected frame: <image>"
            batch_msgs.append({"role": "user", "content": obs, "images": [{"uri": dev.keyframe["uri"]}]})
            wire.append({"role": "user", "content": [
                {"type": "text", "text": "Here is the high-res version of your selected frame: "},
                {"type": "image_url", "image_url": {"url": pil(dev, dev.keyframe)}},
            ]})
    return batch_msgs, reported


def batch_doc(dev, run_id: str, trajectories: list[tuple[list[dict], float]]) -> dict:
    return {
        "schema": "segflow.batch/1",
        "runId": run_id,
        "step": 0,
        "policyVersion": 0,
        "trajectories": [
            {"trajectoryId": f"t{i}", "groupId": "g", "advantage": a, "reward": a, "messages": m}
            for i, (m, a) in enumerate(trajectories)
        ],
    }


def test_trainer_log_probs_equal_what_the_server_reported(dev):
    fam = NanoFamily(fetch_policy(dev.store, dev.v0["uri"], dev.tmp / "w"), dev.store.get_bytes)
    assert isinstance(fam, PolicyFamily)
    for seed in (1, 2, 3):
        msgs, reported = sample_trajectory(dev, seed)
        doc = batch_doc(dev, dev.run_id, [(msgs, 1.0)])
        t = parse_batch(json.dumps(doc).encode(), "b").trajectories[0]
        assert t.messages[1]["images"][0]["uri"] == dev.frames[0]["uri"]
        item = fam.tokenize(t, 640)
        flat = [x for turn in reported for x in turn]
        assert item.response_tokens == len(flat) and not item.truncated
        # a token-budget micro-batch counts its positions (each image with its grid)
        assert fam.sequence_length(item) == item.prompt.positions() > len(item.prompt.ids)
        with torch.no_grad():
            lp, mask, _ = fam.log_probs([item])
        assert mask.sum().item() == len(flat)
        assert_within_rounding(lp[0, : len(flat)], flat, rounding_tolerance(fam.model, item))


def test_the_servers_log_probs_reach_the_trainer_aligned_with_its_own(dev):
    """A turn's server log-probs (what pipelined training's importance ratio compares with) are
    attached to the response tokens they belong to, indexed as update.py reads every family's
    (entry j + 1: log-prob position j); a turn whose sampled ids are not its retokenized text has none."""
    fam = NanoFamily(fetch_policy(dev.store, dev.v0["uri"], dev.tmp / "w"), dev.store.get_bytes)
    msgs, reported = sample_trajectory(dev, 4, sampled_ids=True)
    parse = lambda m: parse_batch(json.dumps(batch_doc(dev, "r", [(m, 1.0)])).encode(), "b").trajectories[0]  # noqa: E731
    item = fam.tokenize(parse(msgs), 640)
    flat = [x for turn in reported for x in turn]
    assert item.rollout_log_probs == [None] + flat and item.sampled_turns == 2
    with torch.no_grad():
        lp = fam.log_probs([item])[0][0, : item.response_tokens]
    assert_within_rounding(lp, item.rollout_log_probs[1:], rounding_tolerance(fam.model, item))
    # the first turn's ids altered: its tokens carry no server log-prob, the second turn's still do
    first = next(m for m in msgs if m["role"] == "assistant")
    first["tokenIds"] = [first["tokenIds"][0] + 1, *first["tokenIds"][1:]]
    altered = fam.tokenize(parse(msgs), 640)
    assert altered.rollout_log_probs == [None] * (1 + len(reported[0])) + reported[1]
    assert (altered.sampled_turns, altered.retokenized_turns) == (1, 1)


def test_log_probs_at_the_sampling_temperature(dev):
    """At temperature T the trainer's log-probs are those of softmax(logits / T), the distribution
    the rollouts sampled from (T = 1: the model's own, as the server reported them)."""
    fam = NanoFamily(fetch_policy(dev.store, dev.v0["uri"], dev.tmp / "w"), dev.store.get_bytes)
    msgs, reported = sample_trajectory(dev, 7)
    item = fam.tokenize(parse_batch(json.dumps(batch_doc(dev, "r", [(msgs, 1.0)])).encode(), "b").trajectories[0], 640)
    with torch.no_grad():
        lp1 = fam.log_probs([item])[0][0, : item.response_tokens]
        lp_half = fam.log_probs([item], temperature=0.5)[0][0, : item.response_tokens]
        h, centre = dev.model.forward_hidden([item.prompt])
        pos = item.prompt.offsets()
        idx = torch.tensor([pos[i] - 1 for i in item.response])
        logits = dev.model.logits(h[0, idx], centre[0, idx])
        want = torch.log_softmax(logits / 0.5, -1).gather(-1, torch.tensor([item.prompt.ids[i] for i in item.response])[:, None])[:, 0]
    assert_within_rounding(lp1, [x for t in reported for x in t], rounding_tolerance(fam.model, item))
    # the same kernels on the same shapes give 0 here; the bound allows a reordered formula
    assert_within_rounding(lp_half, want, rounding_tolerance(fam.model, item, temperature=0.5))
    assert not torch.allclose(lp_half, lp1, atol=1e-3)  # T = 0.5 moves lp by up to ~100 nats


def test_truncation_keeps_whole_tokens_within_the_limit(dev):
    """A trajectory longer than max_length keeps its longest prefix of whole tokens (an image with
    its whole grid) that fits; a limit below the prompt is bad input."""
    fam = NanoFamily(fetch_policy(dev.store, dev.v0["uri"], dev.tmp / "w"), dev.store.get_bytes)
    msgs, _ = sample_trajectory(dev, 9)
    t = parse_batch(json.dumps(batch_doc(dev, "r", [(msgs, 1.0)])).encode(), "b").trajectories[0]
    full = fam.tokenize(t, 640).prompt
    ends = full.offsets()[1:] + [full.positions()]
    first = full.ids.index(dev.model.tok.id("<assistant>"))
    for limit in range(ends[first] + 1, full.positions()):
        item = fam.tokenize(t, limit)
        keep = len(item.prompt.ids)
        assert item.truncated and item.prompt.ids == full.ids[:keep]
        assert item.prompt.positions() <= limit < ends[keep]  # the next token would not fit
        assert len(item.prompt.images) == full.ids[:keep].count(pm.IMG_ID)
        assert all(r < keep for r in item.response)
    with pytest.raises(BadInputError, match="its prompt alone is longer"):
        fam.tokenize(t, ends[first - 1])


def test_the_images_matter(dev):
    """Other image bytes under the same text give other log-probs: the trainer reads the images."""
    fam = NanoFamily(fetch_policy(dev.store, dev.v0["uri"], dev.tmp / "w"), dev.store.get_bytes)
    msgs, _ = sample_trajectory(dev, 5)
    other = json.loads(json.dumps(msgs))
    other[1]["images"] = [{"uri": dev.keyframe["uri"]}, {"uri": dev.keyframe["uri"]}]
    a, b = (fam.tokenize(parse_batch(json.dumps(batch_doc(dev, "r", [(m, 1.0)])).encode(), "b").trajectories[0], 640) for m in (msgs, other))
    with torch.no_grad():
        la, lb = fam.log_probs([a])[0], fam.log_probs([b])[0]
    assert a.prompt.ids == b.prompt.ids
    # one process, same kernels and shapes: equal inputs give bitwise-equal log-probs, so any gap is
    # the images' doing (measured 0.12 nat at most, far above rounding either way)
    assert not torch.allclose(la, lb)


def test_update_moves_nano_log_probs_and_writes_a_loadable_version(dev):
    trajs = [sample_trajectory(dev, s)[0] for s in (11, 12, 13, 14)]
    advs = [1.0, 0.5, -0.5, -1.0]
    doc = batch_doc(dev, dev.run_id, list(zip(trajs, advs)))
    batch = dev.put_batch(doc, "nano-batch.json")
    r = update_policy(dev.store, batch, dev.v0, {**HP, "runId": dev.run_id, "step": 0}, dev.work_dir)
    m = r["metrics"]
    assert r["policy"]["kind"] == "full" and r["policy"]["version"] == 1
    assert m["logProbShift"]["positive"] > 0 > m["logProbShift"]["negative"], m
    assert m["trajectories"] == 4 and m["responseTokens"] > 0 and m["entropy"] > 0
    names = {k.rsplit("/", 1)[1] for k in dev.store.list(r["policy"]["uri"])}
    assert {"config.json", "model.safetensors", "tokenizer.json", MANIFEST} <= names
    v1 = pm.load(str(fetch_policy(dev.store, r["policy"]["uri"], dev.tmp / "check")))
    assert v1.config.model_type == "segflow-nano-policy"
    # the same step again: the stored version is returned, not applied twice
    again = update_policy(dev.store, batch, dev.v0, {**HP, "runId": dev.run_id, "step": 0}, dev.tmp / "work2")
    assert again["metrics"]["reused"] is True and again["policy"]["weightsSha256"] == r["policy"]["weightsSha256"]
    dev.v1 = r


def test_the_policy_server_loads_a_version_from_s3_through_its_manifest(dev):
    # an s3:// lora_path (nano/policy_server.py): the committed attempt's files, never another
    # attempt's folder (here: a timed-out attempt that wrote other weights after the commit)
    from nano.policy_server import fetch_s3_folder

    uri = dev.v1["policy"]["uri"]
    manifest = json.loads(dev.store.get_bytes(uri + MANIFEST))
    v0 = fetch_policy(dev.store, dev.v0["uri"], dev.tmp / "v0")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        dev.store.put_file(uri + f"attempts/1-zombie/{name}", v0 / name, "application/octet-stream")
    folder = Path(fetch_s3_folder(uri, client=dev.store.client))
    committed = fetch_policy(dev.store, uri, dev.tmp / "committed")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (folder / name).read_bytes() == (committed / name).read_bytes(), name
    assert manifest["filesDir"] != "attempts/1-zombie/"
    assert pm.load(str(folder)).config.model_type == "segflow-nano-policy"


def test_missing_image_and_lora_are_bad_input(dev):
    msgs, _ = sample_trajectory(dev, 21)
    msgs[1]["images"][0] = {"uri": dev.store.uri_of(f"test/trainer/{dev.run_id}/no-such.jpg")}
    batch = dev.put_batch(batch_doc(dev, dev.run_id + "-x", [(msgs, 1.0)]), "nano-missing.json")
    with pytest.raises(BadInputError, match="does not exist"):
        update_policy(dev.store, batch, dev.v0, {**HP, "runId": dev.run_id + "-x", "step": 0}, dev.work_dir)
    good = dev.put_batch(batch_doc(dev, dev.run_id + "-y", [(sample_trajectory(dev, 22)[0], 1.0)]), "nano-good.json")
    with pytest.raises(BadInputError, match="LoRA"):
        update_policy(dev.store, good, dev.v0, {**HP, "runId": dev.run_id + "-y", "step": 0, "lora": {"rank": 4}}, dev.work_dir)
    with pytest.raises(BadInputError, match="it trains in float32 without gradient checkpointing"):
        update_policy(dev.store, good, dev.v0, {**HP, "runId": dev.run_id + "-y", "step": 0, "dtype": "bfloat16"}, dev.work_dir)
