/**
 * Ingest: an image (JPEG, PNG, WebP), a video file (anything ffmpeg reads) or a folder of frames is
 * validated first (so bad input never reaches S3) and then stored content-addressed. Files stream
 * to S3 (multipart when large), so a large video is never held in memory.
 */
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { ArtifactRef } from '../../core/artifacts.js';
import { mapLimit } from '../../core/concurrency.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { BadMediaError } from './errors.js';
import type { ToolRunOptions } from './ffmpeg.js';
import { checkSize, DEFAULT_IMAGE_LIMITS, inspectImage, type ImageLimits } from './image.js';
import {
  imageContentTypes,
  imageExtensions,
  imageNameRe,
  probeVideo,
  readHead,
  sniffImageFormat,
  type ImageFormat,
  type VideoProbe,
} from './probe.js';

/** Key namespaces of ingested media. */
export const MediaNamespaces = {
  images: 'media/images',
  videos: 'media/videos',
  frames: 'media/frames',
  frameSets: 'media/frame-sets',
} as const;

export interface IngestedImage {
  kind: 'image';
  image: ArtifactRef;
  format: ImageFormat;
  width: number;
  height: number;
}

export interface IngestedVideo {
  kind: 'video';
  video: ArtifactRef;
  probe: VideoProbe;
}

/** One frame of a frame folder: `fid` is the integer of its file name (OK-VOS `00012.jpg` → 12). */
export interface FrameEntry {
  fid: number;
  name: string;
  ref: ArtifactRef;
}

/** The stored list of a frame folder's frames (a JSON artifact). */
export interface FrameSet {
  width: number;
  height: number;
  frames: FrameEntry[];
}

export interface IngestedFrames {
  kind: 'frames';
  /** The {@link FrameSet} JSON. */
  frameSet: ArtifactRef;
  frames: number;
  width: number;
  height: number;
}

export type IngestedMedia = IngestedImage | IngestedVideo | IngestedFrames;

/**
 * How long a video segflow takes (config `media.maxVideoSeconds`, `media.maxVideoFrames`): every
 * frame of a segmented video is extracted, stored and propagated, and the time of each step grows
 * with the frames; a longer video fails at ingest, before any of that starts.
 */
export interface VideoLimits {
  maxFrames: number;
  maxSeconds: number;
}

/** 20 minutes and 36,000 frames: twice the 10-minute 30 fps videos users run. */
export const DEFAULT_VIDEO_LIMITS: VideoLimits = { maxFrames: 36_000, maxSeconds: 1200 };

const LIMIT_KEYS =
  '(media.maxVideoSeconds, media.maxVideoFrames; env SEGFLOW_MEDIA_MAX_VIDEO_SECONDS, SEGFLOW_MEDIA_MAX_VIDEO_FRAMES)';

/** Fails, naming the limits and what to do, when a video is longer than `limits` allow. */
export function checkVideoLength(
  path: string,
  video: { frames: number; durationSec?: number | null; fps?: number | null },
  limits: VideoLimits = DEFAULT_VIDEO_LIMITS,
): void {
  const seconds = video.durationSec ?? (video.fps ? video.frames / video.fps : null);
  const tooLong = seconds !== null && seconds > limits.maxSeconds;
  if (!tooLong && video.frames <= limits.maxFrames) return;
  const length =
    seconds !== null
      ? `${(seconds / 60).toFixed(1)} minutes long (${video.frames} frames)`
      : `${video.frames} frames long`;
  throw new BadMediaError(
    path,
    `is ${length}; segflow takes videos of at most ${limits.maxSeconds} s and ${limits.maxFrames} frames ` +
      `${LIMIT_KEYS}: cut it first (e.g. \`ffmpeg -i in.mp4 -t ${limits.maxSeconds} -c copy out.mp4\`) or raise the limits`,
    undefined,
    { frames: video.frames, seconds, ...limits },
  );
}

export interface IngestOptions extends ToolRunOptions {
  limits?: ImageLimits;
  /** @default DEFAULT_VIDEO_LIMITS */
  video?: VideoLimits;
  /** Parallel frame uploads of a frame folder. @default 4 */
  concurrency?: number;
  /** Progress (frames stored, or bytes uploaded), for heartbeats. */
  onProgress?: (done: number, total: number) => void;
}

const videoContentTypes: Record<string, string> = {
  '.mp4': 'video/mp4',
  '.m4v': 'video/mp4',
  '.mov': 'video/quicktime',
  '.webm': 'video/webm',
  '.mkv': 'video/x-matroska',
  '.avi': 'video/x-msvideo',
};

/** Ingests whatever `path` is: a folder of frames, an image (by its magic bytes) or a video. */
export async function ingestMedia(
  store: ArtifactStore,
  path: string,
  opts: IngestOptions = {},
): Promise<IngestedMedia> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new BadMediaError(path, 'does not exist', err);
  }
  if (st.isDirectory()) return ingestFrameFolder(store, path, opts);
  const format = sniffImageFormat(await readHead(path));
  if (format || imageNameRe.test(path)) return ingestImage(store, path, opts);
  return ingestVideo(store, path, opts);
}

/** Validates an image (format, size, full decode) and stores it content-addressed. */
export async function ingestImage(
  store: ArtifactStore,
  path: string,
  opts: IngestOptions = {},
): Promise<IngestedImage> {
  const info = await inspectImage(path, opts.limits ?? DEFAULT_IMAGE_LIMITS);
  const image = await store.putFileContentAddressed(
    MediaNamespaces.images,
    path,
    imageContentTypes[info.format],
    imageExtensions[info.format],
  );
  return { kind: 'image', image, format: info.format, width: info.width, height: info.height };
}

/** Probes a video (it must have frames and not be truncated) and streams it to S3 content-addressed. */
export async function ingestVideo(
  store: ArtifactStore,
  path: string,
  opts: IngestOptions = {},
): Promise<IngestedVideo> {
  const probe = await probeVideo(path, opts);
  checkSize(path, probe.width, probe.height, opts.limits ?? DEFAULT_IMAGE_LIMITS);
  checkVideoLength(path, probe, opts.video);
  opts.onProgress?.(0, 1);
  const ext = extname(path).toLowerCase();
  const video = await store.putFileContentAddressed(
    MediaNamespaces.videos,
    path,
    videoContentTypes[ext] ?? 'application/octet-stream',
    ext.replace(/^\./, '') || 'bin',
    opts.onProgress ? { onProgress: opts.onProgress } : {},
  );
  return { kind: 'video', video, probe };
}

/** The image files of a frame folder in frame order, with their frame ids. */
export async function listFrameFiles(
  dir: string,
  /** Only these frames (names without extension, e.g. OK-VOS `images`), each of which must exist. */
  only?: readonly string[],
): Promise<{ fid: number; name: string; path: string }[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => imageNameRe.test(n)).sort();
  } catch (err) {
    throw new BadMediaError(
      dir,
      'is not a readable folder of frames (it does not exist or is not a folder)',
      err,
    );
  }
  if (only) {
    const byStem = new Map(names.map((n) => [n.replace(imageNameRe, ''), n]));
    const missing = only.filter((s) => !byStem.has(s));
    if (missing.length > 0) {
      throw new BadMediaError(
        dir,
        `has no image file for frames ${JSON.stringify(missing.slice(0, 10))}${missing.length > 10 ? '…' : ''}`,
      );
    }
    names = [...only].sort().map((s) => byStem.get(s)!);
  }
  if (names.length === 0)
    throw new BadMediaError(dir, 'contains zero frames (no .jpg, .jpeg, .png or .webp files)');
  const stems = names.map((n) => n.replace(imageNameRe, ''));
  const numeric = stems.every((s) => /^\d+$/.test(s));
  return names.map((name, i) => ({ fid: numeric ? Number(stems[i]) : i, name, path: join(dir, name) }));
}

/** Validates every frame (same size, decodable) and stores them plus a {@link FrameSet} manifest. */
export async function ingestFrameFolder(
  store: ArtifactStore,
  dir: string,
  opts: IngestOptions & { only?: readonly string[] } = {},
): Promise<IngestedFrames> {
  const files = await listFrameFiles(dir, opts.only);
  checkVideoLength(dir, { frames: files.length }, opts.video);
  const limits = opts.limits ?? DEFAULT_IMAGE_LIMITS;
  let done = 0;
  const infos = await mapLimit(files, opts.concurrency ?? 4, (f) => inspectImage(f.path, limits));
  const { width, height } = infos[0]!;
  infos.forEach((info, i) => {
    if (info.width !== width || info.height !== height) {
      throw new BadMediaError(
        files[i]!.path,
        `is ${info.width}×${info.height} but the folder's first frame ${files[0]!.name} is ${width}×${height}; all frames must have one size`,
      );
    }
  });
  const frames = await mapLimit(files, opts.concurrency ?? 4, async (f, i) => {
    const fmt = infos[i]!.format;
    const ref = await store.putFileContentAddressed(
      MediaNamespaces.frames,
      f.path,
      imageContentTypes[fmt],
      imageExtensions[fmt],
    );
    opts.onProgress?.(++done, files.length);
    return { fid: f.fid, name: f.name, ref };
  });
  const set: FrameSet = { width, height, frames };
  const frameSet = await store.putContentAddressed(
    MediaNamespaces.frameSets,
    Buffer.from(JSON.stringify(set)),
    'application/json',
    'json',
  );
  return { kind: 'frames', frameSet, frames: frames.length, width, height };
}
