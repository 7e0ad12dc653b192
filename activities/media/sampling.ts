/**
 * Which frames a sample shows the policy (spec §2, `examples/data_preprocess/okvos.py`). Pure and
 * deterministic: no Node built-ins, no clock, no randomness of its own (the training anchor is
 * chosen by the caller, e.g. from a seeded generator), so workflows may use it too.
 */
import { fnv1a32, mulberry32 } from '../../core/random.js';

/** Frames shown per sample. @default 6 (`num_frames` in the reference) */
export const DEFAULT_SAMPLED_FRAMES = 6;

/**
 * `np.linspace(0, total - 1, count, dtype=int)`: `count` indices spread evenly over `[0, total-1]`,
 * truncated toward zero like numpy's integer cast; when `total <= count` every index `0..total-1`.
 * The arithmetic is numpy's (`i * step`, last point pinned to the stop), so the result matches it
 * bit for bit.
 */
export function linspaceIndices(total: number, count: number): number[] {
  if (!Number.isInteger(total) || total < 0)
    throw new RangeError(`total frames must be an integer >= 0, got ${total}`);
  if (!Number.isInteger(count) || count < 1)
    throw new RangeError(`frames to sample must be an integer >= 1, got ${count}`);
  if (total <= count) return Array.from({ length: total }, (_, i) => i);
  if (count === 1) return [0];
  const stop = total - 1;
  const step = stop / (count - 1);
  const out = Array.from({ length: count }, (_, i) => Math.trunc(i * step));
  out[count - 1] = stop;
  return out;
}

/**
 * The training rule: the sampled index closest to `anchor` (ties: the earlier one, like Python's
 * `min`) is replaced by `anchor`, so the target is visible in at least one frame; then sorted.
 * `anchor` is a frame position in `[0, total-1]`, normally a random annotated frame with a
 * non-empty mask. With `total <= count` every frame is shown already and nothing is replaced.
 */
export function sampleWithAnchor(total: number, count: number, anchor: number): number[] {
  const indices = linspaceIndices(total, count);
  if (total <= count || count <= 1) return indices;
  if (!Number.isInteger(anchor) || anchor < 0 || anchor >= total) {
    throw new RangeError(`anchor frame ${anchor} is outside the video's frames [0, ${total - 1}]`);
  }
  let best = 0;
  for (let i = 1; i < indices.length; i++) {
    if (Math.abs(indices[i]! - anchor) < Math.abs(indices[best]! - anchor)) best = i;
  }
  indices[best] = anchor;
  return indices.sort((a, b) => a - b);
}

/**
 * A small seeded generator (mulberry32 over a 32-bit FNV-1a hash of the seed string): the same seed
 * always picks the same anchor, so a retried or resumed preparation gives the same sample.
 */
export function seededIndex(seed: string, size: number): number {
  if (size < 1) throw new RangeError('cannot pick from an empty set');
  return Math.floor(mulberry32(fnv1a32(seed))() * size);
}

/** The K frames of a sample: uniform for evaluation, with the anchor rule for training. */
export function sampleFrames(opts: {
  total: number;
  count?: number;
  /** Training only: positions (in `[0, total-1]`) of frames whose mask is non-empty. */
  anchorCandidates?: readonly number[];
  /** Seed for the anchor choice (e.g. the sample id). */
  seed?: string;
}): { indices: number[]; anchor?: number } {
  const count = opts.count ?? DEFAULT_SAMPLED_FRAMES;
  if (!opts.anchorCandidates) return { indices: linspaceIndices(opts.total, count) };
  if (opts.total <= count || count <= 1) return { indices: linspaceIndices(opts.total, count) };
  const candidates = opts.anchorCandidates;
  if (candidates.length === 0) {
    throw new RangeError('training sample has no annotated frame in which the target is visible');
  }
  const anchor = candidates[seededIndex(opts.seed ?? '', candidates.length)]!;
  return { indices: sampleWithAnchor(opts.total, count, anchor), anchor };
}
