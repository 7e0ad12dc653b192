/**
 * The SAM2 video loop for one object and one keyframe, as Seg-ReSearch runs it
 * (`post_segmentation/sam2_okvos.py` over `SAM2VideoPredictor`): prompt the keyframe, propagate
 * forward to the last frame, then backward to frame 0 in the same output dict. Per tracked frame:
 * encoder → memory attention over the conditioning frame + the last 6 tracked frames and up to 16
 * object pointers (memory-bank.ts) → video decoder (no prompt, multimask) → memory encoder on the
 * raw features and the gated, unfilled logits. Output masks are hole-filled logits → bilinear to
 * the video size → > threshold. Memory features are kept as bfloat16, as the predictor stores them.
 *
 * Persistence is the caller's: after each frame the mask and the frame's state go to `store`, then
 * `onProgress` reports how many frames of the processing order are done; `resume` restarts after
 * the last finished frame with the states it needs read back from `store`.
 */
import { FEAT, HIDDEN_DIM, LOW_RES, MEM_DIM } from './contract.js';
import { planMemory, bankReach, type MemoryPlan } from './memory-bank.js';
import { f32, f32Data, graph, i64, type Sam2Models } from './models.js';
import { fillHoles, fromBfloat16, logitsToMask, toBfloat16 } from './postprocess.js';
import { imageSize, type ImageInput } from './preprocess.js';
import type { PixelPrompt } from './prompts.js';
import {
  decode,
  encodeImage,
  noTimer,
  promptFrame,
  timed,
  type EncodedFrame,
  type StageTimer,
} from './sam2-image.js';
import { BadInputError } from '../errors.js';

export const MEM_SIZE = MEM_DIM * FEAT * FEAT;

export interface VideoFrames {
  readonly count: number;
  /** The frame's name (its file stem), used for the output mask. */
  name(index: number): string;
  load(index: number): Promise<ImageInput>;
}

/** What later frames need from a finished frame. */
export interface FrameState {
  frame: number;
  isCond: boolean;
  /** maskmem_features [64,64,64] as bfloat16 bits. */
  maskmem: Uint16Array;
  /** obj_ptr [256] */
  objPtr: Float32Array;
  objectScore: number;
}

export interface FrameMask {
  frame: number;
  name: string;
  /** 0/255, width×height */
  mask: Uint8Array;
  width: number;
  height: number;
  area: number;
  objectScore: number;
}

export interface TrackerStore {
  saveState(state: FrameState): Promise<void>;
  loadState(frame: number): Promise<FrameState | undefined>;
  saveMask(mask: FrameMask): Promise<void>;
}

export interface TrackProgress {
  keyframe: number;
  numFrames: number;
  /** Frames of the processing order (keyframe, forward, backward) finished. */
  done: number;
  /** The last finished frame. */
  lastFrame: number;
  phase: 'keyframe' | 'forward' | 'reverse';
}

export interface TrackTraceEntry {
  frame: number;
  reverse: boolean;
  plan: MemoryPlan | null;
  objectScore: number;
  area: number;
  /** The frame's output logits [256×256] (hole-filled, before the resize to the video size). */
  logits: Float32Array;
}

export interface TrackOptions {
  keyframe: number;
  /** In pixels of the first frame (the video size). */
  prompt: PixelPrompt;
  /** Progress of an earlier, interrupted run of the same job. */
  resume?: Pick<TrackProgress, 'done'>;
  onProgress?: (p: TrackProgress) => Promise<void> | void;
  signal?: AbortSignal;
  timer?: StageTimer;
  /** Every computed frame with its memory plan (tests, debugging). */
  trace?: (entry: TrackTraceEntry) => void;
  /** Warnings (a checkpoint that could not be used). */
  warn?: (message: string) => void;
}

export interface TrackResult {
  numFrames: number;
  width: number;
  height: number;
  /** The processing order's position this run started from (0 = fresh). */
  resumedFrom: number;
  framesComputed: number;
  emptyFrames: number;
}

/** keyframe, keyframe+1 … last, keyframe−1 … 0 */
export function processingOrder(keyframe: number, numFrames: number): number[] {
  const order = [keyframe];
  for (let t = keyframe + 1; t < numFrames; t++) order.push(t);
  for (let t = keyframe - 1; t >= 0; t--) order.push(t);
  return order;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('cancelled');
}

export async function trackVideo(
  models: Sam2Models,
  frames: VideoFrames,
  store: TrackerStore,
  opts: TrackOptions,
): Promise<TrackResult> {
  const cfg = models.config;
  const numFrames = frames.count;
  const k = opts.keyframe;
  const timer = opts.timer ?? noTimer;
  if (numFrames < 1) throw new BadInputError('the video has no frames');
  if (!Number.isInteger(k) || k < 0 || k >= numFrames) {
    throw new BadInputError(`keyframe ${k} is not a frame of the video (frames 0..${numFrames - 1})`, {
      keyframe: k,
    });
  }
  if (!opts.prompt.box && !opts.prompt.point)
    throw new BadInputError('the keyframe prompt needs a box, a point or both');
  const video = await imageSize(await frames.load(0));
  const order = processingOrder(k, numFrames);
  const reach = bankReach(cfg);
  const states = new Map<number, FrameState>();
  let start = Math.min(Math.max(0, opts.resume?.done ?? 0), order.length);

  if (start > 0) {
    const finished = order.slice(0, start);
    const next = order[start] ?? k;
    const needed = finished.filter(
      (f) => f === k || Math.abs(f - next) <= reach || (f > k && f <= k + reach),
    );
    for (const f of needed) {
      const s = await store.loadState(f);
      if (!s) {
        opts.warn?.(`checkpoint state of frame ${f} is missing; restarting the video from the keyframe`);
        states.clear();
        start = 0;
        break;
      }
      states.set(f, s);
    }
  }

  const encoderKernel = 'cubic' as const;
  const encode = async (t: number): Promise<EncodedFrame> => {
    const frame = await encodeImage(models, await frames.load(t), encoderKernel, timer);
    // prompts and outputs use the video size (the first frame's), as init_state does
    return { ...frame, width: video.width, height: video.height };
  };
  const refine = (logits: Float32Array) =>
    cfg.fill_hole_area > 0 ? fillHoles(logits, LOW_RES, LOW_RES, cfg.fill_hole_area) : logits;
  const memoryEncoder = graph(models, 'memoryEncoder');
  const encodeMemory = async (
    frame: EncodedFrame,
    logits: Float32Array,
    binarize: boolean,
    score: number,
  ) => {
    const out = await timed(timer, 'memoryEncoder', () =>
      memoryEncoder.run({
        current_vision_feat: f32(frame.imageEmbed, [1, HIDDEN_DIM, FEAT, FEAT]),
        mask_logits: f32(logits, [1, 1, LOW_RES, LOW_RES]),
        binarize: f32(Float32Array.of(binarize ? 1 : 0), [1]),
        object_score_logits: f32(Float32Array.of(score), [1, 1]),
      }),
    );
    return toBfloat16(f32Data(out, 'maskmem_features', memoryEncoder.file));
  };
  const memoryAttention = graph(models, 'memoryAttention');
  const attend = async (frame: EncodedFrame, plan: MemoryPlan) => {
    const memory = new Float32Array(plan.memory.length * MEM_SIZE);
    plan.memory.forEach((m, i) => fromBfloat16(states.get(m.frame)!.maskmem, memory, i * MEM_SIZE));
    const ptrs = new Float32Array(plan.pointers.length * HIDDEN_DIM);
    plan.pointers.forEach((p, i) => ptrs.set(states.get(p.frame)!.objPtr, i * HIDDEN_DIM));
    const out = await timed(timer, 'memoryAttention', () =>
      memoryAttention.run({
        current_vision_feat: f32(frame.imageEmbed, [1, HIDDEN_DIM, FEAT, FEAT]),
        memory_1: f32(memory, [plan.memory.length, MEM_DIM, FEAT, FEAT]),
        memory_1_tpos: i64(plan.memory.map((m) => m.tposRow)),
        memory_0: f32(ptrs, [plan.pointers.length, HIDDEN_DIM]),
        memory_0_pos: f32(Float32Array.from(plan.pointers.map((p) => p.pos)), [plan.pointers.length]),
      }),
    );
    return f32Data(out, 'pix_feat_with_mem', memoryAttention.file);
  };
  const emit = async (t: number, logits: Float32Array, objectScore: number): Promise<number> => {
    const { mask, area } = await timed(timer, 'postprocess', () =>
      logitsToMask(logits, LOW_RES, video.width, video.height, cfg.mask_threshold),
    );
    await store.saveMask({
      frame: t,
      name: frames.name(t),
      mask,
      width: video.width,
      height: video.height,
      area,
      objectScore,
    });
    return area;
  };

  let framesComputed = 0;
  let emptyFrames = 0;
  for (let pos = start; pos < order.length; pos++) {
    throwIfAborted(opts.signal);
    const t = order[pos]!;
    const frame = await encode(t);
    let state: FrameState;
    let logits: Float32Array;
    let plan: MemoryPlan | null = null;
    const reverse = t < k;
    if (t === k) {
      const prompted = await promptFrame(models, 'videoDecoder', frame, opts.prompt, refine, timer);
      const score = prompted.objectScore!;
      const maskmem = await encodeMemory(
        frame,
        prompted.logits,
        cfg.binarize_mask_from_pts_for_mem_enc,
        score,
      );
      state = { frame: t, isCond: true, maskmem, objPtr: prompted.objPtr!, objectScore: score };
      logits = prompted.logits;
    } else {
      plan = planMemory(cfg, {
        frameIdx: t,
        reverse,
        numFrames,
        condFrames: [k],
        hasOutput: (f) => states.has(f) && !states.get(f)!.isCond,
      });
      const pixFeat = await attend(frame, plan);
      const decoded = await decode(models, 'videoDecoder', frame, pixFeat, { points: [] }, false, timer);
      const score = decoded.objectScore!;
      const maskmem = await encodeMemory(frame, decoded.logits, false, score);
      state = { frame: t, isCond: false, maskmem, objPtr: decoded.objPtr!, objectScore: score };
      logits = refine(decoded.logits);
    }
    const area = await emit(t, logits, state.objectScore);
    await store.saveState(state);
    states.set(t, state);
    framesComputed++;
    if (area === 0) emptyFrames++;
    opts.trace?.({ frame: t, reverse, plan, objectScore: state.objectScore, area, logits });
    for (const f of [...states.keys()]) {
      if (f !== k && Math.abs(f - t) > reach && !(f > k && f <= k + reach)) states.delete(f);
    }
    await opts.onProgress?.({
      keyframe: k,
      numFrames,
      done: pos + 1,
      lastFrame: t,
      phase: t === k ? 'keyframe' : reverse ? 'reverse' : 'forward',
    });
  }
  return {
    numFrames,
    width: video.width,
    height: video.height,
    resumedFrom: start,
    framesComputed,
    emptyFrames,
  };
}

/** Frame-state blob: "SGS1", frame (i32), isCond (u8), 3 pad, score (f32), obj_ptr (256 f32), maskmem (bf16). */
const MAGIC = 0x31534753;
const HEADER = 16;

export function encodeFrameState(s: FrameState): Uint8Array {
  const buf = new ArrayBuffer(HEADER + HIDDEN_DIM * 4 + MEM_SIZE * 2);
  const view = new DataView(buf);
  view.setUint32(0, MAGIC, true);
  view.setInt32(4, s.frame, true);
  view.setUint8(8, s.isCond ? 1 : 0);
  view.setFloat32(12, s.objectScore, true);
  new Float32Array(buf, HEADER, HIDDEN_DIM).set(s.objPtr);
  new Uint16Array(buf, HEADER + HIDDEN_DIM * 4, MEM_SIZE).set(s.maskmem);
  return new Uint8Array(buf);
}

export function decodeFrameState(bytes: Uint8Array, label: string): FrameState {
  const expected = HEADER + HIDDEN_DIM * 4 + MEM_SIZE * 2;
  const copy = new Uint8Array(expected);
  if (bytes.byteLength !== expected)
    throw new BadInputError(`${label}: frame state has ${bytes.byteLength} bytes, expected ${expected}`);
  copy.set(bytes);
  const view = new DataView(copy.buffer);
  if (view.getUint32(0, true) !== MAGIC) throw new BadInputError(`${label}: not a segflow frame state`);
  return {
    frame: view.getInt32(4, true),
    isCond: view.getUint8(8) === 1,
    objectScore: view.getFloat32(12, true),
    objPtr: new Float32Array(copy.buffer, HEADER, HIDDEN_DIM),
    maskmem: new Uint16Array(copy.buffer, HEADER + HIDDEN_DIM * 4, MEM_SIZE),
  };
}

/** A store that keeps no states (no resume) and hands masks to a callback (CLI, benchmarks). */
export function ephemeralTrackerStore(
  saveMask: (m: FrameMask) => Promise<void> = async () => undefined,
): TrackerStore {
  return {
    async saveState() {},
    async loadState() {
      return undefined;
    },
    saveMask,
  };
}
