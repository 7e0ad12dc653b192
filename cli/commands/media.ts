// `segr media …`: probe a file, sample frames of a video to a folder, ingest media into S3.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { BadInputError } from '../../activities/errors.js';
import { extractFrames } from '../../activities/media/frames.js';
import { inspectImage, resizeImage } from '../../activities/media/image.js';
import { ingestMedia } from '../../activities/media/ingest.js';
import {
  imageNameRe,
  probeVideo,
  readHead,
  sniffImageFormat,
  type MediaProbe,
} from '../../activities/media/probe.js';
import { linspaceIndices } from '../../activities/media/sampling.js';
import { ArtifactStore } from '../../activities/storage/artifact-store.js';
import { cliContext } from '../context.js';
import { positiveInt } from '../option-parsers.js';
import { emit } from '../output.js';

/** Ctrl-C stops ffmpeg instead of leaving it running. */
function interruptSignal(): AbortSignal {
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  return ac.signal;
}

/** `{width, height, fps, frames, codec}` of an image or video file. */
export async function probeFile(file: string, signal?: AbortSignal): Promise<MediaProbe> {
  if (sniffImageFormat(await readHead(file)) || imageNameRe.test(file)) {
    const info = await inspectImage(file);
    return { width: info.width, height: info.height, fps: null, frames: 1, codec: info.format };
  }
  const p = await probeVideo(file, signal ? { signal } : {});
  return { width: p.width, height: p.height, fps: p.fps, frames: p.frames, codec: p.codec };
}

/** Writes `count` uniformly sampled frames of `video`, squashed to size×size JPEGs, into `out`. */
export async function sampleFramesToFolder(
  video: string,
  opts: { count: number; size: number; out: string; signal?: AbortSignal },
): Promise<{ video: string; frames: { index: number; file: string }[] }> {
  const probe = await probeVideo(video, opts.signal ? { signal: opts.signal } : {});
  const indices = linspaceIndices(probe.frames, opts.count);
  await mkdir(opts.out, { recursive: true });
  const frames: { index: number; file: string }[] = [];
  for await (const f of extractFrames(video, indices, {
    probe,
    ...(opts.signal ? { signal: opts.signal } : {}),
  })) {
    const file = join(opts.out, `${String(f.index).padStart(5, '0')}.jpg`);
    const jpeg = await resizeImage(
      { raw: f.rgb, width: f.width, height: f.height, channels: 3 },
      { width: opts.size, height: opts.size, kernel: 'cubic' },
    );
    await writeFile(file, jpeg);
    frames.push({ index: f.index, file: resolve(file) });
  }
  return { video: resolve(video), frames };
}

export function register(program: Command): void {
  const media = program.command('media').description('media files: probe, sample frames, ingest into S3');

  media
    .command('probe <file>')
    .description('print {width, height, fps, frames, codec} of an image or video as JSON')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const probe = await probeFile(file, interruptSignal());
      // JSON in both formats: compact in text (as always), one indented document in json.
      emit(cmd, probe, JSON.stringify(probe));
    });

  media
    .command('frames <video>')
    .description('write K uniformly sampled frames (integer linspace) of a video as S×S JPEGs into a folder')
    .requiredOption('--count <K>', 'frames to sample', positiveInt('--count'))
    .requiredOption('--size <S>', 'side of the square output frames in pixels', positiveInt('--size'))
    .requiredOption('--out <dir>', 'output folder (created if missing)')
    .action(async (video: string, opts: { count: number; size: number; out: string }, cmd: Command) => {
      if (opts.size > 8192) throw new BadInputError(`--size ${opts.size} is larger than 8192 pixels`);
      const frames = await sampleFramesToFolder(video, { ...opts, signal: interruptSignal() });
      emit(cmd, frames, JSON.stringify(frames, null, 2));
    });

  media
    .command('ingest <path>')
    .description('validate an image, video or folder of frames and store it in S3, content-addressed')
    .action(async (path: string, _opts: unknown, cmd: Command) => {
      const { config } = cliContext(cmd);
      const store = ArtifactStore.fromConfig(config.s3);
      try {
        const ingested = await ingestMedia(store, path, {
          signal: interruptSignal(),
          video: { maxFrames: config.media.maxVideoFrames, maxSeconds: config.media.maxVideoSeconds },
        });
        emit(cmd, ingested, JSON.stringify(ingested, null, 2));
      } finally {
        store.client.destroy();
      }
    });
}
