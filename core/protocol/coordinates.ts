/**
 * Coordinate frames of the policies and conversions to and from image pixels (spec §2, §8.1, §11.2).
 *
 * - Qwen3-VL (Seg-ReSearch): 0–1000 normalised to the ORIGINAL frame size. To the frame:
 *   `round(x / W * 1000)` with Python's round-half-even (the ground-truth preprocessing); back to
 *   pixels: `x * W / 1000`, unrounded (SAM2 takes float prompts, `sam2_okvos.py`).
 * - Qwen2.5-VL: absolute pixels in the RESIZED image (448×448 in the reference), i.e.
 *   `round(x / W * resizedW)`; back: `x * W / resizedW`.
 * - Seg-Zero: absolute pixels in 840×840; back: `x * W / 840`, rounded half-even (spec: "rounded";
 *   the exact rounding of the reference is unconfirmed).
 */
import { pyRound } from '../pycompat/text.js';
import type { Box, Point } from './actions.js';

export type CoordinateFrame =
  | { kind: 'qwen3vl'; /** @default 1000 */ scale?: number }
  | { kind: 'qwen25vl'; resizedWidth: number; resizedHeight: number }
  | { kind: 'segzero'; /** @default 840 */ size?: number };

export const QWEN3VL: CoordinateFrame = { kind: 'qwen3vl', scale: 1000 };
export const SEGZERO_840: CoordinateFrame = { kind: 'segzero', size: 840 };

export interface ImageSize {
  width: number;
  height: number;
}

function frameExtent(frame: CoordinateFrame): { sx: number; sy: number } {
  switch (frame.kind) {
    case 'qwen3vl': {
      const s = frame.scale ?? 1000;
      return { sx: s, sy: s };
    }
    case 'qwen25vl':
      return { sx: frame.resizedWidth, sy: frame.resizedHeight };
    case 'segzero': {
      const s = frame.size ?? 840;
      return { sx: s, sy: s };
    }
  }
}

/** Pixel (x, y) of the original image → the policy frame, rounded half-even as the reference does. */
export function pointToFrame(p: Point, image: ImageSize, frame: CoordinateFrame): Point {
  const { sx, sy } = frameExtent(frame);
  return [pyRound((p[0] / image.width) * sx), pyRound((p[1] / image.height) * sy)];
}

/** Pixel box → the policy frame (each corner as {@link pointToFrame}). */
export function boxToFrame(b: Box, image: ImageSize, frame: CoordinateFrame): Box {
  const [x1, y1] = pointToFrame([b[0], b[1]], image, frame);
  const [x2, y2] = pointToFrame([b[2], b[3]], image, frame);
  return [x1, y1, x2, y2];
}

/**
 * Policy-frame point → original-image pixels. Qwen frames stay fractional (what SAM2 receives);
 * Seg-Zero rounds half-even.
 */
export function pointToPixels(p: Point, image: ImageSize, frame: CoordinateFrame): Point {
  const { sx, sy } = frameExtent(frame);
  const x = p[0] * (image.width / sx);
  const y = p[1] * (image.height / sy);
  return frame.kind === 'segzero' ? [pyRound(x), pyRound(y)] : [x, y];
}

/** Policy-frame box → original-image pixels (each corner as {@link pointToPixels}). */
export function boxToPixels(b: Box, image: ImageSize, frame: CoordinateFrame): Box {
  const [x1, y1] = pointToPixels([b[0], b[1]], image, frame);
  const [x2, y2] = pointToPixels([b[2], b[3]], image, frame);
  return [x1, y1, x2, y2];
}

/** Clamp a pixel point into the image (for prompts a model placed outside it). */
export function clampPoint(p: Point, image: ImageSize): Point {
  return [Math.min(Math.max(p[0], 0), image.width - 1), Math.min(Math.max(p[1], 0), image.height - 1)];
}

/**
 * The extent of a policy's answer frame: 1000×1000 for Qwen3-VL, the resized frame's pixels for
 * Qwen2.5-VL (what `checkAnswer` accepts as "in range").
 */
export function answerExtent(frame: CoordinateFrame = QWEN3VL): { x: number; y: number } {
  const { sx, sy } = frameExtent(frame);
  return { x: sx, y: sy };
}

/** A policy-frame prompt as the segment activities take it. */
export type AnswerPrompt = {
  box?: [number, number, number, number];
  point?: [number, number];
} & ({ space: 'norm1000' } | { space: 'resized'; resized: [number, number] });

/**
 * The SAM2 prompt of an answer in the policy's frame: 0–1000 (`norm1000`) for Qwen3-VL, pixels of
 * the resized frame (`resized`) for Qwen2.5-VL. The segment activity maps it to the image's pixels.
 */
export function answerPrompt(
  answer: { box: Box | null; point: Point | null },
  frame: CoordinateFrame = QWEN3VL,
): AnswerPrompt {
  const parts = {
    ...(answer.box ? { box: [...answer.box] as [number, number, number, number] } : {}),
    ...(answer.point ? { point: [...answer.point] as [number, number] } : {}),
  };
  if (frame.kind === 'qwen25vl')
    return { space: 'resized', resized: [frame.resizedWidth, frame.resizedHeight], ...parts };
  if (frame.kind === 'segzero')
    return { space: 'resized', resized: [frame.size ?? 840, frame.size ?? 840], ...parts };
  return { space: 'norm1000', ...parts };
}
