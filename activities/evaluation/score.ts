/**
 * Scoring one sample: its prediction against every annotated ground-truth frame (J, F, J&F; gIoU
 * terms), the trajectory's outcome reward, an overlay thumbnail, and the result stored under its
 * deterministic key (a retry rewrites the same object). Each phase is one function below;
 * `evalScoreSample` runs them in order.
 */
import sharp from 'sharp';
import { z } from 'zod';
import { artifactRefSchema, type ArtifactRef } from '../../core/artifacts.js';
import {
  EvalKeys,
  IdSchemas,
  INITIAL_EVAL_GENERATION,
  rolloutSummarySchema,
  type FailedSample,
  type OutcomeReward,
  type SampleEvaluation,
} from '../../core/contracts/index.js';
import type { AnswerStatus } from '../../core/rollout/turn-rules.js';
import type { PreparedSample } from '../datasets/prepare.js';
import { BadInputError } from '../errors.js';
import { heartbeat, parseActivityInput } from '../edge.js';
import { decodeRgb } from '../media/image.js';
import type { FrameSet } from '../media/ingest.js';
import { mapLimit } from '../../core/concurrency.js';
import { maskSequenceLookup, readBinaryMask, type BinaryMask, type MaskSequence } from '../media/masks.js';
import { tintRgb } from '../media/overlay.js';
import { readResponseText, scoreResponse } from '../rewards/activities.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { scoreFrames } from './aggregate.js';

export const scoreInput = z.strictObject({
  evalId: IdSchemas.eval,
  sampleId: z.string().min(1),
  record: artifactRefSchema,
  prediction: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('none') }),
    z.strictObject({ kind: z.literal('image'), mask: artifactRefSchema }),
    z.strictObject({ kind: z.literal('video'), manifest: artifactRefSchema }),
  ]),
  /** The frames the masks refer to, in order (video samples; for the overlay). */
  frameUris: z.array(z.string().min(1)).optional(),
  /** Or the stored FrameSet listing them (what evaluations pass since frame lists travel by reference). */
  frameSet: artifactRefSchema.optional(),
  keyframeIndex: z.number().int().min(0).nullable(),
  /** The rollout's summary as it returned it; null when the rollout failed. */
  rollout: rolloutSummarySchema.nullable(),
  /** The policy version the evaluation asked for (recorded when there is no rollout). */
  requestedPolicyVersion: z.number().int().min(0),
  error: z.string().nullable(),
  /** The evaluation's generation (recorded with the result). @default "initial" */
  generation: z.string().min(1).optional(),
  /**
   * The rollout or segmentation failed for an infrastructure reason: nothing is scored; the
   * failure is stored at the result key so the metrics leave the sample out and a re-run evaluates
   * it again. (One activity for both outcomes keeps the command sequence of recorded histories.)
   */
  failure: z.strictObject({ type: z.string().min(1), message: z.string() }).optional(),
});
export type EvalScoreInput = z.input<typeof scoreInput>;
type ScoreInput = z.output<typeof scoreInput>;
type Prediction = ScoreInput['prediction'];

interface GroundTruth {
  rec: PreparedSample;
  frames: { index: number; mask: BinaryMask }[];
  at: (index: number) => BinaryMask | undefined;
  ignore: BinaryMask | undefined;
}

async function maskAt(store: ArtifactStore, uri: string, what: string): Promise<BinaryMask | undefined> {
  if (!(await store.head(uri))) return undefined;
  try {
    return await readBinaryMask(await store.getBytes(uri), 'nonzero');
  } catch (err) {
    throw new BadInputError(`${what} ${uri} is not a readable mask: ${(err as Error).message}`, { uri }, err);
  }
}

/** The record, its annotated frames and its ignore region. */
async function loadGroundTruth(store: ArtifactStore, record: ArtifactRef): Promise<GroundTruth> {
  const rec = await store.getInputJson<PreparedSample>(record.uri, 'sample record');
  if (!rec.masks) throw new BadInputError(`sample ${rec.id} has no ground-truth masks`, { sample: rec.id });
  const seq = await store.getInputJson<MaskSequence>(rec.masks.uri, 'ground-truth masks');
  const at = maskSequenceLookup(seq);
  const ignore = rec.ignore
    ? maskSequenceLookup(await store.getInputJson<MaskSequence>(rec.ignore.uri, 'ignore mask'))(0)
    : undefined;
  return { rec, frames: seq.frames.map((f) => ({ index: f.index, mask: at(f.index)! })), at, ignore };
}

/** The predicted masks of the annotated frames (each fetched once); absent frames are empty. */
async function loadPrediction(
  store: ArtifactStore,
  p: Prediction,
  gt: GroundTruth,
): Promise<Map<number, BinaryMask>> {
  const predicted = new Map<number, BinaryMask>();
  if (p.kind === 'image') {
    const m = await maskAt(store, p.mask.uri, 'predicted mask');
    if (m) predicted.set(0, m);
  } else if (p.kind === 'video') {
    const manifest = await store.getInputJson<{ frames: { frame: number; mask: string }[] }>(
      p.manifest.uri,
      'segmentation manifest',
    );
    const byFrame = new Map(manifest.frames.map((f) => [f.frame, f.mask]));
    await mapLimit(gt.frames, 8, async ({ index }) => {
      const uri = byFrame.get(index);
      const m = uri ? await maskAt(store, uri, `predicted mask of frame ${index}`) : undefined;
      if (m) predicted.set(index, m);
    });
  }
  return predicted;
}

/** The overlay's frame: the answer's keyframe when it was annotated, else the frame with most ground truth. */
function pickOverlayFrame(gt: GroundTruth, keyframeIndex: number | null): number | null {
  if (keyframeIndex !== null && gt.frames.some((g) => g.index === keyframeIndex)) return keyframeIndex;
  let best = -1;
  let frame: number | null = null;
  for (const g of gt.frames) {
    let area = 0;
    for (let i = 0; i < g.mask.data.length; i++) if (g.mask.data[i]) area++;
    if (area > best) {
      best = area;
      frame = g.index;
    }
  }
  return frame;
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

/** Renders and stores the overlay of `frame`; null when the frame's image cannot be located. */
async function storeOverlay(
  store: ArtifactStore,
  input: ScoreInput,
  gt: GroundTruth,
  predicted: Map<number, BinaryMask>,
  frame: number | null,
): Promise<ArtifactRef | null> {
  const media = gt.rec.media;
  let frameUri: string | undefined;
  if (media.kind === 'image') frameUri = media.image.uri;
  else if (media.kind === 'frames') {
    const set = await store.getInputJson<FrameSet>(media.frameSet.uri, 'frame set');
    frameUri = set.frames[frame ?? 0]?.ref.uri;
  } else if (input.frameSet) {
    const set = await store.getInputJson<FrameSet>(input.frameSet.uri, 'frame set');
    frameUri = set.frames[frame ?? 0]?.ref.uri;
  } else frameUri = input.frameUris?.[frame ?? 0];
  if (!frameUri || frame === null) return null;
  const jpeg = await overlayThumbnail(await store.getBytes(frameUri), predicted.get(frame), gt.at(frame));
  return store.putBytes(
    `${EvalKeys.samplePrefix(input.evalId, input.sampleId)}/overlay.jpg`,
    jpeg,
    'image/jpeg',
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

/** The stored record of one sample: its scores, what the rollout did and where its artifacts are. */
function sampleResult(
  input: ScoreInput,
  gt: GroundTruth,
  scores: ReturnType<typeof scoreFrames>,
  overlay: { ref: ArtifactRef | null; frame: number | null },
  reward: OutcomeReward | null,
): SampleEvaluation {
  const { rec } = gt;
  const r = input.rollout;
  const p = input.prediction;
  return {
    schema: 'segflow.eval-sample/1',
    evalId: input.evalId,
    sampleId: input.sampleId,
    format: rec.format,
    kind: rec.media.kind === 'image' ? 'image' : 'video',
    ability: rec.ability ?? 'unknown',
    question: rec.question,
    ...scores,
    answerStatus: r?.answer.status ?? 'rollout_failed',
    stopReason: r?.stopReason ?? 'rollout_failed',
    error: input.error,
    turns: r?.turns ?? 0,
    promptTokens: r?.promptTokens ?? 0,
    completionTokens: r?.completionTokens ?? 0,
    policyVersion: r?.policyVersion ?? input.requestedPolicyVersion,
    searches: r?.searches ?? [],
    keyframe: r?.answer.keyframe ?? null,
    box: r?.answer.box ? [...r.answer.box] : null,
    record: input.record,
    trajectory: r?.trajectory ?? null,
    prediction: p.kind === 'image' ? p.mask : p.kind === 'video' ? p.manifest : null,
    overlay: overlay.ref,
    overlayFrame: overlay.frame,
    reward,
    ...(input.generation ? { generation: input.generation } : {}),
  };
}

/** Stores an infrastructure failure at the sample's result key, in place of a score. */
async function storeFailure(
  store: ArtifactStore,
  input: ScoreInput,
  failure: NonNullable<ScoreInput['failure']>,
): Promise<ArtifactRef> {
  const rec = await store.getInputJson<PreparedSample>(input.record.uri, 'sample record');
  const failed: FailedSample = {
    schema: 'segflow.eval-sample-failed/1',
    evalId: input.evalId,
    sampleId: input.sampleId,
    generation: input.generation ?? INITIAL_EVAL_GENERATION,
    format: rec.format,
    kind: rec.media.kind === 'image' ? 'image' : 'video',
    ability: rec.ability ?? 'unknown',
    question: rec.question,
    failure: { type: failure.type, message: failure.message.slice(0, 2000) },
    policyVersion: input.rollout?.policyVersion ?? input.requestedPolicyVersion,
    record: input.record,
  };
  return store.putJson(EvalKeys.sampleResult(input.evalId, input.sampleId), failed);
}

export function createScoreActivities(store: ArtifactStore) {
  return {
    /**
     * Scores the prediction and the trajectory, renders the overlay, stores the sample's result;
     * with `failure`, stores the failure instead (`failed: true`, no scores).
     */
    async evalScoreSample(raw: EvalScoreInput): Promise<{
      sampleId: string;
      JF: number | null;
      iou: number | null;
      result: ArtifactRef;
      failed?: true;
    }> {
      const input = parseActivityInput(scoreInput, raw, 'evalScoreSample');
      if (input.failure) {
        const result = await storeFailure(store, input, input.failure);
        return { sampleId: input.sampleId, JF: null, iou: null, result, failed: true };
      }
      const gt = await loadGroundTruth(store, input.record);
      const predicted = await loadPrediction(store, input.prediction, gt);
      heartbeat({ stage: 'masks loaded' });
      let scores;
      try {
        scores = scoreFrames(gt.frames, (i) => predicted.get(i), gt.ignore);
      } catch (err) {
        throw new BadInputError(`sample ${gt.rec.id}: ${(err as Error).message}`, { sample: gt.rec.id }, err);
      }
      const frame = pickOverlayFrame(gt, input.keyframeIndex);
      const overlay = { ref: await storeOverlay(store, input, gt, predicted, frame), frame };
      const answerStatus = input.rollout?.answer.status ?? 'rollout_failed';
      const reward = await sampleOutcomeReward(
        store,
        gt.rec,
        input.rollout?.trajectory ?? null,
        answerStatus,
      );
      const result = sampleResult(input, gt, scores, overlay, reward);
      const ref = await store.putJson(EvalKeys.sampleResult(input.evalId, input.sampleId), result);
      return {
        sampleId: input.sampleId,
        JF: scores.JF,
        iou: scores.union === 0 ? null : scores.intersection / scores.union,
        result: ref,
      };
    },
  };
}
