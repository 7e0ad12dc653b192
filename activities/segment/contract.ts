/**
 * The pinned ONNX contract "sam2-onnx v1" (../shared/spec/sam2-onnx-contract.md §3).
 *
 * Image mode is samexporter's `encoder.onnx` + `decoder.onnx`, unchanged. Video mode adds three
 * graphs written by scripts/sam2-export (`video_decoder.onnx`, `memory_attention.onnx`,
 * `memory_encoder.onnx`) and `sam2_config.json`. Batch = 1 object per call. Dimensions are fixed
 * numbers, or the symbols `N` (batch, fed as 1), `P` (prompt points / object pointers) and `F`
 * (memory frames), which must be dynamic in the file.
 */
import { z } from 'zod';

export const CONTRACT_VERSION = 'sam2-onnx v1';

/** The model frame side (SAM2 `image_size`). */
export const IMAGE_SIZE = 1024;
/** Side of the low-res mask logits. */
export const LOW_RES = 256;
/** Side of the top feature level (64×64 = 4096 tokens). */
export const FEAT = 64;
export const HIDDEN_DIM = 256;
export const MEM_DIM = 64;

export type ContractDim = number | 'N' | 'P' | 'F';
export type ContractDtype = 'float32' | 'int64';

export interface TensorSpec {
  name: string;
  dtype: ContractDtype;
  dims: readonly ContractDim[];
}

export interface GraphSpec {
  file: string;
  inputs: readonly TensorSpec[];
  outputs: readonly TensorSpec[];
}

const f32 = (name: string, dims: ContractDim[]): TensorSpec => ({ name, dtype: 'float32', dims });

const decoderInputs: TensorSpec[] = [
  f32('image_embed', ['N', HIDDEN_DIM, FEAT, FEAT]),
  f32('high_res_feats_0', ['N', 32, 256, 256]),
  f32('high_res_feats_1', ['N', 64, 128, 128]),
  f32('point_coords', ['N', 'P', 2]),
  f32('point_labels', ['N', 'P']),
  f32('mask_input', ['N', 1, LOW_RES, LOW_RES]),
  f32('has_mask_input', ['N']),
];

export const Graphs = {
  encoder: {
    file: 'encoder.onnx',
    inputs: [f32('image', [1, 3, IMAGE_SIZE, IMAGE_SIZE])],
    outputs: [
      f32('high_res_feats_0', [1, 32, 256, 256]),
      f32('high_res_feats_1', [1, 64, 128, 128]),
      f32('image_embed', [1, HIDDEN_DIM, FEAT, FEAT]),
    ],
  },
  decoder: {
    file: 'decoder.onnx',
    inputs: decoderInputs,
    outputs: [f32('masks', ['N', 3, LOW_RES, LOW_RES]), f32('iou_predictions', ['N', 3])],
  },
  videoDecoder: {
    file: 'video_decoder.onnx',
    inputs: decoderInputs,
    outputs: [
      f32('masks', ['N', 4, LOW_RES, LOW_RES]),
      f32('iou_predictions', ['N', 4]),
      f32('obj_ptrs', ['N', 4, HIDDEN_DIM]),
      f32('object_score_logits', ['N', 1]),
    ],
  },
  memoryAttention: {
    file: 'memory_attention.onnx',
    inputs: [
      f32('current_vision_feat', [1, HIDDEN_DIM, FEAT, FEAT]),
      f32('memory_1', ['F', MEM_DIM, FEAT, FEAT]),
      { name: 'memory_1_tpos', dtype: 'int64', dims: ['F'] },
      f32('memory_0', ['P', HIDDEN_DIM]),
      f32('memory_0_pos', ['P']),
    ],
    outputs: [f32('pix_feat_with_mem', [1, HIDDEN_DIM, FEAT, FEAT])],
  },
  memoryEncoder: {
    file: 'memory_encoder.onnx',
    inputs: [
      f32('current_vision_feat', [1, HIDDEN_DIM, FEAT, FEAT]),
      f32('mask_logits', [1, 1, LOW_RES, LOW_RES]),
      f32('binarize', [1]),
      f32('object_score_logits', [1, 1]),
    ],
    outputs: [f32('maskmem_features', [1, MEM_DIM, FEAT, FEAT])],
  },
} as const satisfies Record<string, GraphSpec>;

export type GraphKey = keyof typeof Graphs;
export const IMAGE_GRAPHS: readonly GraphKey[] = ['encoder', 'decoder'];
export const VIDEO_GRAPHS: readonly GraphKey[] = [
  'encoder',
  'videoDecoder',
  'memoryAttention',
  'memoryEncoder',
];
export const CONFIG_FILE = 'sam2_config.json';

/**
 * `sam2_config.json`: the model id, the pinned sam2 commit and the SAM2 flags the TypeScript loop
 * needs, with SAM2's own names. Defaults are the SAM2.1 video predictor's
 * (`sam2/build_sam.py:build_sam2_video_predictor` + `configs/sam2.1/*.yaml`).
 */
export const sam2ConfigSchema = z
  .object({
    contract: z.literal(CONTRACT_VERSION),
    model_id: z.string().min(1),
    /** The facebookresearch/sam2 commit, when the exporter ran on a git checkout. */
    sam2_commit: z
      .string()
      .regex(/^[0-9a-f]{7,40}$/, 'a git commit hash')
      .optional(),
    /** The sam2 package release (PyPI `sam2==1.1.0` records "1.1.0"). */
    sam2_version: z.string().min(1).optional(),
    image_size: z.literal(IMAGE_SIZE).default(IMAGE_SIZE),
    num_maskmem: z.number().int().min(1).max(7).default(7),
    max_obj_ptrs_in_encoder: z.number().int().min(1).max(16).default(16),
    memory_temporal_stride_for_eval: z.number().int().min(1).default(1),
    max_cond_frames_in_attn: z.number().int().min(-1).default(-1),
    use_obj_ptrs_in_encoder: z.boolean().default(true),
    add_tpos_enc_to_obj_ptrs: z.boolean().default(true),
    use_signed_tpos_enc_to_obj_ptrs: z.boolean().default(true),
    proj_tpos_enc_in_obj_ptrs: z.boolean().default(true),
    only_obj_ptrs_in_the_past_for_eval: z.boolean().default(true),
    multimask_output_in_sam: z.boolean().default(true),
    multimask_output_for_tracking: z.boolean().default(true),
    multimask_min_pt_num: z.number().int().min(0).default(0),
    multimask_max_pt_num: z.number().int().min(0).default(1),
    use_multimask_token_for_obj_ptr: z.boolean().default(true),
    dynamic_multimask_via_stability: z.boolean().default(true),
    dynamic_multimask_stability_delta: z.number().default(0.05),
    dynamic_multimask_stability_thresh: z.number().default(0.98),
    binarize_mask_from_pts_for_mem_enc: z.boolean().default(true),
    fill_hole_area: z.number().int().min(0).default(8),
    mask_threshold: z.number().default(0),
    pixel_mean: z.tuple([z.number(), z.number(), z.number()]).default([0.485, 0.456, 0.406]),
    pixel_std: z.tuple([z.number(), z.number(), z.number()]).default([0.229, 0.224, 0.225]),
    opset: z.number().int().optional(),
  })
  .refine((c) => c.sam2_commit !== undefined || c.sam2_version !== undefined, {
    message: 'sam2_config.json names neither sam2_commit nor sam2_version (which SAM2 made these graphs)',
  });

export type Sam2Config = z.infer<typeof sam2ConfigSchema>;

/** The flags image mode uses when there is no sam2_config.json (samexporter exports ship none). */
export const DEFAULT_IMAGE_CONFIG: Sam2Config = sam2ConfigSchema.parse({
  contract: CONTRACT_VERSION,
  model_id: 'samexporter',
  sam2_commit: '2b90b9f',
});

/** What to tell a person who has no model files. */
export const EXPORT_HINT =
  'export them with `make deps-sam2` then `.venv/sam2/bin/python scripts/sam2-export/export_sam2_onnx.py --checkpoint sam2.1_hiera_large.pt ' +
  "--model-cfg configs/sam2.1/sam2.1_hiera_l.yaml --out DIR` (image mode also accepts samexporter's " +
  'encoder.onnx/decoder.onnx unchanged; see scripts/sam2-export/README.md), then pass --models DIR ' +
  'or set SEGFLOW_SEGMENT_MODELS_DIR';
