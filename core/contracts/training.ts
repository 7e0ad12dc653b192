/**
 * The records between `trainingRun` (TypeScript) and the Python trainer (trainer/segflow_trainer):
 * the batch the orchestrator writes, the hyperparameters and policy ref `update_policy` takes, the
 * result it returns and the manifest it writes next to every version. Each is defined once, here;
 * `npm run build` exports them as JSON Schema to trainer/segflow_trainer/schemas/ and the trainer
 * validates against those files (trainer/segflow_trainer/contracts.py), so a field added here fails
 * the trainer's contract test until the trainer reads it.
 */
import { z } from 'zod';
import { artifactRefSchema } from '../artifacts.js';
import { IdSchemas } from './ids.js';

const int = (min: number) => z.number().int().min(min);
const finite = z.number().finite();

// ---- batch (runs/<run>/steps/<k>/batch.json) --------------------------------------------------

export const BATCH_SCHEMA = 'segflow.batch/1';

/** One chat message of a trajectory as the policy saw it; images in order of their placeholders. */
export const batchMessageSchema = z.strictObject({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string(),
  /** The S3 refs of the message's images, in order (one per `<image>` placeholder, extras after). */
  images: z
    .array(
      z.strictObject({ uri: z.string().regex(/^s3:\/\//, 'an s3:// URI'), sha256: z.string().optional() }),
    )
    .optional(),
  /** An assistant turn's sampled token ids, as the policy server returned them. */
  tokenIds: z.array(int(0)).optional(),
  /** The server's log-prob of each sampled token (same length as tokenIds). */
  logprobs: z.array(finite.max(0)).optional(),
});
export type BatchMessage = z.infer<typeof batchMessageSchema>;

export const batchTrajectorySchema = z.strictObject({
  trajectoryId: z.string().min(1),
  groupId: z.string().min(1),
  advantage: finite,
  reward: finite,
  messages: z
    .array(batchMessageSchema)
    .min(1)
    .refine((ms) => ms.some((m) => m.role === 'assistant'), 'has no assistant turn: nothing to train'),
});
export type BatchTrajectory = z.infer<typeof batchTrajectorySchema>;

export const trainingBatchSchema = z.strictObject({
  schema: z.literal(BATCH_SCHEMA),
  runId: IdSchemas.run,
  step: int(0),
  policyVersion: int(0),
  trajectories: z.array(batchTrajectorySchema).min(1),
});
export type TrainingBatch = z.infer<typeof trainingBatchSchema>;

// ---- update_policy's arguments -----------------------------------------------------------------

/** What the Python trainer's `update_policy` takes. Absent fields take the trainer's defaults. */
export const trainerHyperparametersSchema = z.strictObject({
  runId: IdSchemas.run,
  step: int(0),
  seed: int(0).optional(),
  learningRate: finite.min(0).optional(),
  weightDecay: finite.min(0).optional(),
  /** AdamW's epsilon (raise it, e.g. to 1e-6, for bf16 updates whose second moments underflow). */
  adamEps: finite.gt(0).optional(),
  /** AdamW's betas. */
  betas: z.tuple([finite.min(0).lt(1), finite.min(0).lt(1)]).optional(),
  /** The ratio is clipped at 1 − clipLow. */
  clipLow: finite.min(0).lt(1).optional(),
  clipHigh: finite.min(0).optional(),
  dualClipC: finite.gt(1).optional(),
  klCoef: finite.min(0).optional(),
  ppoEpochs: int(1).optional(),
  miniBatches: int(1).optional(),
  /** Trajectories per forward pass (memory only; the loss is the mini-batch's token-mean). */
  microBatchSize: int(1).optional(),
  /**
   * Micro-batches by token budget instead of count (replaces microBatchSize's rule when set):
   * consecutive trajectories are packed while the longest one's length × their number (the padded
   * [B, T] a forward pass costs) stays within it; a longer trajectory is a micro-batch of its own.
   */
  microBatchTokens: int(1).optional(),
  maxGradNorm: finite.gt(0).optional(),
  maxLength: int(1).optional(),
  /** The rollouts' sampling temperature: the trainer's log-probs are those of softmax(logits / T). */
  temperature: finite.gt(0).optional(),
  /** Truncated importance-sampling cap: token weights min(exp(old − server log-prob), cap). */
  rolloutIsCap: finite.min(1).nullable().optional(),
  /**
   * The dtype the policy (and the reference model) is loaded and trained in; log-probs are taken
   * in float32 either way. bfloat16: the weights, and for a full update AdamW's state, are bf16 (a
   * LoRA adapter stays float32); watch the `rollout.logProbDiff*` metrics and rolloutIsCap.
   */
  dtype: z.enum(['float32', 'bfloat16']).optional(),
  /** Recompute activations in the backward pass (less memory, same result, ~1/3 more compute). */
  gradientCheckpointing: z.boolean().optional(),
  lora: z
    .strictObject({
      rank: int(0),
      alpha: int(1).optional(),
      dropout: finite.min(0).optional(),
      targetModules: z.union([z.string(), z.array(z.string())]).optional(),
    })
    .nullable()
    .optional(),
});
export type TrainerHyperparameters = z.infer<typeof trainerHyperparametersSchema>;

export const policyRefSchema = z.strictObject({
  uri: z.string().regex(/^s3:\/\/[^/]+\/.+\/$/, 'an s3:// prefix ending in "/"'),
  version: int(0),
});
export type PolicyRef = z.infer<typeof policyRefSchema>;

// ---- update_policy's result and the version manifest ------------------------------------------

const nullableFinite = finite.nullable();

/** What one update did (means over the update's optimizer steps). */
export const trainerMetricsSchema = z.strictObject({
  loss: finite,
  pgLoss: finite,
  pgClipFraction: finite,
  dualClipFraction: finite,
  approxKl: finite,
  /** Null without a KL term (klCoef 0). */
  kl: nullableFinite,
  entropy: finite,
  gradNorm: finite,
  updates: int(0),
  trajectories: int(0),
  responseTokens: int(0),
  truncated: int(0),
  learningRate: finite,
  /** Mean log-prob change of the trained tokens, by advantage sign (null when no such token). */
  logProbShift: z.strictObject({ positive: nullableFinite, negative: nullableFinite }),
  /**
   * Training–inference consistency on the sampled tokens whose server log-probs the batch carries:
   * |trainer log-prob − server log-prob| before the update (null when none was compared).
   */
  rollout: z
    .strictObject({
      logProbDiffMean: nullableFinite,
      logProbDiffMax: nullableFinite,
      comparedTokens: int(0),
      /** Assistant turns trained on the server's sampled token ids. */
      sampledTurns: int(0),
      /** Earlier turns whose sampled ids re-render differently: trained as re-rendered, not compared. */
      retokenizedTurns: int(0),
      /** Turns whose sampled ids are outside the policy's vocabulary (another model served): trained as text. */
      foreignTurns: int(0),
      /** Images the trainer fed the policy. */
      images: int(0),
      /** Mean truncated importance-sampling weight (null when off). */
      isWeightMean: nullableFinite,
    })
    .optional(),
});

export const updatePolicyResultSchema = z.strictObject({
  policy: z.strictObject({
    uri: z.string(),
    version: int(1),
    kind: z.enum(['full', 'lora']),
    weightsSha256: z.string(),
  }),
  metrics: trainerMetricsSchema.extend({
    /** True when a retry found the version already made from the same inputs. */
    reused: z.boolean(),
    durationMs: finite,
  }),
});
export type UpdatePolicyResult = z.infer<typeof updatePolicyResultSchema>;
export type TrainerMetrics = UpdatePolicyResult['metrics'];

export const POLICY_MANIFEST_SCHEMA = 'segflow.policy/1';
/** The manifest's file name in a version's folder; written last (a folder without it is unfinished). */
export const POLICY_MANIFEST_FILE = 'segflow-policy.json';

/**
 * A file's name inside a version: a relative path without `.`/`..` segments or backslashes, so a
 * reader that joins it to its folder never leaves that folder.
 */
const policyFileName = z
  .string()
  .regex(/^(?!\/)(?!.*(?:^|\/)\.{1,2}(?:\/|$))[^\\]+$/, 'a relative path without "." or ".." segments');
const policyFilesSchema = z.record(policyFileName, z.strictObject({ sha256: z.string(), bytes: int(0) }));
/**
 * The folder, relative to the version's, that holds `files`: the update attempt that created the
 * manifest (`attempts/<attempt>/`, keys.ts `policyAttempt`). Absent in versions written before
 * attempts had folders: their files are in the version folder itself.
 */
const policyFilesDirSchema = z
  .string()
  .regex(/^attempts\/[A-Za-z0-9][A-Za-z0-9_-]*\/$/, '"attempts/<attempt>/" (letters, digits, "-", "_")');

export const policyManifestSchema = z.strictObject({
  schema: z.literal(POLICY_MANIFEST_SCHEMA),
  runId: IdSchemas.run,
  step: int(0),
  version: int(1),
  uri: z.string(),
  kind: z.enum(['full', 'lora']),
  /** The base model a LoRA adapter applies to (null for a full version). */
  baseModel: z.string().nullable(),
  /** The policy the KL term is measured against. */
  reference: z.string(),
  parent: policyRefSchema,
  batchSha256: z.string(),
  weightsSha256: z.string(),
  /** Optimizer and RNG state, for the next step (the committed attempt's folder). */
  trainerState: z.string(),
  /** Every file of the version: its sha256 and size, by its name relative to `filesDir`. */
  files: policyFilesSchema,
  filesDir: policyFilesDirSchema.optional(),
  metrics: trainerMetricsSchema,
});
export type PolicyManifest = z.infer<typeof policyManifestSchema>;

/**
 * What a reader of a version needs from its manifest (which files, where), without the rest: a
 * version written by an older trainer still reads when other fields have changed since.
 */
export const policyManifestFilesSchema = z.object({
  files: policyFilesSchema,
  filesDir: policyFilesDirSchema.optional(),
});
export type PolicyManifestFiles = z.infer<typeof policyManifestFilesSchema>;

/** Where a version's files are: `<version folder><filesDir>` (the folder itself without filesDir). */
export function policyFilesPrefix(versionPrefix: string, manifest: PolicyManifestFiles): string {
  return `${versionPrefix.replace(/\/?$/, '/')}${manifest.filesDir ?? ''}`;
}

/** The schemas the Python trainer reads or writes, by the file name they are exported under. */
export const trainerSchemas = {
  batch: trainingBatchSchema,
  hyperparameters: trainerHyperparametersSchema,
  'policy-ref': policyRefSchema,
  'update-result': updatePolicyResultSchema,
  'policy-manifest': policyManifestSchema,
} as const;

/** The artifact ref `update_policy` gets for its batch. */
export const batchRefSchema = artifactRefSchema;
