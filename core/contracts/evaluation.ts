/**
 * What an evaluation stores in S3 (keys: `EvalKeys` in keys.ts). Every key derives from the
 * evaluation id and the sample id, so a retried activity, a re-run child or a resumed evaluation
 * rewrites the same object instead of adding one: counting the objects under `samples/` counts each
 * sample once.
 */
import { z } from 'zod';
import { artifactRefSchema, type ArtifactRef } from '../artifacts.js';
import type { JFSummary } from '../metrics/summary.js';
import { searchRecordSchema } from './rollout.js';

const num = z.number();

/**
 * The outcome terms of the Seg-ReSearch reward (spec §5.5) of one sample's trajectory, under the
 * `hierarchical` preset and after segflow's outcome gate (an answer `checkAnswer` rejected earns
 * outcome 0), as `rewardScore` computes them in training. `outcome` = R_iou + R_box + R_point +
 * R_frame ∈ [0, 4]; `format` is F. No process term: evaluation computes no IGR.
 */
export const outcomeRewardSchema = z.object({
  outcome: num,
  iou: num,
  box: num,
  point: num,
  frame: num,
  format: num,
});
export type OutcomeReward = z.infer<typeof outcomeRewardSchema>;

/** One sample's evaluation, as stored at `EvalKeys.sampleResult` (keys.ts). */
export const sampleEvaluationSchema = z.object({
  schema: z.literal('segflow.eval-sample/1'),
  evalId: z.string(),
  sampleId: z.string(),
  format: z.string(),
  /** `image` samples give gIoU/cIoU, `video` samples J/F/J&F. */
  kind: z.enum(['image', 'video']),
  ability: z.string(),
  question: z.string(),
  /** Every annotated frame (position in the frame list) with its J and F. */
  frames: z.array(z.object({ index: num, J: num, F: num })),
  /** Means over the annotated frames (eval_okvos.py). */
  J: num,
  F: num,
  JF: num,
  /** Pixels over all annotated frames; `ignore` pixels excluded (LISA). */
  intersection: num,
  union: num,
  gtArea: num,
  predArea: num,
  answerStatus: z.string(),
  stopReason: z.string(),
  /** Why the sample has no prediction beyond the answer status (a failed step), if any. */
  error: z.string().nullable(),
  turns: num,
  promptTokens: num,
  completionTokens: num,
  policyVersion: num,
  searches: z.array(searchRecordSchema),
  keyframe: num.nullable(),
  box: z.array(num).nullable(),
  record: artifactRefSchema,
  trajectory: artifactRefSchema.nullable(),
  /** The segmenter's manifest (video) or mask PNG (image); null without a usable answer. */
  prediction: artifactRefSchema.nullable(),
  /** A small JPEG: prediction (red) and ground-truth outline (green) on a representative frame. */
  overlay: artifactRefSchema.nullable(),
  /** The frame (position) the overlay shows. */
  overlayFrame: num.nullable(),
  /**
   * The outcome reward of the trajectory; null without a trajectory (the rollout failed) or
   * without ground truth in the record; absent in results stored before it was recorded.
   */
  reward: outcomeRewardSchema.nullable().optional(),
  /**
   * The evaluation's generation this result belongs to ({@link EvaluationRecord}); absent in
   * results stored before generations were kept, which count as the first one.
   */
  generation: z.string().optional(),
});
export type SampleEvaluation = z.infer<typeof sampleEvaluationSchema>;

/** The generation of an evaluation that was never started afresh. */
export const INITIAL_EVAL_GENERATION = 'initial';

/**
 * A sample whose rollout or segmentation failed for an infrastructure reason after its retries
 * (policy server down or 5xx, a timeout, S3 or a search API unreachable, a missing segmenter): it
 * has no score, is left out of every metric, is counted and listed in the summary and the report,
 * and is evaluated again when the evaluation is re-run with the same id. Stored at the sample's
 * result key (`EvalKeys.sampleResult`), so a successful re-run replaces it.
 */
export const failedSampleSchema = z.object({
  schema: z.literal('segflow.eval-sample-failed/1'),
  evalId: z.string(),
  sampleId: z.string(),
  generation: z.string(),
  format: z.string(),
  kind: z.enum(['image', 'video']),
  ability: z.string(),
  question: z.string(),
  /** The failure's Temporal type (`TransientError`, a timeout, …) and its message with its causes. */
  failure: z.object({ type: z.string(), message: z.string() }),
  policyVersion: num,
  record: artifactRefSchema,
});
export type FailedSample = z.infer<typeof failedSampleSchema>;

/** What a sample's result key holds: a score, or an infrastructure failure to retry. */
export const storedSampleSchema = z.discriminatedUnion('schema', [
  sampleEvaluationSchema,
  failedSampleSchema,
]);
export type StoredSample = z.infer<typeof storedSampleSchema>;

/**
 * What makes two runs of one evaluation id comparable: a re-run reuses stored results only when
 * every field is equal. `null` is the workers' default (policy.model, segment.modelsDir, the
 * search role's backend), recorded as such: a change of a worker's configuration under a default
 * is not seen here.
 */
export const evaluationFingerprintSchema = z.object({
  dataset: z.string(),
  policy: z.object({ model: z.string().nullable(), version: num.nullable() }),
  sampling: z.unknown(),
  systemPrompts: z.unknown(),
  coordinates: z.unknown(),
  search: z.unknown(),
  settings: z.unknown(),
  modelsDir: z.string().nullable(),
  segmentation: z.unknown(),
});
export type EvaluationFingerprint = z.infer<typeof evaluationFingerprintSchema>;

/**
 * The evaluation's own record (`EvalKeys.record`): the fingerprint its stored results were made
 * with and their generation. Starting afresh (`fresh`) writes a new generation, and results of
 * any other generation are then evaluated again.
 */
export const evaluationRecordSchema = z.object({
  schema: z.literal('segflow.eval/1'),
  evalId: z.string(),
  generation: z.string(),
  fingerprint: evaluationFingerprintSchema,
});
export type EvaluationRecord = z.infer<typeof evaluationRecordSchema>;

export interface ReasonSegAggregate {
  gIoU: number;
  cIoU: number;
  counted: number;
  skipped: number;
}

/** Mean outcome reward and its terms, over the samples that have a reward. */
export interface OutcomeRewardAggregate {
  /** Samples with a reward (a trajectory and ground truth). */
  samples: number;
  outcome: number;
  iou: number;
  box: number;
  point: number;
  frame: number;
  format: number;
  perAbility: Record<string, { samples: number; outcome: number }>;
}

/** The aggregates of an evaluation (also the `metrics` of its JSON report). */
export interface EvaluationSummary {
  schema: 'segflow.eval-summary/1';
  evalId: string;
  dataset: { uri: string; format: string; split: string; samples: number };
  policy: { model: string | null; version: number | null };
  /**
   * `scored`: samples in the metrics (`errors` of them with a legitimate failure recorded, scored as
   * an empty prediction); `failed`: samples that failed for an infrastructure reason, left out of
   * every metric (re-running the evaluation with the same id evaluates them again), the first
   * {@link FAILED_SAMPLES_LISTED} listed in `failedSamples`. Both absent in summaries written
   * before failures were kept apart.
   */
  samples: {
    expected: number;
    scored: number;
    video: number;
    image: number;
    errors: number;
    failed?: number;
    failedSamples?: { sampleId: string; ability: string; type: string; message: string }[];
  };
  /** OK-VOS (and any video sample): J, F, J&F per ability and overall, each query weighted equally. */
  vos: { perAbility: Record<string, JFSummary>; overall: JFSummary } | null;
  /**
   * ReasonSeg (and any image sample): gIoU and cIoU under the empty-union conventions of spec
   * §13.2: `lisa` (U=0 → IoU 1), `segzero` (U=0 → 0), `skip` (Seg-Zero's evaluation.py drops it).
   */
  reasonSeg: { lisa: ReasonSegAggregate; segzero: ReasonSegAggregate; skip: ReasonSegAggregate } | null;
  search: {
    calls: number;
    cached: number;
    /** Distinct (backend, tool, query) among the calls. */
    distinctQueries: number;
    byTool: Record<string, number>;
    byBackend: Record<string, number>;
    perSample: number;
    /** From the search role's ledger: backend calls that cost money (cache hits excluded). */
    paidCalls: number;
    paidByBackend: Record<string, number>;
    /** Σ paid calls × price, when prices were given; else null. */
    costUsd: number | null;
  };
  stopReasons: Record<string, number>;
  answerStatus: Record<string, number>;
  /**
   * Means of the samples' outcome rewards ({@link OutcomeReward}) over the samples that have one
   * (`samples` of them), overall and per ability; null when no sample has one.
   */
  reward: OutcomeRewardAggregate | null;
  tokens: { prompt: number; completion: number; completionPerSample: number };
}

/** How many failed samples a summary lists by name (all are counted). */
export const FAILED_SAMPLES_LISTED = 50;

/**
 * The caps of an evaluation's fan-out. A page of P samples adds at most about 6 history events per
 * sample to its workflow run and one plan of P entries (~0.3 KB each) as a payload, so 1000 per page
 * stays far under Temporal's 51,200 events and 2 MiB (docs/limits.md has the measured sizes).
 */
export const EvaluationLimits = { concurrency: 256, pageSize: 1000 } as const;

/** An evaluation's fan-out settings, checked by the workflow and the CLI. */
export const evaluationFanOutSchema = z.strictObject({
  /** Samples evaluated at once. */
  concurrency: z
    .number()
    .int()
    .min(1)
    .max(
      EvaluationLimits.concurrency,
      `at most ${EvaluationLimits.concurrency}: no more samples run at once than the policy and segment hosts can serve (docs/limits.md)`,
    ),
  /** Samples per workflow run before continue-as-new. */
  pageSize: z
    .number()
    .int()
    .min(1)
    .max(
      EvaluationLimits.pageSize,
      `at most ${EvaluationLimits.pageSize}: a page's children and its plan live in one workflow run's history (docs/limits.md)`,
    ),
});

/** One evaluation of a dataset, for curves across checkpoints (`evals/by-dataset/…`). */
export interface EvaluationPointer {
  evalId: string;
  policy: { model: string | null; version: number | null };
  finishedAt: string;
  JF: number | null;
  J: number | null;
  F: number | null;
  gIoU: number | null;
  cIoU: number | null;
  /** Mean outcome reward (0–4) of the samples that have one; absent in pointers written before it was recorded. */
  outcome?: number | null;
  summary: ArtifactRef;
}
