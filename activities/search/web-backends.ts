/**
 * Search backends reached over HTTP, each speaking its service's real wire protocol:
 * - Serper (Google): `POST {url}/search` and `/images`, `X-API-KEY`, body `{q, hl, gl, num}` (spec §7.2).
 * - DuckDuckGo (no key): the HTML endpoint for text (`POST q=…`, `.result` blocks), and the
 *   `vqd` token + `i.js` JSON endpoint for images, as the `ddgs` package does (spec §7.3).
 * - A Search-R1 / Seg-ReSearch retrieval server: `POST /retrieve {queries, topk, return_scores}`
 *   → `{result: [[{document, score}]]}`, text and image collections (spec §7.1).
 * - SearXNG: `GET /search?q=…&format=json&categories=general|images`.
 */
import { parse as parseHtml } from 'node-html-parser';
import { pageContext, siteNameOf } from '../../core/protocol/web-pages.js';
import { BadInputError, ConfigError, TransientError } from '../errors.js';
import { httpCall, httpJson } from '../net/http.js';
import { pathUnder } from '../storage/safe-path.js';
import type { BackendName, ImageHit, SearchBackend, SearchCallOptions, TextHit } from './types.js';

/** Extra image candidates asked for, since some URLs turn out broken (the reference's +5). */
export const IMAGE_CANDIDATE_BUFFER = 5;

/** The reference's language switch (langid there): queries at least a quarter Han characters search in zh-cn/cn, others in en/us. */
export function serperLocale(query: string): { hl: string; gl: string } {
  const han = (query.match(/\p{Script=Han}/gu) ?? []).length;
  const letters = (query.match(/\p{L}/gu) ?? []).length;
  return han > 0 && han * 4 >= letters ? { hl: 'zh-cn', gl: 'cn' } : { hl: 'en', gl: 'us' };
}

function asArray(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v)
    ? v.filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null)
    : [];
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

export interface HttpBackendOptions {
  timeoutMs: number;
}

/** Page-fetch mode of the Serper backend (the reference's `process_snippets=True`, spec §7.2). */
export interface PageFetchOptions {
  /** A result page's text (through the request-forgery guard); undefined when it has none. */
  fetchText: (url: string, signal?: AbortSignal) => Promise<string | undefined>;
  /** Code points kept on either side of the sentence matching the snippet. */
  contextChars: number;
}

export class SerperBackend implements SearchBackend {
  readonly name = 'serper' as const;
  readonly paid = true;

  constructor(
    private readonly url: string,
    private readonly apiKey: string | undefined,
    private readonly opts: HttpBackendOptions,
    /** Set: text results carry the text of their pages (`page`). */
    private readonly pages?: PageFetchOptions,
  ) {}

  private async call(path: 'search' | 'images', query: string, num: number, signal?: AbortSignal) {
    if (!this.apiKey) {
      throw new ConfigError(
        'the Serper backend needs an API key: set SERPER_API_KEY (or choose another search.backend)',
      );
    }
    return httpJson<Record<string, unknown>>(`${this.url.replace(/\/+$/, '')}/${path}`, {
      method: 'POST',
      headers: { 'X-API-KEY': this.apiKey },
      json: { q: query, ...serperLocale(query), num },
      timeoutMs: this.opts.timeoutMs,
      signal,
      what: `Serper ${path === 'search' ? 'text' : 'image'} search`,
      authHint: 'check SERPER_API_KEY',
    });
  }

  async searchText(query: string, topk: number, options: SearchCallOptions = {}): Promise<TextHit[]> {
    const body = await this.call('search', query, topk, options.signal);
    if (this.pages) return this.withPages(asArray(body.organic).slice(0, topk), this.pages, options.signal);
    const hits: TextHit[] = [];
    const seen = new Set<string>();
    for (const [i, r] of asArray(body.organic).entries()) {
      const snippet = str(r.snippet) || str(r.description);
      if (seen.has(snippet)) continue; // the reference de-duplicates by snippet
      seen.add(snippet);
      const url = str(r.link);
      hits.push({
        id: url || `serper-${i}`,
        title: str(r.title),
        text: snippet,
        score: 1 / (i + 1),
        ...(url ? { url } : {}),
      });
      if (hits.length === topk) break;
    }
    return hits;
  }

  /**
   * Page-fetch mode: every result (no de-duplication, as the reference's page mode), each page
   * fetched at once; a page that cannot be fetched or has no text keeps its snippet as context.
   */
  private async withPages(
    organic: Record<string, unknown>[],
    pages: PageFetchOptions,
    signal?: AbortSignal,
  ): Promise<TextHit[]> {
    return Promise.all(
      organic.map(async (r, i): Promise<TextHit> => {
        const snippet = str(r.snippet) || str(r.description);
        const url = str(r.link);
        let text: string | undefined;
        if (url) {
          try {
            text = await pages.fetchText(url, signal);
          } catch (err) {
            if (signal?.aborted) throw err;
            text = undefined; // blocked, unreachable, too large, not text: the snippet stands in
          }
        }
        return {
          id: url || `serper-${i}`,
          title: str(r.title),
          text: snippet,
          score: 1 / (i + 1),
          ...(url ? { url } : {}),
          page: {
            siteName: siteNameOf(url),
            date: str(r.date),
            context: text === undefined ? snippet : pageContext(text, snippet, pages.contextChars),
            fetched: text !== undefined,
          },
        };
      }),
    );
  }

  async searchImages(query: string, topk: number, options: SearchCallOptions = {}): Promise<ImageHit[]> {
    const body = await this.call('images', query, topk + IMAGE_CANDIDATE_BUFFER, options.signal);
    return asArray(body.images)
      .filter((r) => str(r.imageUrl))
      .map((r, i) => ({
        id: str(r.imageUrl),
        title: str(r.title) || str(r.source),
        source: { kind: 'url', url: str(r.imageUrl) } as const,
        score: 1 / (i + 1),
      }));
  }
}

/** DuckDuckGo wraps result links as `//duckduckgo.com/l/?uddg=<url>`; this unwraps them. */
export function unwrapDuckDuckGoLink(href: string): string {
  try {
    const u = new URL(href, 'https://duckduckgo.com');
    const target = u.searchParams.get('uddg');
    if (u.pathname === '/l/' && target) return target;
    return u.toString();
  } catch {
    return href;
  }
}

export class DuckDuckGoBackend implements SearchBackend {
  readonly name = 'duckduckgo' as const;
  readonly paid = false;

  constructor(
    private readonly htmlUrl: string,
    private readonly siteUrl: string,
    private readonly opts: HttpBackendOptions,
  ) {}

  async searchText(query: string, topk: number, options: SearchCallOptions = {}): Promise<TextHit[]> {
    const res = await httpCall(this.htmlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'Mozilla/5.0 (segflow)' },
      body: new URLSearchParams({ q: query, b: '', kl: 'wt-wt' }).toString(),
      timeoutMs: this.opts.timeoutMs,
      signal: options.signal,
      what: 'DuckDuckGo text search',
    });
    const root = parseHtml(res.text);
    if (
      root.querySelector('.anomaly-modal') ||
      /anomaly|captcha/i.test(root.querySelector('title')?.text ?? '')
    ) {
      throw new TransientError('DuckDuckGo answered with a bot challenge instead of results; retry later');
    }
    const hits: TextHit[] = [];
    for (const el of root.querySelectorAll('.result')) {
      if (el.classList.contains('result--ad')) continue;
      const a = el.querySelector('.result__a');
      if (!a) continue;
      const url = unwrapDuckDuckGoLink(a.getAttribute('href') ?? '');
      const title = a.text.trim();
      const text = (el.querySelector('.result__snippet')?.text ?? '').trim();
      hits.push({ id: url, title, text, url, score: 1 / (hits.length + 1) });
      if (hits.length === topk) break;
    }
    return hits;
  }

  async searchImages(query: string, topk: number, options: SearchCallOptions = {}): Promise<ImageHit[]> {
    const site = this.siteUrl.replace(/\/+$/, '');
    const page = await httpCall(
      `${site}/?${new URLSearchParams({ q: query, iax: 'images', ia: 'images' })}`,
      {
        headers: { 'user-agent': 'Mozilla/5.0 (segflow)' },
        timeoutMs: this.opts.timeoutMs,
        signal: options.signal,
        what: 'DuckDuckGo image search (token)',
      },
    );
    const vqd = /vqd=["']?([\d-]+)["']?/.exec(page.text)?.[1];
    if (!vqd) throw new TransientError('DuckDuckGo did not return a vqd token for image search; retry later');
    const body = await httpJson<Record<string, unknown>>(
      `${site}/i.js?${new URLSearchParams({ l: 'wt-wt', o: 'json', q: query, vqd, f: ',,,,,', p: '1' })}`,
      {
        headers: { 'user-agent': 'Mozilla/5.0 (segflow)', referer: `${site}/` },
        timeoutMs: this.opts.timeoutMs,
        signal: options.signal,
        what: 'DuckDuckGo image search',
      },
    );
    return asArray(body.results)
      .filter((r) => str(r.image))
      .slice(0, topk + IMAGE_CANDIDATE_BUFFER)
      .map((r, i) => ({
        id: str(r.image),
        title: str(r.title),
        source: { kind: 'url', url: str(r.image) } as const,
        score: 1 / (i + 1),
      }));
  }
}

export class RetrievalServerBackend implements SearchBackend {
  readonly name = 'retrieval' as const;
  readonly paid = false;

  constructor(
    private readonly textUrl: string,
    private readonly imageUrl: string,
    private readonly imageDir: string,
    private readonly opts: HttpBackendOptions,
  ) {}

  private async retrieve(url: string, query: string, topk: number, what: string, signal?: AbortSignal) {
    const body = await httpJson<{ result?: unknown }>(url, {
      method: 'POST',
      json: { queries: [query], topk, return_scores: true },
      timeoutMs: this.opts.timeoutMs,
      signal,
      what,
    });
    if (!Array.isArray(body.result) || !Array.isArray(body.result[0])) {
      throw new TransientError(
        `${what} at ${url} answered without result[0] (expected {"result": [[{document, score}]]})`,
      );
    }
    return asArray(body.result[0]).map((r) => ({
      document: (typeof r.document === 'object' && r.document !== null ? r.document : r) as Record<
        string,
        unknown
      >,
      score: typeof r.score === 'number' ? r.score : 0,
    }));
  }

  async searchText(query: string, topk: number, options: SearchCallOptions = {}): Promise<TextHit[]> {
    const rows = await this.retrieve(
      this.textUrl,
      query,
      topk,
      'retrieval-server text search',
      options.signal,
    );
    return rows.map(({ document, score }, i) => {
      const contents = str(document.contents);
      const nl = contents.indexOf('\n');
      return {
        id: String(document.id ?? i),
        title: nl < 0 ? contents : contents.slice(0, nl),
        text: nl < 0 ? '' : contents.slice(nl + 1),
        score,
      };
    });
  }

  async searchImages(query: string, topk: number, options: SearchCallOptions = {}): Promise<ImageHit[]> {
    const rows = await this.retrieve(
      this.imageUrl,
      query,
      topk,
      'retrieval-server image search',
      options.signal,
    );
    return rows.map(({ document, score }, i) => {
      const filename = str(document.filename);
      const url = str(document.image_url);
      if (!filename && !url) {
        throw new BadInputError(`retrieval-server image result ${i} has neither "filename" nor "image_url"`);
      }
      return {
        id: String(document.id ?? filename),
        title: str(document.name) || filename,
        source: url
          ? ({ kind: 'url', url } as const)
          : ({
              kind: 'file',
              path: pathUnder(this.imageDir, filename, `retrieval-server image result ${i} filename`),
            } as const),
        score,
      };
    });
  }
}

export class SearxngBackend implements SearchBackend {
  readonly name = 'searxng' as const;
  readonly paid = false;

  constructor(
    private readonly url: string,
    private readonly opts: HttpBackendOptions,
  ) {}

  private async call(query: string, categories: string, signal?: AbortSignal) {
    const base = this.url.replace(/\/+$/, '');
    return httpJson<Record<string, unknown>>(
      `${base}/search?${new URLSearchParams({ q: query, format: 'json', categories })}`,
      {
        headers: { accept: 'application/json' },
        timeoutMs: this.opts.timeoutMs,
        signal,
        what: `SearXNG ${categories} search`,
        authHint: 'enable the json format under search.formats in the instance settings.yml',
      },
    );
  }

  async searchText(query: string, topk: number, options: SearchCallOptions = {}): Promise<TextHit[]> {
    const body = await this.call(query, 'general', options.signal);
    return asArray(body.results)
      .slice(0, topk)
      .map((r, i) => ({
        id: str(r.url) || `searxng-${i}`,
        title: str(r.title),
        text: str(r.content),
        score: typeof r.score === 'number' ? r.score : 1 / (i + 1),
        ...(str(r.url) ? { url: str(r.url) } : {}),
      }));
  }

  async searchImages(query: string, topk: number, options: SearchCallOptions = {}): Promise<ImageHit[]> {
    const body = await this.call(query, 'images', options.signal);
    return asArray(body.results)
      .filter((r) => str(r.img_src))
      .slice(0, topk + IMAGE_CANDIDATE_BUFFER)
      .map((r, i) => ({
        id: str(r.img_src),
        title: str(r.title),
        source: { kind: 'url', url: str(r.img_src) } as const,
        score: typeof r.score === 'number' ? r.score : 1 / (i + 1),
      }));
  }
}

export const webBackendNames: readonly BackendName[] = ['serper', 'duckduckgo', 'retrieval', 'searxng'];
