/**
 * The media role's activities (task queue `segflow-media`). Each takes and returns small JSON with
 * ArtifactRefs, never bytes; inputs are validated with zod at this edge; long ones heartbeat and
 * stop ffmpeg when the activity is cancelled; failures are typed (media/errors.ts) and leave as
 * ApplicationFailures whose type says whether a retry can help (bad media: never).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { artifactRefSchema, type ArtifactRef } from '../../core/artifacts.js';
import { currentActivity, heartbeat, parseActivityInput } from '../edge.js';
import { ArtifactNotFoundError, type ArtifactStore } from '../storage/artifact-store.js';
import { BadMediaError } from './errors.js';
import {
  derivedKey,
  storeKeyframe,
  storePolicyCopy,
  storeVideoFrames,
  type StoredFrame,
} from './frame-store.js';
import { extractFrames } from './frames.js';
import { DEFAULT_PATCH_FACTOR, encodeImage, inspectImage } from './image.js';
import {
  DEFAULT_VIDEO_LIMITS,
  ingestMedia,
  MediaNamespaces,
  type FrameSet,
  type IngestedMedia,
  type VideoLimits,
} from './ingest.js';
import { maskSequenceLookup, readBinaryMask, type BinaryMask, type MaskSequence } from './masks.js';
import { overlayPng, overlayVideoFile, type MaskSource } from './overlay.js';
import { probeVideo, readHead, sniffImageFormat, type MediaProbe } from './probe.js';
import { DEFAULT_SAMPLED_FRAMES, linspaceIndices, sampleWithAnchor } from './sampling.js';

export interface MediaActivityDeps {
  store: ArtifactStore;
  /** The least time an ffmpeg call gets (config media.ffmpegMinTimeoutMs). @default 600000 */
  toolTimeoutMs?: number;
  /** ffmpeg time per frame a call decodes, on top (config media.ffmpegMsPerFrame). @default 50 */
  msPerFrame?: number;
  /** The longest video ingested (config media.maxVideoSeconds / maxVideoFrames). @default DEFAULT_VIDEO_LIMITS */
  video?: VideoLimits;
}

const ingestedSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('image'),
    image: artifactRefSchema,
    format: z.string(),
    width: z.number(),
    height: z.number(),
  }),
  z.object({
    kind: z.literal('video'),
    video: artifactRefSchema,
    probe: z.object({ frames: z.number().int().min(1) }).passthrough(),
  }),
  z.object({
    kind: z.literal('frames'),
    frameSet: artifactRefSchema,
    frames: z.number().int().min(1),
    width: z.number(),
    height: z.number(),
  }),
]);

export const mediaInputs = {
  ingest: z.strictObject({ source: z.string().min(1) }),
  probe: z.strictObject({ media: artifactRefSchema }),
  sampleFrames: z.strictObject({
    media: ingestedSchema,
    count: z.number().int().min(1).max(512).default(DEFAULT_SAMPLED_FRAMES),
    patchFactor: z.number().int().min(1).default(DEFAULT_PATCH_FACTOR),
    /** Training: a frame position that must be among the sampled ones (spec §2 anchor rule). */
    anchor: z.number().int().min(0).optional(),
  }),
  extractFrames: z.strictObject({
    video: artifactRefSchema,
    indices: z.union([z.literal('all'), z.array(z.number().int().min(0)).min(1)]),
  }),
  keyframe: z.strictObject({ frame: artifactRefSchema }),
  overlayImage: z.strictObject({ image: artifactRefSchema, mask: artifactRefSchema }),
  overlayVideo: z
    .strictObject({
      video: artifactRefSchema,
      /** A stored MaskSequence (RLE masks of every frame, read whole). */
      masks: artifactRefSchema.optional(),
      /**
       * Or the video segmenter's manifest: each frame's PNG mask is read from S3 as the encoder
       * reaches it (a few frames ahead), so memory does not grow with the video's length.
       */
      manifest: artifactRefSchema.optional(),
      fps: z.number().positive().optional(),
    })
    .refine((v) => (v.masks === undefined) !== (v.manifest === undefined), {
      message: 'give either masks or manifest',
    }),
};

export interface SampledFrames {
  /** Frames in the source. */
  total: number;
  /** The sampled positions, sorted. */
  indices: number[];
  frames: StoredFrame[];
}

/** Frames read ahead of the encoder when masks stream from S3. */
const MASKS_AHEAD = 8;

/**
 * The masks of a video segmenter manifest, read from S3 as the encoder asks for them in frame
 * order, up to {@link MASKS_AHEAD} frames ahead: memory holds a few masks whatever the video's
 * length. A frame without a stored mask has none (it was not segmented).
 */
async function streamedMasks(store: ArtifactStore, manifest: ArtifactRef): Promise<MaskSource> {
  const doc = await store.getInputJson<{ frames?: { frame: number; mask: string }[] }>(
    manifest.uri,
    'segmentation manifest',
  );
  if (!Array.isArray(doc?.frames)) {
    throw new BadMediaError(manifest.uri, 'is not a segmentation manifest (it lists no frames)');
  }
  const uris = new Map(doc.frames.map((f) => [f.frame, f.mask]));
  const pending = new Map<number, Promise<BinaryMask | undefined>>();
  const load = async (uri: string): Promise<BinaryMask | undefined> => {
    try {
      return await readBinaryMask(await store.getBytes(uri));
    } catch (err) {
      if (err instanceof ArtifactNotFoundError) return undefined;
      throw err;
    }
  };
  return (index) => {
    for (const k of pending.keys()) if (k < index) pending.delete(k);
    for (let i = index; i <= index + MASKS_AHEAD; i++) {
      const uri = uris.get(i);
      if (uri === undefined || pending.has(i)) continue;
      const p = load(uri);
      p.catch(() => {}); // awaited when its frame comes; a read-ahead past the end is dropped
      pending.set(i, p);
    }
    const mask = pending.get(index);
    pending.delete(index);
    return mask ?? undefined;
  };
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'segflow-media-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function createMediaActivities(deps: MediaActivityDeps) {
  const { store } = deps;
  // An ffmpeg run's time limit fits its work: the minimum, plus a budget per frame it decodes, so
  // a 20-minute video gets as long as it needs and a hung decoder is still killed.
  const toolOpts = (frames = 0) => {
    const ctx = currentActivity();
    return {
      timeoutMs: Math.max(deps.toolTimeoutMs ?? 600_000, frames * (deps.msPerFrame ?? 50)),
      ...(ctx ? { signal: ctx.cancellationSignal } : {}),
    };
  };

  async function localCopy(ref: ArtifactRef, dir: string, name: string): Promise<string> {
    const path = join(dir, name);
    await store.downloadToFile(ref, path);
    return path;
  }

  return {
    /** Validates and stores a local file / folder (or re-ingests an s3:// object) content-addressed. */
    async mediaIngest(input: z.input<typeof mediaInputs.ingest>): Promise<IngestedMedia> {
      const { source } = parseActivityInput(mediaInputs.ingest, input, 'mediaIngest');
      const onProgress = (done: number, total: number) => heartbeat({ done, total });
      const video = deps.video ?? DEFAULT_VIDEO_LIMITS;
      if (!source.startsWith('s3://'))
        return ingestMedia(store, source, { ...toolOpts(), onProgress, video });
      const ref = await store.head(source);
      if (!ref) throw new BadMediaError(source, 'does not exist in the artifact store');
      return withTempDir(async (dir) => {
        const path = await localCopy(ref, dir, source.split('/').pop() ?? 'media');
        return ingestMedia(store, path, { ...toolOpts(), onProgress, video });
      });
    },

    /** `{width, height, fps, frames, codec}` of a stored image or video. */
    async mediaProbe(input: z.input<typeof mediaInputs.probe>): Promise<MediaProbe> {
      const { media } = parseActivityInput(mediaInputs.probe, input, 'mediaProbe');
      return withTempDir(async (dir) => {
        const path = await localCopy(media, dir, 'media');
        if (sniffImageFormat(await readHead(path))) {
          const info = await inspectImage(path);
          return { width: info.width, height: info.height, fps: null, frames: 1, codec: info.format };
        }
        const { width, height, fps, frames, codec } = await probeVideo(path, toolOpts());
        return { width, height, fps, frames, codec };
      });
    },

    /**
     * K frames by integer linspace (with the training anchor when given), each stored at original
     * size and at the policy size (448², patch-rounded).
     */
    async mediaSampleFrames(input: {
      media: IngestedMedia;
      /** K. @default 6 */
      count?: number;
      /** @default 32 */
      patchFactor?: number;
      anchor?: number;
    }): Promise<SampledFrames> {
      const args = parseActivityInput(mediaInputs.sampleFrames, input, 'mediaSampleFrames');
      const media = args.media as IngestedMedia;
      const pick = (total: number) =>
        args.anchor === undefined
          ? linspaceIndices(total, args.count)
          : sampleWithAnchor(total, args.count, args.anchor);
      if (media.kind === 'image') {
        const bytes = await store.getBytes(media.image.uri);
        const policy = await storePolicyCopy(store, media.image, bytes, args.patchFactor);
        return { total: 1, indices: [0], frames: [{ index: 0, fid: 0, original: media.image, policy }] };
      }
      if (media.kind === 'frames') {
        const set = await store.getJson<FrameSet>(media.frameSet.uri);
        const indices = pick(set.frames.length);
        const frames: StoredFrame[] = [];
        for (const i of indices) {
          const entry = set.frames[i]!;
          const policy = await storePolicyCopy(
            store,
            entry.ref,
            await store.getBytes(entry.ref.uri),
            args.patchFactor,
          );
          frames.push({ index: i, fid: entry.fid, original: entry.ref, policy });
          heartbeat({ frame: i });
        }
        return { total: set.frames.length, indices, frames };
      }
      const total = media.probe.frames;
      const indices = pick(total);
      return withTempDir(async (dir) => {
        const path = await localCopy(media.video, dir, 'video');
        const frames = await storeVideoFrames(store, { path, sha256: media.video.sha256 }, indices, {
          ...toolOpts(total),
          probe: media.probe,
          patchFactor: args.patchFactor,
          onFrame: (index) => heartbeat({ frame: index }),
        });
        return { total, indices, frames };
      });
    },

    /** Frames of a stored video (all, or given indices) to S3 as JPEG, listed in a FrameSet. */
    async mediaExtractFrames(
      input: z.input<typeof mediaInputs.extractFrames>,
    ): Promise<{ frameSet: ArtifactRef; frames: number; width: number; height: number }> {
      const { video, indices } = parseActivityInput(mediaInputs.extractFrames, input, 'mediaExtractFrames');
      return withTempDir(async (dir) => {
        const path = await localCopy(video, dir, 'video');
        const probe = await probeVideo(path, toolOpts());
        const frames: FrameSet['frames'] = [];
        for await (const frame of extractFrames(path, indices, { ...toolOpts(probe.frames), probe })) {
          const bytes = await encodeImage({
            raw: frame.rgb,
            width: frame.width,
            height: frame.height,
            channels: 3,
          });
          const key = derivedKey(video.sha256, `frames/orig/${String(frame.index).padStart(6, '0')}.jpg`);
          frames.push({
            fid: frame.index,
            name: `${String(frame.index).padStart(5, '0')}.jpg`,
            ref: await store.putBytes(key, bytes, 'image/jpeg'),
          });
          heartbeat({ frame: frame.index });
        }
        const set: FrameSet = { width: probe.width, height: probe.height, frames };
        const frameSet = await store.putContentAddressed(
          MediaNamespaces.frameSets,
          Buffer.from(JSON.stringify(set)),
          'application/json',
          'json',
        );
        return { frameSet, frames: frames.length, width: probe.width, height: probe.height };
      });
    },

    /** The 864×864 high-res copy of a stored frame (the keyframe observation). */
    async mediaKeyframe(input: z.input<typeof mediaInputs.keyframe>): Promise<ArtifactRef> {
      const { frame } = parseActivityInput(mediaInputs.keyframe, input, 'mediaKeyframe');
      return storeKeyframe(store, frame);
    },

    /** A PNG mask (0/255) tinted over its image, as PNG. */
    async mediaOverlayImage(input: z.input<typeof mediaInputs.overlayImage>): Promise<ArtifactRef> {
      const { image, mask } = parseActivityInput(mediaInputs.overlayImage, input, 'mediaOverlayImage');
      const key = derivedKey(image.sha256, `overlays/${mask.sha256}.png`);
      const existing = await store.head(key);
      if (existing?.sha256) return existing;
      const m = await readBinaryMask(await store.getBytes(mask.uri));
      return store.putBytes(key, await overlayPng(await store.getBytes(image.uri), m), 'image/png');
    },

    /** An MP4 of a stored video with a stored MaskSequence (or the segmenter's masks) tinted over its frames. */
    async mediaOverlayVideo(input: z.input<typeof mediaInputs.overlayVideo>): Promise<ArtifactRef> {
      const { video, masks, manifest, fps } = parseActivityInput(
        mediaInputs.overlayVideo,
        input,
        'mediaOverlayVideo',
      );
      const key = derivedKey(video.sha256, `overlays/${(masks ?? manifest)!.sha256}.mp4`);
      const existing = await store.head(key);
      if (existing?.sha256) return existing;
      const source = masks
        ? maskSequenceLookup(await store.getJson<MaskSequence>(masks.uri))
        : await streamedMasks(store, manifest!);
      return withTempDir(async (dir) => {
        const path = await localCopy(video, dir, 'video');
        const out = join(dir, 'overlay.mp4');
        await overlayVideoFile(path, source, out, {
          ...toolOpts(),
          msPerFrame: deps.msPerFrame ?? 50,
          ...(fps ? { fps } : {}),
          onFrame: (index) => {
            if (index % 25 === 0) heartbeat({ frame: index });
          },
        });
        return store.putFile(key, out, 'video/mp4');
      });
    },
  };
}

export type MediaActivities = ReturnType<typeof createMediaActivities>;
