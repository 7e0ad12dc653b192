/**
 * The evaluation's activities (orchestrator role, queue `segflow`): plan a page of samples, load a
 * prepared sample for its child workflow, score a prediction against the sample's ground-truth
 * masks (and its trajectory with the reward's outcome terms) and store the result under its
 * deterministic key, aggregate the stored results, render the
 * report, and resolve "the newest checkpoint" for scheduled evaluations. Inputs are validated with
 * zod at this edge; bad input (not a dataset index, a sample without masks, a malformed pointer)
 * fails non-retryably with the input named; S3 errors retry by class.
 */
import sharp from 'sharp';
import { z } from 'zod';
import { artifactRefSchema, type ArtifactRef } from '../../core/artifacts.js';
import { ABILITIES, type Ability } from '../../core/protocol/prompts.js';
import type { AnswerStatus } from '../../core/rollout/agent-loop.js';
import type { PreparedDatasetIndex, PreparedSample } from '../datasets/prepare.js';
import { BadInputError, activityFailure } from '../errors.js';
import { heartbeat, parseActivityInput } from '../edge.js';
import type { FrameSet } from '../media/ingest.js';
import { maskSequenceLookup, readBinaryMask, type BinaryMask, type MaskSequence } from '../media/masks.js';
import { tintRgb } from '../media/overlay.js';
import { decodeRgb } from '../media/image.js';
import { mapLimit } from '../../core/concurrency.js';
import {
  pickGallery,
  renderEvaluationReport,
  sampleScore,
  type GalleryItem,
} from '../reports/evaluation-report.js';
import { readResponseText, scoreResponse } from '../rewards/activities.js';
import type { PinoLogger } from '../runtime/logger.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { aggregateEvaluation, scoreFrames } from './aggregate.js';
import {
  EvalKeys,
  evalIdPattern,
  sampleEvaluationSchema,
  type EvaluationPointer,
  type EvaluationSummary,
  type OutcomeReward,
  type SampleEvaluation,
} from './results.js';

const evalId = z.string().regex(evalIdPattern, 'letters, digits, ".", "_" or "-" (at most 200)');
const s3ish = z.string().min(1);

export const evalInputs = {
  plan: z.strictObject({
    evalId,
    /** The prepared dataset index: an s3:// URI or a key. */
    dataset: s3ish,
    offset: z.number().int().min(0),
    pageSize: z.number().int().min(1).max(10_000),
    /** Evaluate only the first `limit` samples. */
    limit: z.number().int().min(1).optional(),
  }),
  load: z.strictObject({ record: artifactRefSchema }),
  score: z.strictObject({
    evalId,
    sampleId: z.string().min(1),
    record: artifactRefSchema,
    prediction: z.discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('none') }),
      z.strictObject({ kind: z.literal('image'), mask: artifactRefSchema }),
      z.strictObject({ kind: z.literal('video'), manifest: artifactRefSchema }),
    ]),
    /** The frames the masks refer to, in order (video samples; for the overlay). */
    frameUris: z.array(s3ish).optional(),
    keyframeIndex: z.number().int().min(0).nullable(),
    rollout: z.strictObject({
      answerStatus: z.string(),
      stopReason: z.string(),
      turns: z.number().int().min(0),
      promptTokens: z.number().min(0),
      completionTokens: z.number().min(0),
      policyVersion: z.number(),
      searches: z.array(
        z.strictObject({ tool: z.string(), query: z.string(), backend: z.string(), cached: z.boolean() }),
      ),
      keyframe: z.number().nullable(),
      box: z.array(z.number()).nullable(),
      trajectory: artifactRefSchema.nullable(),
    }),
    error: z.string().nullable(),
  }),
  aggregate: z.strictObject({
    evalId,
    dataset: s3ish,
    limit: z.number().int().min(1).optional(),
    policy: z.strictObject({ model: z.string().nullable(), version: z.number().int().nullable() }),
    paid: z.strictObject({ total: z.number().int().min(0), byBackend: z.record(z.string(), z.number()) }),
    prices: z.record(z.string(), z.number().min(0)).optional(),
  }),
  report: z.strictObject({
    evalId,
    /** Best and worst samples shown with overlays. @default 4 */
    gallery: z.number().int().min(0).max(50).default(4),
  }),
  resolvePolicy: z.strictObject({ latestFrom: s3ish }),
};

export type EvalPlanInput = z.input<typeof evalInputs.plan>;
export type EvalScoreInput = z.input<typeof evalInputs.score>;
export type EvalAggregateInput = z.input<typeof evalInputs.aggregate>;

export interface EvalPlanSample {
  id: string;
  ability: string | null;
  ref: ArtifactRef;
  /** Its result is already stored (a resumed or repeated evaluation skips it). */
  done: boolean;
}

export interface EvalPlan {
  total: number;
  format: string;
  split: string;
  samples: EvalPlanSample[];
}

/** What the per-sample child needs from the prepared record (small: refs, not bytes). */
export interface LoadedSample {
  id: string;
  format: string;
  kind: 'image' | 'video';
  /** For the prompt: OK-VOS abilities as they are; anything else uses the search prompt. */
  promptAbility: Ability;
  question: string;
  frames: { fid: number; policy: ArtifactRef; original: ArtifactRef }[];
  /** Image samples: the original image (the segmenter's input). */
  image?: ArtifactRef;
  /** Frame-folder samples: the stored frame list. */
  frameSet?: ArtifactRef;
  /** Video-file samples: the stored video, whose frames are extracted for the segmenter. */
  video?: ArtifactRef;
  width: number;
  height: number;
}

/** The point of the pointer file a scheduled evaluation reads: the newest checkpoint. */
export const policyPointerSchema = z.looseObject({
  version: z.number().int().min(0),
  /** Model or LoRA adapter name the policy server serves this version as. */
  model: z.string().min(1).optional(),
});

export interface EvaluationActivityDeps {
  store: ArtifactStore;
  logger?: PinoLogger;
  /** Clock for report timestamps (tests pin it). @default Date.now */
  now?: () => Date;
}

/** Reads and checks a prepared dataset index. */
export async function readDatasetIndex(store: ArtifactStore, uri: string): Promise<PreparedDatasetIndex> {
  const index = await store.getInputJson<PreparedDatasetIndex>(uri, 'dataset index');
  if (index?.schema !== 'segflow.dataset/1' || !Array.isArray(index.samples)) {
    throw new BadInputError(
      `dataset ${uri} is not a prepared dataset index (schema ${JSON.stringify(index?.schema)}, expected "segflow.dataset/1"); make one with \`segr dataset prepare\` and pass the "index" it prints`,
      { uri },
    );
  }
  if (index.samples.length === 0) throw new BadInputError(`dataset ${uri} has no samples`, { uri });
  const seen = new Set<string>();
  for (const s of index.samples) {
    if (seen.has(s.id))
      throw new BadInputError(`dataset ${uri} lists sample id ${JSON.stringify(s.id)} twice`, { uri });
    seen.add(s.id);
  }
  return index;
}

/** The SHA-256 a content-addressed index key ends with (or the key itself, sanitised). */
export function datasetKeyOf(uri: string): string {
  const m = /([0-9a-f]{64})\.json$/.exec(uri);
  return m ? m[1]! : uri.replace(/[^A-Za-z0-9._-]+/g, '_');
}

async function maskAt(store: ArtifactStore, uri: string, what: string): Promise<BinaryMask | undefined> {
  if (!(await store.head(uri))) return undefined;
  try {
    return await readBinaryMask(await store.getBytes(uri), 'nonzero');
  } catch (err) {
    throw new BadInputError(`${what} ${uri} is not a readable mask: ${(err as Error).message}`, { uri }, err);
  }
}

/** Prediction red, ground-truth outline green, on a ≤320 px JPEG. */
async function overlayThumbnail(
  frame: Buffer,
  pred: BinaryMask | undefined,
  gt: BinaryMask | undefined,
): Promise<Buffer> {
  const { data, width, height } = await decodeRgb(frame);
  if (pred && pred.width === width && pred.height === height)
    tintRgb(data, width, height, pred, { color: [230, 40, 40], alpha: 0.45 });
  if (gt && gt.width === width && gt.height === height)
    tintRgb(data, width, height, gt, { color: [40, 220, 60], alpha: 0 });
  return (
    sharp(data, { raw: { width, height, channels: 3 } })
      // Small frames are enlarged (nearest: pixels stay crisp) so the gallery is readable.
      .resize({ width: 320, kernel: width < 160 ? 'nearest' : 'lanczos3' })
      .jpeg({ quality: 80 })
      .toBuffer()
  );
}

/**
 * The outcome reward of a sample's trajectory, as training's `rewardScore` scores it (the
 * `hierarchical` preset, segflow's outcome gate) but without similarities: only the outcome terms
 * and F are kept. Null without a trajectory (the rollout failed) or without ground truth in the
 * record (prepared before records carried it).
 */
export async function sampleOutcomeReward(
  store: ArtifactStore,
  rec: Pick<PreparedSample, 'groundTruth' | 'steps'>,
  trajectory: ArtifactRef | null,
  answerStatus: string,
): Promise<OutcomeReward | null> {
  const groundTruth = rec.groundTruth as PreparedSample['groundTruth'] | undefined | null;
  if (trajectory === null || typeof groundTruth !== 'object' || groundTruth === null) return null;
  const r = scoreResponse({
    response: await readResponseText(store, trajectory),
    groundTruth,
    ...(rec.steps ? { steps: rec.steps } : {}),
    preset: 'hierarchical',
    // The gate passes only 'ok'; any other status (the evaluation's own 'rollout_failed' too) zeroes the outcome.
    answerStatus: answerStatus as AnswerStatus,
  });
  return { outcome: r.outcome, iou: r.iou, box: r.box, point: r.point, frame: r.frame, format: r.format };
}

export function createEvaluationActivities(deps: EvaluationActivityDeps) {
  const { store } = deps;
  const now = deps.now ?? (() => new Date());

  async function readResults(evalIdValue: string, ids: readonly string[]): Promise<SampleEvaluation[]> {
    let done = 0;
    const results = await mapLimit(ids, 16, async (id) => {
      const key = EvalKeys.sampleResult(evalIdValue, id);
      if (!(await store.head(key))) return undefined;
      const r = sampleEvaluationSchema.safeParse(await store.getJson(key));
      if (!r.success)
        throw new BadInputError(`result ${key} is malformed: ${r.error.issues[0]?.message ?? ''}`, { key });
      if (++done % 50 === 0) heartbeat({ read: done });
      return r.data;
    });
    // In dataset order, whatever order the concurrent reads finished in.
    const missing = ids.filter((_, i) => results[i] === undefined);
    if (missing.length > 0) {
      throw new BadInputError(
        `evaluation ${evalIdValue} has no stored result for ${missing.length} sample(s): ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`,
        { missing: missing.slice(0, 100) },
      );
    }
    return results.filter((r): r is SampleEvaluation => r !== undefined);
  }

  return {
    /** One page of the dataset's samples, each marked done when its result is already stored. */
    async evalPlan(raw: EvalPlanInput): Promise<EvalPlan> {
      try {
        const input = parseActivityInput(evalInputs.plan, raw, 'evalPlan');
        const index = await readDatasetIndex(store, input.dataset);
        const total = Math.min(index.samples.length, input.limit ?? Infinity);
        const page = index.samples.slice(input.offset, Math.min(total, input.offset + input.pageSize));
        const samples = await mapLimit(page, 16, async (s) => ({
          id: s.id,
          ability: s.ability,
          ref: s.ref,
          done: (await store.head(EvalKeys.sampleResult(input.evalId, s.id))) !== undefined,
        }));
        return { total, format: index.format, split: index.split, samples };
      } catch (err) {
        throw activityFailure(err);
      }
    },

    /** The prepared record, reduced to what the child workflow needs. */
    async evalLoadSample(raw: z.input<typeof evalInputs.load>): Promise<LoadedSample> {
      try {
        const input = parseActivityInput(evalInputs.load, raw, 'evalLoadSample');
        const rec = await store.getInputJson<PreparedSample>(input.record.uri, 'sample record');
        if (rec?.schema !== 'segflow.sample/1') {
          throw new BadInputError(
            `sample record ${input.record.uri} is not a prepared sample (schema ${JSON.stringify(rec?.schema)})`,
          );
        }
        if (!rec.masks) {
          throw new BadInputError(
            `sample ${rec.id} (${rec.origin}) has no ground-truth masks, so it cannot be evaluated; prepare the dataset with its annotations`,
            { sample: rec.id },
          );
        }
        const promptAbility = (ABILITIES as readonly string[]).includes(rec.ability ?? '')
          ? (rec.ability as Ability)
          : 'one-hop';
        const base = {
          id: rec.id,
          format: rec.format,
          promptAbility,
          question: rec.question,
          frames: rec.frames.map((f) => ({ fid: f.fid, policy: f.policy, original: f.original })),
          width: rec.width,
          height: rec.height,
        };
        switch (rec.media.kind) {
          case 'image':
            return { ...base, kind: 'image', image: rec.media.image };
          case 'frames':
            return { ...base, kind: 'video', frameSet: rec.media.frameSet };
          case 'video':
            return { ...base, kind: 'video', video: rec.media.video };
        }
      } catch (err) {
        throw activityFailure(err);
      }
    },

    /**
     * Scores the prediction against every annotated frame and the trajectory's outcome reward,
     * renders the overlay thumbnail and stores the sample's result under its deterministic key (a
     * retry rewrites the same object).
     */
    async evalScoreSample(
      raw: EvalScoreInput,
    ): Promise<{ sampleId: string; JF: number; iou: number | null; result: ArtifactRef }> {
      try {
        const input = parseActivityInput(evalInputs.score, raw, 'evalScoreSample');
        const rec = await store.getInputJson<PreparedSample>(input.record.uri, 'sample record');
        if (!rec.masks)
          throw new BadInputError(`sample ${rec.id} has no ground-truth masks`, { sample: rec.id });
        const gtSeq = await store.getInputJson<MaskSequence>(rec.masks.uri, 'ground-truth masks');
        const gtAt = maskSequenceLookup(gtSeq);
        const gt = gtSeq.frames.map((f) => ({ index: f.index, mask: gtAt(f.index)! }));
        const ignore = rec.ignore
          ? maskSequenceLookup(await store.getInputJson<MaskSequence>(rec.ignore.uri, 'ignore mask'))(0)
          : undefined;
        const kind: 'image' | 'video' = rec.media.kind === 'image' ? 'image' : 'video';

        // Predicted masks of the annotated frames (fetched once each).
        const predicted = new Map<number, BinaryMask>();
        const p = input.prediction;
        if (p.kind === 'image') {
          const m = await maskAt(store, p.mask.uri, 'predicted mask');
          if (m) predicted.set(0, m);
        } else if (p.kind === 'video') {
          const manifest = await store.getInputJson<{ frames: { frame: number; mask: string }[] }>(
            p.manifest.uri,
            'segmentation manifest',
          );
          const byFrame = new Map(manifest.frames.map((f) => [f.frame, f.mask]));
          await mapLimit(gt, 8, async ({ index }) => {
            const uri = byFrame.get(index);
            const m = uri ? await maskAt(store, uri, `predicted mask of frame ${index}`) : undefined;
            if (m) predicted.set(index, m);
          });
        }
        heartbeat({ stage: 'masks loaded' });
        let scores;
        try {
          scores = scoreFrames(gt, (i) => predicted.get(i), ignore);
        } catch (err) {
          throw new BadInputError(`sample ${rec.id}: ${(err as Error).message}`, { sample: rec.id }, err);
        }

        // The overlay: the answer's keyframe when it was annotated, else the frame with most ground truth.
        const annotated = new Set(gt.map((g) => g.index));
        let overlayFrame: number | null =
          input.keyframeIndex !== null && annotated.has(input.keyframeIndex) ? input.keyframeIndex : null;
        if (overlayFrame === null) {
          let best = -1;
          for (const g of gt) {
            let a = 0;
            for (let i = 0; i < g.mask.data.length; i++) if (g.mask.data[i]) a++;
            if (a > best) {
              best = a;
              overlayFrame = g.index;
            }
          }
        }
        let frameUri: string | undefined;
        if (rec.media.kind === 'image') frameUri = rec.media.image.uri;
        else if (rec.media.kind === 'frames') {
          const set = await store.getInputJson<FrameSet>(rec.media.frameSet.uri, 'frame set');
          frameUri = set.frames[overlayFrame ?? 0]?.ref.uri;
        } else frameUri = input.frameUris?.[overlayFrame ?? 0];
        let overlay: ArtifactRef | null = null;
        if (frameUri && overlayFrame !== null) {
          const jpeg = await overlayThumbnail(
            await store.getBytes(frameUri),
            predicted.get(overlayFrame),
            gtAt(overlayFrame),
          );
          overlay = await store.putBytes(
            `${EvalKeys.samplePrefix(input.evalId, input.sampleId)}/overlay.jpg`,
            jpeg,
            'image/jpeg',
          );
        }

        const r = input.rollout;
        const reward = await sampleOutcomeReward(store, rec, r.trajectory, r.answerStatus);
        const result: SampleEvaluation = {
          schema: 'segflow.eval-sample/1',
          evalId: input.evalId,
          sampleId: input.sampleId,
          format: rec.format,
          kind,
          ability: rec.ability ?? 'unknown',
          question: rec.question,
          ...scores,
          answerStatus: r.answerStatus,
          stopReason: r.stopReason,
          error: input.error,
          turns: r.turns,
          promptTokens: r.promptTokens,
          completionTokens: r.completionTokens,
          policyVersion: r.policyVersion,
          searches: r.searches,
          keyframe: r.keyframe,
          box: r.box,
          record: input.record,
          trajectory: r.trajectory,
          prediction: p.kind === 'image' ? p.mask : p.kind === 'video' ? p.manifest : null,
          overlay,
          overlayFrame,
          reward,
        };
        const ref = await store.putJson(EvalKeys.sampleResult(input.evalId, input.sampleId), result);
        return {
          sampleId: input.sampleId,
          JF: scores.JF,
          iou: scores.union === 0 ? null : scores.intersection / scores.union,
          result: ref,
        };
      } catch (err) {
        throw activityFailure(err);
      }
    },

    /** Reads every sample's stored result and writes the aggregates (and the dataset's pointer). */
    async evalAggregate(
      raw: EvalAggregateInput,
    ): Promise<{ summary: ArtifactRef; metrics: EvaluationSummary }> {
      try {
        const input = parseActivityInput(evalInputs.aggregate, raw, 'evalAggregate');
        const index = await readDatasetIndex(store, input.dataset);
        const ids = index.samples
          .slice(0, Math.min(index.samples.length, input.limit ?? Infinity))
          .map((s) => s.id);
        const results = await readResults(input.evalId, ids);
        const datasetUri = input.dataset.startsWith('s3://') ? input.dataset : store.uriOf(input.dataset);
        const metrics = aggregateEvaluation(results, {
          evalId: input.evalId,
          dataset: {
            uri: datasetUri,
            format: index.format,
            split: index.split,
            samples: index.samples.length,
          },
          policy: input.policy,
          expected: ids.length,
          paid: input.paid,
          ...(input.prices ? { prices: input.prices } : {}),
        });
        const summary = await store.putJson(EvalKeys.summary(input.evalId), metrics);
        const pointer: EvaluationPointer = {
          evalId: input.evalId,
          policy: input.policy,
          finishedAt: now().toISOString(),
          JF: metrics.vos?.overall.JF ?? null,
          J: metrics.vos?.overall.J ?? null,
          F: metrics.vos?.overall.F ?? null,
          gIoU: metrics.reasonSeg?.lisa.gIoU ?? null,
          cIoU: metrics.reasonSeg?.lisa.cIoU ?? null,
          outcome: metrics.reward?.outcome ?? null,
          summary,
        };
        await store.putJson(EvalKeys.byDataset(datasetKeyOf(datasetUri), input.evalId), pointer);
        return { summary, metrics };
      } catch (err) {
        throw activityFailure(err);
      }
    },

    /** The HTML report and its JSON twin, from the stored summary, results and the dataset's other evaluations. */
    async evalReport(
      raw: z.input<typeof evalInputs.report>,
    ): Promise<{ html: ArtifactRef; json: ArtifactRef }> {
      try {
        const input = parseActivityInput(evalInputs.report, raw, 'evalReport');
        const summary = await store.getInputJson<EvaluationSummary>(
          EvalKeys.summary(input.evalId),
          'evaluation summary',
        );
        const index = await readDatasetIndex(store, summary.dataset.uri);
        const ids = index.samples.slice(0, summary.samples.expected).map((s) => s.id);
        const samples = await readResults(input.evalId, ids);
        const history: EvaluationPointer[] = [];
        for await (const o of store.list(EvalKeys.byDatasetPrefix(datasetKeyOf(summary.dataset.uri)))) {
          history.push(await store.getJson<EvaluationPointer>(o.key));
        }
        const { best, worst } = pickGallery(samples, input.gallery);
        const toItem = async (s: SampleEvaluation): Promise<GalleryItem> => ({
          sampleId: s.sampleId,
          ability: s.ability,
          score: sampleScore(s),
          caption: `${s.question.slice(0, 160)} — answer ${s.answerStatus}, frame ${s.overlayFrame ?? '–'}`,
          dataUrl: `data:image/jpeg;base64,${(await store.getBytes(s.overlay!.uri)).toString('base64')}`,
        });
        const { html, json } = renderEvaluationReport({
          summary,
          samples,
          history,
          best: await Promise.all(best.map(toItem)),
          worst: await Promise.all(worst.map(toItem)),
          generatedAt: now().toISOString(),
        });
        return {
          html: await store.putBytes(
            EvalKeys.reportHtml(input.evalId),
            Buffer.from(html),
            'text/html; charset=utf-8',
          ),
          json: await store.putJson(EvalKeys.reportJson(input.evalId), json),
        };
      } catch (err) {
        throw activityFailure(err);
      }
    },

    /** The newest checkpoint: the pointer JSON `{version, model?}` a training run keeps up to date. */
    async evalResolvePolicy(
      raw: z.input<typeof evalInputs.resolvePolicy>,
    ): Promise<{ version: number; model: string | null }> {
      try {
        const input = parseActivityInput(evalInputs.resolvePolicy, raw, 'evalResolvePolicy');
        const value = await store.getInputJson<unknown>(input.latestFrom, 'policy pointer');
        const r = policyPointerSchema.safeParse(value);
        if (!r.success) {
          throw new BadInputError(
            `policy pointer ${input.latestFrom} is not {version, model?}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
            { uri: input.latestFrom },
          );
        }
        return { version: r.data.version, model: r.data.model ?? null };
      } catch (err) {
        throw activityFailure(err);
      }
    },
  };
}

export type EvaluationActivities = ReturnType<typeof createEvaluationActivities>;
