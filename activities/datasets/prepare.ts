/**
 * `segr dataset prepare`: any dataset's samples become per-sample records in S3 (spec §2): the
 * media ingested content-addressed, K frames sampled (integer linspace; the anchor rule for
 * training), each at original and policy size, the ground truth computed from the masks by
 * core/groundtruth, and all annotated masks kept as one RLE mask sequence for evaluation.
 * Records and the dataset index are content-addressed JSON: preparing the same data twice gives
 * the same keys. The index is written last, so a failed preparation registers nothing as complete.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArtifactRef } from '../../core/artifacts.js';
import { mapLimit } from '../../core/concurrency.js';
import { buildSampleGroundTruth, type GroundTruthCoordinates } from '../../core/groundtruth/index.js';
import type { SampleGroundTruth } from '../../core/rewards/terms.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { BadMediaError } from '../media/errors.js';
import { storePolicyCopy, storeVideoFrames, type StoredFrame } from '../media/frame-store.js';
import { DEFAULT_PATCH_FACTOR, policyFrameSize } from '../media/image.js';
import {
  ingestFrameFolder,
  ingestImage,
  ingestVideo,
  type FrameSet,
  type IngestedMedia,
  type VideoLimits,
} from '../media/ingest.js';
import { maskArea, readBinaryMask, toMaskSequence, type BinaryMask } from '../media/masks.js';
import { DEFAULT_SAMPLED_FRAMES, sampleFrames } from '../media/sampling.js';
import type { ToolRunOptions } from '../media/ffmpeg.js';
import { rasteriseShapes } from './polygon.js';
import type { DatasetFormat, DatasetSample } from './types.js';

export const DatasetNamespaces = {
  samples: 'datasets/samples',
  masks: 'datasets/masks',
  indexes: 'datasets/indexes',
} as const;

/** One prepared sample, as stored in S3 (`datasets/samples/sha256/…json`). */
export interface PreparedSample {
  schema: 'segflow.sample/1';
  id: string;
  format: DatasetFormat;
  split: string;
  ability: string | null;
  /** `Search_RVOS_{ability}` for OK-VOS (the reference's data_source). */
  dataSource: string;
  question: string;
  steps?: string[];
  media: IngestedMedia;
  /** Original frame size. */
  width: number;
  height: number;
  totalFrames: number;
  /** Sampled frame positions (0-based, sorted). */
  sampledIndices: number[];
  /** Training: the annotated frame forced into the sample; null otherwise. */
  anchor: number | null;
  frames: StoredFrame[];
  policySize: { width: number; height: number };
  /** `reward_model.ground_truth` before json.dumps: frame id → bbox_2d, point_2d, area, max_conn_area. */
  groundTruth: SampleGroundTruth;
  /** All annotated frames' target masks (a MaskSequence JSON, index = frame position), or null. */
  masks: ArtifactRef | null;
  /** Regions to ignore in evaluation (LISA "ignore" polygons), or null. */
  ignore: ArtifactRef | null;
  origin: string;
}

/** The prepared dataset (`datasets/indexes/sha256/…json`): what training and evaluation read. */
export interface PreparedDatasetIndex {
  schema: 'segflow.dataset/1';
  format: DatasetFormat;
  split: string;
  source: string;
  options: { frames: number; patchFactor: number; coordinates: GroundTruthCoordinates; anchor: boolean };
  samples: { id: string; ability: string | null; ref: ArtifactRef }[];
}

export interface PrepareOptions extends ToolRunOptions {
  /** K. @default 6 */
  frames?: number;
  /** @default 32 (Qwen3-VL) */
  patchFactor?: number;
  /** Ground-truth coordinates. @default Qwen3-VL 0–1000 */
  coordinates?: GroundTruthCoordinates;
  /** Apply the training anchor rule. @default split === "train" */
  anchor?: boolean;
  /** Samples prepared at once. @default 2 */
  concurrency?: number;
  /** The longest video taken (config media.*). @default DEFAULT_VIDEO_LIMITS */
  video?: VideoLimits;
  onSample?: (done: number, total: number, id: string) => void;
}

interface FrameInfo {
  index: number;
  fid: number;
  name: string;
}

/** Mask files of an annotation folder by frame: `<frame name>.png`, else by the integer of the stem. */
async function maskFiles(dir: string): Promise<{ byName: Map<string, string>; byFid: Map<number, string> }> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.png$/i.test(n));
  } catch (err) {
    throw new BadMediaError(dir, 'missing annotation: the mask folder does not exist', err);
  }
  if (names.length === 0)
    throw new BadMediaError(dir, 'missing annotation: the mask folder has no .png masks');
  const byName = new Map<string, string>();
  const byFid = new Map<number, string>();
  for (const n of names) {
    const stem = n.replace(/\.png$/i, '');
    byName.set(stem, join(dir, n));
    if (/^\d+$/.test(stem)) byFid.set(Number(stem), join(dir, n));
  }
  return { byName, byFid };
}

async function checkedMask(
  path: string,
  rule: 'nonzero' | 'eq255',
  width: number,
  height: number,
): Promise<BinaryMask> {
  const m = await readBinaryMask(path, rule);
  if (m.width !== width || m.height !== height) {
    throw new BadMediaError(
      path,
      `is ${m.width}×${m.height} but its frames are ${width}×${height}; a mask must have its frame's size`,
    );
  }
  return m;
}

/** Masks of every frame (null: no mask file) and, for polygons, the ignore region. */
async function loadMasks(
  sample: DatasetSample,
  frames: readonly FrameInfo[],
  width: number,
  height: number,
): Promise<{ masks: (BinaryMask | null)[]; ignore: BinaryMask | null }> {
  const a = sample.annotation;
  switch (a.kind) {
    case 'none':
      return { masks: frames.map(() => null), ignore: null };
    case 'mask-file':
      return { masks: [await checkedMask(a.path, a.rule, width, height)], ignore: null };
    case 'polygons': {
      const { target, ignore } = rasteriseShapes(a.shapes, width, height);
      const ign = ignore.some((v) => v) ? { width, height, data: ignore } : null;
      return { masks: [{ width, height, data: target }], ignore: ign };
    }
    case 'mask-folder': {
      const files = await maskFiles(a.dir);
      const masks = await mapLimit(frames, 4, async (f) => {
        const path = files.byName.get(f.name) ?? files.byFid.get(f.fid);
        return path ? checkedMask(path, a.rule, width, height) : null;
      });
      if (masks.every((m) => m === null)) {
        throw new BadMediaError(
          a.dir,
          `missing annotation: none of its masks belongs to a frame of ${sample.origin}`,
        );
      }
      return { masks, ignore: null };
    }
  }
}

function dataSourceOf(sample: DatasetSample): string {
  if (sample.format === 'okvos') return `Search_RVOS_${sample.ability}`;
  if (sample.format === 'reasonseg') return 'ReasonSeg';
  return `manifest_${sample.ability ?? 'unknown'}`;
}

/** Prepares one sample and stores its record; returns the record's ref. */
export async function prepareSample(
  store: ArtifactStore,
  sample: DatasetSample,
  opts: PrepareOptions = {},
): Promise<{ ref: ArtifactRef; record: PreparedSample }> {
  const count = opts.frames ?? DEFAULT_SAMPLED_FRAMES;
  const patchFactor = opts.patchFactor ?? DEFAULT_PATCH_FACTOR;
  const coordinates = opts.coordinates ?? { kind: 'qwen3vl', scale: 1000 };
  const useAnchor = opts.anchor ?? sample.split === 'train';

  // 1. Media, validated and stored.
  let media: IngestedMedia;
  let frames: FrameInfo[];
  let width: number;
  let height: number;
  let frameSet: FrameSet | undefined;
  if (sample.media.kind === 'frames') {
    media = await ingestFrameFolder(store, sample.media.dir, {
      ...opts,
      ...(sample.media.images ? { only: sample.media.images } : {}),
    });
    frameSet = await store.getJson<FrameSet>(media.frameSet.uri);
    frames = frameSet.frames.map((f, index) => ({ index, fid: f.fid, name: f.name.replace(/\.[^.]+$/, '') }));
    ({ width, height } = media);
  } else if (sample.media.kind === 'video') {
    media = await ingestVideo(store, sample.media.path, opts);
    frames = Array.from({ length: media.probe.frames }, (_, index) => ({
      index,
      fid: index,
      name: String(index).padStart(5, '0'),
    }));
    ({ width, height } = media.probe);
  } else {
    media = await ingestImage(store, sample.media.path, opts);
    frames = [{ index: 0, fid: 0, name: '0' }];
    ({ width, height } = media);
  }

  // 2. Masks of every frame; the training anchor comes from frames where the target is visible.
  const { masks, ignore } = await loadMasks(sample, frames, width, height);
  const visible = frames.filter((_, i) => masks[i] && maskArea(masks[i]!) > 0).map((f) => f.index);
  if (useAnchor && frames.length > count && visible.length === 0) {
    const where = sample.annotation.kind === 'mask-folder' ? sample.annotation.dir : sample.origin;
    throw new BadMediaError(
      where,
      `missing annotation: no frame of training sample ${sample.id} shows the target, so the anchor rule cannot apply`,
    );
  }
  const { indices, anchor } = sampleFrames({
    total: frames.length,
    count,
    ...(useAnchor
      ? { anchorCandidates: visible, seed: `${sample.format}:${sample.split}:${sample.id}` }
      : {}),
  });

  // 3. Sampled frames at original and policy size.
  let stored: StoredFrame[];
  if (media.kind === 'video') {
    stored = await storeVideoFrames(
      store,
      { path: (sample.media as { path: string }).path, sha256: media.video.sha256 },
      indices,
      {
        ...opts,
        probe: media.probe,
        patchFactor,
      },
    );
  } else if (media.kind === 'frames') {
    stored = [];
    for (const i of indices) {
      const entry = frameSet!.frames[i]!;
      const policy = await storePolicyCopy(
        store,
        entry.ref,
        await store.getBytes(entry.ref.uri),
        patchFactor,
      );
      stored.push({ index: i, fid: entry.fid, original: entry.ref, policy });
    }
  } else {
    const policy = await storePolicyCopy(
      store,
      media.image,
      (sample.media as { path: string }).path,
      patchFactor,
    );
    stored = [{ index: 0, fid: 0, original: media.image, policy }];
  }

  // 4. Ground truth by core/groundtruth over the sampled frames; masks kept for evaluation.
  const groundTruth = buildSampleGroundTruth(
    indices.map((i) => ({ frameId: frames[i]!.fid, mask: masks[i] ?? null })),
    coordinates,
  );
  const annotated = frames.flatMap((f, i) =>
    masks[i] ? [[f.index, masks[i]!] as [number, BinaryMask]] : [],
  );
  const putSeq = async (entries: [number, BinaryMask][]) =>
    store.putContentAddressed(
      DatasetNamespaces.masks,
      Buffer.from(JSON.stringify(toMaskSequence(width, height, entries))),
      'application/json',
      'json',
    );
  const record: PreparedSample = {
    schema: 'segflow.sample/1',
    id: sample.id,
    format: sample.format,
    split: sample.split,
    ability: sample.ability,
    dataSource: dataSourceOf(sample),
    question: sample.question,
    ...(sample.steps ? { steps: sample.steps } : {}),
    media,
    width,
    height,
    totalFrames: frames.length,
    sampledIndices: indices,
    anchor: anchor ?? null,
    frames: stored,
    policySize: policyFrameSize(patchFactor),
    groundTruth,
    masks: annotated.length > 0 ? await putSeq(annotated) : null,
    ignore: ignore ? await putSeq([[0, ignore]]) : null,
    origin: sample.origin,
  };
  const ref = await store.putContentAddressed(
    DatasetNamespaces.samples,
    Buffer.from(JSON.stringify(record)),
    'application/json',
    'json',
  );
  return { ref, record };
}

/** Prepares every sample, then writes the dataset index (only when all succeeded). */
export async function prepareDataset(
  store: ArtifactStore,
  samples: readonly DatasetSample[],
  meta: { format: DatasetFormat; split: string; source: string },
  opts: PrepareOptions = {},
): Promise<{ index: ArtifactRef; samples: number }> {
  if (samples.length === 0) throw new BadMediaError(meta.source, 'has no samples to prepare');
  let done = 0;
  const refs = await mapLimit(samples, opts.concurrency ?? 2, async (s) => {
    const { ref } = await prepareSample(store, s, opts);
    opts.onSample?.(++done, samples.length, s.id);
    return { id: s.id, ability: s.ability, ref };
  });
  const index: PreparedDatasetIndex = {
    schema: 'segflow.dataset/1',
    format: meta.format,
    split: meta.split,
    source: meta.source,
    options: {
      frames: opts.frames ?? DEFAULT_SAMPLED_FRAMES,
      patchFactor: opts.patchFactor ?? DEFAULT_PATCH_FACTOR,
      coordinates: opts.coordinates ?? { kind: 'qwen3vl', scale: 1000 },
      anchor: opts.anchor ?? meta.split === 'train',
    },
    samples: refs,
  };
  const ref = await store.putContentAddressed(
    DatasetNamespaces.indexes,
    Buffer.from(JSON.stringify(index)),
    'application/json',
    'json',
  );
  return { index: ref, samples: refs.length };
}
