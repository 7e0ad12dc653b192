// The searchTool activity end to end: shared S3 cache (dev stack's SeaweedFS), single-flight,
// rate limits, paid-call counting, image resizing into S3, request-forgery guard, cancellation.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CancelledFailure } from '@temporalio/common';
import sharp from 'sharp';
import { createSearchActivities, type SearchToolResult } from '../../../activities/search/activities.js';
import { S3SearchCache } from '../../../activities/search/cache.js';
import { loadConfig } from '../../../activities/runtime/config-loader.js';
import type { SegflowConfig } from '../../../core/config/schema.js';
import { startServer, type LocalServer } from '../../servers/http-server.js';
import { startRetrieval, startSerper, type Faults } from '../../servers/search-servers.js';
import { activityEnvironment } from '../../support/activity-env.js';
import { sharedData } from '../../support/paths.js';
import { testStore } from '../../support/stack.js';

const kb = sharedData('local_kb');

function configWith(overrides: Record<string, unknown>): SegflowConfig {
  return loadConfig({ env: {}, file: '/dev/null', overrides }).config;
}

async function run(
  acts: ReturnType<typeof createSearchActivities>,
  input: Parameters<ReturnType<typeof createSearchActivities>['searchTool']>[0],
) {
  return (await activityEnvironment().run(acts.searchTool, input)) as SearchToolResult;
}

void describe('searchTool activity', () => {
  // The dev stack's S3 (its port may be moved by SEGFLOW_DEV_S3_PORT); the search settings come from no env.
  const store = testStore();
  const testId = randomUUID();
  let retrieval: LocalServer;
  let serper: LocalServer;
  let imageHost: LocalServer;
  let pageHost: LocalServer;
  let pageSerper: LocalServer;
  const retrievalFaults: Faults = { queue: [] };
  const documents = [
    { id: '1', contents: 'Roger Federer\nElected to the International Tennis Hall of Fame for 2026.' },
    { id: '2', contents: 'Lady Gaga\nWon Best Pop Solo Performance at the 61st Grammy Awards for "Joanne".' },
    { id: '3', contents: `Long passage\n${'word '.repeat(200)}` },
  ];

  before(async () => {
    await store.ensureBucket();
    retrieval = await startRetrieval({
      documents,
      text: (d) => String(d.contents),
      faults: retrievalFaults,
      delayMs: 150,
    });
    const png = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#c00' } })
      .png()
      .toBuffer();
    imageHost = await startServer((req) => {
      if (req.path === '/broken.jpg')
        return { headers: { 'content-type': 'text/html' }, body: '<html>gone</html>' };
      if (req.path === '/garbage.png')
        return { headers: { 'content-type': 'image/png' }, body: Buffer.from('not a png') };
      if (req.path === '/good.png') return { headers: { 'content-type': 'image/png' }, body: png };
      return { status: 404 };
    });
    // Result pages on a loopback host: one with the answer inside a longer text (and a script that
    // must not count as text), one that is gone, one that is not a web page.
    const filler = Array.from({ length: 8 }, (_, i) => `Paragraph ${i} is about the weather in Molsheim.`);
    pageHost = await startServer((req) => {
      if (req.path === '/bolide')
        return {
          headers: { 'content-type': 'text/html; charset=utf-8' },
          body: `<html><head><title>Bolide</title><script>var speed = "secret";</script><style>p{}</style></head><body>
<nav>Home | Cars</nav><p>${filler.join(' ')}</p>
<p>The Bugatti <b>Bolide</b> reaches a top speed of 500&nbsp;km/h on the test track.</p>
<p>${filler.join(' ')}</p></body></html>`,
        };
      if (req.path === '/pdf') return { headers: { 'content-type': 'application/pdf' }, body: '%PDF-1.4' };
      return { status: 404, body: 'not found' };
    });
    pageSerper = await startSerper({
      apiKey: 'k',
      docs: [
        {
          title: 'Bugatti Bolide review',
          snippet: 'The Bugatti Bolide reaches a top speed of 500 km/h.',
          link: `${pageHost.url}/bolide`,
        },
        { title: 'Bugatti Bolide gone', snippet: 'Bolide page that is gone.', link: `${pageHost.url}/gone` },
        { title: 'Bugatti Bolide PDF', snippet: 'Bolide brochure.', link: `${pageHost.url}/pdf` },
        { title: 'Bugatti Bolide fourth', snippet: 'Bolide fourth result.', link: `${pageHost.url}/4` },
      ],
    });
    serper = await startSerper({
      apiKey: 'k',
      docs: [{ title: 'Bolide', snippet: 'Bugatti Bolide hypercar', link: 'https://example.com/b' }],
      images: [
        { title: 'Bolide broken link', imageUrl: `${imageHost.url}/broken.jpg` },
        { title: 'Bolide garbage bytes', imageUrl: `${imageHost.url}/garbage.png` },
        { title: 'Bolide good', imageUrl: `${imageHost.url}/good.png` },
      ],
    });
  });
  after(async () => {
    await retrieval.close();
    await serper.close();
    await imageHost.close();
    await pageHost.close();
    await pageSerper.close();
  });

  function retrievalConfig(prefix = `test-search-cache/${testId}`) {
    return configWith({
      'search.backend': 'retrieval',
      'search.retrieval.textUrl': `${retrieval.url}/retrieve`,
      'search.retrieval.imageUrl': `${retrieval.url}/retrieve`,
      'search.cache.prefix': prefix,
    });
  }

  void it('eight identical first queries from one group make exactly one backend call', async () => {
    const acts = createSearchActivities({ config: retrievalConfig(), store });
    const before = retrieval.requests.length;
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        run(acts, {
          tool: 'text_search',
          query: 'Who won Best Pop Solo at the 61st Grammy Awards?',
          runId: 'r1',
        }),
      ),
    );
    assert.equal(retrieval.requests.length - before, 1);
    assert.equal(results.filter((r) => r.backendCalled).length, 1);
    assert.equal(results.filter((r) => r.cached).length, 7);
    for (const r of results) assert.equal(r.observation, results[0]!.observation);
    assert.match(results[0]!.observation, /^<information>1\. \(Title: Lady Gaga\) Won Best Pop Solo/);
  });

  void it('the same query later, from another worker, normalised differently, is served from the S3 cache', async () => {
    const other = createSearchActivities({ config: retrievalConfig(), store });
    const before = retrieval.requests.length;
    const r = await run(other, {
      tool: 'text_search',
      query: '  who WON best pop solo at the 61st   Grammy Awards? ',
    });
    assert.equal(retrieval.requests.length, before);
    assert.equal(r.cached, true);
    // a different topk is a different search
    await run(other, {
      tool: 'text_search',
      query: 'who won best pop solo at the 61st grammy awards?',
      topk: 1,
    });
    assert.equal(retrieval.requests.length, before + 1);
  });

  void it('cache entries expire after the TTL', async () => {
    let now = 1_000_000;
    const cache = new S3SearchCache(store, `test-search-cache/${testId}-ttl`, 60, () => now);
    await cache.put('k/1', 'q', { v: 1 });
    assert.deepEqual(await cache.get('k/1'), { v: 1 });
    now += 61_000;
    assert.equal(await cache.get('k/1'), undefined);
  });

  void it('formats hits as the reference: numbered, titled, bodies cut to 320 characters with "…"', async () => {
    const acts = createSearchActivities({ config: retrievalConfig(), store });
    const r = await run(acts, { tool: 'text_search', query: 'Long passage word', topk: 1 });
    const body = 'word '.repeat(200);
    assert.equal(
      r.observation,
      `<information>1. (Title: Long passage) ${body.slice(0, 319)}…\n</information>\n\n`,
    );
  });

  void it('an empty query is answered without a backend call, as the reference does', async () => {
    const acts = createSearchActivities({ config: retrievalConfig(), store });
    const before = retrieval.requests.length;
    const r = await run(acts, { tool: 'text_search', query: '  "" ' });
    assert.equal(r.observation, '<information>Empty search query provided.</information>');
    assert.equal(r.rejected, 'empty-query');
    const long = await run(acts, { tool: 'text_search', query: 'x'.repeat(501) });
    assert.equal(long.rejected, 'query-too-long');
    assert.equal(retrieval.requests.length, before);
  });

  void it('429 + Retry-After leaves as a retryable ApplicationFailure with nextRetryDelay', async () => {
    const acts = createSearchActivities({
      config: retrievalConfig(`test-search-cache/${testId}-429`),
      store,
    });
    retrievalFaults.queue.push({ status: 429, headers: { 'retry-after': '3' }, body: 'slow down' });
    await assert.rejects(run(acts, { tool: 'text_search', query: 'Federer' }), (err: unknown) => {
      const f = err as { type: string; nonRetryable: boolean; nextRetryDelay: unknown };
      assert.equal(f.type, 'TransientError');
      assert.equal(f.nonRetryable, false);
      assert.equal(f.nextRetryDelay, 3000);
      return true;
    });
  });

  void it('bad input is a non-retryable BadInputError naming the field', async () => {
    const acts = createSearchActivities({ config: retrievalConfig(), store });
    await assert.rejects(run(acts, { tool: 'web_search', query: 'x' } as never), (err: unknown) => {
      const f = err as { type: string; nonRetryable: boolean; message: string };
      assert.equal(f.type, 'BadInputError');
      assert.equal(f.nonRetryable, true);
      assert.match(f.message, /tool/);
      return true;
    });
  });

  void it('cancellation reaches a caller waiting on a slow backend', async () => {
    const acts = createSearchActivities({
      config: retrievalConfig(`test-search-cache/${testId}-cancel`),
      store,
    });
    retrievalFaults.queue.push({ status: 200, body: '{"result":[[]]}', delayMs: 3000 });
    const env = activityEnvironment();
    const p = env.run(acts.searchTool, { tool: 'text_search' as const, query: 'Federer slow' });
    setTimeout(() => env.cancel(), 100);
    const started = Date.now();
    await assert.rejects(p, (err: unknown) => err instanceof CancelledFailure);
    assert.ok(Date.now() - started < 2000, 'did not wait for the backend');
  });

  void it('counts paid calls per run: cached repeats cost nothing', async () => {
    const config = configWith({
      'search.backend': 'serper',
      'search.serper.url': serper.url,
      'search.serper.apiKey': 'k',
      'search.cache.prefix': `test-search-cache/${testId}-paid`,
    });
    const acts = createSearchActivities({ config, store });
    const runId = `paid-${testId}`;
    await Promise.all(
      Array.from({ length: 8 }, () => run(acts, { tool: 'text_search', query: 'Bugatti Bolide', runId })),
    );
    await run(acts, { tool: 'text_search', query: 'Bugatti Bolide top speed', runId });
    await run(acts, { tool: 'text_search', query: 'bugatti bolide', runId });
    const env = activityEnvironment();
    const count = (await env.run(acts.searchPaidCalls, { runId })) as {
      total: number;
      byBackend: Record<string, number>;
    };
    assert.deepEqual(count, { total: 2, byBackend: { serper: 2 } });
  });

  void it('local image search stores a 256×256 JPEG in S3 and formats the image observation', async () => {
    const config = configWith({
      'search.local.textCorpus': join(kb, 'text_corpus.jsonl'),
      'search.local.imageCorpus': join(kb, 'image_corpus.jsonl'),
      'search.local.imageDir': join(kb, 'images'),
      'search.cache.prefix': `test-search-cache/${testId}-img`,
    });
    const acts = createSearchActivities({ config, store });
    const r = await run(acts, { tool: 'image_search', query: 'Bugatti Bolide' });
    assert.equal(r.tool, 'image_search');
    if (r.tool !== 'image_search') return;
    assert.equal(r.observation, '<information>1. (Title: Bugatti Bolide) <image>\n</information>\n\n');
    assert.equal(r.images.length, 1);
    const bytes = await store.getBytes(r.images[0]!.image.uri);
    const meta = await sharp(bytes).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 256, 256]);
    assert.match(r.images[0]!.image.uri, /search-images\/sha256\//);
  });

  void it('web image search skips blocked, non-image and undecodable candidates', async () => {
    const base = {
      'search.backend': 'serper',
      'search.serper.url': serper.url,
      'search.serper.apiKey': 'k',
    };
    // Without an allow entry the guard refuses every 127.0.0.1 image: no image, no crash.
    const guarded = createSearchActivities({
      config: configWith({ ...base, 'search.cache.prefix': `test-search-cache/${testId}-ssrf` }),
      store,
    });
    const before = imageHost.requests.length;
    const blocked = await run(guarded, { tool: 'image_search', query: 'Bolide' });
    assert.equal(blocked.tool === 'image_search' && blocked.images.length, 0);
    assert.equal(imageHost.requests.length, before, 'no request reached the loopback image host');

    const allowed = createSearchActivities({
      config: configWith({
        ...base,
        'search.cache.prefix': `test-search-cache/${testId}-allow`,
        'search.fetch.allow': ['127.0.0.1/32'],
      }),
      store,
    });
    const r = await run(allowed, { tool: 'image_search', query: 'Bolide' });
    if (r.tool !== 'image_search') throw new Error('expected an image result');
    assert.deepEqual(
      r.images.map((i) => i.title),
      ['Bolide good'],
    );
    assert.equal(r.observation, '<information>1. (Title: Bolide good) <image>\n</information>\n\n');
  });

  void it('Serper page-fetch mode: 3 results, each page read through the guard, the reference observation', async () => {
    const base = {
      'search.backend': 'serper',
      'search.serper.url': pageSerper.url,
      'search.serper.apiKey': 'k',
      'search.cache.enabled': false,
    };
    const acts = createSearchActivities({
      config: configWith({ ...base, 'search.fetch.allow': ['127.0.0.1/32'] }),
      store,
    });
    const before = pageHost.requests.length;
    const r = await run(acts, { tool: 'text_search', query: 'Bugatti Bolide top speed' });
    if (r.tool !== 'text_search') throw new Error('expected a text result');
    // search.serper.textTopk (3) results were asked for, and each of the 3 pages was fetched once.
    assert.equal(JSON.parse(pageSerper.requests.at(-1)!.body).num, 3);
    assert.deepEqual(
      pageHost.requests
        .slice(before)
        .map((q) => q.path)
        .sort(),
      ['/bolide', '/gone', '/pdf'],
    );
    assert.deepEqual(
      r.hits.map((h) => h.page?.fetched),
      [true, false, false],
    );
    const obs = r.observation;
    assert.ok(
      obs.startsWith('<information>**Web Page 1:**\n{\n  "id": 1,\n  "title": "Bugatti Bolide review",'),
      obs,
    );
    assert.ok(obs.endsWith('…</information>\n\n'), 'cut to 960 characters');
    assert.equal([...obs].length, '<information>'.length + 960 + '</information>\n\n'.length);
    const first = JSON.parse(obs.slice(obs.indexOf('{'), obs.indexOf('\n}\n') + 2)) as Record<
      string,
      unknown
    >;
    assert.equal(first.site_name, new URL(pageHost.url).host);
    assert.equal(first.url, `${pageHost.url}/bolide`);
    const context = String(first.context);
    // The matching sentence with its surroundings, as page text: tags and the script gone.
    assert.match(
      context,
      /Paragraph 7 is about the weather in Molsheim\. The Bugatti Bolide reaches a top speed of 500\u00a0km\/h on the test track\. Paragraph 0/,
    );
    assert.ok(!context.includes('secret') && !context.includes('<'), context);
    assert.equal(
      [...context].length,
      320 + [...'The Bugatti Bolide reaches a top speed of 500 km/h on the test track.'].length + 320,
    );
    // Pages that are gone or not web pages keep their snippets as context (they are cut from
    // this observation by the 960-character limit, as in the reference).
    assert.deepEqual(
      r.hits.slice(1).map((h) => h.page?.context),
      ['Bolide page that is gone.', 'Bolide brochure.'],
    );

    // Without an allow entry the guard refuses the loopback pages: snippets only, no request made.
    const guarded = createSearchActivities({ config: configWith(base), store });
    const beforeGuarded = pageHost.requests.length;
    const g = await run(guarded, { tool: 'text_search', query: 'Bugatti Bolide top speed' });
    if (g.tool !== 'text_search') throw new Error('expected a text result');
    assert.equal(pageHost.requests.length, beforeGuarded);
    assert.deepEqual(
      g.hits.map((h) => h.page?.context),
      [
        'The Bugatti Bolide reaches a top speed of 500 km/h.',
        'Bolide page that is gone.',
        'Bolide brochure.',
      ],
    );

    // fetchPages off: the reference's basic mode, snippets in the local-retriever format.
    const basic = createSearchActivities({
      config: configWith({ ...base, 'search.serper.fetchPages': false }),
      store,
    });
    const b = await run(basic, { tool: 'text_search', query: 'Bugatti Bolide top speed' });
    assert.match(
      b.observation,
      /^<information>1\. \(Title: Bugatti Bolide review\) The Bugatti Bolide reaches/,
    );
  });
});
