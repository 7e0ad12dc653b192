/**
 * What a media file is: sniffing (JPEG / PNG / WebP by their magic bytes, anything else is handed
 * to ffprobe as a video) and probing (width, height, fps, frame count, codec).
 */
import { open } from 'node:fs/promises';
import { BadMediaError, ToolProcessError } from './errors.js';
import { runTool, type ToolRunOptions } from './ffmpeg.js';

export type ImageFormat = 'jpeg' | 'png' | 'webp';

export const imageContentTypes: Readonly<Record<ImageFormat, string>> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
};

/** File names that claim to be images. */
export const imageNameRe = /\.(jpe?g|png|webp)$/i;

export const imageExtensions: Readonly<Record<ImageFormat, string>> = {
  jpeg: 'jpg',
  png: 'png',
  webp: 'webp',
};

/** What `segr media probe` prints. `fps` is null for a still image. */
export interface MediaProbe {
  width: number;
  height: number;
  fps: number | null;
  frames: number;
  codec: string;
}

export interface VideoProbe extends MediaProbe {
  fps: number;
  /** Container duration in seconds, when the container states one. */
  durationSec: number | null;
  /** ffprobe's container format name (e.g. `mov,mp4,m4a,3gp,3g2,mj2`). */
  container: string;
}

/** The first bytes of a file, for sniffing. */
export async function readHead(path: string, bytes = 16): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const problem =
      e.code === 'ENOENT'
        ? 'does not exist'
        : e.code === 'EISDIR'
          ? 'is a folder, not a file'
          : `cannot be read (${e.code ?? e.message})`;
    throw new BadMediaError(path, problem, err);
  }
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The image format its magic bytes announce, or undefined. */
export function sniffImageFormat(head: Uint8Array): ImageFormat | undefined {
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  if (
    head.length >= 8 &&
    Buffer.from(head.subarray(0, 8)).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
  )
    return 'png';
  if (
    head.length >= 12 &&
    Buffer.from(head.subarray(0, 4)).toString('latin1') === 'RIFF' &&
    Buffer.from(head.subarray(8, 12)).toString('latin1') === 'WEBP'
  )
    return 'webp';
  return undefined;
}

/** Describes unknown leading bytes for an error message (`starts with "<!DOCTYPE"`, or hex). */
export function describeHead(head: Uint8Array): string {
  if (head.length === 0) return 'is empty (0 bytes)';
  const text = Buffer.from(head).toString('latin1');
  if (/^[\x09\x0a\x0d\x20-\x7e]+$/.test(text))
    return `starts with the text ${JSON.stringify(text.slice(0, 12))}`;
  return `starts with bytes ${Buffer.from(head.subarray(0, 8)).toString('hex').replace(/(..)/g, '$1 ').trim()}`;
}

function parseRate(rate: string | undefined): number {
  if (!rate) return 0;
  const [num, den] = rate.split('/').map(Number);
  if (!num || !den || !Number.isFinite(num / den)) return 0;
  return num / den;
}

interface FfprobeJson {
  streams?: {
    codec_name?: string;
    width?: number;
    height?: number;
    avg_frame_rate?: string;
    r_frame_rate?: string;
    nb_frames?: string;
    nb_read_packets?: string;
    side_data_list?: { rotation?: number }[];
    tags?: { rotate?: string };
  }[];
  format?: { duration?: string; format_name?: string };
}

/** First meaningful line of ffmpeg's stderr, for a BadMediaError's problem text. */
export function ffmpegReason(err: ToolProcessError, file?: string): string {
  const lines = err.stderr
    .split('\n')
    .map((l) => l.replace(/^\[[^\]]*\]\s*/, '').trim())
    .map((l) => (file && l.startsWith(`${file}: `) ? l.slice(file.length + 2) : l))
    .filter(Boolean);
  return lines[lines.length - 1] ?? `exit status ${err.exitCode}`;
}

/**
 * Probes a video with ffprobe. Packets are counted (a demux pass, no decoding) so the frame count
 * is what the file really holds; a file whose header promises more frames than it holds is
 * reported as truncated.
 */
export async function probeVideo(path: string, opts: ToolRunOptions = {}): Promise<VideoProbe> {
  const head = await readHead(path);
  if (head.length === 0) throw new BadMediaError(path, 'is empty (0 bytes)');
  let out: Buffer;
  try {
    out = await runTool(
      'ffprobe',
      [
        '-v',
        'error',
        '-select_streams',
        'v:0',
        '-count_packets',
        '-show_entries',
        'stream=codec_name,width,height,avg_frame_rate,r_frame_rate,nb_frames,nb_read_packets:stream_side_data=rotation:stream_tags=rotate:format=duration,format_name',
        '-of',
        'json',
        path,
      ],
      opts,
    );
  } catch (err) {
    if (err instanceof ToolProcessError && err.kind === 'exit') {
      throw new BadMediaError(path, `ffmpeg cannot read it as a video: ${ffmpegReason(err, path)}`, err);
    }
    throw err;
  }
  const json = JSON.parse(out.toString('utf8')) as FfprobeJson;
  const stream = json.streams?.[0];
  if (!stream) throw new BadMediaError(path, 'contains no video frames (no video stream found)');
  const declared = Number(stream.nb_frames ?? 0) || 0;
  const present = Number(stream.nb_read_packets ?? 0) || 0;
  const frames = present || declared;
  if (frames === 0) throw new BadMediaError(path, 'has zero video frames');
  if (declared > 0 && present > 0 && present < declared) {
    throw new BadMediaError(
      path,
      `is truncated: its header declares ${declared} frames but only ${present} are present`,
      undefined,
      { declared, present },
    );
  }
  let width = stream.width ?? 0;
  let height = stream.height ?? 0;
  if (width <= 0 || height <= 0)
    throw new BadMediaError(
      path,
      `is not a video ffmpeg can decode (its video stream has no frame size, ${width}×${height})`,
    );
  const rotation =
    stream.side_data_list?.find((s) => s.rotation !== undefined)?.rotation ??
    Number(stream.tags?.rotate ?? 0);
  if (Math.abs(rotation) % 180 === 90) [width, height] = [height, width];
  const fps = parseRate(stream.avg_frame_rate) || parseRate(stream.r_frame_rate);
  const duration = Number(json.format?.duration);
  return {
    width,
    height,
    fps,
    frames,
    codec: stream.codec_name ?? 'unknown',
    durationSec: Number.isFinite(duration) ? duration : null,
    container: json.format?.format_name ?? 'unknown',
  };
}
