/**
 * Per-sample ground truth from binary masks (spec §2, `examples/data_preprocess/okvos.py`).
 *
 * For each sampled frame whose mask is non-empty:
 * - `bbox_2d` = [min x, min y, max x, max y] of the foreground;
 * - `point_2d` = the pixel where the exact Euclidean distance transform is largest (first in
 *   row-major order on ties, like `numpy.argmax`); if that pixel were background, the nearest
 *   foreground pixel (first in row-major order on ties) — which only an empty mask could cause;
 * - `area` = foreground pixel count, `max_conn_area` = size of the largest 8-connected component,
 *   both divided by their maximum over the sampled frames with a non-empty mask (so in (0, 1]);
 * - box and point in the policy's coordinate frame (Qwen3-VL: round(x / W · 1000), half-even).
 *
 * The caller decides what foreground is: the reference keeps mask value 255 (`mask == 255`) of the
 * palette-converted PNG; OK-VOS masks are 0/255, so "non-zero" gives the same masks.
 */
import type { BinaryMask } from '../metrics/mask.js';
import { boxToFrame, pointToFrame, type CoordinateFrame } from '../protocol/coordinates.js';
import type { FrameGroundTruth, SampleGroundTruth } from '../rewards/terms.js';
import { squaredDistanceTransform } from './edt.js';

/** Pixel-space facts about one mask. */
export interface MaskGeometry {
  /** [x1, y1, x2, y2] in pixels, inclusive. */
  bbox: [number, number, number, number];
  /** [x, y] in pixels. */
  point: [number, number];
  area: number;
  maxConnArea: number;
}

/** Tight bounding box of the foreground, or null for an empty mask. */
export function tightBox(m: BinaryMask): [number, number, number, number] | null {
  const { width: w, height: h, data } = m;
  let x1 = w;
  let y1 = h;
  let x2 = -1;
  let y2 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (data[y * w + x] !== 0) {
        if (x < x1) x1 = x;
        if (x > x2) x2 = x;
        if (y < y1) y1 = y;
        y2 = y;
      }
    }
  }
  return x2 < 0 ? null : [x1, y1, x2, y2];
}

/**
 * The reference's point: argmax of the EDT (first maximum in row-major order), falling back to
 * the nearest foreground pixel when that maximum is on the background. Null for an empty mask
 * (the reference never asks: it only builds ground truth for non-empty masks).
 */
export function innermostPoint(m: BinaryMask): [number, number] | null {
  const { width: w, height: h, data } = m;
  const d2 = squaredDistanceTransform(data, w, h);
  let best = 0;
  let bestD = -1;
  for (let i = 0; i < d2.length; i++) {
    const v = d2[i] ?? 0;
    if (v > bestD) {
      bestD = v;
      best = i;
    }
  }
  let x = best % w;
  let y = (best - x) / w;
  if (data[best] === 0) {
    let nearest = -1;
    let nearestD = Infinity;
    for (let i = 0; i < data.length; i++) {
      if (data[i] === 0) continue;
      const xi = i % w;
      const yi = (i - xi) / w;
      const dd = (xi - x) * (xi - x) + (yi - y) * (yi - y);
      if (dd < nearestD) {
        nearestD = dd;
        nearest = i;
      }
    }
    if (nearest < 0) return null;
    x = nearest % w;
    y = (nearest - x) / w;
  }
  return [x, y];
}

/** Size of the largest 8-connected foreground component (0 for an empty mask). */
export function largestComponentArea(m: BinaryMask): number {
  const { width: w, height: h, data } = m;
  const seen = new Uint8Array(w * h);
  const stack = new Int32Array(w * h);
  let best = 0;
  for (let start = 0; start < data.length; start++) {
    if (data[start] === 0 || seen[start] !== 0) continue;
    let top = 0;
    stack[top++] = start;
    seen[start] = 1;
    let size = 0;
    while (top > 0) {
      const i = stack[--top] ?? 0;
      size++;
      const x = i % w;
      const y = (i - x) / w;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= w || (dx === 0 && dy === 0)) continue;
          const j = yy * w + xx;
          if (data[j] !== 0 && seen[j] === 0) {
            seen[j] = 1;
            stack[top++] = j;
          }
        }
      }
    }
    if (size > best) best = size;
  }
  return best;
}

/** Box, point, area and largest component of a mask in pixels; null for an empty mask. */
export function maskGeometry(m: BinaryMask): MaskGeometry | null {
  const bbox = tightBox(m);
  const point = innermostPoint(m);
  if (bbox === null || point === null) return null;
  let area = 0;
  for (let i = 0; i < m.data.length; i++) if (m.data[i] !== 0) area++;
  return { bbox, point, area, maxConnArea: largestComponentArea(m) };
}

/** One sampled frame: its integer id (from the file name) and its mask (null: no mask file). */
export interface SampledFrameMask {
  frameId: number;
  mask: BinaryMask | null;
}

/** Coordinates of the ground truth: a policy frame, or raw pixels. */
export type GroundTruthCoordinates = CoordinateFrame | { kind: 'pixels' };

/**
 * The sample's ground truth (`reward_model.ground_truth`, before `json.dumps`): frame id →
 * {bbox_2d, point_2d, area, max_conn_area}, only for frames whose mask is non-empty, in the
 * order given. Coordinates are converted with each frame's own mask size.
 */
export function buildSampleGroundTruth(
  frames: readonly SampledFrameMask[],
  coordinates: GroundTruthCoordinates = { kind: 'qwen3vl', scale: 1000 },
): SampleGroundTruth {
  const geos: { frameId: number; mask: BinaryMask; g: MaskGeometry }[] = [];
  for (const f of frames) {
    if (f.mask === null) continue;
    const g = maskGeometry(f.mask);
    if (g !== null) geos.push({ frameId: f.frameId, mask: f.mask, g });
  }
  const out: SampleGroundTruth = {};
  if (geos.length === 0) return out;
  let maxArea = 0;
  let maxConn = 0;
  for (const { g } of geos) {
    if (g.area > maxArea) maxArea = g.area;
    if (g.maxConnArea > maxConn) maxConn = g.maxConnArea;
  }
  for (const { frameId, mask, g } of geos) {
    const size = { width: mask.width, height: mask.height };
    const bbox = coordinates.kind === 'pixels' ? g.bbox : boxToFrame(g.bbox, size, coordinates);
    const point = coordinates.kind === 'pixels' ? g.point : pointToFrame(g.point, size, coordinates);
    const entry: FrameGroundTruth = {
      bbox_2d: [bbox[0], bbox[1], bbox[2], bbox[3]],
      point_2d: [point[0], point[1]],
      area: g.area / maxArea,
      max_conn_area: g.maxConnArea / maxConn,
    };
    out[String(frameId)] = entry;
  }
  return out;
}
