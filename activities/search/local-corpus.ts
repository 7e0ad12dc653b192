/**
 * The embedded search backend: a Search-R1 corpus (`{id, contents: "Title\nBody"}` per line) and
 * an image corpus (`{id, name, filename}` per line), ranked by one of three retrievers:
 * - `bm25`: BM25+ over an inverted index with top-k pruning (bm25-index.ts), built once per corpus
 *   content and stored in `indexDir` (text-corpus.ts); it can find nothing. Optionally blended with
 *   the ONNX encoder's dense scores (the older `hybrid` flag, a weighted sum).
 * - `e5`: the reference's retriever (spec §7.1): e5 embeddings of `contents` (images: of `name`),
 *   exact inner product, always k hits.
 * - `hybrid`: BM25 and e5 rankings fused by reciprocal rank; always k hits (images: e5 alone).
 *
 * Blank or broken lines do not stop loading: each is skipped with a warning naming the file and
 * the line. A file with no usable line at all is an error.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import MiniSearch from 'minisearch';
import { ConfigError } from '../errors.js';
import type { TextEncoder } from '../embeddings/encoder.js';
import { DenseIndex, reciprocalRankFusion, type EmbeddingCacheOptions, type Ranked } from './dense-index.js';
import {
  jsonObject,
  passageOf,
  repeatedIdCheck,
  TextCorpus,
  type LoadWarning,
  type Passage,
} from './text-corpus.js';
import type { ImageHit, SearchBackend, TextHit } from './types.js';

export type { LoadWarning, Passage } from './text-corpus.js';
export { STOP_WORDS, processTerm } from './bm25-terms.js';

export interface CorpusImage {
  id: string;
  name: string;
  filename: string;
}

function readLines(file: string, setting: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `cannot read corpus file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (${setting})`,
      { file },
    );
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function parseJsonl<T extends { id: string }>(
  file: string,
  lines: readonly string[],
  pick: (obj: Record<string, unknown>) => T | string,
  warnings: LoadWarning[],
): T[] {
  const out: T[] = [];
  const repeated = repeatedIdCheck();
  lines.forEach((raw, i) => {
    const line = i + 1;
    const obj = jsonObject(raw);
    const picked = typeof obj === 'string' ? obj : pick(obj);
    if (typeof picked === 'string') {
      warnings.push({ file, line, problem: picked });
      return;
    }
    const again = repeated(picked.id, line);
    if (again) warnings.push({ file, line, problem: again });
    out.push(picked);
  });
  return out;
}

function idOf(v: unknown): string | undefined {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
}

/** Parses Search-R1 corpus lines; the title is the first line of `contents`, the body the rest. */
export function parsePassages(file: string, lines: readonly string[], warnings: LoadWarning[]): Passage[] {
  return parseJsonl<Passage>(file, lines, passageOf, warnings);
}

export function parseImages(file: string, lines: readonly string[], warnings: LoadWarning[]): CorpusImage[] {
  const images = parseJsonl<CorpusImage>(
    file,
    lines,
    (o) => {
      const id = idOf(o.id);
      if (id === undefined) return 'missing "id" (string or number)';
      if (typeof o.name !== 'string' || o.name === '') return 'missing "name"';
      if (typeof o.filename !== 'string' || o.filename === '') return 'missing "filename"';
      return { id, name: o.name, filename: o.filename };
    },
    warnings,
  );
  return images;
}

export const LocalRetrievers = ['bm25', 'e5', 'hybrid'] as const;
export type LocalRetriever = (typeof LocalRetrievers)[number];

/** The e5 side of the `e5` and `hybrid` retrievers. */
export interface E5Retrieval {
  /** Embeds queries (`query: …`). */
  queries: TextEncoder;
  /** Embeds passages and image names (`passage: …`). */
  passages: TextEncoder;
  /** Where passage vectors are kept between runs; without it they are embedded at every load. */
  cache?: EmbeddingCacheOptions | undefined;
}

export interface LocalCorpusOptions {
  textCorpus: string;
  /**
   * Folder where the text corpus' BM25 index is kept, one file per corpus content, so the corpus is
   * indexed once, not at every worker start. Without it the index is built in memory at every load.
   */
  indexDir?: string | undefined;
  /** Image corpus JSONL; without it image search finds nothing. */
  imageCorpus?: string | undefined;
  /** Folder the image corpus' `filename`s are relative to. */
  imageDir?: string | undefined;
  /** How text and image searches rank. @default "bm25" */
  retriever?: LocalRetriever;
  /** Needed by the `e5` and `hybrid` retrievers. */
  e5?: E5Retrieval | undefined;
  /** BM25 only: blend in dense scores from `encoder` (a weighted sum). @default false */
  hybrid?: boolean;
  /** Weight of the dense score in hybrid mode. @default 0.5 */
  denseWeight?: number;
  encoder?: TextEncoder | undefined;
  /** Called once per skipped line (the CLI and workers log them). */
  onWarning?: (w: LoadWarning) => void;
}

/** The loaded e5 side: the query encoder and the passage / image-name vectors. */
interface DenseRetrieval {
  mode: 'e5' | 'hybrid';
  queries: TextEncoder;
  text: DenseIndex;
  images: DenseIndex | undefined;
}

export class LocalCorpus implements SearchBackend {
  readonly name = 'local' as const;
  readonly paid = false;

  private constructor(
    /** The text corpus and its BM25 index. */
    readonly text: TextCorpus,
    readonly images: readonly CorpusImage[],
    private readonly imageIndex: MiniSearch<{ idx: number; name: string }>,
    private readonly imageDir: string,
    readonly warnings: readonly LoadWarning[],
    private readonly dense?: { encoder: TextEncoder; matrix: Float32Array; weight: number },
    private readonly imageProblem?: ConfigError,
    private readonly e5?: DenseRetrieval,
  ) {}

  static async load(options: LocalCorpusOptions): Promise<LocalCorpus> {
    const warnings: LoadWarning[] = [];
    const textFile = resolve(options.textCorpus);
    const text = TextCorpus.open(textFile, {
      indexDir: options.indexDir ? resolve(options.indexDir) : undefined,
      onWarning: (w) => warnings.push(w),
    });
    let images: CorpusImage[] = [];
    // Text search works without images: an unreadable image corpus fails image searches only.
    let imageProblem: ConfigError | undefined;
    if (options.imageCorpus) {
      const imageFile = resolve(options.imageCorpus);
      try {
        images = parseImages(
          imageFile,
          readLines(
            imageFile,
            'set search.local.imageCorpus / SEGFLOW_SEARCH_IMAGE_CORPUS to an image corpus JSONL file',
          ),
          warnings,
        );
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        imageProblem = err;
      }
    } else {
      imageProblem = new ConfigError(
        'no image corpus configured: set search.local.imageCorpus / SEGFLOW_SEARCH_IMAGE_CORPUS',
      );
    }
    for (const w of warnings) options.onWarning?.(w);

    const imageIndex = new MiniSearch<{ idx: number; name: string }>({
      idField: 'idx',
      fields: ['name'],
      storeFields: [],
      searchOptions: { combineWith: 'OR', fuzzy: 0.2, prefix: true },
    });
    imageIndex.addAll(images.map((im, idx) => ({ idx, name: im.name })));

    const retriever = options.retriever ?? 'bm25';
    let e5: DenseRetrieval | undefined;
    if (retriever !== 'bm25') {
      if (options.hybrid) {
        throw new ConfigError(
          `search.local.hybrid (BM25 + ONNX encoder) cannot be combined with search.local.retriever "${retriever}": ` +
            'set one of them (retriever "hybrid" fuses BM25 with e5)',
        );
      }
      if (!options.e5) {
        throw new ConfigError(
          `search.local.retriever "${retriever}" needs an e5 embeddings server: set search.local.e5.url`,
        );
      }
      const dense = await DenseIndex.build(
        text.all().map((p) => p.contents),
        options.e5.passages,
        options.e5.cache,
      );
      const imageIndex =
        images.length > 0
          ? await DenseIndex.build(
              images.map((im) => im.name),
              options.e5.passages,
              options.e5.cache,
            )
          : undefined;
      e5 = { mode: retriever, queries: options.e5.queries, text: dense, images: imageIndex };
    }

    let dense: { encoder: TextEncoder; matrix: Float32Array; weight: number } | undefined;
    if (options.hybrid) {
      if (!options.encoder) throw new ConfigError('search.local.hybrid is on but no text encoder was given');
      const vectors = await options.encoder.embed(text.all().map((p) => p.contents));
      const dim = options.encoder.dimension;
      const matrix = new Float32Array(text.size * dim);
      vectors.forEach((v, i) => matrix.set(v, i * dim));
      dense = { encoder: options.encoder, matrix, weight: options.denseWeight ?? 0.5 };
    }
    const imageDir = options.imageDir ? resolve(options.imageDir) : resolve('.');
    return new LocalCorpus(text, images, imageIndex, imageDir, warnings, dense, imageProblem, e5);
  }

  /** Every passage, in corpus order (read from the corpus file on first use). */
  get passages(): readonly Passage[] {
    return this.text.all();
  }

  /** The retriever in use. */
  get retriever(): LocalRetriever {
    return this.e5?.mode ?? 'bm25';
  }

  async searchText(query: string, topk: number): Promise<TextHit[]> {
    if (this.e5) {
      const ranked = await this.denseOrFused(query, this.e5.text, () =>
        this.text.search(query, Infinity).map((r) => r.idx),
      );
      return ranked.slice(0, topk).map((r) => this.hit(r.idx, r.score));
    }
    return this.dense ? this.hybridSearch(query, topk) : this.bm25(query, topk);
  }

  /** e5: the dense ranking; hybrid: it fused with the lexical one. Both rank every document. */
  private async denseOrFused(query: string, index: DenseIndex, lexical: () => number[]): Promise<Ranked[]> {
    const e5 = this.e5!;
    const [q] = await e5.queries.embed([query]);
    const dense = index.rank(q!);
    if (e5.mode === 'e5') return dense;
    return reciprocalRankFusion([lexical(), dense.map((r) => r.idx)]);
  }

  private bm25(query: string, topk: number): TextHit[] {
    return this.text.search(query, topk).map((r) => this.hit(r.idx, r.score));
  }

  private async hybridSearch(query: string, topk: number): Promise<TextHit[]> {
    const dense = this.dense!;
    const dim = dense.encoder.dimension;
    const [q] = await dense.encoder.embed([query]);
    const lexical = this.text.search(query, Infinity);
    const maxLex = lexical[0]?.score ?? 0;
    const lexScore = new Map<number, number>(lexical.map((r) => [r.idx, maxLex > 0 ? r.score / maxLex : 0]));
    // Brute-force inner product: exact, and fast enough for corpora of this kind (tens of
    // thousands of passages); a vector index would only pay off far beyond that.
    const scored: { idx: number; score: number }[] = [];
    for (let i = 0; i < this.text.size; i++) {
      let dot = 0;
      const base = i * dim;
      for (let d = 0; d < dim; d++) dot += q![d]! * dense.matrix[base + d]!;
      scored.push({ idx: i, score: (1 - dense.weight) * (lexScore.get(i) ?? 0) + dense.weight * dot });
    }
    scored.sort((a, b) => b.score - a.score);
    return scored.slice(0, topk).map((s) => this.hit(s.idx, s.score));
  }

  private hit(idx: number, score: number): TextHit {
    const p = this.text.passage(idx);
    return { id: p.id, title: p.title, text: p.body, score };
  }

  async searchImages(query: string, topk: number): Promise<ImageHit[]> {
    if (this.imageProblem) throw this.imageProblem;
    // Images are matched by e5 alone in both e5 and hybrid modes, as the reference does: names are
    // a few words, and the fuzzy name index fused in by rank mostly adds noise.
    const ranked: Ranked[] = this.e5?.images
      ? this.e5.images.rank((await this.e5.queries.embed([query]))[0]!)
      : this.imageIndex.search(query).map((r) => ({ idx: r.id as number, score: r.score }));
    return ranked.slice(0, topk).map((r) => {
      const im = this.images[r.idx]!;
      const path = isAbsolute(im.filename) ? im.filename : join(this.imageDir, im.filename);
      return { id: im.id, title: im.name, source: { kind: 'file', path } as const, score: r.score };
    });
  }
}
