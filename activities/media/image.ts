/**
 * Still images with sharp: validation (format, size limits, a full decode that catches truncation),
 * and the two resizes of the method: 448×448 policy frames (squashed, rounded up to the vision
 * patch factor) and the 864×864 high-res keyframe (spec §2 and §3.4).
 */
import sharp, { type Metadata, type SharpOptions, type Sharp } from 'sharp';
import { BadMediaError } from './errors.js';
import { describeHead, readHead, sniffImageFormat, type ImageFormat } from './probe.js';

export interface ImageLimits {
  /** Smallest accepted side in pixels: below it there is nothing to segment. @default 16 */
  minSide: number;
  /** Largest accepted image in pixels (width × height). @default 100_000_000 (100 MP) */
  maxPixels: number;
}

export const DEFAULT_IMAGE_LIMITS: ImageLimits = { minSide: 16, maxPixels: 100_000_000 };

export interface ImageInfo {
  format: ImageFormat;
  width: number;
  height: number;
  channels: number;
}

/** Side of the policy's frames before rounding. @default 448 (`--max_size 448 --min_size 448`) */
export const POLICY_FRAME_SIDE = 448;
/** Vision patch factor: 32 for Qwen3-VL, 28 for Qwen2.5-VL. @default 32 */
export const DEFAULT_PATCH_FACTOR = 32;
/** Side of the high-res keyframe (the keyframe tool resizes to exactly this). @default 864 */
export const KEYFRAME_SIDE = 864;
/** JPEG quality of frames and resized images. @default 90 */
export const JPEG_QUALITY = 90;

/** `ceil(side / factor) * factor`, as the reference rounds `--max_size`/`--min_size`. */
export function roundUpToFactor(side: number, factor: number): number {
  if (!(side > 0) || !(factor > 0))
    throw new RangeError(`side and factor must be positive (got ${side}, ${factor})`);
  return Math.ceil(side / factor) * factor;
}

/** The policy frame size: 448 rounded up to the patch factor, squashed to a square. */
export function policyFrameSize(
  patchFactor = DEFAULT_PATCH_FACTOR,
  side = POLICY_FRAME_SIDE,
): {
  width: number;
  height: number;
} {
  const s = roundUpToFactor(side, patchFactor);
  return { width: s, height: s };
}

function sharpProblem(err: unknown): string {
  const msg = (err as Error)?.message ?? String(err);
  if (/pixel limit/i.test(msg)) return `is larger than the pixel limit (${msg})`;
  if (
    /premature end|truncat|unexpected end|end of (file|stream)|incomplete|short read|corrupt|invalid/i.test(
      msg,
    )
  ) {
    return `is corrupt or truncated: ${msg.split('\n')[0]}`;
  }
  if (/unsupported image format/i.test(msg)) return 'is not an image sharp can read';
  return `cannot be decoded: ${msg.split('\n')[0]}`;
}

/**
 * Checks an image file without keeping its pixels: its magic bytes say JPEG, PNG or WebP, its
 * header size is within `limits`, and a full decode succeeds (so a truncated or corrupt file fails
 * here, before anything is uploaded). Throws BadMediaError naming the file and the problem.
 */
export async function inspectImage(
  path: string,
  limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
): Promise<ImageInfo> {
  const head = await readHead(path);
  const format = sniffImageFormat(head);
  if (!format) throw new BadMediaError(path, `is not a JPEG, PNG or WebP image: it ${describeHead(head)}`);
  let meta: Metadata;
  try {
    meta = await sharp(path, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new BadMediaError(path, sharpProblem(err), err);
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  checkSize(path, width, height, limits);
  try {
    // A full decode, streamed by libvips: truncation and corrupt data surface here as errors.
    await sharp(path, {
      failOn: 'warning',
      limitInputPixels: limits.maxPixels,
      sequentialRead: true,
    }).stats();
  } catch (err) {
    throw new BadMediaError(path, sharpProblem(err), err);
  }
  return { format, width, height, channels: meta.channels ?? 3 };
}

/** Size checks shared by files and decoded buffers. */
export function checkSize(
  file: string,
  width: number,
  height: number,
  limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
): void {
  if (width < limits.minSide || height < limits.minSide) {
    throw new BadMediaError(
      file,
      `is ${width}×${height} pixels, smaller than the minimum of ${limits.minSide} pixels on each side`,
      undefined,
      { width, height },
    );
  }
  if (width * height > limits.maxPixels) {
    throw new BadMediaError(
      file,
      `is ${width}×${height} pixels (${((width * height) / 1e6).toFixed(1)} MP), above the limit of ${(limits.maxPixels / 1e6).toFixed(1)} MP; downscale it first`,
      undefined,
      { width, height },
    );
  }
}

/** Where the pixels come from: an encoded file or buffer, or raw interleaved 8-bit pixels. */
export type ImageSource =
  string | Buffer | { raw: Buffer; width: number; height: number; channels: 1 | 2 | 3 | 4 };

export interface ResizeOptions {
  width: number;
  height: number;
  /** `cubic` (PIL's default resize, used for policy frames) or `lanczos3` (the keyframe tool's LANCZOS). @default "cubic" */
  kernel?: 'cubic' | 'lanczos3' | 'nearest';
  /** @default "jpeg" */
  format?: 'jpeg' | 'png';
  /** @default JPEG_QUALITY */
  quality?: number;
}

export function sharpOf(source: ImageSource, opts: SharpOptions = {}): Sharp {
  if (typeof source === 'string' || Buffer.isBuffer(source))
    return sharp(source, { failOn: 'warning', ...opts });
  return sharp(source.raw, {
    raw: { width: source.width, height: source.height, channels: source.channels },
    ...opts,
  });
}

/** Resizes to exactly width×height, ignoring the aspect ratio (the reference squashes). */
export async function resizeImage(source: ImageSource, opts: ResizeOptions): Promise<Buffer> {
  const pipeline = sharpOf(source)
    .removeAlpha()
    .resize(opts.width, opts.height, { fit: 'fill', kernel: opts.kernel ?? 'cubic' });
  return (opts.format ?? 'jpeg') === 'png'
    ? pipeline.png().toBuffer()
    : pipeline.jpeg({ quality: opts.quality ?? JPEG_QUALITY }).toBuffer();
}

/** A 448×448 (patch-rounded) policy frame, JPEG. */
export function resizeForPolicy(source: ImageSource, patchFactor = DEFAULT_PATCH_FACTOR): Promise<Buffer> {
  return resizeImage(source, { ...policyFrameSize(patchFactor), kernel: 'cubic' });
}

/** The 864×864 high-res keyframe, JPEG, LANCZOS like the keyframe tool. */
export function resizeKeyframe(source: ImageSource): Promise<Buffer> {
  return resizeImage(source, { width: KEYFRAME_SIDE, height: KEYFRAME_SIDE, kernel: 'lanczos3' });
}

/** Encodes raw RGB (or a file) as JPEG or PNG at its own size. */
export async function encodeImage(
  source: ImageSource,
  format: 'jpeg' | 'png' = 'jpeg',
  quality = JPEG_QUALITY,
): Promise<Buffer> {
  const s = sharpOf(source);
  return format === 'png' ? s.png().toBuffer() : s.jpeg({ quality }).toBuffer();
}

/** Decodes any image to raw RGB. */
export async function decodeRgb(
  source: ImageSource,
): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharpOf(source)
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}
