/**
 * The page-fetch observation of the reference's Google (Serper) tool, `process_snippets=True`
 * (spec §7.2): each result page's text is searched for the sentence that best matches the result's
 * snippet, that sentence is kept with `contextChars` code points on either side, and the results
 * are written as `**Web Page i:**` + a two-space-indented JSON object, the whole cut to
 * `maxChars` code points and wrapped in `<information>`.
 *
 * Mirrors `extract_snippet_with_context` and `_process_snippets_async` of the reference (Search-o1's
 * deepsearch utils as carried by verl-tool). One difference: sentences are split by ICU's sentence
 * segmenter (`Intl.Segmenter`, built into Node) rather than nltk's Punkt, which can split
 * differently around abbreviations; the word-F1 match on top of it is the reference's.
 */
import { PY_ISSPACE_CLASS, pyLen, pySlice } from '../pycompat/text.js';
import { Tags } from './tags.js';
import { neutraliseUntrustedText, truncateBody } from './observations.js';

/** Characters of Python's `string.punctuation`, removed before words are compared. */
const ASCII_PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;
const PY_WHITESPACE_RUN = new RegExp(`${PY_ISSPACE_CLASS}+`, 'u');

/** The reference reads at most this many code points of a page. */
export const MAX_PAGE_CHARS = 100_000;

/** A sentence must share more than this word-F1 with the snippet to be chosen. */
const MIN_SENTENCE_F1 = 0.2;

function wordSet(s: string): Set<string> {
  return new Set(
    s
      .toLowerCase()
      .replace(ASCII_PUNCTUATION, '')
      .split(PY_WHITESPACE_RUN)
      .filter((w) => w !== ''),
  );
}

function f1(truth: Set<string>, predicted: Set<string>): number {
  let common = 0;
  for (const w of predicted) if (truth.has(w)) common++;
  if (common === 0) return 0;
  const precision = common / predicted.size;
  const recall = common / truth.size;
  return (2 * precision * recall) / (precision + recall);
}

const sentences = new Intl.Segmenter('en', { granularity: 'sentence' });

/**
 * The page text around the sentence that best matches `snippet` (word F1 > 0.2), with
 * `contextChars` code points before and after it; `undefined` when no sentence matches.
 */
export function snippetContext(pageText: string, snippet: string, contextChars: number): string | undefined {
  const text = pyLen(pageText) > MAX_PAGE_CHARS ? pySlice(pageText, 0, MAX_PAGE_CHARS) : pageText;
  const snippetWords = wordSet(snippet);
  let best: string | undefined;
  let bestF1 = MIN_SENTENCE_F1;
  for (const { segment } of sentences.segment(text)) {
    const sentence = segment.trim();
    if (sentence === '') continue;
    const score = f1(snippetWords, wordSet(sentence));
    if (score > bestF1) {
      bestF1 = score;
      best = sentence;
    }
  }
  if (best === undefined) return undefined;
  // Python's `full_text.find(best)`: the first occurrence, in code points.
  const start = pyLen(text.slice(0, text.indexOf(best)));
  const end = start + pyLen(best);
  return pySlice(text, Math.max(0, start - contextChars), end + contextChars);
}

/**
 * The `context` field the reference writes for a fetched page: the snippet's surroundings, or,
 * when no sentence matches, its fixed message with the page's first `contextChars` code points.
 */
export function pageContext(pageText: string, snippet: string, contextChars: number): string {
  return (
    snippetContext(pageText, snippet, contextChars) ??
    `Could not extract context. First ${contextChars} chars: ${pySlice(pageText, 0, contextChars)}`
  );
}

/** One result of the page-fetch observation, in the reference's field order. */
export interface WebPageResult {
  title: string;
  url: string;
  /** Host of the URL (Python `urlparse(url).netloc`). */
  siteName: string;
  date: string;
  snippet: string;
  context: string;
}

/** Python's `urlparse(url).netloc` for the URLs search results carry; '' when unparseable. */
export function siteNameOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}

/**
 * The page-fetch observation: `<information>` + `**Web Page {i}:**\n{json}\n` per result, the
 * results part cut to `maxChars` code points (`[:max-1] + "…"`), + `</information>\n\n`. With no
 * result it is the reference's `No search results found.` Web text is neutralised first.
 */
export function formatWebPages(pages: readonly WebPageResult[], maxChars: number): string {
  if (pages.length === 0)
    return `${Tags.informationOpen}No search results found.${Tags.informationClose}\n\n`;
  let doc = '';
  pages.forEach((p, i) => {
    const safe = (s: string) => neutraliseUntrustedText(s);
    const record = {
      id: i + 1,
      title: safe(p.title),
      url: safe(p.url),
      site_name: safe(p.siteName),
      date: safe(p.date),
      snippet: safe(p.snippet),
      context: safe(p.context),
    };
    // JSON.stringify(…, null, 2) writes what Python's json.dumps(…, ensure_ascii=False, indent=2) does.
    doc += `**Web Page ${i + 1}:**\n${JSON.stringify(record, null, 2)}\n`;
  });
  return `${Tags.informationOpen}${truncateBody(doc, maxChars)}${Tags.informationClose}\n\n`;
}
