"""The warm-up's choice among candidates (nano/policy_select.py, nano/policy_sft.py): the held-out
validation split, the greedy play that scores a candidate, and the rule that keeps one."""
import random

import numpy as np
import pytest
from PIL import Image

from nano import policy_model as pm
from nano import policy_select as sel
from nano import policy_sft as sft
from nano import world


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("nano-select") / "w")
    world.generate(out, seed=5, n_train=4, n_test=2, n_sft=sft.VAL_VIDEOS + 4)
    return out


def test_validation_is_the_sft_splits_last_videos_and_never_trained_on(small):
    train, val = sft.split_traces(small, random.Random(0))
    assert len(val) == sft.VAL_VIDEOS and len(train) == 4 + 4
    trained = {t["keyframe"].split("/JPEGImages/")[1].split("/")[0] for t in train}
    held = {t["keyframe"].split("/JPEGImages/")[1].split("/")[0] for t in val}
    assert all("/sft/" in t["keyframe"] for t in val)
    assert not {t["keyframe"] for t in train} & {t["keyframe"] for t in val} and held and trained


def test_a_small_sft_split_is_refused_with_the_fix(tmp_path):
    out = str(tmp_path / "w")
    world.generate(out, seed=5, n_train=2, n_test=1, n_sft=3)
    with pytest.raises(SystemExit, match=r"sft split has 3 videos.*--sft"):
        sft.split_traces(out, random.Random(0))


def test_lexical_search_ranks_the_named_passage_first(small):
    import json
    import os

    corpus = [json.loads(line)["contents"] for line in open(os.path.join(small, "corpus.jsonl"))]
    search = sel.LexicalSearch(corpus)
    for c in corpus[:5]:
        title = c.split("\n", 1)[0]
        hits = search(f"{title.lower()} appearance")
        assert hits[0] == c and 1 <= len(hits) <= 2  # passages sharing no query word are not hits (as BM25)
    assert search("zzz qqq") == []


def scripted(turns: list[str]):
    """pm.generate's stand-in: the given assistant turns, in order, as greedy decoding would return them."""
    it = iter(turns)

    def generate(model, prompt, max_new, stops, **kw):
        text = next(it)
        stop = next((s for s in stops if text.endswith(s)), None)
        return {"text": text, "ids": [], "logprobs": [], "finish_reason": "stop", "stop_reason": stop}

    return generate


def answer(box: list[int]) -> str:
    return ('<thinking> here . </thinking>\n<answer> {"bbox_2d": [%d, %d, %d, %d], "point_2d": [%d, %d]} </answer>'
            % (*box, (box[0] + box[2]) // 2, (box[1] + box[3]) // 2))


def test_play_scores_the_answer_on_the_chosen_keyframe(small):
    """The true box on the chosen keyframe scores ~1 (up to rounding to 0-1000 units),
    a box off to the side 0, a crossed box 0 as
    degenerate_box, an answer before any keyframe 0 as no_keyframe; searches are answered."""
    _, val = sft.split_traces(small, random.Random(0))
    tr = val[0]
    model = pm.new_model(pm.Tokenizer.build(sft.vocabulary_words(small)), 0)
    k = 2
    mask = np.asarray(Image.open(tr["masks"][k])) > 127
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    true = [round(xs.min() / w * 1000), round(ys.min() / h * 1000), round(xs.max() / w * 1000), round(ys.max() / h * 1000)]
    seen: list[str] = []

    def run(turns):
        return sel.play(model, tr, sel.LexicalSearch(["Kelvith\nThe Kelvith is a dotted red star."]),
                        lambda hits: seen.append(len(hits)) or sft.information(hits), {}, generate=scripted(turns))

    search_turn = '<thinking> look it up . </thinking>\n<search> {"name": "text_search", "query": "kelvith appearance"} </search>'
    key_turn = f"<thinking> this one . </thinking>\n<keyframe> {tr['frame_ids'][k]} </keyframe>"
    r = run([search_turn, key_turn, answer(true)])
    assert r["status"] == "ok" and r["iou"] > 0.99 and r["turns"] == 3 and seen == [1]
    far = [0, 0, 40, 40] if true[0] > 100 else [900, 900, 990, 990]
    assert run([key_turn, answer(far)])["iou"] == 0.0
    crossed = run([key_turn, answer([true[2], true[1], true[0], true[3]])])
    assert crossed == {"iou": 0.0, "status": "degenerate_box", "turns": 2}
    assert run([answer(true)])["status"] == "no_keyframe"
    assert run([search_turn] * sel.MAX_TURNS)["status"] == "turns"


def test_an_untrained_policy_scores_zero(small):
    _, val = sft.split_traces(small, random.Random(0))
    model = pm.new_model(pm.Tokenizer.build(sft.vocabulary_words(small)), 0)
    v = sel.validate(model, val[:3], small)
    assert v["score"] == 0.0 and v["samples"] == 3 and sum(v["statuses"].values()) == 3


def test_the_rule_keeps_the_best_score_and_breaks_ties_by_seed():
    r = lambda x: {"validation": {"score": x}}  # noqa: E731
    assert sft.pick({0: r(0.2), 1000: r(0.3), 2000: r(0.1)}) == 1000
    assert sft.pick({3000: r(0.3), 1000: r(0.3), 0: r(0.1)}) == 1000
    assert sft.candidate_seeds(7, 3) == [7, 1007, 2007]
