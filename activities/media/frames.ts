/**
 * Frame extraction from a video: ffmpeg decodes, a `select` filter keeps only the wanted frame
 * indices, and raw RGB frames stream out of its stdout one at a time, so memory holds one frame
 * whatever the video's length.
 */
import { BadMediaError, ToolProcessError } from './errors.js';
import { FFMPEG_QUIET, startTool, type ToolRunOptions } from './ffmpeg.js';
import { ffmpegReason, probeVideo, type VideoProbe } from './probe.js';

/** One decoded frame: raw interleaved RGB, 3 bytes per pixel, row-major. */
export interface RawFrame {
  /** 0-based decode-order index in the video. */
  index: number;
  width: number;
  height: number;
  rgb: Buffer;
}

export interface ExtractOptions extends ToolRunOptions {
  /** The probe of the video, when the caller has one already. */
  probe?: VideoProbe;
  /**
   * Decode and emit at most this size (ffmpeg scales with bicubic); default: the video's own size.
   * Only for previews and baselines; the method's resizes are done with sharp on the full frame.
   */
  scaleTo?: { width: number; height: number };
}

/**
 * The ffmpeg `select` expression for a set of frame indices, as ranges (`between(n,a,b)`) so a
 * long contiguous run stays a short expression.
 */
export function selectExpression(indices: readonly number[]): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `eq(n\\,${sorted[i]})` : `between(n\\,${sorted[i]}\\,${sorted[j]})`);
    i = j + 1;
  }
  return parts.join('+');
}

/**
 * Streams the frames at `indices` (sorted, de-duplicated), or every frame when `indices` is "all".
 * Stopping the iteration early stops ffmpeg. A video that yields fewer frames than asked for fails
 * with BadMediaError (it is truncated or its header over-counts).
 */
export async function* extractFrames(
  video: string,
  indices: readonly number[] | 'all',
  opts: ExtractOptions = {},
): AsyncGenerator<RawFrame> {
  const probe = opts.probe ?? (await probeVideo(video, opts));
  const wanted = indices === 'all' ? undefined : [...new Set(indices)].sort((a, b) => a - b);
  if (wanted) {
    const bad = wanted.filter((i) => !Number.isInteger(i) || i < 0 || i >= probe.frames);
    if (bad.length > 0) {
      throw new BadMediaError(
        video,
        `has ${probe.frames} frames (0..${probe.frames - 1}); frame indices ${JSON.stringify(bad)} do not exist`,
      );
    }
    if (wanted.length === 0) return;
  }
  const width = opts.scaleTo?.width ?? probe.width;
  const height = opts.scaleTo?.height ?? probe.height;
  const filters = [
    ...(wanted ? [`select=${selectExpression(wanted)}`] : []),
    `scale=${width}:${height}:flags=bicubic`,
  ];
  const args = [
    ...FFMPEG_QUIET,
    '-i',
    video,
    '-map',
    '0:v:0',
    '-an',
    '-sn',
    '-dn',
    '-vf',
    filters.join(','),
    '-fps_mode',
    'passthrough',
    '-pix_fmt',
    'rgb24',
    '-f',
    'rawvideo',
    'pipe:1',
  ];
  const proc = startTool('ffmpeg', args, opts);
  const frameBytes = width * height * 3;
  const expected = wanted ?? Array.from({ length: probe.frames }, (_, i) => i);
  let produced = 0;
  let frame = Buffer.allocUnsafe(frameBytes);
  let filled = 0;
  let finished = false;
  try {
    for await (const chunk of proc.stdout as AsyncIterable<Buffer>) {
      let offset = 0;
      while (offset < chunk.length) {
        const take = Math.min(frameBytes - filled, chunk.length - offset);
        chunk.copy(frame, filled, offset, offset + take);
        filled += take;
        offset += take;
        if (filled === frameBytes) {
          const index = expected[produced] ?? probe.frames + produced;
          produced++;
          // Hand the consumer its own buffer; the next frame gets a fresh one.
          yield { index, width, height, rgb: frame };
          frame = Buffer.allocUnsafe(frameBytes);
          filled = 0;
        }
      }
    }
    await proc.done;
    finished = true;
  } catch (err) {
    if (err instanceof ToolProcessError && err.kind === 'exit') {
      throw new BadMediaError(video, `ffmpeg could not decode it: ${ffmpegReason(err, video)}`, err);
    }
    throw err;
  } finally {
    if (!finished) proc.stop();
  }
  if (wanted && produced < wanted.length) {
    const missing = wanted.slice(produced);
    throw new BadMediaError(
      video,
      `yielded only ${produced} of the ${wanted.length} requested frames; frames ${JSON.stringify(missing.slice(0, 10))}${missing.length > 10 ? '…' : ''} could not be decoded (the file is truncated or corrupt)`,
    );
  }
  if (!wanted && produced === 0) throw new BadMediaError(video, 'has zero decodable frames');
}
