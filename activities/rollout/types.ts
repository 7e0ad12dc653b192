/**
 * The contracts of the activities a rollout calls, shared by workflows (as types) and the
 * activity implementations. Inputs are validated with zod at the activity edge.
 */
import { z } from 'zod';
import { artifactRefSchema, type ArtifactRef } from '../../core/artifacts.js';

export const samplingSchema = z.strictObject({
  /** @default 1.0 (training); evaluation uses 0 */
  temperature: z.number().min(0).max(5).default(1),
  /** @default 1.0 */
  topP: z.number().gt(0).max(1).default(1),
  /** -1 disables. @default -1 */
  topK: z.number().int().min(-1).default(-1),
  seed: z.number().int().optional(),
});
export type Sampling = z.input<typeof samplingSchema>;

export const rolloutMessageSchema = z.strictObject({
  role: z.enum(['system', 'user', 'assistant']),
  content: z.string(),
  images: z.array(artifactRefSchema).optional(),
});

export const policyTurnInputSchema = z.strictObject({
  /** Unique per generation, so a retry is a fresh request (as the reference's request ids). */
  requestId: z.string().min(1),
  messages: z.array(rolloutMessageSchema).min(1),
  maxTokens: z.number().int().min(1),
  stop: z.array(z.string()).default([]),
  sampling: samplingSchema.prefault({}),
  /** Overrides the configured model name (e.g. a LoRA adapter of a policy version). */
  model: z.string().optional(),
});
export type PolicyTurnInput = z.input<typeof policyTurnInputSchema>;

export interface PolicyTurnOutput {
  text: string;
  /** "stop" | "length" | other server values. */
  finishReason: string;
  promptTokens: number;
  completionTokens: number;
  /** The host whose policy server answered: later turns are pinned to `segflow-policy@<hostId>`. */
  hostId: string;
  /** Generated token ids and log-probabilities, when the server returns them. */
  tokenIds?: number[];
  logprobs?: number[];
  latencyMs: number;
}

export const searchToolInputSchema = z.strictObject({
  tool: z.enum(['text_search', 'image_search']),
  query: z.string(),
  /** Counts paid calls per run. */
  runId: z.string().optional(),
  backend: z.string().optional(),
  topk: z.number().int().min(1).max(50).optional(),
});
export type SearchToolInput = z.input<typeof searchToolInputSchema>;

export interface SearchToolOutput {
  /** The `<information>…</information>` observation (web text neutralised). */
  observation: string;
  /** Images referenced by `<image>` placeholders, in order (256×256). */
  images: ArtifactRef[];
  cached: boolean;
  backend: string;
}
