// The embedded text search's ranking before the stored BM25 index: MiniSearch 7 BM25+ exactly as
// LocalCorpus configured it (titles ×2, OR, the stop set), kept as the reference the new engine
// must agree with (tests) and as the benchmark's baseline.
import MiniSearch from 'minisearch';
import { processTerm } from '../../activities/search/bm25-terms.js';

export interface TitledText {
  title: string;
  body: string;
}

/** MiniSearch over `docs` (ids are positions); `search` gives every match, best first. */
export function miniSearchIndex(docs: readonly TitledText[]): {
  search: (query: string) => { idx: number; score: number }[];
} {
  const index = new MiniSearch<{ idx: number; title: string; body: string }>({
    idField: 'idx',
    fields: ['title', 'body'],
    storeFields: [],
    processTerm,
    searchOptions: { boost: { title: 2 }, combineWith: 'OR' },
  });
  index.addAll(docs.map((d, idx) => ({ idx, title: d.title, body: d.body })));
  return { search: (q) => index.search(q).map((r) => ({ idx: r.id as number, score: r.score })) };
}
