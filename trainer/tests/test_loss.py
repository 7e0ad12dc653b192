"""The torch loss against the hand-computed values that core/grpo/loss.ts is also tested with."""

import json
import math
from pathlib import Path

import pytest
import torch

from segflow_trainer.loss import DAPO_CLIP_HIGHER_LOSS, GRPO_LOSS, low_var_kl, ppo_loss, ppo_token_loss

HAND = json.loads((Path(__file__).parent / "ppo_hand_values.json").read_text())
SETTINGS = {"grpo": GRPO_LOSS, "dapo": DAPO_CLIP_HIGHER_LOSS}


@pytest.mark.parametrize("case", HAND["tokens"], ids=[c["why"] for c in HAND["tokens"]])
def test_token_loss_matches_hand_values(case):
    lp = torch.tensor([math.log(case["ratio"])], dtype=torch.float64)
    loss, ratio, clipped, dual = ppo_token_loss(
        lp, torch.zeros(1, dtype=torch.float64), torch.tensor([float(case["advantage"])], dtype=torch.float64),
        SETTINGS[case["settings"]],
    )
    assert loss.item() == pytest.approx(case["loss"], abs=1e-12)
    assert ratio.item() == pytest.approx(case["ratio"], abs=1e-12)
    assert bool(clipped.item()) is case["clipped"]
    assert bool(dual.item()) is case["dualClipped"]


def test_token_mean_ignores_observation_tokens():
    c = HAND["tokenMean"]
    t = lambda k: torch.tensor(c[k], dtype=torch.float64)  # noqa: E731
    out = ppo_loss(t("logProbs"), t("oldLogProbs"), t("advantages"), t("mask"))
    assert out.loss.item() == pytest.approx(c["loss"], abs=1e-12)
    assert out.clip_fraction == pytest.approx(c["clipFraction"], abs=1e-12)
    assert out.tokens == c["tokens"]


def test_log_ratio_is_clamped_before_exp():
    _, ratio, _, _ = ppo_token_loss(
        torch.tensor([50.0], dtype=torch.float64), torch.zeros(1, dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    )
    assert ratio.item() == pytest.approx(math.exp(20))


def test_loss_gradient_is_zero_where_clipped():
    # A > 0 and ratio above 1 + eps: the clipped branch is constant, no gradient flows.
    lp = torch.tensor([math.log(1.5), 0.0], requires_grad=True)
    out = ppo_loss(lp, torch.zeros(2), torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0]))
    out.loss.backward()
    assert lp.grad[0].item() == 0
    assert lp.grad[1].item() == pytest.approx(-0.5)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="differ in shape"):
        ppo_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.ones(2))


def test_low_var_kl_is_zero_for_equal_policies_and_positive_otherwise():
    lp = torch.tensor([-1.0, -2.0])
    assert torch.allclose(low_var_kl(lp, lp), torch.zeros(2))
    assert (low_var_kl(lp, lp - 0.5) > 0).all()
