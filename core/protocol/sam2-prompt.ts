/**
 * When an evaluation prompts SAM2, and with what (spec §8.1, `post_segmentation/sam2_okvos.py`).
 * The reference segments whenever the first keyframe is a frame of the video and the answer's box
 * is non-zero (`box.any()`), clicking the point only when it is non-zero (`points.any()`); it
 * passes the coordinates unchecked. A missing `bbox_2d` means no prompt. segflow's stricter rule
 * (only answers `checkAnswer` accepts) stays available as `usable`.
 */
import type { Box, Point } from './actions.js';

/** `reference`: sam2_okvos.py's rule; `usable`: only answers `checkAnswer` calls `ok`. */
export const SEGMENT_WHEN = ['reference', 'usable'] as const;
export type SegmentWhen = (typeof SEGMENT_WHEN)[number];

export interface AnswerForPrompt {
  status: string;
  keyframe: number | null;
  box: Box | null;
  point: Point | null;
}

/** What SAM2 is prompted with: the keyframe id, and a box and/or a point in the policy's frame. */
export interface Sam2PromptPlan {
  keyframe: number;
  box: Box | null;
  point: Point | null;
  /** True when the coordinates go to SAM2 unchecked (the reference rule). */
  unchecked: boolean;
}

/**
 * The prompt of an answer under `when`, or null when nothing is prompted (every frame then gets an
 * empty mask). Whether the keyframe is a frame of the video is decided where the frames are known
 * (the reference's `0 ≤ fid < T`). An image has a single frame: `keyframe` is not required there.
 */
export function sam2PromptPlan(
  answer: AnswerForPrompt,
  when: SegmentWhen,
  opts: { image?: boolean } = {},
): Sam2PromptPlan | null {
  if (when === 'usable') {
    if (answer.status !== 'ok' || answer.box === null || answer.keyframe === null) return null;
    return { keyframe: answer.keyframe, box: answer.box, point: answer.point, unchecked: false };
  }
  const keyframe = answer.keyframe ?? (opts.image ? 0 : null);
  if (keyframe === null || answer.box === null) return null;
  const box = answer.box.some((v) => v !== 0) ? answer.box : null;
  const point = answer.point?.some((v) => v !== 0) ? answer.point : null;
  if (box === null && point === null) return null;
  return { keyframe, box, point, unchecked: true };
}
