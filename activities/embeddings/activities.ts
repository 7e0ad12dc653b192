/**
 * Embedding activities: the similarity behind IGR (spec §5.2). The first text_search query is
 * compared with every reference step of the sample; the reward applies the `> 0.5` threshold.
 */
import { z } from 'zod';
import type { SegflowConfig } from '../../core/config/schema.js';
import { parseActivityInput } from '../edge.js';
import { cosine, OnnxTextEncoder, type TextEncoder } from './encoder.js';

export const searchQuerySimilarityInput = z.strictObject({
  /** The query of the first text_search call. */
  query: z.string().max(10_000),
  /** The sample's reference search steps (`reward_model.steps`). */
  references: z.array(z.string().max(10_000)).max(1000),
});
export type SearchQuerySimilarityInput = z.infer<typeof searchQuerySimilarityInput>;

export interface SearchQuerySimilarity {
  /** Cosine similarity with each reference, in order. */
  scores: number[];
  /** The largest score; null when there are no references. */
  maxCosine: number | null;
  /** Index of the best reference; -1 when there are none. */
  bestIndex: number;
}

export interface EmbeddingDeps {
  /** An encoder, or a loader called once on first use (workers load lazily). */
  encoder: TextEncoder | (() => Promise<TextEncoder>);
}

/** Memoises an encoder loader so a worker loads the ONNX session once. */
export function lazyEncoder(load: () => Promise<TextEncoder>): () => Promise<TextEncoder> {
  let pending: Promise<TextEncoder> | undefined;
  return () => {
    pending ??= load().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}

/** The configured encoder, loaded on first use. */
export function encoderFromConfig(config: SegflowConfig['embeddings']): () => Promise<TextEncoder> {
  return lazyEncoder(() =>
    OnnxTextEncoder.load(config.modelDir, {
      maxSequenceLength: config.maxSequenceLength,
      threads: config.threads,
      batchSize: config.batchSize,
    }),
  );
}

export function createEmbeddingActivities(deps: EmbeddingDeps) {
  const getEncoder =
    typeof deps.encoder === 'function' ? deps.encoder : () => Promise.resolve(deps.encoder as TextEncoder);
  return {
    /** Cosine similarity of a search query with each reference step (IGR). */
    async searchQuerySimilarity(input: SearchQuerySimilarityInput): Promise<SearchQuerySimilarity> {
      const { query, references } = parseActivityInput(
        searchQuerySimilarityInput,
        input,
        'searchQuerySimilarity',
      );
      if (references.length === 0) return { scores: [], maxCosine: null, bestIndex: -1 };
      const encoder = await getEncoder();
      const [q, ...refs] = await encoder.embed([query, ...references]);
      const scores = refs.map((r) => cosine(q!, r));
      let bestIndex = 0;
      scores.forEach((s, i) => {
        if (s > scores[bestIndex]!) bestIndex = i;
      });
      return { scores, maxCosine: scores[bestIndex]!, bestIndex };
    },
  };
}
