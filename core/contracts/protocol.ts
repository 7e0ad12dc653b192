/**
 * How a policy speaks the protocol, where it differs from the shipped defaults: the system prompts
 * it was trained on (a prompt file) and the coordinate frame of its answers. Small and pure, so it
 * travels in workflow inputs (rollout, evaluation, segmentQuery, the training config) and replay
 * sees the very text a run started with.
 */
import { z } from 'zod';

/**
 * The prompt file (`policy.promptFile`, `--prompt-file`): YAML or JSON with the full system-prompt
 * texts, used verbatim. The search prompt holds the tool descriptions (the `<tools>` JSON lines,
 * as the reference's prompt.py has them), so a full search text replaces those too. A key left
 * out keeps segflow's paraphrase for that prompt.
 */
export const promptFileSchema = z
  .strictObject({
    /** System prompt of `one-hop`, `multi-hop` and `relational` samples (tools included). */
    search: z.string().min(1, 'must be a non-empty text').optional(),
    /** System prompt of `in-video` samples (keyframe then answer, no tools). */
    nonSearch: z.string().min(1, 'must be a non-empty text').optional(),
  })
  .refine((v) => v.search !== undefined || v.nonSearch !== undefined, {
    message: 'needs "search", "nonSearch" or both',
  });
export type SystemPrompts = z.infer<typeof promptFileSchema>;

/**
 * The coordinate frame of the policy's `bbox_2d` / `point_2d`:
 * - `qwen3vl`: 0–1000 of the original frame (Seg-ReSearch, Qwen3-VL);
 * - `qwen25vl`: absolute pixels of the resized policy frame (Qwen2.5-VL; 448×448 in the reference).
 */
export const policyCoordinatesSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('qwen3vl') }),
  z.strictObject({
    kind: z.literal('qwen25vl'),
    resizedWidth: z.number().int().min(1),
    resizedHeight: z.number().int().min(1),
  }),
]);
export type PolicyCoordinates = z.infer<typeof policyCoordinatesSchema>;

/** The protocol fields of a workflow's `policy` input; absent: the shipped prompts, 0–1000. */
export const policyProtocolSchema = z.strictObject({
  systemPrompts: promptFileSchema.optional(),
  coordinates: policyCoordinatesSchema.optional(),
});
export type PolicyProtocol = z.infer<typeof policyProtocolSchema>;
