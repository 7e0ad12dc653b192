/**
 * Overlays for people to look at: a mask tinted over its frame (PNG), and an MP4 of a video with a
 * propagated mask sequence tinted over every frame. Frames stream from one ffmpeg into another, so
 * memory holds a frame or two whatever the video's length.
 */
import { BadMediaError } from './errors.js';
import { FFMPEG_QUIET, startTool, type ToolRunOptions } from './ffmpeg.js';
import { extractFrames, type RawFrame } from './frames.js';
import { probeVideo } from './probe.js';
import { decodeRgb, type ImageSource } from './image.js';
import type { BinaryMask } from './rle.js';
import sharp from 'sharp';

export interface OverlayStyle {
  /** Tint colour. @default [255, 64, 64] */
  color?: [number, number, number];
  /** Tint opacity inside the mask. @default 0.5 */
  alpha?: number;
  /** Draw the mask's boundary in the full colour. @default true */
  outline?: boolean;
}

/** Tints `mask` over raw RGB pixels in place. */
export function tintRgb(
  rgb: Buffer,
  width: number,
  height: number,
  mask: BinaryMask,
  style: OverlayStyle = {},
): void {
  if (mask.width !== width || mask.height !== height) {
    throw new RangeError(`mask is ${mask.width}×${mask.height} but the frame is ${width}×${height}`);
  }
  const [r, g, b] = style.color ?? [255, 64, 64];
  const a = style.alpha ?? 0.5;
  const outline = style.outline ?? true;
  const m = mask.data;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (!m[i]) continue;
      const edge =
        outline &&
        (x === 0 ||
          y === 0 ||
          x === width - 1 ||
          y === height - 1 ||
          !m[i - 1] ||
          !m[i + 1] ||
          !m[i - width] ||
          !m[i + width]);
      const p = i * 3;
      if (edge) {
        rgb[p] = r;
        rgb[p + 1] = g;
        rgb[p + 2] = b;
      } else {
        rgb[p] = Math.round(rgb[p]! * (1 - a) + r * a);
        rgb[p + 1] = Math.round(rgb[p + 1]! * (1 - a) + g * a);
        rgb[p + 2] = Math.round(rgb[p + 2]! * (1 - a) + b * a);
      }
    }
  }
}

/** A mask over its frame, as PNG. The mask must have the frame's size. */
export async function overlayPng(
  frame: ImageSource,
  mask: BinaryMask,
  style: OverlayStyle = {},
): Promise<Buffer> {
  const { data, width, height } = await decodeRgb(frame);
  if (mask.width !== width || mask.height !== height) {
    throw new BadMediaError(
      typeof frame === 'string' ? frame : 'frame',
      `is ${width}×${height} but the mask is ${mask.width}×${mask.height}; a mask must have its frame's size`,
    );
  }
  tintRgb(data, width, height, mask, style);
  return sharp(data, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

export interface OverlayVideoOptions extends ToolRunOptions, OverlayStyle {
  /** Output frame rate. @default the source video's */
  fps?: number;
  /** x264 quality (lower is better). @default 23 */
  crf?: number;
  /** Called after each frame is written, for activity heartbeats. */
  onFrame?: (index: number) => void;
  /**
   * overlayVideoFile: the ffmpeg runs get `timeoutMs` or this much per frame of the video (decoded
   * and encoded again), whichever is longer. @default 0
   */
  msPerFrame?: number;
}

/** The mask of a frame, or undefined for none; may be read on demand (masks streamed from S3). */
export type MaskSource = (index: number) => BinaryMask | undefined | Promise<BinaryMask | undefined>;

/**
 * Encodes frames with their masks tinted as an H.264 MP4 (yuv420p, playable everywhere) at `out`.
 * `masks(index)` gives the mask of a frame, or undefined for none.
 */
export async function writeOverlayVideo(
  frames: AsyncIterable<RawFrame>,
  masks: MaskSource,
  out: string,
  size: { width: number; height: number },
  opts: OverlayVideoOptions & { fps: number },
): Promise<{ frames: number }> {
  // yuv420p needs even sides: pad by one pixel where needed.
  const encoder = startTool(
    'ffmpeg',
    [
      ...FFMPEG_QUIET,
      '-y',
      '-f',
      'rawvideo',
      '-pix_fmt',
      'rgb24',
      '-s',
      `${size.width}x${size.height}`,
      '-r',
      String(opts.fps),
      '-i',
      'pipe:0',
      '-vf',
      'pad=ceil(iw/2)*2:ceil(ih/2)*2',
      '-c:v',
      'libx264',
      // Reproducible bytes (the overlay's key and sha256 follow its inputs; a retried encode must
      // give the same object): x264's default frame threads are not, measured here (ffmpeg 5.1,
      // two runs of the same frames alternating between two outputs); a fixed number of slice
      // threads is, on any core count, for about 1.5× the encoding time on 2 cores.
      '-threads',
      '4',
      '-x264-params',
      'sliced-threads=1',
      '-preset',
      'veryfast',
      '-crf',
      String(opts.crf ?? 23),
      '-pix_fmt',
      'yuv420p',
      '-movflags',
      '+faststart',
      out,
    ],
    { ...opts, stdin: true },
  );
  const stdin = encoder.stdin!;
  let written = 0;
  try {
    for await (const frame of frames) {
      const mask = await masks(frame.index);
      if (mask) tintRgb(frame.rgb, frame.width, frame.height, mask, opts);
      if (!stdin.write(frame.rgb)) {
        await Promise.race([
          new Promise<void>((resolve) => stdin.once('drain', resolve)),
          encoder.done.then(() => undefined),
        ]);
      }
      written++;
      opts.onFrame?.(frame.index);
    }
    stdin.end();
    await encoder.done;
  } catch (err) {
    encoder.stop();
    throw err;
  }
  return { frames: written };
}

/** The overlay MP4 of a video file and a mask lookup. */
export async function overlayVideoFile(
  video: string,
  masks: MaskSource,
  out: string,
  opts: OverlayVideoOptions = {},
): Promise<{ frames: number }> {
  const probe = await probeVideo(video, opts);
  const work = {
    ...opts,
    timeoutMs: Math.max(opts.timeoutMs ?? 0, 2 * probe.frames * (opts.msPerFrame ?? 0)),
  };
  if (!work.timeoutMs) delete (work as { timeoutMs?: number }).timeoutMs;
  return writeOverlayVideo(extractFrames(video, 'all', { ...work, probe }), masks, out, probe, {
    ...work,
    fps: opts.fps ?? (probe.fps || 25),
  });
}
