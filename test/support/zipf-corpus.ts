// Generated Search-R1 corpora for search tests and benchmarks: passages whose words are drawn
// Zipf-weighted (fixed seed) from the real KB's vocabulary ranked by its real frequency, and
// 4-word OR queries drawn from the words of sampled passages (2 title, 2 body; stop words excluded).
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { mulberry32 } from '../../core/random.js';
import { STOP_WORDS } from '../../activities/search/bm25-terms.js';
import { sharedData } from './paths.js';

const words = (s: string) => s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];

/** The real KB's words, most frequent first. */
export function kbVocabulary(): string[] {
  const freq = new Map<string, number>();
  for (const line of readFileSync(sharedData('local_kb', 'text_corpus.jsonl'), 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    for (const w of words((JSON.parse(line) as { contents: string }).contents))
      freq.set(w, (freq.get(w) ?? 0) + 1);
  }
  return [...freq.keys()].sort((a, b) => freq.get(b)! - freq.get(a)!);
}

export interface GeneratedCorpus {
  passages: number;
  /** Queries and the passage each was drawn from. */
  queries: { query: string; from: number }[];
}

/**
 * Writes `n` passages to `file` (titles of 4–9 words, bodies of 30–69) and draws `queryCount`
 * queries from evenly spaced passages. Every `duplicateEvery`-th passage repeats the one before
 * (equal scores, to exercise tie order); 0 for none.
 */
export function writeZipfCorpus(
  file: string,
  n: number,
  opts: { seed?: number; queryCount?: number; duplicateEvery?: number; vocabulary?: string[] } = {},
): GeneratedCorpus {
  const vocab = opts.vocabulary ?? kbVocabulary();
  const rand = mulberry32(opts.seed ?? 42);
  const qrand = mulberry32((opts.seed ?? 42) + 1);
  const cum = new Float64Array(vocab.length);
  let total = 0;
  vocab.forEach((_, i) => (cum[i] = total += 1 / (i + 1)));
  const word = () => {
    const r = rand() * total;
    let lo = 0;
    let hi = cum.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cum[mid]! < r) lo = mid + 1;
      else hi = mid;
    }
    return vocab[lo]!;
  };
  const pick = (ws: string[]) => ws[Math.floor(qrand() * ws.length)]!;
  const queryCount = opts.queryCount ?? 500;
  const every = Math.max(1, Math.floor(n / queryCount));
  const queries: GeneratedCorpus['queries'] = [];
  const fd = openSync(file, 'w');
  let batch: string[] = [];
  let prev = '';
  try {
    for (let i = 0; i < n; i++) {
      let contents: string;
      if (opts.duplicateEvery && i % opts.duplicateEvery === opts.duplicateEvery - 1 && prev) contents = prev;
      else {
        const title = Array.from({ length: 4 + Math.floor(rand() * 6) }, word);
        const body = Array.from({ length: 30 + Math.floor(rand() * 40) }, word);
        contents = `${title.join(' ')}\n${body.join(' ')}`;
      }
      prev = contents;
      batch.push(JSON.stringify({ id: i, contents }));
      if (i % every === 0 && queries.length < queryCount) {
        const [title, body] = contents.split('\n') as [string, string];
        const t = title.split(' ').filter((w) => !STOP_WORDS.has(w));
        const b = body.split(' ').filter((w) => !STOP_WORDS.has(w));
        const q = new Set<string>();
        for (let tries = 0; q.size < 4 && tries < 50; tries++)
          q.add(q.size < 2 && t.length ? pick(t) : pick(b));
        queries.push({ query: [...q].join(' '), from: i });
      }
      if (batch.length === 10_000) {
        writeSync(fd, batch.join('\n') + '\n');
        batch = [];
      }
    }
    if (batch.length) writeSync(fd, batch.join('\n') + '\n');
  } finally {
    closeSync(fd);
  }
  return { passages: n, queries };
}
