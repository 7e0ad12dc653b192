/**
 * Frames in S3: sampled video frames (original size and policy size), policy-size copies of stored
 * frames and images, and the high-res keyframe. Keys derive from the source's SHA-256 and the
 * frame index / size, so a retried activity finds its work done (a HEAD) or rewrites the same
 * bytes, and a second sample of the same video does not decode it again.
 */
import type { ArtifactRef } from '../../core/artifacts.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import type { ToolRunOptions } from './ffmpeg.js';
import { extractFrames } from './frames.js';
import {
  DEFAULT_PATCH_FACTOR,
  encodeImage,
  KEYFRAME_SIDE,
  policyFrameSize,
  resizeImage,
  type ImageSource,
} from './image.js';
import { probeVideo, type VideoProbe } from './probe.js';
import { keyUnder } from '../../core/contracts/safe-key.js';

/** A frame shown to the policy: its original-size frame and its policy-size copy. */
export interface StoredFrame {
  /** 0-based position in the video or frame folder. */
  index: number;
  /** The frame id the prompt uses (`frame {fid} <image>`): the file-name integer, or the index. */
  fid: number;
  original: ArtifactRef;
  policy: ArtifactRef;
}

/** `derived/<sha>/…`: everything computed from one source object. */
export function derivedKey(sourceSha256: string, rest: string): string {
  return keyUnder('derived', sourceSha256.slice(0, 2), sourceSha256, rest);
}

const pad = (n: number) => String(n).padStart(6, '0');

async function cached(
  store: ArtifactStore,
  key: string,
  make: () => Promise<Buffer>,
  contentType = 'image/jpeg',
) {
  const existing = await store.head(key);
  if (existing && existing.sha256) return existing;
  return store.putBytes(key, await make(), contentType);
}

export interface VideoFramesOptions extends ToolRunOptions {
  probe?: VideoProbe;
  /** @default 32 */
  patchFactor?: number;
  onFrame?: (index: number) => void;
}

/**
 * Decodes the frames at `indices` of a local video (whose stored copy has `videoSha256`) and stores
 * each as an original-size JPEG and a policy-size JPEG. Decoding is skipped when all are stored.
 */
export async function storeVideoFrames(
  store: ArtifactStore,
  video: { path: string; sha256: string },
  indices: readonly number[],
  opts: VideoFramesOptions = {},
): Promise<StoredFrame[]> {
  const size = policyFrameSize(opts.patchFactor ?? DEFAULT_PATCH_FACTOR);
  const wanted = [...new Set(indices)].sort((a, b) => a - b);
  const keys = (i: number) => ({
    original: derivedKey(video.sha256, `frames/orig/${pad(i)}.jpg`),
    policy: derivedKey(video.sha256, `frames/${size.width}x${size.height}/${pad(i)}.jpg`),
  });
  const known = await Promise.all(
    wanted.map(async (i) => {
      const k = keys(i);
      const [original, policy] = await Promise.all([store.head(k.original), store.head(k.policy)]);
      return original?.sha256 && policy?.sha256 ? { index: i, fid: i, original, policy } : undefined;
    }),
  );
  if (known.every((k) => k !== undefined)) return known as StoredFrame[];

  const probe = opts.probe ?? (await probeVideo(video.path, opts));
  const out: StoredFrame[] = [];
  for await (const frame of extractFrames(video.path, wanted, { ...opts, probe })) {
    const raw: ImageSource = { raw: frame.rgb, width: frame.width, height: frame.height, channels: 3 };
    const k = keys(frame.index);
    const [original, policy] = await Promise.all([
      store.putBytes(k.original, await encodeImage(raw, 'jpeg'), 'image/jpeg'),
      store.putBytes(k.policy, await resizeImage(raw, { ...size, kernel: 'cubic' }), 'image/jpeg'),
    ]);
    out.push({ index: frame.index, fid: frame.index, original, policy });
    opts.onFrame?.(frame.index);
  }
  return out;
}

/** The policy-size copy of a stored image or frame (`source` are its bytes or a local path). */
export async function storePolicyCopy(
  store: ArtifactStore,
  original: ArtifactRef,
  source: ImageSource,
  patchFactor = DEFAULT_PATCH_FACTOR,
): Promise<ArtifactRef> {
  const size = policyFrameSize(patchFactor);
  return cached(store, derivedKey(original.sha256, `policy-${size.width}x${size.height}.jpg`), () =>
    resizeImage(source, { ...size, kernel: 'cubic' }),
  );
}

/** The 864×864 high-res keyframe of a stored frame. */
export async function storeKeyframe(
  store: ArtifactStore,
  original: ArtifactRef,
  source?: ImageSource,
): Promise<ArtifactRef> {
  return cached(store, derivedKey(original.sha256, `keyframe-${KEYFRAME_SIDE}.jpg`), async () =>
    resizeImage(source ?? (await store.getBytes(original.uri)), {
      width: KEYFRAME_SIDE,
      height: KEYFRAME_SIDE,
      kernel: 'lanczos3',
    }),
  );
}
