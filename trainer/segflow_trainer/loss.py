"""PPO-clip policy loss with clip-higher (asymmetric epsilon) and dual clip, token-mean aggregation,
and the low-variance KL estimator: the same math as verl's `compute_policy_loss` and as
core/grpo/loss.ts on the TypeScript side (both are checked against the same hand-computed values,
trainer/tests/ppo_hand_values.json).

    rho = exp(clamp(logp - logp_old, -20, 20))
    L1 = -A*rho,  L2 = -A*clip(rho, 1 - eps_low, 1 + eps_high),  L = max(L1, L2)
    if A < 0:  L = min(L, -A*c)                      (dual clip, c = 3)
    loss = sum(mask*L) / sum(mask)                    (token-mean over response tokens)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PpoClipSettings:
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip_c: float = 3.0
    log_ratio_clamp: float = 20.0


GRPO_LOSS = PpoClipSettings()
DAPO_CLIP_HIGHER_LOSS = PpoClipSettings(clip_high=0.3)


@dataclass
class PpoLossOutput:
    loss: torch.Tensor
    """Token-mean loss (a scalar with grad)."""
    per_token: torch.Tensor
    ratio: torch.Tensor
    clipped: torch.Tensor
    """L2 > L1: the clipped objective bound (verl's pg_clipfrac)."""
    dual_clipped: torch.Tensor
    clip_fraction: float
    dual_clip_fraction: float
    approx_kl: float
    tokens: float


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    total = mask.sum()
    if total.item() == 0:
        return (values * 0).sum()
    return (values * mask).sum() / total


def ppo_token_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    s: PpoClipSettings = GRPO_LOSS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token loss, ratio, clipped and dual-clipped flags (same shapes as the inputs)."""
    log_ratio = torch.clamp(log_probs - old_log_probs, -s.log_ratio_clamp, s.log_ratio_clamp)
    ratio = torch.exp(log_ratio)
    l1 = -advantages * ratio
    l2 = -advantages * torch.clamp(ratio, 1 - s.clip_low, 1 + s.clip_high)
    clip1 = torch.maximum(l1, l2)
    l3 = -advantages * s.dual_clip_c
    clip2 = torch.minimum(l3, clip1)
    loss = torch.where(advantages < 0, clip2, clip1)
    clipped = l2 > l1
    dual = (advantages < 0) & (clip1 > l3)
    return loss, ratio, clipped, dual


def ppo_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    s: PpoClipSettings = GRPO_LOSS,
    token_weights: torch.Tensor | None = None,
) -> PpoLossOutput:
    """Token-mean PPO loss; `mask` is 1 on tokens the policy generated, 0 on observations/padding.
    `token_weights` (no gradient) scale each token's loss: the truncated importance-sampling
    correction for rollouts sampled by a server whose log-probs differ from the trainer's."""
    if not (log_probs.shape == old_log_probs.shape == advantages.shape == mask.shape):
        raise ValueError(
            "per-token tensors differ in shape: "
            f"log_probs {tuple(log_probs.shape)}, old_log_probs {tuple(old_log_probs.shape)}, "
            f"advantages {tuple(advantages.shape)}, mask {tuple(mask.shape)}"
        )
    mask = mask.to(log_probs.dtype)
    per_token, ratio, clipped, dual = ppo_token_loss(log_probs, old_log_probs, advantages, s)
    if token_weights is not None:
        per_token = per_token * token_weights.detach()
    loss = masked_mean(per_token, mask)
    with torch.no_grad():
        log_ratio = torch.clamp(log_probs - old_log_probs, -s.log_ratio_clamp, s.log_ratio_clamp)
        tokens = float(mask.sum().item())
        clip_fraction = float(masked_mean(clipped.to(mask.dtype), mask).item())
        dual_fraction = float(masked_mean(dual.to(mask.dtype), mask).item())
        approx_kl = float(masked_mean(-log_ratio, mask).item())
    return PpoLossOutput(
        loss=loss,
        per_token=per_token,
        ratio=ratio,
        clipped=clipped,
        dual_clipped=dual,
        clip_fraction=clip_fraction,
        dual_clip_fraction=dual_fraction,
        approx_kl=approx_kl,
        tokens=tokens,
    )


def low_var_kl(log_probs: torch.Tensor, ref_log_probs: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(pi || pi_ref) per token (verl's `low_var_kl`), clamped to [-10, 10]."""
    kl = torch.clamp(ref_log_probs - log_probs, -20, 20)
    ratio = torch.exp(kl)
    return torch.clamp(ratio - kl - 1, -10, 10)
