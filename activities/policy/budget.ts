/**
 * The per-turn token budget of the agent loop (spec §3.3), reproduced with its quirk: the cap is
 * `min(max_response_length, max_model_len)` minus the WHOLE context, prompt included, so the
 * whole trajectory fits in max_response_length tokens.
 */

export interface BudgetSettings {
  /** `max_action_length`: tokens one turn may generate. */
  maxTokensPerTurn: number;
  /** `max_response_length`: the cap on the whole context. */
  maxResponseLength: number;
  /** The server's context length, when known and smaller. */
  maxModelLen?: number | undefined;
}

/**
 * `max_tokens` for the next turn: `min(max_action_length, max(min(max_response_length,
 * max_model_len) − context, 0))`. Without a known context size, the per-turn cap alone.
 * Zero means the turn must not run (`max_model_len_exceeded`).
 */
export function turnMaxTokens(settings: BudgetSettings, contextTokens: number | undefined): number {
  if (contextTokens === undefined) return settings.maxTokensPerTurn;
  const cap = Math.min(settings.maxResponseLength, settings.maxModelLen ?? Number.POSITIVE_INFINITY);
  const budget = Math.max(cap - contextTokens, 0);
  return Math.min(settings.maxTokensPerTurn, budget);
}
