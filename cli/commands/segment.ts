/**
 * `segr segment`: SAM2 on a local image or video with the sam2-onnx v1 files, no Temporal needed.
 *   segr segment --image FILE --box x1,y1,x2,y2 [--point x,y] --models DIR --out mask.png
 *   segr segment --video FILE|DIR --keyframe K --box x1,y1,x2,y2 [--point x,y] --models DIR --out DIR
 * Coordinates are pixels of the image (of the first frame for a video). A video file is decoded
 * by the media module's ffmpeg extraction into a temporary folder of PNG frames.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import type { Command } from 'commander';
import sharp from 'sharp';
import { extractFrames } from '../../activities/media/frames.js';
import { BadInputError } from '../../activities/errors.js';
import { runtimeOptions } from '../../activities/segment/activities.js';
import { loadSam2Models } from '../../activities/segment/models.js';
import { imageSize } from '../../activities/segment/preprocess.js';
import { promptToPixels, type SegmentPrompt } from '../../activities/segment/prompts.js';
import { segmentImage, type Stage } from '../../activities/segment/sam2-image.js';
import { ephemeralTrackerStore, trackVideo } from '../../activities/segment/sam2-video.js';
import { cliContext } from '../context.js';
import { nonNegativeInt } from '../option-parsers.js';
import { emit } from '../output.js';

const IMAGE_EXT = new Set(['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff']);

function numbers(flag: string, value: string, count: number): number[] {
  const parts = value.split(',').map((s) => Number(s.trim()));
  if (parts.length !== count || parts.some((n) => !Number.isFinite(n))) {
    throw new BadInputError(`${flag} ${JSON.stringify(value)}: expected ${count} comma-separated numbers`);
  }
  return parts;
}

async function writeMaskPng(path: string, mask: Uint8Array, width: number, height: number): Promise<void> {
  const png = await sharp(Buffer.from(mask.buffer, mask.byteOffset, mask.byteLength), {
    raw: { width, height, channels: 1 },
  })
    .toColourspace('b-w')
    .png()
    .toBuffer();
  await writeFile(path, png);
}

/** Frame files of a folder, sorted by name (the reference sorts the frame list). */
async function frameFiles(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((n) => IMAGE_EXT.has(extname(n).toLowerCase())).sort();
  if (names.length === 0)
    throw new BadInputError(`${dir}: no image frames (${[...IMAGE_EXT].join(' ')}) in this folder`);
  return names;
}

/** A video file → PNG frames in a temporary folder (lossless, so the frames are ffmpeg's decode). */
async function explodeVideo(video: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'segr-frames-'));
  for await (const frame of extractFrames(video, 'all')) {
    const png = await sharp(frame.rgb, { raw: { width: frame.width, height: frame.height, channels: 3 } })
      .png({ compressionLevel: 1 })
      .toBuffer();
    await writeFile(join(dir, `${String(frame.index).padStart(5, '0')}.png`), png);
  }
  return dir;
}

export function register(program: Command): void {
  program
    .command('segment')
    .description(
      'segment an image or propagate a keyframe prompt through a video with SAM2 (ONNX, sam2-onnx v1)',
    )
    .option('--image <file>', 'image to segment')
    .option('--video <fileOrDir>', 'video file, or a folder of frames (sorted by name)')
    .option('--keyframe <k>', 'video: index of the prompted frame', nonNegativeInt('--keyframe'))
    .option('--box <x1,y1,x2,y2>', 'box prompt in pixels')
    .option('--point <x,y>', 'positive click in pixels (refines the box mask, as the reference does)')
    .option('--models <dir>', 'folder with the sam2-onnx v1 files (default: segment.modelsDir)')
    .requiredOption('--out <path>', 'image: the mask PNG; video: a folder for <frame>.png masks')
    .option('--timings', 'print per-stage timings')
    .action(
      async (
        opts: {
          image?: string;
          video?: string;
          keyframe?: number;
          box?: string;
          point?: string;
          models?: string;
          out: string;
          timings?: boolean;
        },
        cmd: Command,
      ) => {
        const { config } = cliContext(cmd);
        if (Boolean(opts.image) === Boolean(opts.video))
          throw new BadInputError('give exactly one of --image or --video');
        if (!opts.box && !opts.point) throw new BadInputError('give --box, --point or both');
        const prompt: SegmentPrompt = { space: 'pixels' };
        if (opts.box) prompt.box = numbers('--box', opts.box, 4) as [number, number, number, number];
        if (opts.point) prompt.point = numbers('--point', opts.point, 2) as [number, number];
        const modelsDir = opts.models ?? config.segment.modelsDir;
        const stages: Partial<Record<Stage, number>> = {};
        const timer = (s: Stage, ms: number) => (stages[s] = (stages[s] ?? 0) + ms);
        const t0 = performance.now();

        if (opts.image) {
          if (!existsSync(opts.image)) throw new BadInputError(`--image ${opts.image}: no such file`);
          const models = await loadSam2Models(modelsDir, 'image', runtimeOptions(config));
          try {
            const source = { data: opts.image, label: opts.image };
            const pixels = promptToPixels(prompt, await imageSize(source), opts.image);
            const r = await segmentImage(models, source, pixels, timer);
            await writeMaskPng(opts.out, r.mask, r.width, r.height);
            const summary = {
              out: opts.out,
              width: r.width,
              height: r.height,
              area: r.area,
              iou: r.iou,
              rule: r.rule,
            };
            const doc = opts.timings ? { ...summary, ms: performance.now() - t0, stages } : summary;
            emit(cmd, doc, JSON.stringify(doc));
          } finally {
            await models.release();
          }
          return;
        }

        const video = opts.video!;
        if (!existsSync(video)) throw new BadInputError(`--video ${video}: no such file or folder`);
        if (opts.keyframe === undefined) throw new BadInputError('--video needs --keyframe K');
        const keyframe = opts.keyframe;
        // load the models first: a missing export fails before any decoding work
        const models = await loadSam2Models(modelsDir, 'video', runtimeOptions(config));
        const isDir = statSync(video).isDirectory();
        const dir = isDir ? video : await explodeVideo(video);
        try {
          const files = await frameFiles(dir);
          const first = { data: join(dir, files[0]!), label: files[0]! };
          const pixels = promptToPixels(prompt, await imageSize(first), `frame ${files[0]}`);
          await mkdir(opts.out, { recursive: true });
          const stem = (f: string) => f.slice(0, f.length - extname(f).length);
          const result = await trackVideo(
            models,
            {
              count: files.length,
              name: (i) => stem(files[i]!),
              load: async (i) => ({ data: join(dir, files[i]!), label: files[i]! }),
            },
            ephemeralTrackerStore((m) =>
              writeMaskPng(join(opts.out, `${m.name}.png`), m.mask, m.width, m.height),
            ),
            {
              keyframe,
              prompt: pixels,
              timer,
              onProgress: (p) => {
                if (process.stderr.isTTY)
                  process.stderr.write(`\rframe ${p.lastFrame} (${p.done}/${p.numFrames}, ${p.phase})   `);
              },
            },
          );
          if (process.stderr.isTTY) process.stderr.write('\n');
          const summary = { out: opts.out, ...result };
          const doc = opts.timings
            ? { ...summary, msPerFrame: (performance.now() - t0) / result.numFrames, stages }
            : summary;
          emit(cmd, doc, JSON.stringify(doc));
        } finally {
          await models.release();
          if (!isDir) await rm(dir, { recursive: true, force: true });
        }
      },
    );
}
