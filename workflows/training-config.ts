/**
 * The configuration of a `trainingRun` (spec §6.1): validated once when the run starts (the CLI
 * validates it too, so a typo fails before anything is started), then carried, with its defaults
 * filled in, across continue-as-new. Pure zod: safe in workflow code.
 */
import { z } from 'zod';
import { fnv1a32, mulberry32 } from '../core/random.js';
import { IdSchemas } from '../core/contracts/ids.js';
import { trackerConfigSchema } from '../core/tracking.js';
import { policyProtocolSchema } from '../core/contracts/protocol.js';
import { MAX_TURNS_CAP } from '../core/rollout/turn-rules.js';

/**
 * The caps of a training run's fan-outs. A generation batch of P prompts adds at most about 6
 * history events per prompt (start, started, completed, and a workflow task) and one ~2 KB result
 * per group to the run; 2048 × 6 × 4 batches stays under Temporal's 51,200 events per run and every
 * payload under its 2 MiB (docs/limits.md has the measured sizes).
 */
export const TrainingLimits = {
  promptsPerStep: 2048,
  groupSize: 256,
  policyHosts: 256,
  generationBatchesPerRun: 4,
} as const;

const s3Uri = z.string().regex(/^s3:\/\/[^/]+\/.+/, 'must be an s3://bucket/key URI');
const int = (min: number) => z.number().int().min(min);
/** An integer fan-out with its cap and the reason for it (docs/limits.md). */
const capped = (min: number, max: number, why: string) =>
  z.number().int().min(min).max(max, `at most ${max}: ${why} (docs/limits.md)`);

/**
 * Built on first use, not at import: workflow code runs every module body again for each workflow
 * it starts (every rollout included), and building this schema was most of that work.
 */
const buildTrainingConfigSchema = () =>
  z.strictObject({
    /** A prepared dataset index (`segr dataset prepare` prints it): `s3://…/datasets/indexes/…json`. */
    dataset: s3Uri,
    /**
     * Policy version 0: an S3 prefix holding a Hugging Face `save_pretrained` folder, and the name the
     * policy servers already serve it under (trainer/README.md, "Policy versions").
     */
    initialPolicy: z.strictObject({
      uri: s3Uri,
      /** @default "policy" */
      model: z.string().min(1).default('policy'),
    }),
    /** Training steps (policy updates). */
    steps: int(1),
    /** Trajectories per prompt (GRPO group), at most 256. @default 8 */
    groupSize: capped(
      1,
      TrainingLimits.groupSize,
      "one rolloutGroup's history and stored result grow with its trajectories",
    ).default(8),
    /** Prompt groups per step (train_batch_size), at most 2048. @default 16 */
    promptsPerStep: capped(
      1,
      TrainingLimits.promptsPerStep,
      "a generation batch's rolloutGroup children and their results live in one workflow run's history",
    ).default(16),
    /** Seeds prompt order, sampling and the trainer. @default 0 */
    seed: int(0).default(0),
    reward: z
      .strictObject({
        /** @default "hierarchical" */
        preset: z.enum(['hierarchical', 'outcomeOnly', 'stepwise']).default('hierarchical'),
        /**
         * Zero the outcome terms (R_frame, R_box, R_point) of trajectories whose answer the rollout
         * check rejects: unparsable, keyframe outside the sampled frames, coordinates out of range, a
         * degenerate box. The reference scores each term on its own: `false` (README "Where segflow
         * differs from the reference"). @default true
         */
        gate: z.boolean().default(true),
      })
      .prefault({}),
    loss: z
      .strictObject({
        /** ε_low. @default 0.2 */
        clipLow: z.number().min(0).lt(1).default(0.2),
        /** ε_high; 0.3 is the "DAPO" clip-higher. @default 0.2 */
        clipHigh: z.number().min(0).default(0.2),
        /** Dual-clip constant c. @default 3 */
        dualClipC: z.number().gt(1).default(3),
        /** KL-loss coefficient to the initial policy (0: off, as in every reference run). @default 0 */
        klCoef: z.number().min(0).default(0),
      })
      .prefault({}),
    /** AdamW learning rate. @default 1e-6 */
    learningRate: z.number().gt(0).default(1e-6),
    /** Linear warm-up over this many training steps, then constant. @default 0 */
    warmupSteps: int(0).default(0),
    /** @default 0.01 */
    weightDecay: z.number().min(0).default(0.01),
    /** AdamW's epsilon (1e-6 is common for bf16 updates). @default 1e-8 */
    adamEps: z.number().gt(0).default(1e-8),
    dapo: z
      .strictObject({
        /** Drop zero-variance groups and generate more until the batch is full. @default false */
        enabled: z.boolean().default(false),
        /**
         * Generation batches per step before training on what survived (0: no limit; a step longer
         * than `generationBatchesPerRun` goes on in a new workflow run). @default 4
         */
        maxGenerationBatches: int(0).default(4),
      })
      .prefault({}),
    /**
     * Pipelined training. 1 (or more): the next step's groups are generated while the trainer updates
     * the policy and the hosts sync it, on the policy one version behind the one their update starts
     * from (staleness 1); each token's loss is then weighted by the truncated importance ratio against
     * the log-prob the policy server sampled it with (`trainer.rolloutIsCap`, 2 by default here; the
     * rollouts ask the server for log-probs, which must be those of the sampling distribution: vLLM
     * `--logprobs-mode processed_logprobs` when the temperature is not 1). 0: synchronous, generation
     * and update alternate. Groups sampled from a version more than this many versions older than the
     * one being updated are not trained on. @default 1
     */
    maxStaleness: int(0).default(1),
    trainer: z
      .strictObject({
        /** @default 1 */
        ppoEpochs: int(1).default(1),
        /** Optimizer steps per training step (ppo_mini_batch_size = batch / miniBatches). @default 2 */
        miniBatches: int(1).default(2),
        /** Trajectories per forward pass (memory only; results do not depend on it). @default 8 */
        microBatchSize: int(1).default(8),
        /**
         * Micro-batches by token budget instead of microBatchSize (memory only): consecutive
         * trajectories share a forward pass while the longest one's tokens × their number stays
         * within it; a longer one goes alone. Absent: microBatchSize.
         */
        microBatchTokens: int(1).optional(),
        /**
         * The dtype the trainer loads and trains the policy in (float32 when absent). bfloat16 halves
         * the memory; log-probs stay float32. Watch `rollout.logProbDiff*`, set rolloutIsCap.
         */
        dtype: z.enum(['float32', 'bfloat16']).optional(),
        /** Recompute activations in the backward pass: less memory, same result. @default false */
        gradientCheckpointing: z.boolean().optional(),
        /** @default 1 */
        maxGradNorm: z.number().gt(0).default(1),
        /** Tokens per trajectory, prompt included; the response is truncated to fit. @default 8192 */
        maxLength: int(2).default(8192),
        /** LoRA adapter rank (0: full update). @default 0 */
        loraRank: int(0).default(0),
        /** @default 16 */
        loraAlpha: int(1).default(16),
        /**
         * Truncated importance sampling: each token's loss weighted by min(π_trainer / π_server, cap),
         * for servers whose log-probs differ from the trainer's (bf16, other kernels); the step's
         * `rollout.logProbDiff*` metrics say whether it is needed. Needs `policy.logprobs`. Absent: 2
         * when `maxStaleness` ≥ 1 (pipelined, the rollouts ask for log-probs), off otherwise.
         */
        rolloutIsCap: z.number().min(1).optional(),
        /** A trainer silent this long is presumed dead and the step is retried. @default 60 */
        heartbeatTimeoutSeconds: int(1).default(60),
        /** @default 120 */
        timeoutMinutes: int(1).default(120),
      })
      .prefault({}),
    rollout: z
      .strictObject({
        sampling: z
          .strictObject({
            /**
             * > 0: a group needs different trajectories. The trainer's log-probs are taken at this
             * temperature too (those of the distribution the rollouts sampled). @default 1
             */
            temperature: z
              .number()
              .gt(0, 'must be > 0: GRPO compares a group of sampled trajectories, greedy ones are identical')
              .default(1),
            topP: z.number().gt(0).max(1).optional(),
            topK: z.number().int().min(-1).optional(),
          })
          .prefault({}),
        /** Agent-loop settings (maxTurns, maxObsLength, …); defaults are the rollout's. */
        settings: z
          .strictObject({
            maxTurns: capped(
              0,
              MAX_TURNS_CAP,
              "each turn adds its activities to the rollout's history",
            ).optional(),
            maxObsLength: int(1).optional(),
            charsPerToken: z.number().gt(0).optional(),
            tokensPerImage: int(0).optional(),
          })
          .optional(),
        search: z
          .strictObject({
            backend: z.enum(['local', 'serper', 'duckduckgo', 'retrieval', 'searxng']).optional(),
            topk: int(1).optional(),
          })
          .optional(),
        /**
         * The policy's protocol: system prompts used verbatim (a prompt file, `--prompt-file`) and the
         * coordinate frame of its answers. @default the shipped prompts, 0–1000 (Qwen3-VL)
         */
        protocol: policyProtocolSchema.optional(),
        /** Prompt groups rolling out at once, at most 2048. @default promptsPerStep */
        groupConcurrency: capped(
          1,
          TrainingLimits.promptsPerStep,
          'no more groups run at once than a step has',
        ).optional(),
        /** Trajectories of one group rolling out at once, at most 256. @default groupSize */
        trajectoryConcurrency: capped(
          1,
          TrainingLimits.groupSize,
          'no more trajectories run at once than a group has',
        ).optional(),
        /**
         * How long a trajectory's policy, search and S3 calls keep retrying an outage (connection
         * refused, 5xx, timeouts) before the trajectory fails. @default 900 (the rollout's default)
         */
        outageToleranceSeconds: int(1).optional(),
        /**
         * How long a turn pinned to its trajectory's host waits for that host before it runs on any
         * host (a replaced GPU pod never traps a trajectory). @default 120 (the rollout's default)
         */
        hostAffinitySeconds: int(1).optional(),
        /**
         * The share of a step's trajectories that may fail (after their retries) and the step still
         * trains on the rest; past it the step fails, naming the first errors. @default 0.2
         */
        maxFailedFraction: z.number().min(0).max(1).default(0.2),
      })
      .prefault({}),
    /** Policy hosts (`segflow-policy@<host>`) that receive every new version, at most 256. @default ["local"] */
    policyHosts: z
      .array(IdSchemas.host)
      .min(1)
      .max(
        TrainingLimits.policyHosts,
        `at most ${TrainingLimits.policyHosts} hosts: every step syncs each one from the run's history (docs/limits.md)`,
      )
      .default(['local']),
    /**
     * Steps per workflow run before continue-as-new (bounded history); a run also continues as new
     * after `generationBatchesPerRun` generation batches, or when the server suggests it. @default 1
     */
    continueAsNewEvery: int(1).default(1),
    /**
     * Generation batches (promptsPerStep rolloutGroup children each) per workflow run, within a step
     * (DAPO) or across steps, before the run continues as new; at most 4, so a run of 2048 prompts
     * per batch stays under Temporal's 51,200 events. @default 2
     */
    generationBatchesPerRun: capped(
      1,
      TrainingLimits.generationBatchesPerRun,
      'each generation batch adds up to 6 history events per prompt to the run',
    ).default(2),
    /**
     * Each step's metrics also to these experiment trackers (MLflow, TensorBoard), run = the run id.
     * Absent or no backends: S3 only.
     */
    tracker: trackerConfigSchema.optional(),
  });
let trainingConfigSchema: ReturnType<typeof buildTrainingConfigSchema> | undefined;

export type TrainingConfigInput = z.input<ReturnType<typeof buildTrainingConfigSchema>>;
export type TrainingConfig = z.output<ReturnType<typeof buildTrainingConfigSchema>>;

/** The config with defaults, or a message naming every wrong field. */
export function parseTrainingConfig(
  raw: unknown,
): { ok: true; config: TrainingConfig } | { ok: false; problems: string } {
  const r = (trainingConfigSchema ??= buildTrainingConfigSchema()).safeParse(raw);
  if (r.success) return { ok: true, config: r.data };
  return {
    ok: false,
    problems: r.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`).join('; '),
  };
}

/** The name policy servers serve version k of a run under (a LoRA adapter name for vLLM). */
export function policyModelName(runId: string, version: number): string {
  return `${runId}-v${version}`;
}

/** Learning rate of a step: linear warm-up, then constant. */
export function learningRateAt(config: TrainingConfig, step: number): number {
  if (config.warmupSteps === 0) return config.learningRate;
  return config.learningRate * Math.min(1, (step + 1) / config.warmupSteps);
}

/**
 * Sampling seed of a rollout group: the same for the same (training seed, step, generation, group)
 * in any run, and unrelated between runs of neighbouring training seeds (the group's trajectories
 * draw with this seed + 0..n-1; a linear formula made training seeds 0 and 1 share seven of every
 * eight draws). In [0, 2^30).
 */
export function groupSeed(seed: number, step: number, generation: number, group: number): number {
  const draw = mulberry32(fnv1a32(`group-seed/${seed}/${step}/${generation}/${group}`));
  return Math.floor(draw() * 2 ** 30);
}
