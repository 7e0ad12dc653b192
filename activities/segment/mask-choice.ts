/**
 * SAM2's mask and object-pointer token choice (no I/O), after `sam2/modeling/sam2_base.py`
 * (`_use_multimask`, `_forward_sam_heads`) and `sam2/modeling/sam/mask_decoder.py`
 * (`_get_stability_scores`, `_dynamic_multimask_via_stability`) at facebookresearch/sam2 2b90b9f.
 */
import type { Sam2Config } from './contract.js';

export const LOW_RES_AREA = 256 * 256;

/** `_use_multimask`: 3 masks for 0..1 points on a prompted frame, or always when tracking. */
export function useMultimask(
  config: Pick<
    Sam2Config,
    | 'multimask_output_in_sam'
    | 'multimask_output_for_tracking'
    | 'multimask_min_pt_num'
    | 'multimask_max_pt_num'
  >,
  opts: { isInitCondFrame: boolean; numPoints: number },
): boolean {
  return (
    config.multimask_output_in_sam &&
    (opts.isInitCondFrame || config.multimask_output_for_tracking) &&
    config.multimask_min_pt_num <= opts.numPoints &&
    opts.numPoints <= config.multimask_max_pt_num
  );
}

/** area(logits > delta) / area(logits > −delta), 1 when the union is empty. */
export function stabilityScore(logits: ArrayLike<number>, delta: number): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > delta) inter++;
    if (v > -delta) union++;
  }
  return union > 0 ? inter / union : 1;
}

/** torch.argmax: the first index of the largest value. */
export function argmax(values: ArrayLike<number>, from = 0, to = values.length): number {
  let best = from;
  for (let i = from + 1; i < to; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

export interface MaskChoice {
  /** Index into the decoder's token axis of the mask to use. */
  maskToken: number;
  /** Index into the decoder's token axis of the object pointer to use (4-token decoders). */
  pointerToken: number;
  /** The IoU prediction that comes with the chosen mask. */
  iou: number;
  /** Which rule decided. */
  rule: 'multimask-argmax' | 'single-stable' | 'single-unstable-fallback' | 'single';
  /** Stability of token 0 when the dynamic rule ran. */
  stability?: number;
}

type ChoiceConfig = Pick<
  Sam2Config,
  | 'dynamic_multimask_via_stability'
  | 'dynamic_multimask_stability_delta'
  | 'dynamic_multimask_stability_thresh'
  | 'use_multimask_token_for_obj_ptr'
>;

/**
 * Chooses the mask (and pointer) token from a decoder's outputs.
 * - 4 tokens (`video_decoder.onnx`: token 0 = single-mask, 1..3 = multimask): multimask → argmax
 *   IoU over 1..3 and the pointer from that token (`use_multimask_token_for_obj_ptr`); single →
 *   token 0, or the best multimask mask when token 0's stability is under the threshold, with the
 *   pointer still from token 0.
 * - 3 tokens (samexporter `decoder.onnx`, multimask tokens only): argmax IoU, as
 *   `SAM2ImagePredictor.predict(multimask_output=True)` followed by taking the best score.
 */
export function chooseMask(
  masks: Float32Array,
  iou: ArrayLike<number>,
  tokens: 3 | 4,
  multimask: boolean,
  config: ChoiceConfig,
): MaskChoice {
  if (tokens === 3) {
    const t = argmax(iou, 0, 3);
    return { maskToken: t, pointerToken: t, iou: iou[t]!, rule: 'multimask-argmax' };
  }
  const best = argmax(iou, 1, 4);
  if (multimask) {
    return {
      maskToken: best,
      pointerToken: config.use_multimask_token_for_obj_ptr ? best : 0,
      iou: iou[best]!,
      rule: 'multimask-argmax',
    };
  }
  if (!config.dynamic_multimask_via_stability)
    return { maskToken: 0, pointerToken: 0, iou: iou[0]!, rule: 'single' };
  const stability = stabilityScore(masks.subarray(0, LOW_RES_AREA), config.dynamic_multimask_stability_delta);
  return stability >= config.dynamic_multimask_stability_thresh
    ? { maskToken: 0, pointerToken: 0, iou: iou[0]!, rule: 'single-stable', stability }
    : { maskToken: best, pointerToken: 0, iou: iou[best]!, rule: 'single-unstable-fallback', stability };
}

/** The low-res logits [256×256] of one token (a view, not a copy). */
export function tokenLogits(masks: Float32Array, token: number): Float32Array {
  return masks.subarray(token * LOW_RES_AREA, (token + 1) * LOW_RES_AREA);
}
