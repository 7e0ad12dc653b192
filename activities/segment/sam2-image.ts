/**
 * SAM2 on one image: encoder, then the decoder prompted in one of two ways, SAM2's mask choice,
 * and the low-res logits upscaled bilinearly to the original size and thresholded.
 * - `box`: one call with the box alone and a single mask (`SAM2ImagePredictor.predict(box=…,
 *   multimask_output=False)`, as Seg-ReSearch's ReasonSeg script did). The single-mask token is
 *   token 0 of `video_decoder.onnx` (with SAM2's stability fallback); a folder with only the
 *   samexporter `decoder.onnx` has no token 0, so the best of its 3 multimask tokens is taken.
 * - `box-then-point`: the video protocol (box → mask; then the click with that mask's low-res
 *   logits as `mask_input`).
 */
import { FEAT, HIDDEN_DIM, LOW_RES } from './contract.js';
import { chooseMask, LOW_RES_AREA, tokenLogits, useMultimask, type MaskChoice } from './mask-choice.js';
import { f32, f32Data, graph, type Sam2Models } from './models.js';
import { logitsToMask } from './postprocess.js';
import { prepareImage, type ImageInput, type ResizeKernel } from './preprocess.js';
import { boxPoints, toModelPoints, type PixelPrompt } from './prompts.js';
import { BadInputError } from '../errors.js';

export interface EncodedFrame {
  imageEmbed: Float32Array;
  highRes0: Float32Array;
  highRes1: Float32Array;
  width: number;
  height: number;
}

export interface StageTimer {
  (stage: Stage, ms: number): void;
}
export type Stage =
  'preprocess' | 'encoder' | 'memoryAttention' | 'decoder' | 'memoryEncoder' | 'postprocess';

export const noTimer: StageTimer = () => undefined;

export async function timed<T>(timer: StageTimer, stage: Stage, fn: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    timer(stage, performance.now() - t0);
  }
}

/** Preprocess + encoder. */
export async function encodeImage(
  models: Sam2Models,
  input: ImageInput,
  kernel: ResizeKernel,
  timer: StageTimer = noTimer,
): Promise<EncodedFrame> {
  const { pixel_mean, pixel_std } = models.config;
  const prepared = await timed(timer, 'preprocess', () => prepareImage(input, pixel_mean, pixel_std, kernel));
  const encoder = graph(models, 'encoder');
  const out = await timed(timer, 'encoder', () =>
    encoder.run({ image: f32(prepared.tensor, [1, 3, 1024, 1024]) }),
  );
  return {
    imageEmbed: f32Data(out, 'image_embed', encoder.file),
    highRes0: f32Data(out, 'high_res_feats_0', encoder.file),
    highRes1: f32Data(out, 'high_res_feats_1', encoder.file),
    width: prepared.width,
    height: prepared.height,
  };
}

export interface DecoderCall {
  points: { x: number; y: number; label: number }[];
  /** Previous low-res logits (clamped to ±32 here) or none. */
  maskInput?: Float32Array;
}

export interface DecodedMask {
  /** The chosen low-res logits [256×256] (a copy). */
  logits: Float32Array;
  choice: MaskChoice;
  /** The chosen object pointer [256] (video decoder only). */
  objPtr?: Float32Array;
  /** video decoder only */
  objectScore?: number;
}

/** One decoder call (`decoder.onnx` or `video_decoder.onnx`) and the SAM2 mask choice. */
export async function decode(
  models: Sam2Models,
  which: 'decoder' | 'videoDecoder',
  frame: EncodedFrame,
  imageEmbed: Float32Array,
  call: DecoderCall,
  isInitCondFrame: boolean,
  timer: StageTimer = noTimer,
  /** Force single-mask output (`multimask_output=False`); default: SAM2's `_use_multimask` rule. */
  multimaskAllowed = true,
): Promise<DecodedMask> {
  const g = graph(models, which);
  const pts = toModelPoints(call.points, frame);
  const maskInput = new Float32Array(LOW_RES_AREA);
  if (call.maskInput)
    for (let i = 0; i < LOW_RES_AREA; i++) maskInput[i] = Math.min(32, Math.max(-32, call.maskInput[i]!));
  const out = await timed(timer, 'decoder', () =>
    g.run({
      image_embed: f32(imageEmbed, [1, HIDDEN_DIM, FEAT, FEAT]),
      high_res_feats_0: f32(frame.highRes0, [1, 32, 256, 256]),
      high_res_feats_1: f32(frame.highRes1, [1, 64, 128, 128]),
      point_coords: f32(pts.coords, [1, pts.labels.length, 2]),
      point_labels: f32(pts.labels, [1, pts.labels.length]),
      mask_input: f32(maskInput, [1, 1, LOW_RES, LOW_RES]),
      has_mask_input: f32(Float32Array.of(call.maskInput ? 1 : 0), [1]),
    }),
  );
  const masks = f32Data(out, 'masks', g.file);
  const iou = f32Data(out, 'iou_predictions', g.file);
  const tokens = which === 'videoDecoder' ? 4 : 3;
  const multimask =
    multimaskAllowed && useMultimask(models.config, { isInitCondFrame, numPoints: pts.count });
  const choice = chooseMask(masks, iou, tokens, multimask, models.config);
  const result: DecodedMask = { logits: Float32Array.from(tokenLogits(masks, choice.maskToken)), choice };
  if (which === 'videoDecoder') {
    const ptrs = f32Data(out, 'obj_ptrs', g.file);
    result.objPtr = Float32Array.from(
      ptrs.subarray(choice.pointerToken * HIDDEN_DIM, (choice.pointerToken + 1) * HIDDEN_DIM),
    );
    result.objectScore = f32Data(out, 'object_score_logits', g.file)[0]!;
  }
  return result;
}

/**
 * The reference's prompting on one frame: box alone → mask; then, when there is a click, the click
 * alone with the box mask's logits as `mask_input` (`sam2_okvos.py` calls add_new_points_or_box
 * twice; the second call clears the box but feeds the previous logits back). Each call's mask
 * goes through `refine` (the video path's hole fill) before it is fed back.
 */
export async function promptFrame(
  models: Sam2Models,
  which: 'decoder' | 'videoDecoder',
  frame: EncodedFrame,
  prompt: PixelPrompt,
  refine: (logits: Float32Array) => Float32Array,
  timer: StageTimer = noTimer,
): Promise<DecodedMask & { calls: number }> {
  if (!prompt.box && !prompt.point) throw new BadInputError('a segment prompt needs a box, a point or both');
  let result: DecodedMask | undefined;
  let calls = 0;
  if (prompt.box) {
    result = await decode(
      models,
      which,
      frame,
      frame.imageEmbed,
      { points: boxPoints(prompt.box) },
      true,
      timer,
    );
    result.logits = refine(result.logits);
    calls++;
  }
  if (prompt.point) {
    const call: DecoderCall = { points: [{ x: prompt.point[0], y: prompt.point[1], label: 1 }] };
    if (result) call.maskInput = result.logits;
    result = await decode(models, which, frame, frame.imageEmbed, call, true, timer);
    result.logits = refine(result.logits);
    calls++;
  }
  return { ...result!, calls };
}

/** How an image is prompted (see the module comment). */
export const IMAGE_PROMPT_PROTOCOLS = ['box', 'box-then-point'] as const;
export type ImagePromptProtocol = (typeof IMAGE_PROMPT_PROTOCOLS)[number];

/**
 * One decoder call with the box alone (a click only when there is no box), single-mask where the
 * models offer token 0 (`video_decoder.onnx`).
 */
export async function promptBoxOnly(
  models: Sam2Models,
  frame: EncodedFrame,
  prompt: PixelPrompt,
  timer: StageTimer = noTimer,
): Promise<DecodedMask & { calls: number }> {
  if (!prompt.box && !prompt.point) throw new BadInputError('a segment prompt needs a box, a point or both');
  const which = models.graphs.videoDecoder ? 'videoDecoder' : 'decoder';
  const points = prompt.box
    ? boxPoints(prompt.box)
    : [{ x: prompt.point![0], y: prompt.point![1], label: 1 }];
  const result = await decode(models, which, frame, frame.imageEmbed, { points }, true, timer, false);
  return { ...result, calls: 1 };
}

export interface ImageSegmentation {
  /** 0/255, width×height */
  mask: Uint8Array;
  width: number;
  height: number;
  area: number;
  iou: number;
  rule: MaskChoice['rule'];
  decoderCalls: number;
  /** The decoder graph that answered. */
  decoder: 'decoder' | 'videoDecoder';
  /** The chosen low-res logits. */
  logits: Float32Array;
}

/** Image mode (encoder.onnx + decoder.onnx). */
export async function segmentImage(
  models: Sam2Models,
  input: ImageInput,
  prompt: PixelPrompt,
  timer: StageTimer = noTimer,
  protocol: ImagePromptProtocol = 'box-then-point',
): Promise<ImageSegmentation> {
  const frame = await encodeImage(models, input, 'linear', timer);
  const decoder = protocol === 'box' && models.graphs.videoDecoder ? 'videoDecoder' : 'decoder';
  const decoded =
    protocol === 'box'
      ? await promptBoxOnly(models, frame, prompt, timer)
      : await promptFrame(models, 'decoder', frame, prompt, (l) => l, timer);
  const { mask, area } = await timed(timer, 'postprocess', () =>
    logitsToMask(decoded.logits, LOW_RES, frame.width, frame.height, models.config.mask_threshold),
  );
  return {
    mask,
    width: frame.width,
    height: frame.height,
    area,
    iou: decoded.choice.iou,
    rule: decoded.choice.rule,
    decoderCalls: decoded.calls,
    decoder,
    logits: decoded.logits,
  };
}
