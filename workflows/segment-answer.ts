/**
 * Ground and segment: an answer's prompt (keyframe, box and/or point in the policy's frame) becomes masks.
 * An image is segmented once; a video's frames are listed (extracted from the video first when the
 * media has no stored frame list), the keyframe is located in the list, and SAM2 is prompted there
 * and propagated over every frame. Shared by `segmentQuery` and `evaluateSample`.
 */
import { ApplicationFailure, patched } from '@temporalio/workflow';
import type { ArtifactRef } from '../core/artifacts.js';
import { ErrorTypes } from '../core/contracts/errors.js';
import { ArtifactKeys } from '../core/contracts/keys.js';
import type { AnswerPrompt } from '../core/protocol/coordinates.js';
import type { ImagePromptProtocol } from '../activities/segment/sam2-image.js';
import { segmentWork, type SegmentWork } from './proxies.js';
import { DEFAULT_OUTAGE_TOLERANCE_SECONDS } from './retry.js';

/** What is segmented: an image, or a video as a stored frame list and/or the stored video. */
export type AnswerMedia =
  { kind: 'image'; image: ArtifactRef } | { kind: 'video'; frameSet?: ArtifactRef; video?: ArtifactRef };

export interface SegmentAnswerInput {
  /** The frame id the prompt is on (videos). */
  keyframe: number;
  /** In the policy's frame (`answerPrompt`); `bounds: "pass"` sends it to SAM2 unchecked. */
  prompt: AnswerPrompt & { bounds?: 'reject' | 'pass' };
  /** A keyframe that is not a frame of the video: `error` fails; `skip` segments nothing. @default "error" */
  keyframeNotInVideo?: 'error' | 'skip';
  /** How an image is prompted. @default the segment activity's ("box-then-point") */
  imagePrompt?: ImagePromptProtocol;
  media: AnswerMedia;
  /** An image's mask goes to `<prefix>/mask.png`. */
  prefix: string;
  /** Where a video's per-frame masks go. @default prefix */
  videoMasksPrefix?: string;
  /** Names the media in errors ("sample cat_01", "query q-1"). */
  label: string;
  /** Overrides segment.modelsDir on the segment workers. */
  modelsDir?: string;
  /** How long its S3, media and SAM2 calls retry an outage (RolloutInput). @default 900 */
  outageToleranceSeconds?: number;
}

export type SegmentedAnswer =
  | { kind: 'image'; mask: ArtifactRef; keyframeIndex: 0 }
  | {
      kind: 'video';
      manifest: ArtifactRef;
      frameSet: ArtifactRef;
      /** The frames' URIs: only in histories recorded before {@link FRAME_LIST_BY_REFERENCE_PATCH}. */
      frameUris?: string[];
      keyframeIndex: number;
    };

/**
 * Histories recorded before this read a video's whole frame list into the workflow (~100 bytes a
 * frame: 1.8 MB for a 10-minute 30 fps video) and sent it to the segmenter; replaying them must do
 * the same, so the keyframe is located by an activity and the segmenter gets the FrameSet reference
 * only where this patch is set.
 */
export const FRAME_LIST_BY_REFERENCE_PATCH = 'segflow-frame-list-by-reference';

export async function segmentAnswer(input: SegmentAnswerInput): Promise<SegmentedAnswer | null> {
  const { media, prompt } = input;
  const {
    glue: queryGlue,
    segmenter,
    media: mediaActivities,
  } = segmentWork(input.outageToleranceSeconds ?? DEFAULT_OUTAGE_TOLERANCE_SECONDS);
  const modelsDir = input.modelsDir ? { modelsDir: input.modelsDir } : {};
  if (media.kind === 'image') {
    const seg = await segmenter.segmentImage({
      image: media.image.uri,
      prompt,
      ...(input.imagePrompt ? { protocol: input.imagePrompt } : {}),
      outputKey: ArtifactKeys.imageMask(input.prefix),
      ...modelsDir,
    });
    return { kind: 'image', mask: seg.mask, keyframeIndex: 0 };
  }
  const frameSet = media.frameSet ?? (await extractAllFrames(mediaActivities, media.video, input.label));
  if (patched(FRAME_LIST_BY_REFERENCE_PATCH)) {
    const located = await queryGlue.queryLocateKeyframe({ frameSet, keyframe: input.keyframe });
    if (located.index === null) return keyframeMissing(input, located.frames);
    const seg = await segmenter.segmentVideo({
      frameSet,
      keyframe: located.index,
      prompt,
      outputPrefix: input.videoMasksPrefix ?? input.prefix,
      ...modelsDir,
    });
    return { kind: 'video', manifest: seg.manifest, frameSet, keyframeIndex: located.index };
  }
  const list = await queryGlue.queryFrameList({ frameSet });
  const keyframeIndex = list.fids.indexOf(input.keyframe);
  if (keyframeIndex < 0) {
    if (input.keyframeNotInVideo === 'skip') return null;
    throw ApplicationFailure.nonRetryable(
      `keyframe ${input.keyframe} is not a frame of ${input.label}`,
      ErrorTypes.badInput,
    );
  }
  const seg = await segmenter.segmentVideo({
    frames: list.uris,
    keyframe: keyframeIndex,
    prompt,
    outputPrefix: input.videoMasksPrefix ?? input.prefix,
    ...modelsDir,
  });
  return { kind: 'video', manifest: seg.manifest, frameSet, frameUris: list.uris, keyframeIndex };
}

function keyframeMissing(input: SegmentAnswerInput, frames: number): null {
  if (input.keyframeNotInVideo === 'skip') return null;
  throw ApplicationFailure.nonRetryable(
    `keyframe ${input.keyframe} is not a frame of ${input.label} (its ${frames} frames have other ids)`,
    ErrorTypes.badInput,
  );
}

async function extractAllFrames(
  media: SegmentWork['media'],
  video: ArtifactRef | undefined,
  label: string,
): Promise<ArtifactRef> {
  if (!video) {
    throw ApplicationFailure.nonRetryable(
      `${label} has neither a frame list nor a video`,
      ErrorTypes.badInput,
    );
  }
  return (await media.mediaExtractFrames({ video, indices: 'all' })).frameSet;
}
