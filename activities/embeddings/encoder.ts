/**
 * Sentence embeddings from an ONNX text encoder run by onnxruntime-node on CPU, the way
 * sentence-transformers computes them for all-MiniLM-L6-v2: tokenize (tokenizer.json, offline),
 * run the transformer, mean-pool the last hidden state over the attention mask, L2-normalise.
 *
 * Any compatible encoder works when its folder holds `model.onnx` (inputs `input_ids`,
 * `attention_mask` and optionally `token_type_ids`; first output `[batch, sequence, dim]`) and
 * `tokenizer.json` + `tokenizer_config.json`. scripts/setup-models.sh writes all-MiniLM-L6-v2.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import * as ort from 'onnxruntime-node';
import { BadInputError, ConfigError } from '../errors.js';

/** What hybrid search and IGR need from an encoder. */
export interface TextEncoder {
  readonly dimension: number;
  /** One L2-normalised vector per text, in order. */
  embed(texts: readonly string[]): Promise<Float32Array[]>;
}

export interface OnnxEncoderOptions {
  /** Longest input in tokens, special tokens included. @default 256 */
  maxSequenceLength?: number;
  /** @default 1 */
  threads?: number;
  /** @default 32 */
  batchSize?: number;
}

function readJson(path: string, what: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`cannot read the encoder's ${what} ${path}: ${(err as Error).message}`, { path });
  }
}

export class OnnxTextEncoder implements TextEncoder {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly tokenizer: Tokenizer,
    readonly dimension: number,
    private readonly maxSequenceLength: number,
    private readonly batchSize: number,
    private readonly wantsTokenTypes: boolean,
  ) {}

  /** Loads `model.onnx` and the tokenizer from a folder. */
  static async load(modelDir: string, options: OnnxEncoderOptions = {}): Promise<OnnxTextEncoder> {
    const dir = resolve(modelDir);
    const modelPath = join(dir, 'model.onnx');
    if (!existsSync(modelPath) || !existsSync(join(dir, 'tokenizer.json'))) {
      throw new ConfigError(
        `no text encoder in ${dir} (model.onnx and tokenizer.json expected): run \`bash scripts/setup-models.sh\` ` +
          'or point embeddings.modelDir (SEGFLOW_EMBEDDINGS_MODEL_DIR) at a compatible ONNX encoder',
        { modelDir: dir },
      );
    }
    const tokenizerJson = readJson(join(dir, 'tokenizer.json'), 'tokenizer.json');
    const tokenizerConfig = existsSync(join(dir, 'tokenizer_config.json'))
      ? readJson(join(dir, 'tokenizer_config.json'), 'tokenizer_config.json')
      : {};
    // Truncation is done here (maxSequenceLength), so the file's own truncation/padding is dropped.
    const tokenizer = new Tokenizer({ ...tokenizerJson, truncation: null, padding: null }, tokenizerConfig);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(modelPath, {
        executionProviders: ['cpu'],
        intraOpNumThreads: options.threads ?? 1,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
    } catch (err) {
      throw new ConfigError(`onnxruntime cannot load ${modelPath}: ${(err as Error).message}`, { modelPath });
    }
    for (const name of ['input_ids', 'attention_mask']) {
      if (!session.inputNames.includes(name)) {
        throw new ConfigError(
          `${modelPath} has inputs [${session.inputNames.join(', ')}]; a text encoder needs input_ids and attention_mask`,
          { modelPath },
        );
      }
    }
    const manifestPath = join(dir, 'segflow-encoder.json');
    const manifest = existsSync(manifestPath) ? readJson(manifestPath, 'manifest') : {};
    const probe = await OnnxTextEncoder.runRaw(
      session,
      session.inputNames.includes('token_type_ids'),
      [[101, 102]],
      2,
    );
    const dimension = probe.dims[2] ?? 0;
    if (typeof manifest.dimension === 'number' && manifest.dimension !== dimension) {
      throw new ConfigError(
        `${modelPath} outputs ${dimension}-d vectors, its manifest says ${manifest.dimension}`,
      );
    }
    return new OnnxTextEncoder(
      session,
      tokenizer,
      dimension,
      options.maxSequenceLength ??
        (typeof manifest.maxSequenceLength === 'number' ? manifest.maxSequenceLength : 256),
      options.batchSize ?? 32,
      session.inputNames.includes('token_type_ids'),
    );
  }

  private static async runRaw(
    session: ort.InferenceSession,
    wantsTokenTypes: boolean,
    ids: number[][],
    width: number,
  ): Promise<ort.Tensor> {
    const n = ids.length;
    const inputIds = new BigInt64Array(n * width);
    const mask = new BigInt64Array(n * width);
    ids.forEach((row, i) => {
      row.forEach((id, j) => {
        inputIds[i * width + j] = BigInt(id);
        mask[i * width + j] = 1n;
      });
    });
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', inputIds, [n, width]),
      attention_mask: new ort.Tensor('int64', mask, [n, width]),
    };
    if (wantsTokenTypes)
      feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(n * width), [n, width]);
    const out = await session.run(feeds);
    const first = out[session.outputNames[0]!];
    if (!first || first.dims.length !== 3) {
      throw new ConfigError(
        `the encoder's first output ${session.outputNames[0]} has shape [${first?.dims.join(', ')}]; expected [batch, sequence, dim]`,
      );
    }
    return first;
  }

  /** Token ids with special tokens, cut to maxSequenceLength keeping the final special token. */
  tokenize(text: string): number[] {
    const ids = this.tokenizer.encode(text).ids;
    if (ids.length <= this.maxSequenceLength) return ids;
    return [...ids.slice(0, this.maxSequenceLength - 1), ids[ids.length - 1]!];
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    const all = texts.map((t, i) => {
      if (typeof t !== 'string') throw new BadInputError(`text ${i} to embed is ${typeof t}, not a string`);
      return this.tokenize(t);
    });
    // Batches of similar lengths: padding costs as much compute as real tokens.
    const order = all.map((_, i) => i).sort((a, b) => all[a]!.length - all[b]!.length);
    const out: Float32Array[] = new Array<Float32Array>(texts.length);
    const dim = this.dimension;
    for (let start = 0; start < order.length; start += this.batchSize) {
      const members = order.slice(start, start + this.batchSize);
      const ids = members.map((i) => all[i]!);
      const width = Math.max(...ids.map((r) => r.length));
      const hidden = await OnnxTextEncoder.runRaw(this.session, this.wantsTokenTypes, ids, width);
      const data = hidden.data as Float32Array;
      ids.forEach((row, i) => {
        // Mean over the real tokens (mask = 1), as sentence-transformers' Pooling(mean).
        const v = new Float32Array(dim);
        for (let t = 0; t < row.length; t++) {
          const base = (i * width + t) * dim;
          for (let d = 0; d < dim; d++) v[d]! += data[base + d]!;
        }
        let norm = 0;
        for (let d = 0; d < dim; d++) {
          v[d]! /= row.length;
          norm += v[d]! * v[d]!;
        }
        norm = Math.sqrt(norm) || 1;
        for (let d = 0; d < dim; d++) v[d]! /= norm;
        out[members[i]!] = v;
      });
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Cosine similarity of two vectors (plain dot product when both are normalised). */
export function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length)
    throw new BadInputError(`vectors of length ${a.length} and ${b.length} cannot be compared`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / (Math.sqrt(na) * Math.sqrt(nb) || 1);
}
