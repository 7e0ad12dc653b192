"""Tokenisation of trajectories: masks follow the turn structure; bad batches are named errors."""

import json

import pytest

from segflow_trainer.batch import BatchTrajectory, parse_batch, tokenize_trajectory
from segflow_trainer.errors import BadInputError
from segflow_trainer.tiny_model import build_tiny_model

from .helpers import GOOD, fixed_batch


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(build_tiny_model(tmp_path_factory.mktemp("m"), vocab_size=400))


def test_masks_follow_turns(tokenizer):
    t = parse_batch(json.dumps(fixed_batch("r")).encode(), "b").trajectories[0]
    out = tokenize_trajectory(tokenizer, t, max_length=4096)
    ids, mask = out.input_ids, out.loss_mask
    assert len(ids) == len(mask)
    assert all(m == 0 for m in mask[: out.prompt_length])
    # Decode the masked stretches: exactly the assistant turns (with their end tokens).
    spans, cur = [], []
    for i, m in zip(ids, mask):
        if m:
            cur.append(i)
        elif cur:
            spans.append(cur)
            cur = []
    if cur:
        spans.append(cur)
    texts = [tokenizer.decode(s) for s in spans]
    assert texts == [t.messages[2]["content"] + "<|end|>", GOOD + "<|end|>"]
    # The observation and the role headers are not trained.
    full = tokenizer.decode(ids)
    assert "<information>" in full
    obs_start = full.index("<|user|><information>")
    assert obs_start > 0


def test_truncation_keeps_the_first_tokens(tokenizer):
    t = parse_batch(json.dumps(fixed_batch("r")).encode(), "b").trajectories[0]
    full = tokenize_trajectory(tokenizer, t, 4096)
    cut = tokenize_trajectory(tokenizer, t, full.prompt_length + 5)
    assert cut.truncated and cut.input_ids == full.input_ids[: full.prompt_length + 5]
    with pytest.raises(BadInputError, match="its prompt is .* tokens, max_length is 3"):
        tokenize_trajectory(tokenizer, t, 3)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(schema="other"), "schema: 'segflow.batch/1' was expected"),
        (lambda d: d.update(trajectories=[]), r"trajectories: \[\] should be non-empty"),
        (lambda d: d["trajectories"][1].update(advantage=float("nan")), r"trajectory 1 \(t1\) has advantage nan"),
        (lambda d: d["trajectories"][0]["messages"].__setitem__(1, {"role": "robot", "content": "x"}), r"trajectories\.0\.messages\.1\.role: 'robot' is not one of"),
        (
            lambda d: d["trajectories"][2].update(messages=d["trajectories"][2]["messages"][:2]),
            r"trajectory 2 \(t2\) has no assistant turn",
        ),
    ],
)
def test_bad_batches_name_the_problem(mutate, message):
    doc = fixed_batch("r")
    mutate(doc)
    with pytest.raises(BadInputError, match=message):
        parse_batch(json.dumps(doc).encode(), "s3://segflow/x.json")


def test_not_json():
    with pytest.raises(BadInputError, match="batch s3://b/k is not JSON"):
        parse_batch(b"{nope", "s3://b/k")


def test_tokenizer_without_template(tokenizer):
    t = BatchTrajectory("t", "g", 1.0, 0.0, [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])
    saved = tokenizer.chat_template
    tokenizer.chat_template = None
    try:
        with pytest.raises(BadInputError, match="no chat_template"):
            tokenize_trajectory(tokenizer, t, 100)
    finally:
        tokenizer.chat_template = saved
