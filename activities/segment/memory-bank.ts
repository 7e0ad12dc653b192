/**
 * Which past frames a tracked frame attends to (no I/O), after `_prepare_memory_conditioned_features`
 * and `select_closest_cond_frames` in facebookresearch/sam2 2b90b9f (`sam2/modeling/sam2_base.py`,
 * `sam2/modeling/sam2_utils.py`).
 */
import type { Sam2Config } from './contract.js';

export type BankConfig = Pick<
  Sam2Config,
  | 'num_maskmem'
  | 'max_obj_ptrs_in_encoder'
  | 'memory_temporal_stride_for_eval'
  | 'max_cond_frames_in_attn'
  | 'use_obj_ptrs_in_encoder'
  | 'use_signed_tpos_enc_to_obj_ptrs'
  | 'only_obj_ptrs_in_the_past_for_eval'
>;

export interface MemoryEntry {
  frame: number;
  /** Row of `maskmem_tpos_enc`: num_maskmem − t_pos − 1 (conditioning frames: t_pos 0). */
  tposRow: number;
  isCond: boolean;
}

export interface PointerEntry {
  frame: number;
  /** Temporal offset (signed when use_signed_tpos_enc_to_obj_ptrs). */
  offset: number;
  /** offset / (M − 1), M = min(num_frames, max_obj_ptrs_in_encoder): `memory_0_pos`. */
  pos: number;
}

export interface MemoryPlan {
  memory: MemoryEntry[];
  pointers: PointerEntry[];
}

/** `select_closest_cond_frames`: all when unlimited, else the nearest before/after plus the closest. */
export function selectClosestCondFrames(
  frameIdx: number,
  condFrames: readonly number[],
  maxCondFrames: number,
): { selected: number[]; unselected: number[] } {
  const sorted = [...condFrames].sort((a, b) => a - b);
  if (maxCondFrames === -1 || sorted.length <= maxCondFrames) return { selected: sorted, unselected: [] };
  const selected: number[] = [];
  const before = sorted.filter((t) => t < frameIdx);
  const after = sorted.filter((t) => t >= frameIdx);
  if (before.length > 0) selected.push(before[before.length - 1]!);
  if (after.length > 0) selected.push(after[0]!);
  const remain = sorted
    .filter((t) => !selected.includes(t))
    .sort((a, b) => Math.abs(a - frameIdx) - Math.abs(b - frameIdx))
    .slice(0, maxCondFrames - selected.length);
  selected.push(...remain);
  return { selected, unselected: sorted.filter((t) => !selected.includes(t)) };
}

/**
 * The memory frames and object pointers for tracked frame `frameIdx` (not an initial conditioning
 * frame). `hasOutput(t)` says whether non-conditioning frame t has been tracked (in either pass).
 */
export function planMemory(
  config: BankConfig,
  opts: {
    frameIdx: number;
    reverse: boolean;
    numFrames: number;
    condFrames: readonly number[];
    hasOutput: (frame: number) => boolean;
  },
): MemoryPlan {
  const { frameIdx, reverse, numFrames } = opts;
  const { selected, unselected } = selectClosestCondFrames(
    frameIdx,
    opts.condFrames,
    config.max_cond_frames_in_attn,
  );
  const isAvailable = (t: number) =>
    (opts.hasOutput(t) && !opts.condFrames.includes(t)) || unselected.includes(t);
  const n = config.num_maskmem;
  const stride = config.memory_temporal_stride_for_eval;
  const memory: MemoryEntry[] = selected.map((frame) => ({ frame, tposRow: n - 1, isCond: true }));
  for (let tPos = 1; tPos < n; tPos++) {
    const tRel = n - tPos;
    let prev: number;
    if (tRel === 1) {
      prev = reverse ? frameIdx + tRel : frameIdx - tRel;
    } else if (!reverse) {
      prev = Math.floor((frameIdx - 2) / stride) * stride - (tRel - 2) * stride;
    } else {
      prev = -Math.floor(-(frameIdx + 2) / stride) * stride + (tRel - 2) * stride;
    }
    if (isAvailable(prev)) memory.push({ frame: prev, tposRow: n - tPos - 1, isCond: false });
  }
  const pointers: PointerEntry[] = [];
  if (config.use_obj_ptrs_in_encoder) {
    const maxPtrs = Math.min(numFrames, config.max_obj_ptrs_in_encoder);
    const tDiffMax = maxPtrs - 1;
    const sign = reverse ? -1 : 1;
    const pos = (offset: number) => (tDiffMax > 0 ? offset / tDiffMax : 0);
    const ptrCond = config.only_obj_ptrs_in_the_past_for_eval
      ? selected.filter((t) => (reverse ? t >= frameIdx : t <= frameIdx))
      : selected;
    for (const t of ptrCond) {
      const offset = config.use_signed_tpos_enc_to_obj_ptrs ? (frameIdx - t) * sign : Math.abs(frameIdx - t);
      pointers.push({ frame: t, offset, pos: pos(offset) });
    }
    for (let tDiff = 1; tDiff < maxPtrs; tDiff++) {
      const t = reverse ? frameIdx + tDiff : frameIdx - tDiff;
      if (t < 0 || t >= numFrames) break;
      if (isAvailable(t)) pointers.push({ frame: t, offset: tDiff, pos: pos(tDiff) });
    }
  }
  return { memory, pointers };
}

/** How far back (in frames) any plan can reach: frames farther than this can be dropped. */
export function bankReach(config: BankConfig): number {
  return Math.max(
    config.max_obj_ptrs_in_encoder,
    config.num_maskmem * config.memory_temporal_stride_for_eval + 2,
  );
}
