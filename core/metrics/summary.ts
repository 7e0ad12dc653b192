/**
 * Aggregations of per-frame scores: per query, per ability and overall J&F (OK-VOS,
 * `eval_okvos.py`), DAVIS mean/recall/decay (`davis2017/utils.py::db_statistics`), and the
 * reasoning-segmentation gIoU/cIoU with the LISA or Seg-Zero empty-union convention (spec §13.2).
 * Means use NumPy's pairwise summation so results match the Python reference bit for bit.
 */
import { npMean, npNanMean } from './numpy.js';

/** J and F of one query: means over all its annotated frames. */
export interface QueryScore {
  id: string;
  ability: string;
  J: number;
  F: number;
}

/** `(mean J + mean F) / 2` of per-frame values. */
export function queryScore(
  id: string,
  ability: string,
  frames: readonly { J: number; F: number }[],
): QueryScore {
  return { id, ability, J: npMean(frames.map((f) => f.J)), F: npMean(frames.map((f) => f.F)) };
}

export interface JFSummary {
  J: number;
  F: number;
  JF: number;
  count: number;
}

function summarise(queries: readonly QueryScore[]): JFSummary {
  const J = npMean(queries.map((q) => q.J));
  const F = npMean(queries.map((q) => q.F));
  return { J, F, JF: (J + F) / 2, count: queries.length };
}

/** The abilities `eval_okvos.py` reports one by one; `in-video` only enters the overall numbers. */
export const REPORTED_ABILITIES = ['one-hop', 'multi-hop', 'relational'] as const;

/**
 * Per-ability and overall J, F and J&F = (J + F) / 2, each query weighted equally (spec §9.1).
 * An ability with no query has NaN values (NumPy's mean of an empty list).
 */
export function summariseByAbility(
  queries: readonly QueryScore[],
  abilities: readonly string[] = REPORTED_ABILITIES,
): { perAbility: Record<string, JFSummary>; overall: JFSummary } {
  const perAbility: Record<string, JFSummary> = {};
  for (const a of abilities) perAbility[a] = summarise(queries.filter((q) => q.ability === a));
  return { perAbility, overall: summarise(queries) };
}

/** DAVIS per-object statistics of a per-frame measure. */
export interface DavisStatistics {
  /** nanmean over frames. */
  mean: number;
  /** Fraction of frames with value > 0.5 (NaN frames count as not above). */
  recall: number;
  /** mean(first quarter) − mean(last quarter). */
  decay: number;
}

/**
 * `db_statistics(per_frame_values)`, including its exact binning: bin edges are
 * `round(linspace(1, n, 5) + 1e-10) − 1` (round half to even) cast to uint8 — so they wrap
 * modulo 256 for videos longer than 256 frames, as in the reference — and bin i is the inclusive
 * slice `[ids[i], ids[i+1]]`.
 */
export function davisStatistics(values: readonly number[]): DavisStatistics {
  const n = values.length;
  const mean = npNanMean(values);
  const above = values.map((v) => (v > 0.5 ? 1 : 0));
  const recall = npMean(above);
  const ids: number[] = [];
  const step = (n - 1) / 4;
  for (let i = 0; i <= 4; i++) {
    const x = i === 4 ? n : i * step + 1;
    ids.push((roundHalfEven(x + 1e-10) - 1) & 0xff);
  }
  const bin = (i: number): number[] => {
    const start = ids[i] ?? 0;
    const end = ((ids[i + 1] ?? 0) + 1) & 0xff;
    return values.slice(Math.min(start, n), Math.min(end, n));
  };
  const decay = npNanMean(bin(0)) - npNanMean(bin(3));
  return { mean, recall, decay };
}

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Intersection and union of one reasoning-segmentation sample (pixels). */
export interface IntersectionUnion {
  intersection: number;
  union: number;
}

/**
 * How a sample whose union is 0 (empty ground truth and empty prediction) counts in gIoU:
 * - `lisa`: IoU 1 (LISA's `acc_iou[union == 0] += 1.0`);
 * - `segzero`: IoU 0 (Seg-Zero's `calculate_iou.py` guard);
 * - `skip`: left out of gIoU and cIoU (Seg-Zero's `evaluation.py`, which does not write such a sample).
 */
export type EmptyUnionConvention = 'lisa' | 'segzero' | 'skip';

export interface ReasonSegSettings {
  /** @default 'lisa' */
  emptyUnion: EmptyUnionConvention;
  /**
   * Added to the union in the per-sample IoU (LISA uses 1e-5; Seg-Zero divides exactly).
   * @default 0
   */
  iouEpsilon: number;
  /**
   * Added to ΣU in cIoU (LISA uses 1e-10).
   * @default 0
   */
  ciouEpsilon: number;
}

/** LISA's conventions exactly (`utils.py::intersectionAndUnionGPU`, `train_ds.py::validate`). */
export const LISA_CONVENTION: ReasonSegSettings = {
  emptyUnion: 'lisa',
  iouEpsilon: 1e-5,
  ciouEpsilon: 1e-10,
};
/** Seg-Zero's `calculate_iou.py` (U = 0 → 0). */
export const SEGZERO_CONVENTION: ReasonSegSettings = { emptyUnion: 'segzero', iouEpsilon: 0, ciouEpsilon: 0 };

/**
 * gIoU = mean of per-sample IoU, cIoU = ΣI / ΣU. A sample the policy could not parse should be
 * passed as `{intersection: 0, union: |GT|}` (Seg-Zero's penalty). NaN when nothing is counted.
 */
export function reasonSegScores(
  samples: readonly IntersectionUnion[],
  settings: ReasonSegSettings = LISA_CONVENTION,
): { gIoU: number; cIoU: number; counted: number; skipped: number } {
  const ious: number[] = [];
  let sumI = 0;
  let sumU = 0;
  let skipped = 0;
  for (const s of samples) {
    if (s.union === 0 && settings.emptyUnion === 'skip') {
      skipped++;
      continue;
    }
    let iou = s.intersection / (s.union + settings.iouEpsilon);
    if (s.union === 0) iou = settings.emptyUnion === 'lisa' ? 1 : 0;
    ious.push(iou);
    sumI += s.intersection;
    sumU += s.union;
  }
  // LISA's AverageMeter and Seg-Zero's loop both sum in order.
  let sum = 0;
  for (const v of ious) sum += v;
  const gIoU = ious.length === 0 ? NaN : sum / ious.length;
  const cIoU = sumI / (sumU + settings.ciouEpsilon);
  return { gIoU, cIoU, counted: ious.length, skipped };
}

/** Intersection and union of a predicted mask against a ground-truth mask; `ignore` pixels (non-zero) are left out. */
export function maskIntersectionUnion(
  pred: Uint8Array,
  gt: Uint8Array,
  ignore?: Uint8Array,
): IntersectionUnion {
  let intersection = 0;
  let union = 0;
  for (let i = 0; i < gt.length; i++) {
    if (ignore !== undefined && ignore[i] !== 0) continue;
    const p = pred[i] !== 0;
    const g = gt[i] !== 0;
    if (p && g) intersection++;
    if (p || g) union++;
  }
  return { intersection, union };
}
