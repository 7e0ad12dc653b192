/**
 * The segment role's activities: SAM2 image segmentation and keyframe-prompted video propagation
 * on onnxruntime-node. Inputs are validated with zod at the edge; every failure is typed (bad
 * input, missing/mismatched model files: non-retryable; S3: by class). `segmentVideo` heartbeats
 * after every frame with its progress and checkpoints the memory state to S3, so a retried attempt
 * (another worker, a restart) resumes after the last finished frame.
 */
import { createHash } from 'node:crypto';
import { basename, extname } from 'node:path';
import { DeleteObjectsCommand } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { z } from 'zod';
import { artifactRefSchema, type ArtifactRef } from '../../core/artifacts.js';
import type { FrameSet } from '../media/ingest.js';
import type { SegflowConfig } from '../../core/config/schema.js';
import { BadInputError } from '../errors.js';
import { cancellationSignal, heartbeat, lastHeartbeatDetails, parseActivityInput } from '../edge.js';
import type { PinoLogger } from '../runtime/logger.js';
import { recordSam2 } from '../runtime/metrics.js';
import { ArtifactNotFoundError, classifyS3Error, type ArtifactStore } from '../storage/artifact-store.js';
import { CONTRACT_VERSION } from './contract.js';
import { sharedSam2Models, type RuntimeOptions } from './models.js';
import { imageSize } from './preprocess.js';
import { promptSchema, promptToPixels } from './prompts.js';
import { IMAGE_PROMPT_PROTOCOLS, segmentImage } from './sam2-image.js';
import {
  decodeFrameState,
  encodeFrameState,
  processingOrder,
  trackVideo,
  type FrameMask,
  type TrackerStore,
  type TrackProgress,
} from './sam2-video.js';

export const segmentImageInputSchema = z.strictObject({
  /** s3:// URI (or key in the artifact store) of the image. */
  image: z.string().min(1),
  prompt: promptSchema,
  /**
   * `box`: one box-only call with a single mask (Seg-ReSearch's ReasonSeg script); `box-then-point`:
   * the video protocol's box call then the click with the box mask. @default "box-then-point"
   */
  protocol: z.enum(IMAGE_PROMPT_PROTOCOLS).default('box-then-point'),
  /** Key of the 0/255 mask PNG to write. */
  outputKey: z.string().min(1),
  /** Overrides segment.modelsDir. */
  modelsDir: z.string().min(1).optional(),
});
export type SegmentImageInput = z.input<typeof segmentImageInputSchema>;

export interface SegmentImageResult {
  mask: ArtifactRef;
  width: number;
  height: number;
  area: number;
  iou: number;
  /** Decoder calls made, and the graph that answered (`decoder` has no single-mask token). */
  decoderCalls: number;
  decoder: 'decoder' | 'videoDecoder';
}

export const segmentVideoInputSchema = z
  .strictObject({
    /** The video's frames in order: s3:// URIs (or keys). Frame i is `<keyframe>` index i. */
    frames: z.array(z.string().min(1)).min(1).optional(),
    /** Or the stored FrameSet listing them (what workflows pass: a video of any length is one ref). */
    frameSet: artifactRefSchema.optional(),
    keyframe: z.number().int().min(0),
    /** Prompt on the keyframe; coordinates refer to the first frame's size (as the reference). */
    prompt: promptSchema.optional(),
    /**
     * With no usable prompt (no box and no point), the reference writes an empty mask for every
     * frame; `error` fails instead. @default "error"
     */
    onMissingPrompt: z.enum(['error', 'empty-masks']).default('error'),
    /** Masks go to `<prefix>/masks/<frame name>.png`, the checkpoint under `<prefix>/state/`. */
    outputPrefix: z.string().min(1),
    /** Overrides segment.modelsDir. */
    modelsDir: z.string().min(1).optional(),
  })
  .refine((v) => (v.frames === undefined) !== (v.frameSet === undefined), {
    message: 'give either frames or frameSet',
  });
export type SegmentVideoInput = z.input<typeof segmentVideoInputSchema>;

export interface SegmentVideoResult {
  /** JSON: contract, model, size, keyframe and every frame's mask URI. */
  manifest: ArtifactRef;
  numFrames: number;
  width: number;
  height: number;
  /** Frames with an empty mask among those this attempt computed. */
  emptyFrames: number;
  /** Position in the processing order this attempt started from (0 = fresh start). */
  resumedFrom: number;
  framesComputed: number;
}

/** Heartbeat details and `<prefix>/state/checkpoint.json`. */
interface Checkpoint extends TrackProgress {
  runKey: string;
}

export interface SegmentDeps {
  config: SegflowConfig;
  store: ArtifactStore;
  logger: PinoLogger;
}

export function runtimeOptions(config: SegflowConfig): RuntimeOptions {
  return {
    executionProviders: config.segment.executionProviders,
    deviceId: config.segment.deviceId,
    intraOpThreads: config.segment.intraOpThreads,
    runsPerDevice: config.segment.runsPerDevice,
  };
}

async function pngOf(mask: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(Buffer.from(mask.buffer, mask.byteOffset, mask.byteLength), {
    raw: { width, height, channels: 1 },
  })
    .toColourspace('b-w')
    .png()
    .toBuffer();
}

async function readArtifact(store: ArtifactStore, uri: string, what: string): Promise<Buffer> {
  try {
    return await store.getBytes(uri);
  } catch (err) {
    if (err instanceof ArtifactNotFoundError)
      throw new BadInputError(`${what} ${uri} does not exist`, { uri }, err);
    throw err;
  }
}

function frameName(uri: string): string {
  const base = basename(uri);
  return base.slice(0, base.length - extname(base).length) || base;
}

async function deletePrefix(store: ArtifactStore, prefix: string): Promise<void> {
  let batch: { Key: string }[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    try {
      await store.client.send(
        new DeleteObjectsCommand({ Bucket: store.bucket, Delete: { Objects: batch, Quiet: true } }),
      );
    } catch (err) {
      throw classifyS3Error(err, `delete under ${prefix}`);
    }
    batch = [];
  };
  for await (const obj of store.list(prefix)) {
    batch.push({ Key: store.prefix + obj.key });
    if (batch.length === 1000) await flush();
  }
  await flush();
}

/** The frame URIs of a stored FrameSet, in order. */
async function frameUris(store: ArtifactStore, frameSet: ArtifactRef): Promise<string[]> {
  const set = await store.getInputJson<FrameSet>(frameSet.uri, 'frame set');
  if (!Array.isArray(set?.frames) || set.frames.length === 0) {
    throw new BadInputError(`frame set ${frameSet.uri} lists no frames`, { uri: frameSet.uri });
  }
  return set.frames.map((f) => f.ref.uri);
}

export function createSegmentActivities(deps: SegmentDeps) {
  const { config, store, logger } = deps;
  const rt = runtimeOptions(config);

  return {
    async segmentImage(raw: SegmentImageInput): Promise<SegmentImageResult> {
      const input = parseActivityInput(segmentImageInputSchema, raw, 'segmentImage');
      const models = await sharedSam2Models(input.modelsDir ?? config.segment.modelsDir, 'image', rt);
      const bytes = await readArtifact(store, input.image, 'image');
      const source = { data: bytes, label: input.image };
      const size = await imageSize(source);
      const prompt = promptToPixels(input.prompt, size, input.image);
      const t0 = performance.now();
      const result = await segmentImage(models, source, prompt, undefined, input.protocol);
      recordSam2('image', performance.now() - t0, 1);
      if (input.protocol === 'box' && result.decoder === 'decoder') {
        logger.warn(
          { modelsDir: models.dir },
          'box-only image prompt: no video_decoder.onnx in the models folder, so no single-mask token; the best of the 3 multimask masks was used',
        );
      }
      const mask = await store.putBytes(
        input.outputKey,
        await pngOf(result.mask, result.width, result.height),
        'image/png',
      );
      return {
        mask,
        width: result.width,
        height: result.height,
        area: result.area,
        iou: result.iou,
        decoderCalls: result.decoderCalls,
        decoder: result.decoder,
      };
    },

    async segmentVideo(raw: SegmentVideoInput): Promise<SegmentVideoResult> {
      const parsed = parseActivityInput(segmentVideoInputSchema, raw, 'segmentVideo');
      const input = { ...parsed, frames: parsed.frames ?? (await frameUris(store, parsed.frameSet!)) };
      const prefix = input.outputPrefix.replace(/\/+$/, '');
      const numFrames = input.frames.length;
      const names = input.frames.map(frameName);
      const dup = names.find((n, i) => names.indexOf(n) !== i);
      if (dup !== undefined) throw new BadInputError(`segmentVideo input: two frames are named "${dup}"`);
      const maskKey = (i: number) => `${prefix}/masks/${names[i]}.png`;
      const writeManifest = (width: number, height: number, extra: Record<string, unknown>) =>
        store.putJson(`${prefix}/manifest.json`, {
          contract: CONTRACT_VERSION,
          keyframe: input.keyframe,
          width,
          height,
          ...extra,
          frames: input.frames.map((uri, i) => ({
            frame: i,
            name: names[i],
            source: uri,
            mask: store.uriOf(maskKey(i)),
          })),
        });
      const hasPrompt = Boolean(input.prompt?.box || input.prompt?.point);
      if (input.keyframe >= numFrames) {
        throw new BadInputError(
          `keyframe ${input.keyframe} is not a frame of the video (frames 0..${numFrames - 1})`,
          {
            keyframe: input.keyframe,
          },
        );
      }
      if (!hasPrompt) {
        if (input.onMissingPrompt === 'error') {
          throw new BadInputError(
            'segmentVideo input: prompt needs a box, a point or both (onMissingPrompt is "error")',
          );
        }
        const size = await imageSize({
          data: await readArtifact(store, input.frames[0]!, 'frame'),
          label: input.frames[0]!,
        });
        const empty = await pngOf(new Uint8Array(size.width * size.height), size.width, size.height);
        for (let i = 0; i < numFrames; i++) await store.putBytes(maskKey(i), empty, 'image/png');
        const manifest = await writeManifest(size.width, size.height, { prompted: false });
        return { manifest, numFrames, ...size, emptyFrames: numFrames, resumedFrom: 0, framesComputed: 0 };
      }

      const models = await sharedSam2Models(input.modelsDir ?? config.segment.modelsDir, 'video', rt);
      const runKey = createHash('sha256')
        .update(
          JSON.stringify([
            input.frames,
            input.keyframe,
            input.prompt,
            models.config.model_id,
            models.config.sam2_commit ?? models.config.sam2_version,
          ]),
        )
        .digest('hex');
      const checkpointKey = `${prefix}/state/checkpoint.json`;
      const order = processingOrder(input.keyframe, numFrames);
      const fromHeartbeat = lastHeartbeatDetails() as Partial<Checkpoint> | undefined;
      let fromS3: Partial<Checkpoint> | undefined;
      if (await store.head(checkpointKey)) fromS3 = await store.getJson<Checkpoint>(checkpointKey);
      const candidates = [fromHeartbeat, fromS3].filter(
        (c): c is Checkpoint => c?.runKey === runKey && typeof c.done === 'number' && c.done <= order.length,
      );
      const resumeDone = Math.max(0, ...candidates.map((c) => c.done));
      const video = await imageSize({
        data: await readArtifact(store, input.frames[0]!, 'frame'),
        label: input.frames[0]!,
      });
      if (resumeDone === order.length) {
        logger.info({ prefix }, 'segmentVideo: already finished by an earlier attempt');
        const manifest = await writeManifest(video.width, video.height, {
          prompted: true,
          modelId: models.config.model_id,
        });
        return {
          manifest,
          numFrames,
          ...video,
          emptyFrames: 0,
          resumedFrom: resumeDone,
          framesComputed: 0,
        };
      }
      const prompt = promptToPixels(input.prompt!, video, `keyframe ${input.keyframe} prompt`);

      const stateKey = (f: number) => `${prefix}/state/frame-${String(f).padStart(6, '0')}.bin`;
      const trackerStore: TrackerStore = {
        async saveState(s) {
          await store.putBytes(stateKey(s.frame), encodeFrameState(s), 'application/octet-stream');
        },
        async loadState(f) {
          if (!(await store.head(stateKey(f)))) return undefined;
          return decodeFrameState(await store.getBytes(stateKey(f)), stateKey(f));
        },
        async saveMask(m: FrameMask) {
          await store.putBytes(maskKey(m.frame), await pngOf(m.mask, m.width, m.height), 'image/png');
        },
      };
      const frames = {
        count: numFrames,
        name: (i: number) => names[i]!,
        load: async (i: number) => ({
          data: await readArtifact(store, input.frames[i]!, 'frame'),
          label: input.frames[i]!,
        }),
      };
      const signal = cancellationSignal();
      const t0 = performance.now();
      const result = await trackVideo(models, frames, trackerStore, {
        keyframe: input.keyframe,
        prompt,
        resume: { done: resumeDone },
        signal,
        warn: (message) => logger.warn({ prefix }, message),
        onProgress: async (p) => {
          const cp: Checkpoint = { ...p, runKey };
          await store.putJson(checkpointKey, cp);
          heartbeat(cp);
        },
      });
      recordSam2('video', performance.now() - t0, result.framesComputed);
      const manifest = await writeManifest(result.width, result.height, {
        prompted: true,
        modelId: models.config.model_id,
      });
      await deletePrefix(store, `${prefix}/state/frame-`);
      return {
        manifest,
        numFrames,
        width: result.width,
        height: result.height,
        emptyFrames: result.emptyFrames,
        resumedFrom: result.resumedFrom,
        framesComputed: result.framesComputed,
      };
    },
  };
}

export type SegmentActivities = ReturnType<typeof createSegmentActivities>;
