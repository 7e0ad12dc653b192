// Local stand-ins for the search services, each speaking the real wire protocol over HTTP:
// Serper (Google) JSON, DuckDuckGo HTML + i.js, the Search-R1 /retrieve server and SearXNG JSON.
// They search a small document set by word overlap, so answers depend on the query.
import { json, startServer, type LocalServer, type RecordedRequest, type Reply } from './http-server.js';

export interface WebDoc {
  title: string;
  snippet: string;
  link: string;
}

export interface WebImage {
  title: string;
  imageUrl: string;
}

function words(s: string): Set<string> {
  return new Set(s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []);
}

/** Docs sharing at least one word with the query, most shared words first. */
export function rank<T>(query: string, items: readonly T[], text: (t: T) => string): T[] {
  const q = words(query);
  return items
    .map((item) => ({ item, n: [...words(text(item))].filter((w) => q.has(w)).length }))
    .filter((x) => x.n > 0)
    .sort((a, b) => b.n - a.n)
    .map((x) => x.item);
}

/** Behaviour switches shared by the fakes: fail the next N requests with a status. */
export interface Faults {
  /** Answer the next requests with these replies first (429, 500, …). */
  queue: Reply[];
}

function nextFault(f: Faults | undefined): Reply | undefined {
  return f?.queue.shift();
}

export async function startSerper(opts: {
  apiKey: string;
  /** Answer a wrong key with a message that repeats it (as some APIs do). @default false */
  echoKey?: boolean;
  docs: WebDoc[];
  images?: WebImage[];
  faults?: Faults;
  delayMs?: number;
}): Promise<LocalServer> {
  return startServer((req: RecordedRequest) => {
    const fault = nextFault(opts.faults);
    if (fault) return fault;
    if (req.method !== 'POST') return json({ message: 'Method not allowed' }, 405);
    if (req.headers['x-api-key'] !== opts.apiKey) {
      const given = String(req.headers['x-api-key'] ?? '');
      return json(
        { message: opts.echoKey ? `Unauthorized: invalid key ${given}` : 'Unauthorized.', statusCode: 403 },
        403,
      );
    }
    const body = JSON.parse(req.body) as { q?: string; num?: number; hl?: string; gl?: string };
    if (typeof body.q !== 'string') return json({ message: 'Missing query', statusCode: 400 }, 400);
    const num = body.num ?? 10;
    const searchParameters = {
      q: body.q,
      gl: body.gl,
      hl: body.hl,
      num,
      type: req.path === '/images' ? 'images' : 'search',
      engine: 'google',
    };
    if (req.path === '/search') {
      const organic = rank(body.q, opts.docs, (d) => `${d.title} ${d.snippet}`)
        .slice(0, num)
        .map((d, i) => ({ title: d.title, link: d.link, snippet: d.snippet, position: i + 1 }));
      return { ...json({ searchParameters, organic, credits: 1 }), delayMs: opts.delayMs ?? 0 };
    }
    if (req.path === '/images') {
      const images = rank(body.q, opts.images ?? [], (d) => d.title)
        .slice(0, num)
        .map((d, i) => ({
          title: d.title,
          imageUrl: d.imageUrl,
          imageWidth: 256,
          imageHeight: 256,
          source: 'example',
          position: i + 1,
        }));
      return json({ searchParameters, images, credits: 1 });
    }
    return json({ message: 'Not found' }, 404);
  });
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export async function startDuckDuckGo(opts: {
  docs: WebDoc[];
  images?: WebImage[];
  faults?: Faults;
}): Promise<LocalServer> {
  const vqd = '4-123456789012345678901234567890';
  return startServer((req) => {
    const fault = nextFault(opts.faults);
    if (fault) return fault;
    if (req.path === '/html/' && req.method === 'POST') {
      const q = new URLSearchParams(req.body).get('q') ?? '';
      const results = rank(q, opts.docs, (d) => `${d.title} ${d.snippet}`)
        .map(
          (d) => `
  <div class="result results_links results_links_deep web-result">
    <div class="links_main links_deep result__body">
      <h2 class="result__title">
        <a rel="nofollow" class="result__a" href="//duckduckgo.com/l/?uddg=${encodeURIComponent(d.link)}&amp;rut=abc">${escapeHtml(d.title)}</a>
      </h2>
      <div class="result__extras"><div class="result__extras__url"><a class="result__url" href="${escapeHtml(d.link)}">${escapeHtml(d.link)}</a></div></div>
      <a class="result__snippet" href="${escapeHtml(d.link)}">${escapeHtml(d.snippet).replace(/(\w+)/, '<b>$1</b>')}</a>
      <div class="clear"></div>
    </div>
  </div>`,
        )
        .join('\n');
      const ad = `<div class="result results_links results_links_deep result--ad"><h2 class="result__title"><a class="result__a" href="https://ads.example/">Sponsored</a></h2><a class="result__snippet">Buy now</a></div>`;
      const html = `<!DOCTYPE html><html><head><title>${escapeHtml(q)} at DuckDuckGo</title></head><body><div id="links" class="results">${ad}${results}</div></body></html>`;
      return { status: 200, headers: { 'content-type': 'text/html; charset=UTF-8' }, body: html };
    }
    if (req.path === '/' && req.query.get('iax') === 'images') {
      return {
        status: 200,
        headers: { 'content-type': 'text/html' },
        body: `<html><script>DDG.deep.initialize('/d.js?q=x&vqd=${vqd}&p=1');vqd="${vqd}";</script></html>`,
      };
    }
    if (req.path === '/i.js') {
      if (req.query.get('vqd') !== vqd) return { status: 403, body: 'bad vqd' };
      const q = req.query.get('q') ?? '';
      const results = rank(q, opts.images ?? [], (d) => d.title).map((d) => ({
        title: d.title,
        image: d.imageUrl,
        thumbnail: d.imageUrl,
        url: 'https://example.com/page',
        height: 256,
        width: 256,
        source: 'Bing',
      }));
      return json({ query: q, results, next: 'i.js?q=…' });
    }
    return { status: 404, body: 'not found' };
  });
}

/** Search-R1 / Seg-ReSearch `POST /retrieve`: `{queries, topk, return_scores}` → `{result}`. */
export async function startRetrieval(opts: {
  documents: Record<string, unknown>[];
  text: (d: Record<string, unknown>) => string;
  defaultTopk?: number;
  faults?: Faults;
  delayMs?: number;
}): Promise<LocalServer> {
  return startServer((req) => {
    const fault = nextFault(opts.faults);
    if (fault) return fault;
    if (req.path !== '/retrieve' || req.method !== 'POST') return json({ detail: 'Not Found' }, 404);
    let body: { queries?: unknown; topk?: number; return_scores?: boolean };
    try {
      body = JSON.parse(req.body) as typeof body;
    } catch {
      return json({ detail: [{ type: 'json_invalid', msg: 'JSON decode error' }] }, 422);
    }
    if (!Array.isArray(body.queries))
      return json({ detail: [{ type: 'missing', loc: ['body', 'queries'], msg: 'Field required' }] }, 422);
    const topk = body.topk ?? opts.defaultTopk ?? 3;
    const result = (body.queries as string[]).map((q) => {
      const docs = rank(q, opts.documents, opts.text).slice(0, topk);
      return body.return_scores === false
        ? docs
        : docs.map((document, i) => ({ document, score: 0.9 - i * 0.05 }));
    });
    return { ...json({ result }), delayMs: opts.delayMs ?? 0 };
  });
}

/** SearXNG `GET /search?q=…&format=json&categories=…`. */
export async function startSearxng(opts: {
  docs: WebDoc[];
  images?: WebImage[];
  jsonEnabled?: boolean;
  faults?: Faults;
}): Promise<LocalServer> {
  return startServer((req) => {
    const fault = nextFault(opts.faults);
    if (fault) return fault;
    if (req.path !== '/search') return { status: 404, body: 'Not Found' };
    if (req.query.get('format') !== 'json' || opts.jsonEnabled === false)
      return { status: 403, body: 'Forbidden' };
    const q = req.query.get('q') ?? '';
    const category = req.query.get('categories') ?? 'general';
    const results =
      category === 'images'
        ? rank(q, opts.images ?? [], (d) => d.title).map((d, i) => ({
            url: 'https://example.com/page',
            title: d.title,
            content: '',
            img_src: d.imageUrl,
            thumbnail_src: d.imageUrl,
            engine: 'bing images',
            template: 'images.html',
            score: 1 / (i + 1),
            category: 'images',
          }))
        : rank(q, opts.docs, (d) => `${d.title} ${d.snippet}`).map((d, i) => ({
            url: d.link,
            title: d.title,
            content: d.snippet,
            engine: 'duckduckgo',
            engines: ['duckduckgo', 'brave'],
            score: 2 / (i + 1),
            category: 'general',
          }));
    return json({
      query: q,
      number_of_results: results.length,
      results,
      answers: [],
      corrections: [],
      infoboxes: [],
      suggestions: [],
      unresponsive_engines: [],
    });
  });
}
