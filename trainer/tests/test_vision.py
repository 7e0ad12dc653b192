"""A vision-language policy (the tiny Qwen2.5-VL of tiny_qwen_vl.py, the real architecture) trained
with its images: placeholders expand to each image's tokens at the template's positions, the
M-RoPE token types reach the forward pass, sampled token ids and server log-probs are aligned, long
trajectories are cut between images, and update_policy trains it (LoRA and full) on the dev S3."""

import io
import json
import math

import pytest
import torch
from PIL import Image

from segflow_trainer.batch import BatchTrajectory, parse_batch
from segflow_trainer.errors import BadInputError
from segflow_trainer.hf_family import HfFamily, VLM_LORA_TARGETS, token_log_probs
from segflow_trainer.tiny_qwen_vl import build_tiny_qwen_vl
from segflow_trainer.update import LoraSettings, fetch_policy, update_policy

from .helpers import Dev

SYSTEM = "You find the target object."


def jpeg(w: int, h: int, seed: int) -> bytes:
    g = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


IMAGES = {f"s3://segflow-test/img/{i}.png": jpeg(w, h, i) for i, (w, h) in enumerate([(200, 150), (120, 240), (300, 300)])}
URIS = list(IMAGES)


def messages(answer: dict | None = None) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "frame 0 <image> frame 1 <image>\nFind the red car.", "images": [{"uri": URIS[0]}, {"uri": URIS[1]}]},
        {"role": "assistant", "content": "<keyframe> 1 </keyframe>"},
        {"role": "user", "content": "Here is the high-res version of your selected frame:", "images": [{"uri": URIS[2]}]},
        answer or {"role": "assistant", "content": '<answer> {"bbox_2d": [1, 2, 3, 4]} </answer>'},
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_qwen_vl(tmp_path_factory.mktemp("tiny-qwen-vl") / "v0", seed=0)


@pytest.fixture(scope="module")
def fam(tiny):
    f = HfFamily.load(tiny, "s3://segflow-test/tiny/", None, LoraSettings(), lambda uri: tiny, IMAGES.__getitem__)
    f.eval()
    return f


def traj(msgs: list[dict], tid: str = "t0", advantage: float = 1.0) -> BatchTrajectory:
    return BatchTrajectory(tid, "g0", advantage, advantage, msgs)


def test_the_builder_is_deterministic(tiny, tmp_path):
    again = build_tiny_qwen_vl(tmp_path / "again", seed=0)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "preprocessor_config.json"):
        assert (again / name).read_bytes() == (tiny / name).read_bytes(), name


def test_each_image_expands_to_its_tokens_in_order(fam):
    tt = fam.tokenize(traj(messages()), 4096)
    assert [img.uri for img in tt.images] == URIS
    pad = fam.renderer.image_token_id
    runs, i = [], 0
    ids = tt.input_ids
    while i < len(ids):
        if ids[i] == pad:
            j = i
            while j < len(ids) and ids[j] == pad:
                j += 1
            runs.append((i, j - i))
            i = j
        else:
            i += 1
    # one run per image, as long as its merged patch grid (t·h·w / 2²)
    assert [n for _, n in runs] == [int(img.grid_thw.prod()) // 4 for img in tt.images]
    # the two frames sit in the prompt; the high-res keyframe in the observation, after the first turn
    first_turn = tt.loss_mask.index(1)
    assert runs[0][0] < runs[1][0] < tt.prompt_length <= first_turn < runs[2][0]
    # no image token is ever trained
    assert all(m == 0 for t, m in zip(ids, tt.loss_mask) if t == pad)


def test_the_m_rope_token_types_change_every_position_after_an_image(fam):
    tt = fam.tokenize(traj(messages()), 4096)
    ids = torch.tensor([tt.input_ids])
    attn = torch.ones_like(ids)
    inputs = fam._inputs([tt], ids, attn)
    with torch.no_grad():
        right, _ = token_log_probs(fam.model, ids, attn, **inputs)
        flat, _ = token_log_probs(fam.model, ids, attn, **{k: v for k, v in inputs.items() if k != "mm_token_type_ids"})
    first_image = tt.input_ids.index(fam.renderer.image_token_id)
    before = slice(0, first_image - 1)
    # identical before the first image; without the token types the positions after it are wrong
    assert torch.equal(right[0, before], flat[0, before])
    assert (right[0, first_image:] - flat[0, first_image:]).abs().max() > 1e-3


def test_sampled_ids_are_trained_with_their_server_log_probs(fam):
    tok = fam.tokenizer
    text = '<answer> {"bbox_2d": [1, 2, 3, 4]} </answer>'
    canonical = tok.encode(text, add_special_tokens=False)
    # the canonical ids re-render alike: they are aligned in place, the end-of-turn tokens get none
    same = fam.tokenize(traj(messages({"role": "assistant", "content": text, "tokenIds": canonical,
                                       "logprobs": [-0.5] * len(canonical)})), 4096)
    assert same.sampled_turns == 1 and same.retokenized_turns == 0
    server = [x for x in same.rollout_log_probs if x is not None]
    assert server == [-0.5] * len(canonical)
    # a non-canonical split of the same text (one byte token per character): trained as sampled
    split = [tok.convert_tokens_to_ids(ch) for t in tok.convert_ids_to_tokens(canonical) for ch in t]
    assert split != canonical and tok.decode(split) == text
    odd = fam.tokenize(traj(messages({"role": "assistant", "content": text, "tokenIds": split,
                                      "logprobs": [-0.25] * len(split)})), 4096)
    assert odd.input_ids[-len(split):] == split and odd.loss_mask[-len(split):] == [1] * len(split)
    assert odd.rollout_log_probs[-len(split):] == [-0.25] * len(split)
    # an earlier turn whose ids differ stays as every later turn's context saw it: re-rendered, counted
    msgs = messages()
    msgs[2] = {**msgs[2], "tokenIds": [tok.convert_tokens_to_ids("<")] * 3, "logprobs": [-1.0] * 3}
    early = fam.tokenize(traj(msgs), 4096)
    assert early.retokenized_turns == 1
    assert all(x is None for x in early.rollout_log_probs)


def test_a_sampled_placeholder_token_is_text_as_the_server_embedded_it(fam):
    pad = fam.renderer.image_token_id
    video = fam.renderer.video_token_id
    normal = fam.tokenize(traj(messages()), 4096)
    ids = torch.tensor([normal.input_ids])
    attn = torch.ones_like(ids)
    types = torch.tensor([normal.token_types], dtype=torch.int32)
    images = normal.images
    pixel_values = torch.cat([i.pixel_values for i in images])
    grid = torch.stack([i.grid_thw for i in images])
    with torch.no_grad():
        standard, _ = token_log_probs(fam.model, ids, attn, **fam._inputs([normal], ids, attn))
        by_hand, _ = token_log_probs(fam.model, ids, attn, **fam._embedded(fam.model, ids, attn, types, pixel_values, grid))
    # the hand-built path (image features at the rendered slots, positions from the rendered types)
    # is the model's own forward pass
    assert (standard - by_hand).abs().max() < 1e-5
    # a last turn that sampled an image and a video placeholder: they stay text
    sampled = [pad, video, fam.tokenizer.convert_tokens_to_ids("<")]
    odd = fam.tokenize(traj(messages({"role": "assistant", "content": "<", "tokenIds": sampled, "logprobs": [-1.0] * 3})), 4096)
    assert odd.input_ids[-3:] == sampled and odd.token_types[-3:] == [0, 0, 0]
    assert sum(odd.token_types) == sum(i.tokens for i in odd.images)
    with torch.no_grad():
        lp, _, _ = fam.log_probs([odd])
    assert torch.isfinite(lp).all()


def test_a_long_trajectory_is_cut_between_images(fam):
    full = fam.tokenize(traj(messages()), 4096)
    keyframe_start = full.input_ids.index(fam.renderer.image_token_id, full.prompt_length)
    cut = fam.tokenize(traj(messages()), keyframe_start + 5)
    assert cut.truncated and len(cut.input_ids) == keyframe_start
    assert [img.uri for img in cut.images] == URIS[:2]
    with pytest.raises(BadInputError, match="max_length"):
        fam.tokenize(traj(messages()), full.input_ids.index(fam.renderer.image_token_id) + 3)


def test_an_unreadable_image_is_named(tiny):
    f = HfFamily.load(tiny, "s3://x/", None, LoraSettings(), lambda uri: tiny, lambda uri: b"not an image")
    with pytest.raises(BadInputError, match="is not a readable image"):
        f.tokenize(traj(messages()), 4096)


# ---- update_policy on the dev S3 ---------------------------------------------------------------


@pytest.fixture(scope="module")
def dev(tmp_path_factory, tiny):
    d = Dev(tmp_path_factory.mktemp("vlm"))
    d.v0 = {"uri": d.store.uri_of(f"test/trainer/{d.run_id}/tiny-qwen-vl/"), "version": 0}
    d.store.upload_folder(tiny, d.v0["uri"])
    d.images = {}
    for uri, data in IMAGES.items():
        key = f"test/trainer/{d.run_id}/img/{uri.rsplit('/', 1)[1]}"
        d.images[uri] = d.store.put_bytes(key, data, "image/png")["uri"]
    return d


def batch_doc(dev, run: str, fam) -> dict:
    """Two trajectories whose last turns carry sampled ids and the log-probs the policy itself gives
    them (a server that agrees with the trainer), and two without."""

    def on_store(msgs):
        return [{**m, "images": [{"uri": dev.images[i["uri"]]} for i in m["images"]]} if m.get("images") else m
                for m in msgs]

    docs = []
    for k, (answer, adv) in enumerate([("<answer> 1 </answer>", 1.0), ("<keyframe> 9 </keyframe>", -1.0),
                                        ("<answer> 22 </answer>", 0.5), ("nothing", -0.5)]):
        msgs = on_store(messages({"role": "assistant", "content": answer}))
        if k < 2:
            ids = fam.tokenizer.encode(answer, add_special_tokens=False)
            tt = fam.tokenize(traj(messages({"role": "assistant", "content": answer, "tokenIds": ids,
                                             "logprobs": [0.0] * len(ids)})), 4096)
            with torch.no_grad():
                lp, _, _ = fam.log_probs([tt])
            at = [p for p, x in enumerate(tt.rollout_log_probs) if x is not None]
            msgs[-1] = {**msgs[-1], "tokenIds": ids, "logprobs": [float(lp[0, p - 1]) for p in at]}
        docs.append({"trajectoryId": f"t{k}", "groupId": "g0", "advantage": adv, "reward": adv, "messages": msgs})
    return {"schema": "segflow.batch/1", "runId": run, "step": 0, "policyVersion": 0, "trajectories": docs}


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_update_policy_trains_a_vlm_with_its_images(dev, fam, kind):
    run = f"{dev.run_id}-{kind}"
    doc = batch_doc(dev, run, fam)
    assert parse_batch(json.dumps(doc).encode(), "b").trajectories[0].messages[-1]["tokenIds"]
    hp = {"runId": run, "step": 0, "seed": 3, "learningRate": 1e-2 if kind == "lora" else 1e-3, "maxLength": 4096,
          "rolloutIsCap": 2.0}
    if kind == "lora":
        hp["lora"] = {"rank": 4, "alpha": 8}
    r = update_policy(dev.store, dev.put_batch(doc, f"{kind}.json"), dev.v0, hp, dev.work_dir)
    m = r["metrics"]
    assert r["policy"]["kind"] == kind
    roll = m["rollout"]
    # 4 trajectories × 3 images, every one fed to the model
    assert roll["images"] == 12 and roll["sampledTurns"] == 2
    assert roll["comparedTokens"] > 0 and roll["logProbDiffMax"] < 1e-4
    # the server agreed with the trainer: every importance weight is 1
    assert math.isclose(roll["isWeightMean"], 1.0, abs_tol=1e-4)
    assert m["logProbShift"]["positive"] > 0 > m["logProbShift"]["negative"]
    files = {k.rsplit("/", 1)[1] for k in dev.store.list(r["policy"]["uri"])}
    if kind == "lora":
        cfg = json.loads((fetch_policy(dev.store, r["policy"]["uri"], dev.tmp / "read") / "adapter_config.json").read_text())
        assert cfg["target_modules"] == VLM_LORA_TARGETS  # the language model only
    else:
        # a full version is a servable folder: weights, tokenizer, template and image processor
        assert {"model.safetensors", "preprocessor_config.json", "tokenizer.json"} <= files


def test_the_kl_reference_builds_its_own_embeddings_for_a_sampled_placeholder(fam, tiny):
    sampled = [fam.renderer.image_token_id, fam.tokenizer.convert_tokens_to_ids("<")]
    odd = fam.tokenize(traj(messages({"role": "assistant", "content": "<", "tokenIds": sampled})), 4096)
    moved = HfFamily.load(tiny, "s3://segflow-test/tiny/", None, LoraSettings(), lambda uri: tiny, IMAGES.__getitem__)
    moved.eval()
    with torch.no_grad():
        for p in moved.model.parameters():
            p.add_(0.05)
        expected, _, _ = fam.log_probs([odd])
        reference = moved.reference_log_probs([odd], lambda: tiny)
    # the reference (v0) scores the trajectory as v0 itself does, not with the moved policy's embeddings
    assert (reference - expected).abs().max() < 1e-5


def test_sampled_ids_outside_the_vocabulary_are_not_this_policys(fam):
    # a server serving another model (here: ids past this tokenizer's vocabulary) is not trained on
    foreign = fam.tokenize(traj(messages({"role": "assistant", "content": "<answer> 1 </answer>",
                                          "tokenIds": [len(fam.tokenizer) + 7, 3], "logprobs": [-1.0, -2.0]})), 4096)
    assert foreign.foreign_turns == 1 and foreign.sampled_turns == 0
    assert all(x is None for x in foreign.rollout_log_probs or [])
    assert foreign.input_ids == fam.tokenize(traj(messages({"role": "assistant", "content": "<answer> 1 </answer>"})), 4096).input_ids
