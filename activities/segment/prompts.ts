/**
 * Prompts: the policy's `bbox_2d` / `point_2d` (0–1000 of the original frame, Qwen3-VL; or pixels
 * of the resized policy frame, Qwen2.5-VL) or pixel coordinates, mapped into SAM2's 1024×1024 model frame (x·1024/W, y·1024/H; the +0.5 pixel-centre
 * shift and the pad point are inside the decoder graph). A box becomes two points labelled 2 and 3,
 * placed before any click (`add_new_points_or_box`).
 */
import {
  boxToPixels,
  pointToPixels,
  QWEN3VL,
  type CoordinateFrame,
} from '../../core/protocol/coordinates.js';
import { z } from 'zod';
import { IMAGE_SIZE } from './contract.js';
import { BadInputError } from '../errors.js';

const finite = z.number().finite();

export const promptSchema = z
  .strictObject({
    /**
     * `norm1000`: the policy's 0–1000 frame (Qwen3-VL); `resized`: pixels of the policy's resized
     * frame of size `resized` (Qwen2.5-VL, 448×448); `pixels`: original-image pixels.
     */
    space: z.enum(['norm1000', 'resized', 'pixels']),
    /** [width, height] of the resized frame; required with space `resized`. */
    resized: z.tuple([z.number().int().min(1), z.number().int().min(1)]).optional(),
    /** [x1, y1, x2, y2] */
    box: z.tuple([finite, finite, finite, finite]).optional(),
    /** [x, y], a positive click */
    point: z.tuple([finite, finite]).optional(),
    /**
     * `reject`: a box or point outside the frame, or an inverted box, is bad input. `pass`: they
     * reach SAM2 as they are, as `sam2_okvos.py` passes the model's answer unchecked. @default "reject"
     */
    bounds: z.enum(['reject', 'pass']).default('reject'),
  })
  .refine((p) => p.space !== 'resized' || p.resized !== undefined, {
    message: 'space "resized" needs resized: [width, height]',
    path: ['resized'],
  });
export type SegmentPrompt = z.input<typeof promptSchema>;

function frameOf(prompt: SegmentPrompt): CoordinateFrame | null {
  if (prompt.space === 'norm1000') return QWEN3VL;
  if (prompt.space === 'resized') {
    const [w, h] = prompt.resized!;
    return { kind: 'qwen25vl', resizedWidth: w, resizedHeight: h };
  }
  return null;
}

export interface PixelPrompt {
  box?: [number, number, number, number];
  point?: [number, number];
}

export interface ModelPoints {
  /** [1,P,2] in the 1024 frame */
  coords: Float32Array;
  /** [1,P] */
  labels: Float32Array;
  count: number;
}

/** The prompt in original-image pixels, checked against the image. */
export function promptToPixels(
  prompt: SegmentPrompt,
  size: { width: number; height: number },
  label: string,
): PixelPrompt {
  const out: PixelPrompt = {};
  const policyFrame = frameOf(prompt);
  const maxX =
    prompt.space === 'norm1000' ? 1000 : prompt.space === 'resized' ? prompt.resized![0] : size.width;
  const maxY =
    prompt.space === 'norm1000' ? 1000 : prompt.space === 'resized' ? prompt.resized![1] : size.height;
  const check = prompt.bounds !== 'pass';
  const inside = (x: number, y: number) => !check || (x >= 0 && y >= 0 && x <= maxX && y <= maxY);
  const frame =
    prompt.space === 'norm1000'
      ? '0–1000 frame'
      : prompt.space === 'resized'
        ? `${maxX}×${maxY} resized policy frame`
        : `${size.width}×${size.height} pixels`;
  if (prompt.box) {
    const [x1, y1, x2, y2] = prompt.box;
    if (check && (x2 < x1 || y2 < y1)) {
      throw new BadInputError(`${label}: box [${prompt.box.join(', ')}] must have x1 ≤ x2 and y1 ≤ y2`, {
        box: prompt.box,
      });
    }
    if (!inside(x1, y1) || !inside(x2, y2)) {
      throw new BadInputError(`${label}: box [${prompt.box.join(', ')}] lies outside the image (${frame})`, {
        box: prompt.box,
      });
    }
    out.box = [...(policyFrame ? boxToPixels(prompt.box, size, policyFrame) : prompt.box)];
  }
  if (prompt.point) {
    const [x, y] = prompt.point;
    if (!inside(x, y)) {
      throw new BadInputError(
        `${label}: point [${prompt.point.join(', ')}] lies outside the image (${frame})`,
        {
          point: prompt.point,
        },
      );
    }
    out.point = [...(policyFrame ? pointToPixels(prompt.point, size, policyFrame) : prompt.point)];
  }
  return out;
}

/** Pixel points with labels → the decoder's point_coords / point_labels (a −1 pad when empty). */
export function toModelPoints(
  points: readonly { x: number; y: number; label: number }[],
  size: { width: number; height: number },
): ModelPoints {
  const list = points.length > 0 ? points : [{ x: 0, y: 0, label: -1 }];
  const coords = new Float32Array(list.length * 2);
  const labels = new Float32Array(list.length);
  const sx = IMAGE_SIZE / size.width;
  const sy = IMAGE_SIZE / size.height;
  list.forEach((p, i) => {
    coords[2 * i] = p.label === -1 ? 0 : p.x * sx;
    coords[2 * i + 1] = p.label === -1 ? 0 : p.y * sy;
    labels[i] = p.label;
  });
  return { coords, labels, count: points.length };
}

/** A box as SAM2 passes it: two corner points labelled 2 (top-left) and 3 (bottom-right). */
export function boxPoints(
  box: readonly [number, number, number, number],
): { x: number; y: number; label: number }[] {
  return [
    { x: box[0], y: box[1], label: 2 },
    { x: box[2], y: box[3], label: 3 },
  ];
}
