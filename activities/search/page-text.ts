/**
 * The text of a web page named by a search result, for the page-fetch observation (spec §7.2):
 * fetched through the request-forgery guard (size and time limits from `search.fetch`), decoded by
 * its declared charset, and reduced to text the way the reference's BeautifulSoup
 * `get_text(separator=' ', strip=True)` does: every text node stripped, empty ones dropped, joined
 * by single spaces, without the contents of `<script>`, `<style>`, `<noscript>` and `<template>`.
 *
 * Parsing is node-html-parser's; the text-node walk (a few lines) is written here because the
 * library's `.text` joins nodes without separators and keeps no `strip` semantics.
 */
import { NodeType, parse, type Node } from 'node-html-parser';
import { pyStrip } from '../../core/pycompat/text.js';
import { guardedFetch, type GuardOptions } from '../net/guarded-fetch.js';

/** Content types whose text is read; anything else (PDF, images) falls back to the snippet. */
export const PAGE_CONTENT_TYPES = ['text/html', 'application/xhtml+xml', 'text/plain'] as const;

/**
 * Pages whose short text says the content was not served (the reference's error indicators):
 * a page of under 64 words containing one of these counts as not fetched.
 */
const NOT_SERVED = [
  'limit exceeded',
  'please turn on javascript',
  'enable javascript',
  'please enable cookies',
];

function decode(body: Buffer, contentType: string): string {
  const label = /charset\s*=\s*"?([^";\s]+)/i.exec(contentType)?.[1] ?? 'utf-8';
  try {
    return new TextDecoder(label).decode(body);
  } catch {
    // An unknown charset label: UTF-8, with replacement characters where it does not fit.
    return new TextDecoder('utf-8').decode(body);
  }
}

/** BeautifulSoup's `get_text(' ', strip=True)` over node-html-parser's tree. */
export function htmlText(html: string): string {
  const root = parse(html, {
    comment: false,
    blockTextElements: { script: false, style: false, noscript: false, template: false },
  });
  const parts: string[] = [];
  const walk = (node: Node) => {
    if (node.nodeType === NodeType.TEXT_NODE) {
      const t = pyStrip(node.text);
      if (t !== '') parts.push(t);
      return;
    }
    for (const child of node.childNodes) walk(child);
  };
  walk(root);
  return parts.join(' ');
}

/** The text of a fetched body, or undefined when the page served no usable text. */
export function pageTextOf(body: Buffer, contentType: string): string | undefined {
  const raw = decode(body, contentType);
  const text = contentType.startsWith('text/plain') ? pyStrip(raw.replace(/\s+/g, ' ')) : htmlText(raw);
  if (text === '') return undefined;
  const lower = text.toLowerCase();
  if (text.split(/\s+/).length < 64 && NOT_SERVED.some((s) => lower.includes(s))) return undefined;
  return text;
}

/**
 * Fetches a result page through the guard and returns its text; undefined when it answered with
 * no usable text. Fetch failures (blocked, timeout, HTTP errors, wrong type) throw.
 */
export async function fetchPageText(url: string, guard: GuardOptions): Promise<string | undefined> {
  const res = await guardedFetch(url, {
    ...guard,
    accept: PAGE_CONTENT_TYPES,
    headers: { accept: 'text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8', ...(guard.headers ?? {}) },
  });
  return pageTextOf(res.body, res.contentType);
}
