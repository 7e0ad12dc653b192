/**
 * A Search-R1 text corpus (`{id, contents: "Title\nBody"}` per line) behind its BM25 index
 * (bm25-index.ts). The index is built once per corpus content and kept in `indexDir`, named by the
 * SHA-256 of the corpus bytes and the ranking settings, so a worker that starts again (or another
 * worker on the host) loads it instead of re-indexing, and a changed corpus gets a new one.
 *
 * Passages are not held in memory: the index keeps each one's byte range in the corpus file and a
 * hit reads its line back (a corpus changed under a running worker is detected and named).
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BadInputError, ConfigError } from '../errors.js';
import { readArrayFile, writeArrayFile, type StoredArray } from './array-file.js';
import { Bm25Builder, Bm25Index, BLOCK, type Scored } from './bm25-index.js';
import { BM25, STOP_WORDS, TITLE_BOOST } from './bm25-terms.js';

export interface Passage {
  id: string;
  title: string;
  body: string;
  /** The original `contents` ("Title\nBody"). */
  contents: string;
}

export interface LoadWarning {
  file: string;
  line: number;
  problem: string;
}

/** What decides the ranking besides the corpus: a change makes a new index. */
export const ENGINE_KEY = JSON.stringify({
  engine: 'segflow-bm25',
  version: 1,
  block: BLOCK,
  bm25: BM25,
  titleBoost: TITLE_BOOST,
  stop: [...STOP_WORDS],
});

const CORPUS_SETTING = 'set search.local.textCorpus / SEGFLOW_SEARCH_CORPUS to a Search-R1 JSONL file';

function unreadable(file: string, err: unknown, setting: string): ConfigError {
  return new ConfigError(
    `cannot read corpus file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (${setting})`,
    { file },
  );
}

/**
 * Calls `onLine` for each line of `file` (1-based numbers, byte offset and length, the text without
 * its newline), reading it in pieces, so corpora larger than a string can hold are fine; `onBytes`
 * sees every byte (for hashing).
 */
export function forEachLine(
  file: string,
  setting: string,
  onLine: ((text: string, line: number, offset: number, length: number) => void) | undefined,
  onBytes?: (bytes: Uint8Array) => void,
): void {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw unreadable(file, err, setting);
  }
  try {
    const chunk = Buffer.allocUnsafe(1 << 24);
    let carry = Buffer.alloc(0);
    let pos = 0;
    let line = 0;
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, pos);
      } catch (err) {
        throw unreadable(file, err, setting);
      }
      if (n === 0) break;
      const got = chunk.subarray(0, n);
      onBytes?.(got);
      pos += n;
      if (!onLine) continue;
      const buf = carry.length > 0 ? Buffer.concat([carry, got]) : got;
      const base = pos - buf.length;
      let start = 0;
      for (let nl = buf.indexOf(10, start); nl >= 0; nl = buf.indexOf(10, start)) {
        onLine(buf.toString('utf8', start, nl), ++line, base + start, nl - start);
        start = nl + 1;
      }
      carry = Buffer.from(buf.subarray(start));
    }
    if (onLine && carry.length > 0) onLine(carry.toString('utf8'), ++line, pos - carry.length, carry.length);
  } finally {
    closeSync(fd);
  }
}

/** SHA-256 (hex) of a file's bytes. */
export function hashFile(file: string, setting = CORPUS_SETTING): string {
  const h = createHash('sha256');
  forEachLine(file, setting, undefined, (b) => h.update(b));
  return h.digest('hex');
}

function idOf(v: unknown): string | undefined {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
}

/** One JSONL line as an object, or why it is not one. */
export function jsonObject(raw: string): Record<string, unknown> | string {
  if (raw.trim() === '') return 'blank line';
  let obj: unknown;
  try {
    obj = JSON.parse(raw);
  } catch (err) {
    return `not valid JSON (${(err as Error).message})`;
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return 'not a JSON object';
  return obj as Record<string, unknown>;
}

/** A passage from a corpus line's object; the title is the first line of `contents`, the body the rest. */
export function passageOf(o: Record<string, unknown>): Passage | string {
  const id = idOf(o.id);
  if (id === undefined) return 'missing "id" (string or number)';
  if (typeof o.contents !== 'string') return 'missing "contents" (string "Title\\nBody")';
  const nl = o.contents.indexOf('\n');
  const title = nl < 0 ? o.contents : o.contents.slice(0, nl);
  const body = nl < 0 ? '' : o.contents.slice(nl + 1);
  return { id, title, body, contents: o.contents };
}

/**
 * Tracks ids already seen: the reference retrieves by position, so a repeated id is kept (both
 * passages are real) with a warning naming the first line.
 */
export function repeatedIdCheck(): (id: string, line: number) => string | undefined {
  const firstLineOfId = new Map<string, number>();
  return (id, line) => {
    const first = firstLineOfId.get(id);
    if (first !== undefined) return `id ${JSON.stringify(id)} already used on line ${first}; kept both`;
    firstLineOfId.set(id, line);
    return undefined;
  };
}

export interface TextCorpusOptions {
  /** Folder of stored indexes; without it the index is built in memory at every load. */
  indexDir?: string | undefined;
  onWarning?: ((w: LoadWarning) => void) | undefined;
}

/** Stored with the index: where each passage's line is, and what loading the corpus warned about. */
interface CorpusFields {
  corpusSha256: string;
  engine: string;
  corpusBytes: number;
  warnings: { line: number; problem: string }[];
}

export class TextCorpus {
  private cached: Passage[] | undefined;

  private constructor(
    readonly file: string,
    readonly index: Bm25Index,
    private readonly lineOffset: Float64Array,
    private readonly lineLength: Uint32Array,
    readonly warnings: readonly LoadWarning[],
    /** The corpus file as indexed: a hit checks the file is still that one. */
    private readonly stamp: { size: number; mtimeMs: number },
    /** The stored index file (undefined without indexDir). */
    readonly indexFile: string | undefined,
    /** True when this load built the index (false: it was read from indexFile). */
    readonly built: boolean,
  ) {}

  /** Loads the stored index of `file`'s content, or builds (and stores) it. */
  static open(file: string, options: TextCorpusOptions = {}): TextCorpus {
    let stamp: { size: number; mtimeMs: number };
    try {
      const st = statSync(file);
      stamp = { size: st.size, mtimeMs: st.mtimeMs };
    } catch (err) {
      throw unreadable(file, err, CORPUS_SETTING);
    }
    let indexFile: string | undefined;
    let corpusSha256 = '';
    if (options.indexDir) {
      corpusSha256 = hashFile(file);
      const key = createHash('sha256').update(corpusSha256).update('\0').update(ENGINE_KEY).digest('hex');
      indexFile = join(options.indexDir, `${key}.bm25`);
      if (existsSync(indexFile)) {
        const corpus = TextCorpus.read(file, indexFile, stamp);
        for (const w of corpus.warnings) options.onWarning?.(w);
        return corpus;
      }
    }
    const corpus = TextCorpus.build(file, stamp, indexFile, options.onWarning);
    if (indexFile) {
      const { fields, arrays } = corpus.index.toStored();
      const stored: CorpusFields = {
        corpusSha256,
        engine: ENGINE_KEY,
        corpusBytes: stamp.size,
        warnings: corpus.warnings.map(({ line, problem }) => ({ line, problem })),
      };
      try {
        writeArrayFile(
          indexFile,
          { ...fields, ...stored },
          {
            ...arrays,
            lineOffset: corpus.lineOffset,
            lineLength: corpus.lineLength,
          },
        );
      } catch (err) {
        throw new ConfigError(
          `cannot store the search index of ${file} in ${options.indexDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (set search.local.indexDir to a writable folder)`,
          { file: indexFile },
        );
      }
    }
    return corpus;
  }

  private static build(
    file: string,
    stamp: { size: number; mtimeMs: number },
    indexFile: string | undefined,
    onWarning: ((w: LoadWarning) => void) | undefined,
  ): TextCorpus {
    const builder = new Bm25Builder();
    const offsets: number[] = [];
    const lengths: number[] = [];
    const warnings: LoadWarning[] = [];
    const repeated = repeatedIdCheck();
    const warn = (line: number, problem: string) => {
      const w = { file, line, problem };
      warnings.push(w);
      onWarning?.(w);
    };
    forEachLine(file, CORPUS_SETTING, (raw, line, offset, length) => {
      const obj = jsonObject(raw);
      const p = typeof obj === 'string' ? obj : passageOf(obj);
      if (typeof p === 'string') return warn(line, p);
      const again = repeated(p.id, line);
      if (again) warn(line, again);
      builder.add(p.title, p.body);
      offsets.push(offset);
      lengths.push(length);
    });
    if (builder.size === 0) {
      throw new BadInputError(`corpus ${file} has no usable passage (each line must be {"id", "contents"})`, {
        file,
      });
    }
    return new TextCorpus(
      file,
      builder.finish(),
      Float64Array.from(offsets),
      Uint32Array.from(lengths),
      warnings,
      stamp,
      indexFile,
      true,
    );
  }

  private static read(file: string, indexFile: string, stamp: { size: number; mtimeMs: number }): TextCorpus {
    const { fields, arrays } = readArrayFile(indexFile);
    const f = fields as Partial<CorpusFields>;
    let index: Bm25Index;
    try {
      if (f.engine !== ENGINE_KEY) throw new Error('made by another ranking version');
      if (f.corpusBytes !== stamp.size)
        throw new Error(`made for a ${f.corpusBytes}-byte corpus, this one has ${stamp.size}`);
      index = Bm25Index.fromStored(fields, arrays);
      const { lineOffset, lineLength } = arrays as Record<string, StoredArray | undefined>;
      if (!(lineOffset instanceof Float64Array) || !(lineLength instanceof Uint32Array))
        throw new Error('no passage offsets');
      if (lineOffset.length !== index.docCount || lineLength.length !== index.docCount) {
        throw new Error('passage offsets do not match the index');
      }
      const warnings = (f.warnings ?? []).map((w) => ({ file, line: w.line, problem: w.problem }));
      return new TextCorpus(file, index, lineOffset, lineLength, warnings, stamp, indexFile, false);
    } catch (err) {
      throw new ConfigError(
        `search index ${indexFile} is damaged (${(err as Error).message}): delete it and it is built again from the corpus at the next start`,
        { file: indexFile },
      );
    }
  }

  get size(): number {
    return this.index.docCount;
  }

  /** The best `k` passages for `query` (Infinity: all that hold a query word), best first. */
  search(query: string, k: number): Scored[] {
    return this.index.search(query, k);
  }

  /** Passage `idx` (0-based, in corpus order), read back from the corpus file. */
  passage(idx: number): Passage {
    if (this.cached) return this.cached[idx]!;
    return this.reading((read) => read(idx));
  }

  /** Every passage, in corpus order (read once, then kept: the dense retrievers embed them all). */
  all(): Passage[] {
    this.cached ??= this.reading((read) => Array.from({ length: this.size }, (_, i) => read(i)));
    return this.cached;
  }

  private reading<T>(use: (read: (idx: number) => Passage) => T): T {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch (err) {
      throw unreadable(this.file, err, CORPUS_SETTING);
    }
    try {
      const st = fstatSync(fd);
      if (st.size !== this.stamp.size || st.mtimeMs !== this.stamp.mtimeMs) {
        throw new ConfigError(
          `corpus file ${this.file} changed since it was indexed: restart the worker to index the new one`,
          { file: this.file },
        );
      }
      return use((idx) => {
        const buf = Buffer.alloc(this.lineLength[idx]!);
        readSync(fd, buf, 0, buf.length, this.lineOffset[idx]!);
        const obj = jsonObject(buf.toString('utf8'));
        const p = typeof obj === 'string' ? obj : passageOf(obj);
        if (typeof p === 'string') {
          throw new ConfigError(
            `corpus file ${this.file} no longer matches its index (${p}): restart the worker`,
            {
              file: this.file,
            },
          );
        }
        return p;
      });
    } finally {
      closeSync(fd);
    }
  }
}
