/**
 * `segmentQuery`: the inference entry. Ingest the media → sample frames → `rollout` (child) →
 * ground the answer (the policy's frame → pixels, validated) → segment (image, or keyframe prompt + video
 * propagation) → masks and overlay in S3 → a small result. A malformed answer ends the query with
 * its reason and no masks; it never fails the workflow.
 */
import {
  ApplicationFailure,
  defineQuery,
  executeChild,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { oneLine, segmentQueryDetails } from '../core/monitor/details.js';
import type { ArtifactRef } from '../core/artifacts.js';
import { ErrorTypes } from '../core/contracts/errors.js';
import { QueryKeys, WorkflowIds } from '../core/contracts/keys.js';
import { SearchAttributeKeys, TaskQueues } from '../core/queues.js';
import type { Ability } from '../core/protocol/prompts.js';
import { answerPrompt, boxToPixels, pointToPixels, QWEN3VL } from '../core/protocol/coordinates.js';
import type { CheckedAnswer, RolloutSettings } from '../core/rollout/turn-rules.js';
import { rollout, rolloutFaultSettings, type RolloutInput, type RolloutSummary } from './rollout.js';
import { segmentWork } from './proxies.js';
import { DEFAULT_OUTAGE_TOLERANCE_SECONDS } from './retry.js';
import { segmentAnswer } from './segment-answer.js';

export interface SegmentQueryInput {
  /** A file or folder path the media workers can read, or an s3:// URI. */
  media: string;
  /** The object to find, e.g. "the car that won the 2025 Qatar Grand Prix". */
  query: string;
  /** `in-video` uses the non-search prompt. @default "one-hop" (search prompt) */
  ability?: Ability;
  /** Frames shown to the policy. @default 6 */
  frames?: number;
  policy?: RolloutInput['policy'];
  search?: RolloutInput['search'];
  settings?: Partial<RolloutSettings>;
  /**
   * The rollout's host affinity and outage tolerance (RolloutInput); the tolerance also holds for
   * the query's own S3, media and SAM2 calls. @default 120 / 900
   */
  hostAffinitySeconds?: number;
  outageToleranceSeconds?: number;
  /** Overrides segment.modelsDir on the segment workers. */
  modelsDir?: string;
}

export interface SegmentQueryResult {
  queryId: string;
  kind: 'image' | 'video';
  answer: CheckedAnswer;
  stopReason: RolloutSummary['stopReason'];
  /** Box and point in original-image pixels, when the answer was usable. */
  grounded?: { keyframeIndex: number; box: [number, number, number, number]; point?: [number, number] };
  /** The mask PNG (image) or the segmenter's manifest of per-frame masks (video). */
  masks?: ArtifactRef;
  /** Video: the FrameSet (frame names and refs) the masks belong to. */
  frameSet?: ArtifactRef;
  overlay?: ArtifactRef;
  searchLog: RolloutSummary['searches'];
  rollout: RolloutSummary;
  result: ArtifactRef;
}

export interface SegmentQueryProgress {
  step: 'ingest' | 'sample' | 'rollout' | 'ground' | 'segment' | 'overlay' | 'done';
  rolloutId?: string;
}

export const segmentQueryProgress = defineQuery<SegmentQueryProgress>('progress');

/**
 * Histories recorded before this turned a video's masks into one RLE sequence on the orchestrator
 * (memory and time growing with the video) before drawing the overlay; replaying them must call
 * `queryMaskSequence`, so the overlay reads the segmenter's masks itself, streamed, only where this
 * patch is set.
 */
export const OVERLAY_STREAMS_MASKS_PATCH = 'segflow-overlay-streams-masks';

export async function segmentQuery(input: SegmentQueryInput): Promise<SegmentQueryResult> {
  const info = workflowInfo();
  const queryId = info.workflowId;
  const { media: mediaActivities, glue: queryGlue } = segmentWork(
    input.outageToleranceSeconds ?? DEFAULT_OUTAGE_TOLERANCE_SECONDS,
  );
  const prefix = QueryKeys.root(queryId);
  const known: { kind?: 'image' | 'video' } = {};
  const progress: SegmentQueryProgress = { step: 'ingest' };
  const show = () =>
    setCurrentDetails(
      segmentQueryDetails({
        query: input.query,
        step: progress.step,
        ...(known.kind ? { kind: known.kind } : {}),
        ...(progress.rolloutId ? { rolloutId: progress.rolloutId } : {}),
      }),
    );
  // Every step change goes through here: the progress query and the Web UI's current details.
  const enter = (step: SegmentQueryProgress['step']) => {
    progress.step = step;
    show();
  };
  setHandler(segmentQueryProgress, () => progress, {
    description:
      'the step in progress (ingest, sample, rollout, ground, segment, overlay, done) and the rollout id',
  });
  show();

  const ingested = await mediaActivities.mediaIngest.executeWithOptions(
    { summary: `ingest ${oneLine(input.media.split('/').pop() ?? input.media, 60)}` },
    [{ source: input.media }],
  );
  const kind = ingested.kind === 'image' ? 'image' : 'video';
  known.kind = kind;
  upsertSearchAttributes([
    { key: SearchAttributeKeys.runId, value: queryId },
    { key: SearchAttributeKeys.queryKind, value: kind },
  ]);
  const { width, height } = ingested.kind === 'video' ? ingested.probe : ingested;
  const size = { width, height };

  enter('sample');
  const sampled = await mediaActivities.mediaSampleFrames({ media: ingested, count: input.frames ?? 6 });

  const rolloutId = WorkflowIds.rolloutOf(queryId);
  progress.rolloutId = rolloutId;
  enter('rollout');
  const summary = await executeChild(rollout, {
    workflowId: rolloutId,
    taskQueue: TaskQueues.orchestrator,
    staticSummary: `rollout · query "${oneLine(input.query, 60)}" (${input.ability ?? 'one-hop'})`,
    staticDetails: `${kind} \`${input.media}\` · ${input.frames ?? 6} frames`,
    typedSearchAttributes: [{ key: SearchAttributeKeys.runId, value: queryId }],
    args: [
      {
        trajectoryId: rolloutId,
        sample: {
          id: queryId,
          question: `Please find '${input.query}' in the provided ${kind === 'image' ? 'image' : 'video'}.`,
          ability: input.ability ?? 'one-hop',
          frames: sampled.frames.map((f) => ({ fid: f.fid, policy: f.policy, original: f.original })),
        },
        artifactPrefix: prefix,
        ...(input.policy ? { policy: input.policy } : {}),
        ...(input.search ? { search: input.search } : {}),
        ...(input.settings ? { settings: input.settings } : {}),
        ...rolloutFaultSettings(input),
      },
    ],
  });

  const answer = summary.answer;
  const searchLog = summary.searches;
  const base = { queryId, kind, answer, stopReason: summary.stopReason, rollout: summary } as const;
  if (answer.status !== 'ok') {
    enter('done');
    const result = await queryGlue.querySaveResult({
      key: QueryKeys.result(queryId),
      result: { ...base, searchLog },
    });
    return { ...base, searchLog, result };
  }

  enter('ground');
  // Qwen3-VL answers in 0–1000 of the frame; Qwen2.5-VL in pixels of its resized frame.
  const coordinates = input.policy?.coordinates ?? QWEN3VL;
  const box = boxToPixels(answer.box, size, coordinates).map(Math.round) as [number, number, number, number];
  const point = answer.point
    ? (pointToPixels(answer.point, size, coordinates).map(Math.round) as [number, number])
    : undefined;

  enter('segment');
  const seg = await segmentAnswer({
    keyframe: answer.keyframe,
    prompt: answerPrompt(answer, coordinates),
    media:
      ingested.kind === 'image'
        ? { kind: 'image', image: ingested.image }
        : ingested.kind === 'frames'
          ? { kind: 'video', frameSet: ingested.frameSet }
          : { kind: 'video', video: ingested.video },
    prefix,
    label: `query ${queryId}`,
    ...(input.modelsDir ? { modelsDir: input.modelsDir } : {}),
    ...(input.outageToleranceSeconds !== undefined
      ? { outageToleranceSeconds: input.outageToleranceSeconds }
      : {}),
  });
  // Only a `skip` rule returns no segmentation; segmentQuery's keyframe errors instead.
  if (!seg) {
    throw ApplicationFailure.nonRetryable(
      `keyframe ${answer.keyframe} was not segmented`,
      ErrorTypes.badInput,
    );
  }
  enter('overlay');
  let overlay: ArtifactRef | undefined;
  if (seg.kind === 'image') {
    if (ingested.kind === 'image')
      overlay = await mediaActivities.mediaOverlayImage({ image: ingested.image, mask: seg.mask });
  } else if (patched(OVERLAY_STREAMS_MASKS_PATCH)) {
    // A frame folder has no source video to draw on; its masks are the result.
    if (ingested.kind === 'video')
      overlay = await mediaActivities.mediaOverlayVideo({ video: ingested.video, manifest: seg.manifest });
  } else {
    const sequence = await queryGlue.queryMaskSequence({ manifest: seg.manifest });
    if (ingested.kind === 'video')
      overlay = await mediaActivities.mediaOverlayVideo({ video: ingested.video, masks: sequence });
  }
  const masks = seg.kind === 'image' ? seg.mask : seg.manifest;
  const frameSet = seg.kind === 'video' ? seg.frameSet : undefined;
  const keyframeIndex = seg.keyframeIndex;
  const grounded = { keyframeIndex, box, ...(point ? { point } : {}) };
  enter('done');
  const summaryOut = {
    ...base,
    grounded,
    masks,
    ...(overlay ? { overlay } : {}),
    ...(frameSet ? { frameSet } : {}),
    searchLog,
  };
  const result = await queryGlue.querySaveResult({ key: QueryKeys.result(queryId), result: summaryOut });
  return { ...summaryOut, result };
}
