/**
 * The embedded search backend: a Search-R1 corpus (`{id, contents: "Title\nBody"}` per line) and
 * an image corpus (`{id, name, filename}` per line), ranked by one of three retrievers:
 * - `bm25`: MiniSearch (BM25+) in memory; it can find nothing. Optionally blended with the ONNX
 *   encoder's dense scores (the older `hybrid` flag, a weighted sum).
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
import { BadInputError, ConfigError } from '../errors.js';
import type { TextEncoder } from '../embeddings/encoder.js';
import { DenseIndex, reciprocalRankFusion, type EmbeddingCacheOptions, type Ranked } from './dense-index.js';
import type { ImageHit, SearchBackend, TextHit } from './types.js';

export interface Passage {
  id: string;
  title: string;
  body: string;
  /** The original `contents` ("Title\nBody"). */
  contents: string;
}

export interface CorpusImage {
  id: string;
  name: string;
  filename: string;
}

export interface LoadWarning {
  file: string;
  line: number;
  problem: string;
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
  const firstLineOfId = new Map<string, number>();
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') {
      warnings.push({ file, line, problem: 'blank line' });
      return;
    }
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (err) {
      warnings.push({ file, line, problem: `not valid JSON (${(err as Error).message})` });
      return;
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
      warnings.push({ file, line, problem: 'not a JSON object' });
      return;
    }
    const picked = pick(obj as Record<string, unknown>);
    if (typeof picked === 'string') {
      warnings.push({ file, line, problem: picked });
      return;
    }
    // The reference retrieves by position, so a repeated id is kept (both passages are real).
    const first = firstLineOfId.get(picked.id);
    if (first !== undefined) {
      warnings.push({
        file,
        line,
        problem: `id ${JSON.stringify(picked.id)} already used on line ${first}; kept both`,
      });
    } else {
      firstLineOfId.set(picked.id, line);
    }
    out.push(picked);
  });
  return out;
}

function idOf(v: unknown): string | undefined {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
}

/** Parses Search-R1 corpus lines; the title is the first line of `contents`, the body the rest. */
export function parsePassages(file: string, lines: readonly string[], warnings: LoadWarning[]): Passage[] {
  const passages = parseJsonl<Passage>(
    file,
    lines,
    (o) => {
      const id = idOf(o.id);
      if (id === undefined) return 'missing "id" (string or number)';
      if (typeof o.contents !== 'string') return 'missing "contents" (string "Title\\nBody")';
      const nl = o.contents.indexOf('\n');
      const title = nl < 0 ? o.contents : o.contents.slice(0, nl);
      const body = nl < 0 ? '' : o.contents.slice(nl + 1);
      return { id, title, body, contents: o.contents };
    },
    warnings,
  );
  return passages;
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

type Doc = { idx: number; title: string; body: string };

/** The loaded e5 side: the query encoder and the passage / image-name vectors. */
interface DenseRetrieval {
  mode: 'e5' | 'hybrid';
  queries: TextEncoder;
  text: DenseIndex;
  images: DenseIndex | undefined;
}

/** BM25+ options: title matches count double, as a passage's title line names its subject. */
const searchOptions = { boost: { title: 2 }, combineWith: 'OR' as const };

/**
 * Lucene's default English stop set. Dropping these from index and queries keeps the posting
 * lists a query walks short (they match nearly every passage and carry almost no BM25 weight):
 * on a 10k-passage corpus it cut MiniSearch's p50 query time several-fold (bench/search.bench.ts).
 */
export const STOP_WORDS: ReadonlySet<string> = new Set(
  'a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with'.split(
    ' ',
  ),
);

/** MiniSearch's term processing (lower-case) plus the stop set. */
export function processTerm(term: string): string | null {
  const t = term.toLowerCase();
  return STOP_WORDS.has(t) ? null : t;
}

export function newTextIndex(): MiniSearch<Doc> {
  return new MiniSearch<Doc>({
    idField: 'idx',
    fields: ['title', 'body'],
    storeFields: [],
    processTerm,
    searchOptions,
  });
}

export class LocalCorpus implements SearchBackend {
  readonly name = 'local' as const;
  readonly paid = false;

  private constructor(
    readonly passages: readonly Passage[],
    readonly images: readonly CorpusImage[],
    private readonly textIndex: MiniSearch<Doc>,
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
    const passages = parsePassages(
      textFile,
      readLines(textFile, 'set search.local.textCorpus / SEGFLOW_SEARCH_CORPUS to a Search-R1 JSONL file'),
      warnings,
    );
    if (passages.length === 0) {
      throw new BadInputError(
        `corpus ${textFile} has no usable passage (each line must be {"id", "contents"})`,
        {
          file: textFile,
        },
      );
    }
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

    const textIndex = newTextIndex();
    textIndex.addAll(passages.map((p, idx) => ({ idx, title: p.title, body: p.body })));
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
      const text = await DenseIndex.build(
        passages.map((p) => p.contents),
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
      e5 = { mode: retriever, queries: options.e5.queries, text, images: imageIndex };
    }

    let dense: { encoder: TextEncoder; matrix: Float32Array; weight: number } | undefined;
    if (options.hybrid) {
      if (!options.encoder) throw new ConfigError('search.local.hybrid is on but no text encoder was given');
      const vectors = await options.encoder.embed(passages.map((p) => p.contents));
      const dim = options.encoder.dimension;
      const matrix = new Float32Array(passages.length * dim);
      vectors.forEach((v, i) => matrix.set(v, i * dim));
      dense = { encoder: options.encoder, matrix, weight: options.denseWeight ?? 0.5 };
    }
    const imageDir = options.imageDir ? resolve(options.imageDir) : resolve('.');
    return new LocalCorpus(
      passages,
      images,
      textIndex,
      imageIndex,
      imageDir,
      warnings,
      dense,
      imageProblem,
      e5,
    );
  }

  /** The retriever in use. */
  get retriever(): LocalRetriever {
    return this.e5?.mode ?? 'bm25';
  }

  async searchText(query: string, topk: number): Promise<TextHit[]> {
    if (this.e5) {
      const ranked = await this.denseOrFused(query, this.e5.text, () =>
        this.textIndex.search(query).map((r) => r.id as number),
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
    return this.textIndex
      .search(query)
      .slice(0, topk)
      .map((r) => this.hit(r.id as number, r.score));
  }

  private async hybridSearch(query: string, topk: number): Promise<TextHit[]> {
    const dense = this.dense!;
    const dim = dense.encoder.dimension;
    const [q] = await dense.encoder.embed([query]);
    const lexical = this.textIndex.search(query);
    const maxLex = lexical[0]?.score ?? 0;
    const lexScore = new Map<number, number>(
      lexical.map((r) => [r.id as number, maxLex > 0 ? r.score / maxLex : 0]),
    );
    // Brute-force inner product: exact, and fast enough for corpora of this kind (tens of
    // thousands of passages); a vector index would only pay off far beyond that.
    const scored: { idx: number; score: number }[] = [];
    for (let i = 0; i < this.passages.length; i++) {
      let dot = 0;
      const base = i * dim;
      for (let d = 0; d < dim; d++) dot += q![d]! * dense.matrix[base + d]!;
      scored.push({ idx: i, score: (1 - dense.weight) * (lexScore.get(i) ?? 0) + dense.weight * dot });
    }
    scored.sort((a, b) => b.score - a.score);
    return scored.slice(0, topk).map((s) => this.hit(s.idx, s.score));
  }

  private hit(idx: number, score: number): TextHit {
    const p = this.passages[idx]!;
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
