"""The nano world generator: deterministic by seed, OK-VOS layout, queries that need the search."""
import hashlib
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from nano import world


def tree_digest(root: str) -> str:
    h = hashlib.sha256()
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            p = os.path.join(d, f)
            h.update(os.path.relpath(p, root).encode())
            h.update(open(p, "rb").read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("nano") / "a")
    meta = world.generate(out, seed=3, n_train=8, n_test=4)
    return out, meta


def test_same_seed_same_bytes_other_seed_other_world(small, tmp_path):
    out, _ = small
    again = str(tmp_path / "b")
    world.generate(again, seed=3, n_train=8, n_test=4)
    assert tree_digest(out) == tree_digest(again)
    other = str(tmp_path / "c")
    world.generate(other, seed=4, n_train=8, n_test=4)
    assert tree_digest(out) != tree_digest(other)


def test_okvos_layout(small):
    out, meta = small
    t = pq.read_table(os.path.join(out, "train.parquet"))
    assert t.column_names == ["question", "images", "ability", "video", "oid", "id", "steps"]
    rows = t.to_pylist()
    assert {r["ability"] for r in rows} == set(world.ABILITIES)
    for r in rows:
        assert r["question"].startswith("Please find '") and r["question"].endswith("' in the provided video.")
        for name in r["images"]:
            img = Image.open(os.path.join(out, "train", "JPEGImages", r["video"], name + ".jpg"))
            assert img.size == (world.SIZE, world.SIZE)
            m = np.asarray(Image.open(os.path.join(out, "train", "Annotations", r["video"], r["oid"], name + ".png")))
            assert set(np.unique(m)) <= {0, 255} and (m == 255).any(), "the target is visible in every frame"
        assert (r["ability"] == "in-video") == (len(r["steps"]) == 0)


def test_search_queries_do_not_reveal_the_look_but_the_corpus_does(small):
    out, meta = small
    docs = {json.loads(l)["contents"].split("\n")[0]: json.loads(l)["contents"] for l in open(os.path.join(out, "corpus.jsonl"))}
    looks = set(world.COLOURS) | set(world.SHAPES) | set(world.TEXTURES)
    for s in meta["splits"]["train"] + meta["splits"]["test"]:
        words = set(s["query"].lower().split())
        if s["ability"] == "in-video":
            assert set(s["target"].split()) <= words
            continue
        assert not (words & looks), f"{s['query']} gives the look away"
        art = s["facts"]["artifact"]
        obj = next(o for o in s["objects"] if o["oid"] == s["oid"])
        if s["ability"] == "multi-hop":
            assert f"emblem is the {art}" in docs[f"{s['facts']['order']} order"]
            assert art not in s["query"]
        if s["ability"] == "relational":
            named = next(o for o in s["objects"] if docs[art].find(f"{o['texture']} {o['colour']} {o['shape']}") >= 0)
            side = -1 if s["facts"]["side"] == "left" else 1
            for b_t, b_n in zip(obj["boxes"], named["boxes"]):  # the relation holds in every frame
                assert side * ((b_t[0] + b_t[2]) - (b_n[0] + b_n[2])) > 0
        else:
            assert f"is a {obj['texture']} {obj['colour']} {obj['shape']}" in docs[art]


def test_sft_split_is_its_own_and_leaves_train_and_test_unchanged(small, tmp_path):
    out, meta = small
    with_sft = str(tmp_path / "s")
    m2 = world.generate(with_sft, seed=3, n_train=8, n_test=4, n_sft=3)
    assert [s["id"] for s in m2["splits"]["sft"]] == ["sft_0000", "sft_0001", "sft_0002"]
    assert "sft" not in meta["splits"]
    for split in ("train", "test"):
        assert m2["splits"][split] == meta["splits"][split]
        assert tree_digest(os.path.join(with_sft, split)) == tree_digest(os.path.join(out, split))
    assert len(os.listdir(os.path.join(with_sft, "sft", "JPEGImages"))) == 3


def test_sft_traces_are_encoded_as_the_policy_server_encodes_the_rollout(small):
    """A warm-up trace is the token sequence the server sees for the same history (every past
    assistant turn closed by <eos>, images in order), and only the assistant's content (plus the
    final <eos>) is trained."""
    import random

    from nano import policy_model as pm
    from nano import policy_sft as sft

    out, _ = small
    model = pm.new_model(pm.Tokenizer.build(sft.vocabulary_words(out)), 0)
    tok = model.tok
    for tr in sft.build_traces(out, "train", random.Random(0))[:4]:
        cache: dict = {}
        p, resp = sft.trace_example(model, tr, cache)
        msgs = sft.trace_messages(tr, lambda f: cache[f])
        ref = pm.encode_conversation(model, msgs, add_generation_prompt=False)
        assert p.ids == ref.ids and [f for _, f in p.images] == [f for _, f in ref.images]
        trained = tok.decode([p.ids[i] for i in resp])
        assistant = "".join(m["content"] for m in msgs if m["role"] == "assistant")
        assert trained == assistant.lower()
        eos = [i for i, t in enumerate(p.ids) if t == tok.id("<eos>")]
        assert len(eos) == sum(m["role"] == "assistant" for m in msgs) and resp[-1] == eos[-1]
        assert not set(eos[:-1]) & set(resp)
