/**
 * `evaluation`: a prepared dataset × a policy (model / version, or the newest checkpoint) × a search
 * backend × a segmenter. One child `evaluateSample` per sample (`<evalId>/sample-<id>`), at most
 * `concurrency` at a time (a sliding window), a page of `pageSize` samples per run and
 * continue-as-new between pages so the history stays bounded on any dataset size. Each child
 * stores its result under a deterministic S3 key; the plan skips samples whose score is stored,
 * so an evaluation re-run with the same id (after termination, or to re-aggregate) resumes. A
 * sample whose rollout or segmentation failed for an infrastructure reason (an outage, after its
 * retries) is stored as failed, not scored: the metrics leave it out, the summary counts it, and a
 * re-run with the same id evaluates it again. A re-run must use the same settings (the plan checks
 * the fingerprint stored with the results) unless it starts afresh (`fresh`). The aggregates are
 * computed from the stored results, never from in-memory counters, so a worker crash cannot lose a
 * sample or count one twice.
 *
 * `evaluateSample` starts from the prepared record's already-sampled frames rather than reusing
 * `segmentQuery`: segmentQuery ingests and samples media itself (an OK-VOS row names a subset of
 * the folder's frames and the prepared record fixes which frames the policy sees), and the
 * evaluation needs the prediction scored against the record's masks with the result at a key
 * of its own. It reuses the `rollout` child and the media/segment activities unchanged.
 */
import {
  ApplicationFailure,
  continueAsNew,
  defineQuery,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { evaluationDetails, sampleSummary } from '../core/monitor/details.js';
import type { ArtifactRef } from '../core/artifacts.js';
import { ErrorTypes } from '../core/contracts/errors.js';
import { classifySampleFailure } from '../core/evaluation/rerun.js';
import { isSafeId, safeIdProblem, toSafeId } from '../core/contracts/ids.js';
import { EvalKeys, WorkflowIds } from '../core/contracts/keys.js';
import { mapLimit } from '../core/concurrency.js';
import { recordSampleEvaluated } from './metrics.js';
import { SearchAttributeKeys, TaskQueues } from '../core/queues.js';
import type { EvaluationActivities, EvalPlanSample } from '../activities/evaluation/activities.js';
import {
  evaluationFanOutSchema,
  type EvaluationFingerprint,
  type EvaluationSummary,
} from '../core/contracts/evaluation.js';
import type { createSearchActivities } from '../activities/search/activities.js';
import { rollout, rolloutFaultSettings, type RolloutInput, type RolloutSummary } from './rollout.js';
import { DEFAULT_OUTAGE_TOLERANCE_SECONDS, outageRetry } from './retry.js';
import { segmentAnswer, type SegmentedAnswer } from './segment-answer.js';
import type { PolicyProtocol } from '../core/contracts/protocol.js';
import { answerPrompt, QWEN3VL } from '../core/protocol/coordinates.js';
import { sam2PromptPlan, type SegmentWhen } from '../core/protocol/sam2-prompt.js';
import type { ImagePromptProtocol } from '../activities/segment/sam2-image.js';
import type { TrackerBackend } from '../core/tracking.js';
import { trackMetrics } from './tracking.js';

type SearchActivities = ReturnType<typeof createSearchActivities>;

export interface EvaluationInput {
  /**
   * Names every key and child of this evaluation; also the search ledger's run id.
   * @default the workflow id with characters outside [A-Za-z0-9._-] replaced by "_"
   */
  evalId?: string;
  /**
   * Scheduled evaluations: the id becomes `<evalIdPrefix>-v<version>` (or `-latest` without a
   * version), so evaluating an unchanged checkpoint again finds every result stored and only
   * re-aggregates. Ignored when evalId is given.
   */
  evalIdPrefix?: string;
  /** The prepared dataset index (`segr dataset prepare` prints it): s3:// URI or key. */
  dataset: string;
  policy?: {
    /** Model or LoRA adapter name on the policy server. @default policy.model of the workers */
    model?: string;
    /** Recorded with the results (curves across checkpoints). */
    version?: number;
    /**
     * The newest checkpoint: an S3 pointer JSON `{version, model?}` read when the evaluation starts
     * (scheduled evaluations). Overrides model and version.
     */
    latestFrom?: string;
    /** @default temperature 0 (greedy), as evaluation should be */
    sampling?: NonNullable<RolloutInput['policy']>['sampling'];
  } & PolicyProtocol;
  search?: RolloutInput['search'];
  settings?: RolloutInput['settings'];
  /** SAM2 ONNX folder on the segment workers. @default segment.modelsDir of the workers */
  modelsDir?: string;
  segmentation?: EvaluationSegmentation;
  /** Samples evaluated at once, at most 256. @default 4 */
  concurrency?: number;
  /**
   * Samples per workflow run before continue-as-new, at most 1000; a run also continues as new
   * before its page is done when the server suggests it. @default 200
   */
  pageSize?: number;
  /** Evaluate only the first `limit` samples of the dataset. */
  limit?: number;
  /** USD per paid search call, per backend (e.g. {"serper": 0.001}); omitted: cost not computed. */
  searchPrices?: Record<string, number>;
  /** Best and worst samples shown in the report. @default 4 */
  gallery?: number;
  /**
   * How long each sample's policy, search and S3 calls keep retrying an outage before the sample
   * is stored as failed (RolloutInput.outageToleranceSeconds). Not part of the evaluation's
   * settings: it changes when a sample gives up, not its result. @default 900
   */
  outageToleranceSeconds?: number;
  /**
   * Start afresh: evaluate every sample again even where results of this id are stored (needed
   * to reuse an id with another policy, search backend, segmenter or settings, which is refused
   * otherwise). @default false
   */
  fresh?: boolean;
  /**
   * The summary also to these experiment trackers: run = the evaluation id, step = the policy
   * version (0 without one). Absent or no backends: S3 only.
   */
  tracker?: { backends: TrackerBackend[]; experiment?: string };
  /** Carried across continue-as-new; not for callers. */
  progress?: { offset: number; evaluated: number; skipped: number; failed?: number; policy: ResolvedPolicy };
}

/** How an evaluation prompts SAM2 with the policy's answer. */
export interface EvaluationSegmentation {
  /**
   * `reference`: whenever the keyframe is a frame of the video and the box (or the point) is
   * non-zero, coordinates unchecked, as `sam2_okvos.py`; `usable`: only answers `checkAnswer`
   * accepts (keyframe among the sampled frames, coordinates in range, a box with area).
   * @default "reference"
   */
  when?: SegmentWhen;
  /**
   * Images (ReasonSeg): `box`, one box-only single-mask call as the reference's ReasonSeg script;
   * `box-then-point`, the video protocol's two calls. @default "box"
   */
  imagePrompt?: ImagePromptProtocol;
}

/**
 * Evaluations recorded before the reference prompting rule segmented only `ok` answers; replaying
 * them must take the same path, so the reference rule is the default only where this patch is set.
 */
export const EVAL_REFERENCE_SAM2_PROMPT_PATCH = 'segflow-eval-reference-sam2-prompt';

/**
 * Evaluations recorded before this started every sample of a page whatever the history's length;
 * a page stops starting samples when the server suggests continuing as new only where this patch is
 * set (the next run starts at the first sample not started).
 */
export const EVAL_PAGE_CONTINUE_AS_NEW_PATCH = 'segflow-eval-page-continue-as-new-suggested';

interface ResolvedPolicy {
  model: string | null;
  version: number | null;
}

export interface EvaluationResult {
  evalId: string;
  summary: ArtifactRef;
  metrics: EvaluationSummary;
  report: { html: ArtifactRef; json: ArtifactRef };
  /** Samples run by this evaluation (all runs) and skipped because their result was stored. */
  evaluated: number;
  skipped: number;
  /**
   * Samples of this run that failed for an infrastructure reason (counted in `evaluated`; the
   * metrics' `samples.failed` counts every failed sample of the evaluation).
   */
  failed?: number;
}

export interface EvaluationProgress {
  evalId: string;
  total: number | null;
  offset: number;
  evaluated: number;
  skipped: number;
  /** Evaluated samples that failed for an infrastructure reason (stored as failed, not scored). */
  failed: number;
  running: number;
  step: 'plan' | 'samples' | 'aggregate' | 'report' | 'done';
}

export const evaluationProgressQuery = defineQuery<EvaluationProgress>('progress');

// Plan, load, score, aggregate, report: S3 reads/writes and CPU scoring on the orchestrator queue.
// Idempotent (deterministic keys), so retried for the evaluation's outage tolerance
// (workflows/retry.ts); scoring a long video or aggregating a large dataset takes a while and heartbeats.
function evaluationActivitiesFor(outageToleranceSeconds: number | undefined) {
  return proxyActivities<EvaluationActivities>({
    taskQueue: TaskQueues.orchestrator,
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '1 minute',
    retry: outageRetry(outageToleranceSeconds ?? DEFAULT_OUTAGE_TOLERANCE_SECONDS, 30),
  });
}

// The paid-call ledger lives with the search role (it owns the backends); one S3 listing.
function searchLedgerFor(outageToleranceSeconds: number | undefined) {
  return proxyActivities<SearchActivities>({
    taskQueue: TaskQueues.search,
    startToCloseTimeout: '5 minutes',
    retry: outageRetry(outageToleranceSeconds ?? DEFAULT_OUTAGE_TOLERANCE_SECONDS, 30),
  });
}

export async function evaluation(input: EvaluationInput): Promise<EvaluationResult> {
  const info = workflowInfo();
  const evaluationActivities = evaluationActivitiesFor(input.outageToleranceSeconds);
  const search = searchLedgerFor(input.outageToleranceSeconds);
  let policy = input.progress?.policy;
  if (!policy) {
    if (input.policy?.latestFrom) {
      const latest = await evaluationActivities.evalResolvePolicy({ latestFrom: input.policy.latestFrom });
      policy = { model: latest.model ?? input.policy.model ?? null, version: latest.version };
    } else {
      policy = { model: input.policy?.model ?? null, version: input.policy?.version ?? null };
    }
  }
  const evalId =
    input.evalId ??
    (input.evalIdPrefix !== undefined
      ? `${input.evalIdPrefix}-${policy.version !== null ? `v${policy.version}` : 'latest'}`
      : toSafeId('eval', info.workflowId));
  if (!isSafeId('eval', evalId)) {
    throw ApplicationFailure.nonRetryable(safeIdProblem('eval', 'evalId', evalId), ErrorTypes.badInput);
  }
  const requested: Record<string, number> = {
    concurrency: input.concurrency ?? 4,
    pageSize: input.pageSize ?? 200,
  };
  const fanOut = evaluationFanOutSchema.safeParse(requested);
  if (!fanOut.success) {
    const problems = fanOut.error.issues.map((i) => {
      const key = String(i.path[0]);
      return `${key} = ${requested[key]}: ${i.message}`;
    });
    throw ApplicationFailure.nonRetryable(
      `evaluation ${evalId}: ${problems.join('; ')}`,
      ErrorTypes.badInput,
    );
  }
  const { concurrency, pageSize } = fanOut.data;
  const progress: EvaluationProgress = {
    evalId,
    total: null,
    offset: input.progress?.offset ?? 0,
    evaluated: input.progress?.evaluated ?? 0,
    skipped: input.progress?.skipped ?? 0,
    failed: input.progress?.failed ?? 0,
    running: 0,
    step: 'plan',
  };
  setHandler(evaluationProgressQuery, () => progress, {
    description:
      'samples total / evaluated / skipped (already stored) / failed (outage, evaluated again on a re-run) / running, and the step in progress',
  });
  const page = Math.floor(progress.offset / pageSize) + 1;
  const resolved = policy;
  const show = () =>
    setCurrentDetails(evaluationDetails({ ...progress, dataset: input.dataset, page, policy: resolved }));
  show();
  upsertSearchAttributes([
    { key: SearchAttributeKeys.runId, value: evalId },
    { key: SearchAttributeKeys.dataset, value: input.dataset.slice(-200) },
    ...(policy.version !== null ? [{ key: SearchAttributeKeys.policyVersion, value: policy.version }] : []),
  ]);

  const sampling = input.policy?.sampling ?? { temperature: 0 };
  const fingerprint: EvaluationFingerprint = {
    dataset: input.dataset,
    policy,
    sampling,
    systemPrompts: input.policy?.systemPrompts ?? null,
    coordinates: input.policy?.coordinates ?? null,
    search: input.search ?? null,
    settings: input.settings ?? null,
    modelsDir: input.modelsDir ?? null,
    segmentation: input.segmentation ?? null,
  };
  const plan = await evaluationActivities.evalPlan({
    evalId,
    dataset: input.dataset,
    offset: progress.offset,
    pageSize,
    ...(input.limit ? { limit: input.limit } : {}),
    fingerprint,
    // One generation per start (every page and retry of it), so a fresh start happens once.
    ...(input.fresh ? { freshGeneration: info.firstExecutionRunId } : {}),
  });
  progress.total = plan.total;
  progress.step = 'samples';
  const todo = plan.samples.filter((s) => !s.done);
  progress.skipped += plan.samples.length - todo.length;
  show();

  // A sampling seed is offset by the sample's position in the dataset (as rolloutGroup offsets it
  // per trajectory): one seed for every sample would give every sample the same random draws, and
  // evaluations at different seeds would differ far more than sampling noise does.
  const position = new Map(plan.samples.map((s, i) => [s.id, progress.offset + i]));
  const childInput = (s: EvalPlanSample): EvaluateSampleInput => ({
    evalId,
    ...(plan.generation ? { generation: plan.generation } : {}),
    sample: { id: s.id, record: s.ref },
    policy: {
      ...(policy.model !== null ? { model: policy.model } : {}),
      ...(policy.version !== null ? { version: policy.version } : {}),
      sampling:
        sampling.seed !== undefined ? { ...sampling, seed: sampling.seed + position.get(s.id)! } : sampling,
      ...(input.policy?.systemPrompts ? { systemPrompts: input.policy.systemPrompts } : {}),
      ...(input.policy?.coordinates ? { coordinates: input.policy.coordinates } : {}),
    },
    ...(input.search ? { search: input.search } : {}),
    ...(input.settings ? { settings: input.settings } : {}),
    ...rolloutFaultSettings(input),
    ...(input.modelsDir ? { modelsDir: input.modelsDir } : {}),
    ...(input.segmentation ? { segmentation: input.segmentation } : {}),
  });
  // Sliding window: the next child starts as soon as one finishes. When the server suggests
  // continuing as new, no further child starts; those started finish, and the next run begins at
  // the first sample not started.
  const honourSuggestion = patched(EVAL_PAGE_CONTINUE_AS_NEW_PATCH);
  let stoppedAt: number | undefined;
  await mapLimit(todo, concurrency, async (s, i) => {
    if (stoppedAt !== undefined) return;
    if (honourSuggestion && workflowInfo().continueAsNewSuggested) {
      stoppedAt = i;
      return;
    }
    progress.running++;
    show();
    let outcome;
    try {
      outcome = await executeChild(evaluateSample, {
        workflowId: WorkflowIds.evaluateSample(evalId, s.id),
        taskQueue: TaskQueues.orchestrator,
        args: [childInput(s)],
        staticSummary: sampleSummary(s.id, s.ability ?? undefined),
        typedSearchAttributes: [{ key: SearchAttributeKeys.runId, value: evalId }],
      });
    } finally {
      progress.running--;
    }
    progress.evaluated++;
    if (outcome.failed) progress.failed++;
    recordSampleEvaluated(evalId);
    show();
  });
  progress.offset += stoppedAt === undefined ? plan.samples.length : plan.samples.indexOf(todo[stoppedAt]!);

  if (progress.offset < plan.total) {
    await continueAsNew<typeof evaluation>({
      ...input,
      evalId,
      progress: {
        offset: progress.offset,
        evaluated: progress.evaluated,
        skipped: progress.skipped,
        failed: progress.failed,
        policy,
      },
    });
  }

  progress.step = 'aggregate';
  show();
  const paid = await search.searchPaidCalls({ runId: evalId });
  const { summary, metrics } = await evaluationActivities.evalAggregate({
    evalId,
    dataset: input.dataset,
    ...(input.limit ? { limit: input.limit } : {}),
    policy,
    paid,
    ...(input.searchPrices ? { prices: input.searchPrices } : {}),
  });
  await trackMetrics(input.tracker, {
    runId: evalId,
    step: policy.version ?? 0,
    kind: 'evaluation',
    metrics,
  });
  progress.step = 'report';
  const report = await evaluationActivities.evalReport({ evalId, gallery: input.gallery ?? 4 });
  progress.step = 'done';
  return {
    evalId,
    summary,
    metrics,
    report,
    evaluated: progress.evaluated,
    skipped: progress.skipped,
    failed: progress.failed,
  };
}

export interface EvaluateSampleInput {
  evalId: string;
  /** The evaluation's generation, recorded with the result. @default "initial" */
  generation?: string;
  sample: { id: string; record: ArtifactRef };
  policy: NonNullable<RolloutInput['policy']>;
  search?: RolloutInput['search'];
  settings?: RolloutInput['settings'];
  modelsDir?: string;
  segmentation?: EvaluationSegmentation;
  /** @see EvaluationInput.outageToleranceSeconds */
  outageToleranceSeconds?: number;
}

/**
 * One sample: load its record → `rollout` child on its sampled frames → segment with the answer
 * (image, or keyframe prompt + propagation over every frame) → score against the ground-truth
 * masks and store the result. A rollout or segmentation that fails after its retries:
 * - for a legitimate reason (the sample's data or the request built from it rejected, see
 *   `classifySampleFailure`) is scored as an empty prediction with the error recorded (the
 *   reference counts a missing prediction as empty masks);
 * - for an infrastructure reason (an outage) is stored as failed, not scored (`failed: true`), so
 *   the metrics leave it out and a re-run evaluates it again.
 * Either way one sample never stops an evaluation; a sample that cannot be loaded or scored (bad
 * dataset) fails it, with the sample named.
 */
export async function evaluateSample(
  input: EvaluateSampleInput,
): Promise<{ sampleId: string; JF: number | null; iou: number | null; failed?: boolean }> {
  const id = workflowInfo().workflowId;
  const prefix = EvalKeys.samplePrefix(input.evalId, input.sample.id);
  const evaluationActivities = evaluationActivitiesFor(input.outageToleranceSeconds);
  const loaded = await evaluationActivities.evalLoadSample({ record: input.sample.record });

  let summary: RolloutSummary | null = null;
  let seg: SegmentedAnswer | undefined;
  let error: string | null = null;
  let failure: { type: string; message: string } | undefined;
  try {
    const rolloutId = WorkflowIds.rolloutOf(id);
    summary = await executeChild(rollout, {
      workflowId: rolloutId,
      taskQueue: TaskQueues.orchestrator,
      staticSummary: `rollout · ${sampleSummary(loaded.id, loaded.promptAbility)}`,
      typedSearchAttributes: [{ key: SearchAttributeKeys.runId, value: input.evalId }],
      args: [
        {
          trajectoryId: rolloutId,
          sample: {
            id: loaded.id,
            question: loaded.question,
            ability: loaded.promptAbility,
            frames: loaded.frames,
          },
          artifactPrefix: prefix,
          policy: input.policy,
          runId: input.evalId,
          ...(input.search ? { search: input.search } : {}),
          ...(input.settings ? { settings: input.settings } : {}),
          ...rolloutFaultSettings(input),
        },
      ],
    });
    const when =
      input.segmentation?.when ?? (patched(EVAL_REFERENCE_SAM2_PROMPT_PATCH) ? 'reference' : 'usable');
    const plan = sam2PromptPlan(summary.answer, when, { image: loaded.kind === 'image' });
    if (plan) {
      const prompt = answerPrompt(plan, input.policy.coordinates ?? QWEN3VL);
      seg =
        (await segmentAnswer({
          keyframe: plan.keyframe,
          prompt: plan.unchecked ? { ...prompt, bounds: 'pass' } : prompt,
          // The reference prompts nothing when the keyframe is not a frame of the video.
          keyframeNotInVideo: plan.unchecked ? 'skip' : 'error',
          imagePrompt: input.segmentation?.imagePrompt ?? 'box',
          media:
            loaded.kind === 'image'
              ? { kind: 'image', image: loaded.image! }
              : {
                  kind: 'video',
                  ...(loaded.frameSet ? { frameSet: loaded.frameSet } : {}),
                  ...(loaded.video ? { video: loaded.video } : {}),
                },
          prefix,
          videoMasksPrefix: `${prefix}/seg`,
          label: `sample ${loaded.id}`,
          ...(input.modelsDir ? { modelsDir: input.modelsDir } : {}),
          ...(input.outageToleranceSeconds !== undefined
            ? { outageToleranceSeconds: input.outageToleranceSeconds }
            : {}),
        })) ?? undefined;
    }
  } catch (err) {
    if (isCancellation(err)) throw err;
    const c = classifySampleFailure(err);
    error = c.message;
    seg = undefined;
    if (c.infrastructure) failure = { type: c.type, message: c.message };
  }

  const scored = await evaluationActivities.evalScoreSample({
    evalId: input.evalId,
    sampleId: input.sample.id,
    record: input.sample.record,
    prediction: !seg
      ? { kind: 'none' }
      : seg.kind === 'image'
        ? { kind: 'image', mask: seg.mask }
        : { kind: 'video', manifest: seg.manifest },
    ...(seg?.kind === 'video'
      ? seg.frameUris
        ? { frameUris: seg.frameUris }
        : { frameSet: seg.frameSet }
      : {}),
    keyframeIndex: seg ? seg.keyframeIndex : null,
    rollout: summary,
    requestedPolicyVersion: input.policy.version ?? 0,
    error,
    ...(input.generation ? { generation: input.generation } : {}),
    ...(failure ? { failure } : {}),
  });
  return {
    sampleId: scored.sampleId,
    JF: scored.JF,
    iou: scored.iou,
    ...(scored.failed ? { failed: true } : {}),
  };
}
