/**
 * Exact dense retrieval over a small corpus (the reference's FAISS `IndexFlatIP`, spec §7.1): one
 * L2-normalised vector per document, ranked by inner product with the query vector. The document
 * vectors are computed once per corpus and model and kept on disk, so a worker that restarts (or a
 * second worker on the same host) does not embed the corpus again.
 *
 * Brute force is exact and takes well under a millisecond for the 186-passage KB; a vector index
 * would only pay off at hundreds of thousands of documents.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TextEncoder } from '../embeddings/encoder.js';

export interface EmbeddingCacheOptions {
  /** Folder of the cached vector files. */
  dir: string;
  /** What identifies the model and how texts reach it (OpenAiEmbeddings.cacheKey). */
  modelKey: string;
}

export interface Ranked {
  idx: number;
  score: number;
}

export class DenseIndex {
  private constructor(
    private readonly matrix: Float32Array,
    readonly dimension: number,
    readonly size: number,
    /** True when the vectors came from the disk cache. */
    readonly fromCache: boolean,
  ) {}

  /** Embeds `texts` (or reads their vectors from the cache, keyed by model and every text). */
  static async build(
    texts: readonly string[],
    encoder: TextEncoder,
    cache?: EmbeddingCacheOptions,
  ): Promise<DenseIndex> {
    const dim = encoder.dimension;
    const expectedBytes = texts.length * dim * 4;
    let file: string | undefined;
    if (cache) {
      const key = createHash('sha256')
        .update(cache.modelKey)
        .update('\0')
        .update(JSON.stringify(texts))
        .digest('hex');
      file = join(cache.dir, `${key}.f32`);
      try {
        const bytes = readFileSync(file);
        if (bytes.length === expectedBytes) {
          const matrix = new Float32Array(
            bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
          );
          return new DenseIndex(matrix, dim, texts.length, true);
        }
      } catch {
        // not cached yet (or unreadable): embed below
      }
    }
    const vectors = await encoder.embed(texts);
    const matrix = new Float32Array(texts.length * dim);
    vectors.forEach((v, i) => matrix.set(v, i * dim));
    if (file && cache) {
      mkdirSync(cache.dir, { recursive: true });
      // Write then rename, so a concurrent reader sees the whole file or none.
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, new Uint8Array(matrix.buffer));
      renameSync(tmp, file);
    }
    return new DenseIndex(matrix, dim, texts.length, false);
  }

  /** Every document, best first (ties by position, so the order is deterministic). */
  rank(query: Float32Array): Ranked[] {
    const dim = this.dimension;
    const out: Ranked[] = [];
    for (let i = 0; i < this.size; i++) {
      let dot = 0;
      const base = i * dim;
      for (let d = 0; d < dim; d++) dot += query[d]! * this.matrix[base + d]!;
      out.push({ idx: i, score: dot });
    }
    return out.sort((a, b) => b.score - a.score || a.idx - b.idx);
  }
}

/** The usual constant of reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009). */
export const RRF_K = 60;

/**
 * Reciprocal-rank fusion: each document scores Σ 1/(k + rank) over the rankings it appears in
 * (rank 1-based). Only positions matter, so BM25's unbounded scores and e5's narrow cosine band
 * need no calibration against each other.
 */
export function reciprocalRankFusion(rankings: readonly (readonly number[])[], k: number = RRF_K): Ranked[] {
  const score = new Map<number, number>();
  for (const ranking of rankings) {
    ranking.forEach((idx, r) => score.set(idx, (score.get(idx) ?? 0) + 1 / (k + r + 1)));
  }
  return [...score.entries()]
    .map(([idx, s]) => ({ idx, score: s }))
    .sort((a, b) => b.score - a.score || a.idx - b.idx);
}
