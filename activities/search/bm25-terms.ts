/**
 * The text analysis of the embedded BM25 ranking, shared by the stored index (bm25-index.ts) and
 * the MiniSearch reference it must agree with (test/support/minisearch-bm25.ts): MiniSearch 7's
 * default tokenizer (split on whitespace and punctuation), lower-casing, and Lucene's English stop
 * set. The ranking parameters are MiniSearch's BM25+ defaults with titles counting double.
 */

/** MiniSearch 7's default tokenizer: splits on Unicode whitespace, line breaks and punctuation. */
export const SPACE_OR_PUNCTUATION = /[\n\r\p{Z}\p{P}]+/u;

/** Splits a field into raw tokens exactly as MiniSearch does (empty tokens included). */
export function tokenize(text: string): string[] {
  return text.split(SPACE_OR_PUNCTUATION);
}

/**
 * Lucene's default English stop set. Dropping these from index and queries keeps the posting
 * lists a query walks short (they match nearly every passage and carry almost no BM25 weight).
 */
export const STOP_WORDS: ReadonlySet<string> = new Set(
  'a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with'.split(
    ' ',
  ),
);

/** Lower-case, stop words and empty tokens dropped (null). */
export function processTerm(term: string): string | null {
  const t = term.toLowerCase();
  return t === '' || STOP_WORDS.has(t) ? null : t;
}

/** A query's terms in order, repeats kept (a repeated word counts twice, as in MiniSearch). */
export function queryTerms(query: string): string[] {
  const out: string[] = [];
  for (const raw of tokenize(query)) {
    const t = processTerm(raw);
    if (t !== null) out.push(t);
  }
  return out;
}

/** BM25+ (Lv & Zhai 2011) as MiniSearch computes it: k1, b and the lower bound δ. */
export const BM25 = { k: 1.2, b: 0.7, d: 0.5 } as const;

/** Title matches count double: a passage's title line names its subject. */
export const TITLE_BOOST = 2;
