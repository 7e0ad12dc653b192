/**
 * Small "sam2-onnx v1" models built in JS with onnx-proto: exactly the pinned file names, tensor
 * names, dtypes and ranks (fixed dims 1024/256/128/64, dynamic N/P/F), opset 17. They compute
 * something checkable instead of constants:
 *
 * - encoder: 16×16 / 4×4 / 8×8 average pools + 1×1 convs; `image_embed` channel 0 is luminance,
 *   channels 1 and 2 are 0 (they carry memory later), plus a `no_mem_embed` vector.
 * - decoder / video_decoder: a box (labels 2,3) gives logits = distance inside the box in low-res
 *   cells (positive inside, negative outside); a click (label 1) gives a disk of radius 12 cells;
 *   `mask_input` adds to the logits; with no prompt the logits are `image_embed` channel 1 (the
 *   memory) upsampled ×4. Tokens: 0 = base − 1, 1 = base, 2 = base − 3, 3 = min(base, 8·luma).
 *   IoU = w_t · sigmoid(area_t / 64 cells − 1). The video decoder gates masks to −1024 and the
 *   pointers to `no_obj_ptr` when `object_score_logits` = clip(max token-1 logit, ±10) ≤ 0.
 * - memory_encoder: mask logits → bilinear ×4 → binarise or sigmoid → ×20 − 10 → 16×16 mean as
 *   channel 0, a 1×1 conv of (feature − no_mem_embed) as channels 1..63, `no_obj_embed_spatial`
 *   added when the object is absent.
 * - memory_attention: channel 1 of the output = softmax(w[memory_1_tpos])-weighted mean of the
 *   memories' channel 0 (int64 Gather), channel 2 += exp(−2|pos|)-weighted mean of the pointers.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import { mulberry32 } from '../../core/random.js';

const { onnx } = onnxProto;
type AttrValue = number | string | number[];
type Dim = number | string;

function randomArray(n: number, seed: number, scale: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

class GraphBuilder {
  private readonly nodes: OnnxTypes.INodeProto[] = [];
  private readonly initializers: OnnxTypes.ITensorProto[] = [];
  private readonly inputs: OnnxTypes.IValueInfoProto[] = [];
  private readonly outputs: OnnxTypes.IValueInfoProto[] = [];
  private counter = 0;

  constructor(private readonly name: string) {}

  private valueInfo(name: string, elemType: number, dims: readonly Dim[]): OnnxTypes.IValueInfoProto {
    return {
      name,
      type: {
        tensorType: {
          elemType,
          shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
        },
      },
    };
  }

  input(name: string, dims: readonly Dim[], elemType: number = onnx.TensorProto.DataType.FLOAT): string {
    this.inputs.push(this.valueInfo(name, elemType, dims));
    return name;
  }

  output(name: string, dims: readonly Dim[], elemType: number = onnx.TensorProto.DataType.FLOAT): void {
    this.outputs.push(this.valueInfo(name, elemType, dims));
  }

  f32(values: ArrayLike<number> | number, dims: readonly number[] = []): string {
    const name = `c${this.counter++}`;
    const data = typeof values === 'number' ? [values] : Array.from(values);
    this.initializers.push({
      name,
      dims: [...dims],
      dataType: onnx.TensorProto.DataType.FLOAT,
      floatData: data,
    });
    return name;
  }

  i64(values: readonly number[]): string {
    const name = `c${this.counter++}`;
    this.initializers.push({
      name,
      dims: [values.length],
      dataType: onnx.TensorProto.DataType.INT64,
      int64Data: [...values],
    });
    return name;
  }

  op(type: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, out?: string): string {
    const output = out ?? `t${this.counter++}`;
    const attribute: OnnxTypes.IAttributeProto[] = Object.entries(attrs).map(([name, v]) => {
      if (Array.isArray(v)) return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: v };
      if (typeof v === 'string')
        return { name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(v) };
      return Number.isInteger(v)
        ? { name, type: onnx.AttributeProto.AttributeType.INT, i: v }
        : { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v };
    });
    this.nodes.push({
      opType: type,
      input: [...inputs],
      output: [output],
      attribute,
      name: `n${this.counter++}`,
    });
    return output;
  }

  slice(x: string, start: number, end: number, axis: number): string {
    return this.op('Slice', [x, this.i64([start]), this.i64([end]), this.i64([axis])]);
  }

  resize4(x: string): string {
    return this.op('Resize', [x, '', this.f32([1, 1, 4, 4], [4])], {
      mode: 'linear',
      coordinate_transformation_mode: 'half_pixel',
    });
  }

  encode(): Uint8Array {
    const model: OnnxTypes.IModelProto = {
      irVersion: 8,
      producerName: 'segflow-test-models',
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }
}

const NO_MEM_EMBED = (() => {
  const v = randomArray(256, 7, 0.2);
  v[0] = 0;
  v[1] = 0;
  v[2] = 0;
  return v;
})();

function grid(axis: 'x' | 'y'): { values: Float32Array; dims: number[] } {
  const values = Float32Array.from({ length: 256 }, (_, i) => i + 0.5);
  return { values, dims: axis === 'x' ? [1, 1, 1, 256] : [1, 1, 256, 1] };
}

export function buildEncoder(): Uint8Array {
  const g = new GraphBuilder('encoder');
  const image = g.input('image', [1, 3, 1024, 1024]);
  const w2 = randomArray(256 * 3, 11, 0.5);
  w2.set([0.299, 0.587, 0.114], 0);
  w2.set([0, 0, 0, 0, 0, 0], 3);
  const b2 = randomArray(256, 12, 0.1);
  b2.set([0, 0, 0], 0);
  const pooled = (k: number) => g.op('AveragePool', [image], { kernel_shape: [k, k], strides: [k, k] });
  const lvl2 = g.op('Conv', [pooled(16), g.f32(w2, [256, 3, 1, 1]), g.f32(b2, [256])]);
  g.op('Add', [lvl2, g.f32(NO_MEM_EMBED, [1, 256, 1, 1])], {}, 'image_embed');
  g.op('Conv', [pooled(4), g.f32(randomArray(32 * 3, 13, 0.5), [32, 3, 1, 1])], {}, 'high_res_feats_0');
  g.op('Conv', [pooled(8), g.f32(randomArray(64 * 3, 14, 0.5), [64, 3, 1, 1])], {}, 'high_res_feats_1');
  g.output('high_res_feats_0', [1, 32, 256, 256]);
  g.output('high_res_feats_1', [1, 64, 128, 128]);
  g.output('image_embed', [1, 256, 64, 64]);
  return g.encode();
}

export interface DecoderOptions {
  /** 3 = samexporter `decoder.onnx`, 4 = `video_decoder.onnx` (with pointers and gating). */
  tokens: 3 | 4;
  /** Replaces the dtype of `point_labels` (contract-mismatch tests). */
  pointLabelsElemType?: number;
  /** Replaces the dims of `high_res_feats_1` (contract-mismatch tests). */
  highRes1Dims?: Dim[];
}

export function buildDecoder(opts: DecoderOptions): Uint8Array {
  const g = new GraphBuilder(opts.tokens === 4 ? 'video_decoder' : 'decoder');
  const embed = g.input('image_embed', ['N', 256, 64, 64]);
  const hrf0 = g.input('high_res_feats_0', ['N', 32, 256, 256]);
  const hrf1 = g.input('high_res_feats_1', opts.highRes1Dims ?? ['N', 64, 128, 128]);
  const coords = g.input('point_coords', ['N', 'P', 2]);
  let labels = g.input('point_labels', ['N', 'P'], opts.pointLabelsElemType);
  const maskInput = g.input('mask_input', ['N', 1, 256, 256]);
  const hasMask = g.input('has_mask_input', ['N']);
  if (opts.pointLabelsElemType !== undefined) {
    labels = g.op('Cast', [labels], { to: onnx.TensorProto.DataType.FLOAT });
  }
  const one = g.f32(1);
  const toCells = (axis: number) =>
    g.op('Div', [
      g.op('Add', [g.op('Squeeze', [g.slice(coords, axis, axis + 1, 2), g.i64([2])]), g.f32(0.5)]),
      g.f32(4),
    ]);
  const cx = toCells(0); // [N,P]
  const cy = toCells(1);
  const isLabel = (v: number) => g.op('Cast', [g.op('Equal', [labels, g.f32(v)])], { to: 1 });
  const isPos = isLabel(1);
  const isTL = isLabel(2);
  const isBR = isLabel(3);
  const gx = grid('x');
  const gy = grid('y');
  const GX = g.f32(gx.values, gx.dims);
  const GY = g.f32(gy.values, gy.dims);
  const u23 = (x: string) => g.op('Unsqueeze', [x, g.i64([2, 3])]);
  // clicks: a disk of radius 12 cells, clipped to [-2, 12]
  const dx = g.op('Sub', [GX, u23(cx)]);
  const dy = g.op('Sub', [GY, u23(cy)]);
  const dist = g.op('Sqrt', [g.op('Add', [g.op('Mul', [dx, dx]), g.op('Mul', [dy, dy])])]);
  const disk = g.op('Clip', [g.op('Sub', [g.f32(12), dist]), g.f32(-2), g.f32(12)]);
  const posPenalty = g.op('Mul', [g.op('Sub', [u23(isPos), one]), g.f32(1e4)]);
  const clicks = g.op('ReduceMax', [g.op('Add', [disk, posPenalty])], { axes: [1], keepdims: 1 });
  // box: signed distance inside the box
  const sum1 = (x: string) => g.op('ReduceSum', [x, g.i64([1])], { keepdims: 1 });
  const nTL = sum1(isTL);
  const nBR = sum1(isBR);
  const corner = (c: string, mask: string, n: string) =>
    u23(g.op('Div', [sum1(g.op('Mul', [c, mask])), g.op('Max', [n, one])]));
  const x0 = corner(cx, isTL, nTL);
  const y0 = corner(cy, isTL, nTL);
  const x1 = corner(cx, isBR, nBR);
  const y1 = corner(cy, isBR, nBR);
  const box = g.op('Min', [
    g.op('Min', [g.op('Sub', [GX, x0]), g.op('Sub', [x1, GX])]),
    g.op('Min', [g.op('Sub', [GY, y0]), g.op('Sub', [y1, GY])]),
  ]);
  const hasBox = u23(g.op('Cast', [g.op('Greater', [nTL, g.f32(0.5)])], { to: 1 }));
  const boxTerm = g.op('Add', [box, g.op('Mul', [g.op('Sub', [hasBox, one]), g.f32(1e4)])]);
  const sparse = g.op('Clip', [g.op('Max', [clicks, boxTerm]), g.f32(-32), g.f32(32)]);
  const hasPrompt = u23(
    g.op(
      'Cast',
      [
        g.op('Greater', [
          g.op('ReduceMax', [g.op('Add', [isPos, isTL])], { axes: [1], keepdims: 1 }),
          g.f32(0.5),
        ]),
      ],
      {
        to: 1,
      },
    ),
  );
  // no prompt: the memory channel of the (memory-conditioned) embedding
  const memory = g.resize4(g.slice(embed, 1, 2, 1));
  const luma = g.resize4(g.slice(embed, 0, 1, 1));
  const sparseOrMemory = g.op('Add', [
    g.op('Mul', [hasPrompt, sparse]),
    g.op('Mul', [g.op('Sub', [one, hasPrompt]), memory]),
  ]);
  const dense = g.op('Mul', [maskInput, g.op('Reshape', [hasMask, g.i64([-1, 1, 1, 1])])]);
  const highRes = g.op('Mul', [
    g.op('Add', [g.op('ReduceMean', [hrf0], { keepdims: 0 }), g.op('ReduceMean', [hrf1], { keepdims: 0 })]),
    g.f32(0),
  ]);
  const base = g.op('Add', [g.op('Add', [sparseOrMemory, dense]), highRes]);
  const clip32 = (x: string) => g.op('Clip', [x, g.f32(-32), g.f32(32)]);
  const tokenLogits = [
    clip32(g.op('Sub', [base, one])),
    clip32(base),
    clip32(g.op('Sub', [base, g.f32(3)])),
    clip32(g.op('Min', [base, g.op('Mul', [luma, g.f32(8)])])),
  ];
  const used = opts.tokens === 4 ? tokenLogits : tokenLogits.slice(1);
  const masks = g.op('Concat', used, { axis: 1 });
  const area = g.op('ReduceMean', [g.op('Cast', [g.op('Greater', [masks, g.f32(0)])], { to: 1 })], {
    axes: [2, 3],
    keepdims: 0,
  }); // [N,T]
  const weights = opts.tokens === 4 ? [0.8, 0.95, 0.9, 0.85] : [0.95, 0.9, 0.85];
  const iou = g.op('Mul', [
    g.f32(weights, [weights.length]),
    g.op('Sigmoid', [g.op('Sub', [g.op('Mul', [area, g.f32(1024)]), one])]),
  ]);
  if (opts.tokens === 3) {
    g.op('Identity', [masks], {}, 'masks');
    g.op('Identity', [iou], {}, 'iou_predictions');
    g.output('masks', ['N', 3, 256, 256]);
    g.output('iou_predictions', ['N', 3]);
    return g.encode();
  }
  const score = g.op('Clip', [
    g.op('ReduceMax', [tokenLogits[1]!], { axes: [1, 2, 3], keepdims: 0 }),
    g.f32(-10),
    g.f32(10),
  ]);
  g.op('Unsqueeze', [score, g.i64([1])], {}, 'object_score_logits');
  const present = g.op('Greater', [g.op('Reshape', [score, g.i64([-1, 1, 1, 1])]), g.f32(0)]);
  g.op('Where', [present, masks, g.f32(-1024)], {}, 'masks');
  g.op('Identity', [iou], {}, 'iou_predictions');
  const meanLogit = g.op('Div', [g.op('ReduceMean', [masks], { axes: [2, 3], keepdims: 0 }), g.f32(32)]);
  const feats = g.op(
    'Concat',
    [g.op('Unsqueeze', [area, g.i64([2])]), g.op('Unsqueeze', [meanLogit, g.i64([2])])],
    {
      axis: 2,
    },
  ); // [N,4,2]
  const ptr = g.op('Tanh', [
    g.op('Add', [
      g.op('MatMul', [feats, g.f32(randomArray(512, 21, 1), [2, 256])]),
      g.f32(randomArray(256, 22, 0.1), [256]),
    ]),
  ]);
  const presentPtr = g.op('Greater', [g.op('Reshape', [score, g.i64([-1, 1, 1])]), g.f32(0)]);
  g.op('Where', [presentPtr, ptr, g.f32(randomArray(256, 23, 0.3), [256])], {}, 'obj_ptrs');
  g.output('masks', ['N', 4, 256, 256]);
  g.output('iou_predictions', ['N', 4]);
  g.output('obj_ptrs', ['N', 4, 256]);
  g.output('object_score_logits', ['N', 1]);
  return g.encode();
}

/** Weights per `maskmem_tpos_enc` row: the conditioning frame (row 6) and the nearest frames dominate. */
export const TEST_TPOS_WEIGHTS = [2.0, 1.5, 1.0, 0.5, 0.2, 0.1, 2.5];

export function buildMemoryAttention(opts: { tposElemType?: number; memoryRank?: 3 | 4 } = {}): Uint8Array {
  const g = new GraphBuilder('memory_attention');
  const cvf = g.input('current_vision_feat', [1, 256, 64, 64]);
  const mem = g.input('memory_1', opts.memoryRank === 3 ? ['F', 64, 4096] : ['F', 64, 64, 64]);
  let tpos = g.input('memory_1_tpos', ['F'], opts.tposElemType ?? onnx.TensorProto.DataType.INT64);
  const ptrs = g.input('memory_0', ['P', 256]);
  const ptrPos = g.input('memory_0_pos', ['P']);
  if (opts.tposElemType !== undefined) tpos = g.op('Cast', [tpos], { to: onnx.TensorProto.DataType.INT64 });
  const memory = opts.memoryRank === 3 ? g.op('Reshape', [mem, g.i64([-1, 64, 64, 64])]) : mem;
  const raw = g.op('Sub', [cvf, g.f32(NO_MEM_EMBED, [1, 256, 1, 1])]);
  const w = g.op('Softmax', [g.op('Gather', [g.f32(TEST_TPOS_WEIGHTS, [7]), tpos], { axis: 0 })], {
    axis: 0,
  });
  const agg = g.op(
    'ReduceSum',
    [g.op('Mul', [g.slice(memory, 0, 1, 1), g.op('Reshape', [w, g.i64([-1, 1, 1, 1])])]), g.i64([0])],
    {
      keepdims: 1,
    },
  );
  const pw = g.op('Exp', [g.op('Mul', [g.op('Abs', [ptrPos]), g.f32(-2)])]);
  const pm = g.op('ReduceMean', [ptrs], { axes: [1], keepdims: 0 });
  const sum0 = (x: string) => g.op('ReduceSum', [x, g.i64([0])], { keepdims: 1 });
  const psum = g.op('Div', [sum0(g.op('Mul', [pw, pm])), sum0(pw)]);
  g.op(
    'Concat',
    [
      g.slice(raw, 0, 1, 1),
      g.op('Add', [g.slice(raw, 1, 2, 1), agg]),
      g.op('Add', [g.slice(raw, 2, 3, 1), psum]),
      g.slice(raw, 3, 256, 1),
    ],
    { axis: 1 },
    'pix_feat_with_mem',
  );
  g.output('pix_feat_with_mem', [1, 256, 64, 64]);
  return g.encode();
}

export function buildMemoryEncoder(): Uint8Array {
  const g = new GraphBuilder('memory_encoder');
  const cvf = g.input('current_vision_feat', [1, 256, 64, 64]);
  const logits = g.input('mask_logits', [1, 1, 256, 256]);
  const binarize = g.input('binarize', [1]);
  const score = g.input('object_score_logits', [1, 1]);
  const one = g.f32(1);
  const up = g.resize4(logits);
  const b = g.op('Reshape', [binarize, g.i64([1, 1, 1, 1])]);
  const prob = g.op('Add', [
    g.op('Mul', [b, g.op('Cast', [g.op('Greater', [up, g.f32(0)])], { to: 1 })]),
    g.op('Mul', [g.op('Sub', [one, b]), g.op('Sigmoid', [up])]),
  ]);
  const scaled = g.op('Sub', [g.op('Mul', [prob, g.f32(20)]), g.f32(10)]);
  const maskChannel = g.op('AveragePool', [scaled], { kernel_shape: [16, 16], strides: [16, 16] });
  const raw = g.op('Sub', [cvf, g.f32(NO_MEM_EMBED, [1, 256, 1, 1])]);
  const features = g.op('Conv', [raw, g.f32(randomArray(63 * 256, 31, 0.06), [63, 256, 1, 1])]);
  const mem = g.op('Concat', [maskChannel, features], { axis: 1 });
  const noObj = randomArray(64, 32, 0.5);
  noObj[0] = 0;
  const absent = g.op('Reshape', [
    g.op('Cast', [g.op('LessOrEqual', [score, g.f32(0)])], { to: 1 }),
    g.i64([1, 1, 1, 1]),
  ]);
  g.op('Add', [mem, g.op('Mul', [absent, g.f32(noObj, [1, 64, 1, 1])])], {}, 'maskmem_features');
  g.output('maskmem_features', [1, 64, 64, 64]);
  return g.encode();
}

export const TEST_SAM2_CONFIG = {
  contract: 'sam2-onnx v1',
  model_id: 'segflow-test-tiny',
  sam2_commit: '2b90b9f',
  opset: 17,
} as const;

export interface WriteModelsOptions {
  /** Which files to write. @default all five + sam2_config.json */
  only?: readonly (
    'encoder' | 'decoder' | 'video_decoder' | 'memory_attention' | 'memory_encoder' | 'config'
  )[];
  /** Per-file replacement bytes (contract-mismatch tests). */
  replace?: Partial<Record<string, Uint8Array>>;
  /** Extra fields for sam2_config.json. */
  config?: Record<string, unknown>;
}

/** Writes the test models into `dir` and returns it. */
export async function writeSam2TestModels(dir: string, opts: WriteModelsOptions = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const want = new Set(
    opts.only ?? ['encoder', 'decoder', 'video_decoder', 'memory_attention', 'memory_encoder', 'config'],
  );
  const files: [string, string, () => Uint8Array][] = [
    ['encoder', 'encoder.onnx', buildEncoder],
    ['decoder', 'decoder.onnx', () => buildDecoder({ tokens: 3 })],
    ['video_decoder', 'video_decoder.onnx', () => buildDecoder({ tokens: 4 })],
    ['memory_attention', 'memory_attention.onnx', () => buildMemoryAttention()],
    ['memory_encoder', 'memory_encoder.onnx', buildMemoryEncoder],
  ];
  for (const [key, file, build] of files) {
    if (!want.has(key as 'encoder')) continue;
    await writeFile(join(dir, file), opts.replace?.[file] ?? build());
  }
  if (want.has('config')) {
    await writeFile(
      join(dir, 'sam2_config.json'),
      JSON.stringify({ ...TEST_SAM2_CONFIG, ...opts.config }, null, 2),
    );
  }
  return dir;
}
