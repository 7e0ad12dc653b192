/**
 * PPO-clip policy loss per token, with clip-higher (asymmetric ε) and dual clip, as verl's
 * `compute_policy_loss` (spec §6.2), and token-mean aggregation.
 *
 * Test-only: no workflow or activity calls this. The loss that trains is Python's
 * (trainer/segflow_trainer/loss.py, run by update.py); this file is its TypeScript cross-check, held to
 * the same hand-computed values (trainer/tests/ppo_hand_values.json) by
 * test/unit/trainer/ppo-hand-values.test.ts and test/unit/core/grpo.test.ts.
 *
 *   ρ = exp(clamp(logπ − logπ_old, −20, 20))
 *   L1 = −A·ρ,  L2 = −A·clip(ρ, 1 − ε_low, 1 + ε_high),  L = max(L1, L2)
 *   if A < 0:  L = min(L, −A·c)            (dual clip, c = 3)
 *   loss = Σ mask·L / Σ mask               (token-mean over response tokens; observations masked out)
 */

export interface PpoClipSettings {
  /**
   * ε_low: the ratio is clipped below at 1 − ε_low.
   * @default 0.2
   */
  clipLow: number;
  /**
   * ε_high: the ratio is clipped above at 1 + ε_high (0.3 in the "DAPO" runs: clip-higher).
   * @default 0.2
   */
  clipHigh: number;
  /**
   * Dual-clip constant c: for negative advantages the loss is capped at −A·c.
   * @default 3
   */
  dualClipC: number;
  /**
   * Bound on |logπ − logπ_old| before exponentiating.
   * @default 20
   */
  logRatioClamp: number;
}

export const GRPO_LOSS: PpoClipSettings = { clipLow: 0.2, clipHigh: 0.2, dualClipC: 3, logRatioClamp: 20 };
export const DAPO_CLIP_HIGHER_LOSS: PpoClipSettings = { ...GRPO_LOSS, clipHigh: 0.3 };

/** The loss of one token and how it was clipped. */
export interface TokenLoss {
  loss: number;
  ratio: number;
  /** L2 > L1: the clipped objective was the binding one (verl's `pg_clipfrac`). */
  clipped: boolean;
  /** A < 0 and the dual clip bound the loss (verl's `pg_clipfrac_lower`). */
  dualClipped: boolean;
}

/** PPO-clip / clip-higher / dual-clip loss of a single token. */
export function ppoTokenLoss(
  logProb: number,
  oldLogProb: number,
  advantage: number,
  s: PpoClipSettings = GRPO_LOSS,
): TokenLoss {
  const logRatio = Math.min(Math.max(logProb - oldLogProb, -s.logRatioClamp), s.logRatioClamp);
  const ratio = Math.exp(logRatio);
  const l1 = -advantage * ratio;
  const l2 = -advantage * Math.min(Math.max(ratio, 1 - s.clipLow), 1 + s.clipHigh);
  const clip1 = Math.max(l1, l2);
  const l3 = -advantage * s.dualClipC;
  const clip2 = Math.min(l3, clip1);
  const loss = advantage < 0 ? clip2 : clip1;
  return { loss, ratio, clipped: l2 > l1, dualClipped: advantage < 0 && clip1 > l3 };
}

/** Aggregated loss of a batch of tokens. */
export interface PpoLossSummary {
  /** Token-mean of the per-token losses over unmasked tokens (0 when there are none). */
  loss: number;
  /** Fraction of unmasked tokens where the clipped objective bound. */
  clipFraction: number;
  /** Fraction of unmasked tokens where the dual clip bound. */
  dualClipFraction: number;
  /** Token-mean of −(logπ − logπ_old) after clamping (verl's `ppo_kl`). */
  approxKl: number;
  tokens: number;
}

/**
 * Token-mean PPO loss over parallel per-token arrays. `mask[i]` is 1 for tokens the policy
 * generated and 0 for observation (and padding) tokens, which contribute nothing.
 */
export function ppoLoss(
  input: {
    logProbs: ArrayLike<number>;
    oldLogProbs: ArrayLike<number>;
    advantages: ArrayLike<number>;
    mask: ArrayLike<number>;
  },
  s: PpoClipSettings = GRPO_LOSS,
): PpoLossSummary {
  const n = input.mask.length;
  if (input.logProbs.length !== n || input.oldLogProbs.length !== n || input.advantages.length !== n) {
    throw new RangeError(
      `per-token arrays differ in length: mask ${n}, logProbs ${input.logProbs.length}, ` +
        `oldLogProbs ${input.oldLogProbs.length}, advantages ${input.advantages.length}`,
    );
  }
  let sum = 0;
  let clipped = 0;
  let dual = 0;
  let kl = 0;
  let tokens = 0;
  for (let i = 0; i < n; i++) {
    const m = input.mask[i] ?? 0;
    if (m === 0) continue;
    const lp = input.logProbs[i] ?? 0;
    const old = input.oldLogProbs[i] ?? 0;
    const t = ppoTokenLoss(lp, old, input.advantages[i] ?? 0, s);
    sum += m * t.loss;
    clipped += m * (t.clipped ? 1 : 0);
    dual += m * (t.dualClipped ? 1 : 0);
    kl += m * -Math.min(Math.max(lp - old, -s.logRatioClamp), s.logRatioClamp);
    tokens += m;
  }
  if (tokens === 0) return { loss: 0, clipFraction: 0, dualClipFraction: 0, approxKl: 0, tokens: 0 };
  return {
    loss: sum / tokens,
    clipFraction: clipped / tokens,
    dualClipFraction: dual / tokens,
    approxKl: kl / tokens,
    tokens,
  };
}
