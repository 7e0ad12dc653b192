// Each web backend against a local server speaking its service's wire protocol.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ConfigError,
  SegflowError,
  TransientError,
  toApplicationFailure,
} from '../../../activities/errors.js';
import {
  DuckDuckGoBackend,
  RetrievalServerBackend,
  SearxngBackend,
  SerperBackend,
  serperLocale,
  unwrapDuckDuckGoLink,
} from '../../../activities/search/web-backends.js';
import type { LocalServer } from '../../servers/http-server.js';
import {
  startDuckDuckGo,
  startRetrieval,
  startSearxng,
  startSerper,
  type Faults,
  type WebDoc,
  type WebImage,
} from '../../servers/search-servers.js';

const docs: WebDoc[] = [
  {
    title: 'Bugatti Bolide - Wikipedia',
    snippet: 'The Bugatti Bolide is a track-only hypercar built by Bugatti.',
    link: 'https://en.wikipedia.org/wiki/Bugatti_Bolide',
  },
  {
    title: 'Lady Gaga wins Grammy',
    snippet: 'Lady Gaga won Best Pop Solo Performance at the 61st Grammy Awards.',
    link: 'https://example.com/gaga',
  },
  {
    title: 'Lady Gaga wins Grammy (mirror)',
    snippet: 'Lady Gaga won Best Pop Solo Performance at the 61st Grammy Awards.',
    link: 'https://mirror.example.com/gaga',
  },
  {
    title: 'Federer Hall of Fame',
    snippet: 'Roger Federer elected to the International Tennis Hall of Fame.',
    link: 'https://example.com/federer',
  },
];
const images: WebImage[] = [
  { title: 'Bugatti Bolide front view', imageUrl: 'https://img.example.com/bolide.jpg' },
  { title: 'Lady Gaga at the Grammys', imageUrl: 'https://img.example.com/gaga.png' },
];
const opts = { timeoutMs: 2000 };

function assertRetryAfter(err: unknown, ms: number): true {
  assert.ok(err instanceof TransientError, `expected TransientError, got ${String(err)}`);
  assert.equal(err.retryAfterMs, ms);
  const failure = toApplicationFailure(err);
  assert.equal(failure.nonRetryable, false);
  assert.equal(failure.nextRetryDelay, ms);
  return true;
}

void describe('Serper (Google) backend', () => {
  let server: LocalServer;
  const faults: Faults = { queue: [] };
  before(async () => {
    server = await startSerper({ apiKey: 'test-key', docs, images, faults });
  });
  after(() => server.close());

  void it('POSTs {q, hl, gl, num} with X-API-KEY and reads organic results, de-duplicated by snippet', async () => {
    const b = new SerperBackend(server.url, 'test-key', opts);
    const hits = await b.searchText('Lady Gaga Grammy Pop Solo', 3);
    const req = server.requests.at(-1)!;
    assert.equal(req.path, '/search');
    assert.equal(req.headers['x-api-key'], 'test-key');
    assert.deepEqual(JSON.parse(req.body), { q: 'Lady Gaga Grammy Pop Solo', hl: 'en', gl: 'us', num: 3 });
    assert.deepEqual(
      hits.map((h) => h.url),
      ['https://example.com/gaga'],
    );
    assert.equal(hits[0]!.title, 'Lady Gaga wins Grammy');
    assert.match(hits[0]!.text, /61st Grammy/);
    assert.equal(b.paid, true);
  });

  void it('asks /images for topk + 5 candidates', async () => {
    const b = new SerperBackend(server.url, 'test-key', opts);
    const hits = await b.searchImages('Bugatti Bolide', 1);
    assert.equal(JSON.parse(server.requests.at(-1)!.body).num, 6);
    assert.equal(server.requests.at(-1)!.path, '/images');
    assert.deepEqual(hits[0]!.source, { kind: 'url', url: 'https://img.example.com/bolide.jpg' });
  });

  void it('searches Chinese queries in zh-cn/cn', () => {
    assert.deepEqual(serperLocale('布加迪 Bolide 超跑'), { hl: 'zh-cn', gl: 'cn' });
    assert.deepEqual(serperLocale('Bugatti Bolide'), { hl: 'en', gl: 'us' });
  });

  void it('a wrong key is a ConfigError naming SERPER_API_KEY; no key fails before any request', async () => {
    await assert.rejects(new SerperBackend(server.url, 'wrong', opts).searchText('x', 2), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /HTTP 403/);
      assert.match(err.message, /SERPER_API_KEY/);
      return true;
    });
    const before = server.requests.length;
    await assert.rejects(
      new SerperBackend(server.url, undefined, opts).searchText('x', 2),
      /set SERPER_API_KEY/,
    );
    assert.equal(server.requests.length, before);
  });

  void it('429 with Retry-After becomes a retryable failure with that next retry delay', async () => {
    faults.queue.push({
      status: 429,
      headers: { 'retry-after': '7', 'content-type': 'application/json' },
      body: '{"message":"Too many requests"}',
    });
    await assert.rejects(new SerperBackend(server.url, 'test-key', opts).searchText('Lady Gaga', 2), (e) =>
      assertRetryAfter(e, 7000),
    );
  });

  void it('5xx is retryable without a delay; a timeout is retryable and says so', async () => {
    faults.queue.push({ status: 502, body: 'bad gateway' });
    await assert.rejects(
      new SerperBackend(server.url, 'test-key', opts).searchText('Lady Gaga', 2),
      (err: unknown) => {
        assert.ok(err instanceof TransientError);
        assert.equal(err.retryAfterMs, undefined);
        return true;
      },
    );
    faults.queue.push({ status: 200, body: '{}', delayMs: 500 });
    await assert.rejects(
      new SerperBackend(server.url, 'test-key', { timeoutMs: 100 }).searchText('Lady Gaga', 2),
      (err: unknown) => {
        assert.ok(err instanceof TransientError);
        assert.match(err.message, /timed out after 100 ms/);
        return true;
      },
    );
  });

  void it('a refused connection is retryable', async () => {
    await assert.rejects(
      new SerperBackend('http://127.0.0.1:1', 'k', opts).searchText('x', 2),
      (err: unknown) => {
        assert.ok(err instanceof TransientError);
        assert.match(err.message, /could not reach/);
        return true;
      },
    );
  });
});

void describe('DuckDuckGo backend', () => {
  let server: LocalServer;
  const faults: Faults = { queue: [] };
  before(async () => {
    server = await startDuckDuckGo({ docs, images, faults });
  });
  after(() => server.close());

  void it('POSTs q to the HTML endpoint and parses .result blocks, skipping ads and unwrapping links', async () => {
    const b = new DuckDuckGoBackend(`${server.url}/html/`, server.url, opts);
    const hits = await b.searchText('Bugatti Bolide hypercar', 3);
    const req = server.requests.at(-1)!;
    assert.equal(new URLSearchParams(req.body).get('q'), 'Bugatti Bolide hypercar');
    assert.equal(hits[0]!.url, 'https://en.wikipedia.org/wiki/Bugatti_Bolide');
    assert.equal(hits[0]!.title, 'Bugatti Bolide - Wikipedia');
    assert.equal(hits[0]!.text, 'The Bugatti Bolide is a track-only hypercar built by Bugatti.');
    assert.ok(hits.every((h) => !h.url?.includes('ads.example')));
    assert.equal(b.paid, false);
  });

  void it('gets a vqd token, then i.js image results', async () => {
    const b = new DuckDuckGoBackend(`${server.url}/html/`, server.url, opts);
    const hits = await b.searchImages('Lady Gaga Grammys', 1);
    assert.equal(server.requests.at(-1)!.path, '/i.js');
    assert.equal(hits[0]!.title, 'Lady Gaga at the Grammys');
  });

  void it('unwraps redirect links', () => {
    assert.equal(
      unwrapDuckDuckGoLink('//duckduckgo.com/l/?uddg=https%3A%2F%2Fa.example%2Fx%3Fy%3D1&rut=z'),
      'https://a.example/x?y=1',
    );
  });

  void it('a 202/403 bot challenge page or 429 is retryable', async () => {
    faults.queue.push({ status: 429, headers: { 'retry-after': '2' }, body: '' });
    await assert.rejects(
      new DuckDuckGoBackend(`${server.url}/html/`, server.url, opts).searchText('x', 2),
      (e) => assertRetryAfter(e, 2000),
    );
    faults.queue.push({
      status: 200,
      headers: { 'content-type': 'text/html' },
      body: '<html><div class="anomaly-modal">Unusual traffic</div></html>',
    });
    await assert.rejects(
      new DuckDuckGoBackend(`${server.url}/html/`, server.url, opts).searchText('x', 2),
      TransientError,
    );
  });
});

void describe('Search-R1 retrieval server backend', () => {
  let text: LocalServer;
  let img: LocalServer;
  const faults: Faults = { queue: [] };
  before(async () => {
    text = await startRetrieval({
      documents: [
        { id: '7', contents: 'Bugatti Bolide\nA track-only hypercar.' },
        { id: '8', contents: 'Roger Federer\nSwiss tennis player.' },
      ],
      text: (d) => String(d.contents),
      faults,
    });
    img = await startRetrieval({
      documents: [
        {
          id: 0,
          name: 'Bugatti Bolide',
          filename: 'Bugatti Bolide.webp',
          image_path: 'data/local_KB/images/Bugatti Bolide.webp',
        },
      ],
      text: (d) => String(d.name),
      defaultTopk: 1,
    });
  });
  after(async () => {
    await text.close();
    await img.close();
  });

  void it('POSTs {queries, topk, return_scores} and splits contents into title and body', async () => {
    const b = new RetrievalServerBackend(`${text.url}/retrieve`, `${img.url}/retrieve`, '/kb/images', opts);
    const hits = await b.searchText('Federer tennis', 2);
    assert.deepEqual(JSON.parse(text.requests.at(-1)!.body), {
      queries: ['Federer tennis'],
      topk: 2,
      return_scores: true,
    });
    assert.deepEqual(hits, [{ id: '8', title: 'Roger Federer', text: 'Swiss tennis player.', score: 0.9 }]);
  });

  void it('image results name files under the configured image folder', async () => {
    const b = new RetrievalServerBackend(`${text.url}/retrieve`, `${img.url}/retrieve`, '/kb/images', opts);
    const [hit] = await b.searchImages('Bugatti', 1);
    assert.deepEqual(hit!.source, { kind: 'file', path: '/kb/images/Bugatti Bolide.webp' });
    assert.equal(hit!.title, 'Bugatti Bolide');
  });

  void it('an image filename from the server that climbs out of the image folder is refused (bad input)', async () => {
    for (const filename of ['../../etc/passwd', '/etc/passwd', 'a/../../b.png']) {
      const hostile = await startRetrieval({
        documents: [{ id: 1, name: 'x', filename }],
        text: (d) => String(d.name),
        defaultTopk: 1,
      });
      try {
        const b = new RetrievalServerBackend('', `${hostile.url}/retrieve`, '/kb/images', opts);
        await assert.rejects(b.searchImages('x', 1), (err: unknown) => {
          assert.ok(err instanceof SegflowError);
          assert.equal(err.retryable, false);
          assert.match(err.message, /unsafe retrieval-server image result 0 filename/);
          return true;
        });
      } finally {
        await hostile.close();
      }
    }
  });

  void it('a 422 from the server is a non-retryable bad request; 500 is retryable', async () => {
    faults.queue.push({
      status: 422,
      headers: { 'content-type': 'application/json' },
      body: '{"detail":"topk must be <= 1000"}',
    });
    await assert.rejects(
      new RetrievalServerBackend(`${text.url}/retrieve`, '', '', opts).searchText('x', 2),
      (err: unknown) => {
        assert.ok(err instanceof SegflowError);
        assert.equal(err.retryable, false);
        assert.match(err.message, /HTTP 422/);
        assert.match(err.message, /topk must be/);
        return true;
      },
    );
    faults.queue.push({ status: 500, body: 'boom' });
    await assert.rejects(
      new RetrievalServerBackend(`${text.url}/retrieve`, '', '', opts).searchText('x', 2),
      TransientError,
    );
  });
});

void describe('SearXNG backend', () => {
  let server: LocalServer;
  let closed: LocalServer;
  before(async () => {
    server = await startSearxng({ docs, images });
    closed = await startSearxng({ docs, jsonEnabled: false });
  });
  after(async () => {
    await server.close();
    await closed.close();
  });

  void it('GETs /search?format=json&categories=general and reads results', async () => {
    const hits = await new SearxngBackend(server.url, opts).searchText('Federer Hall of Fame', 2);
    const req = server.requests.at(-1)!;
    assert.equal(req.query.get('format'), 'json');
    assert.equal(req.query.get('categories'), 'general');
    assert.equal(hits[0]!.url, 'https://example.com/federer');
    assert.match(hits[0]!.text, /Tennis Hall of Fame/);
  });

  void it('image search reads img_src', async () => {
    const hits = await new SearxngBackend(server.url, opts).searchImages('Bugatti Bolide', 1);
    assert.equal(server.requests.at(-1)!.query.get('categories'), 'images');
    assert.deepEqual(hits[0]!.source, { kind: 'url', url: 'https://img.example.com/bolide.jpg' });
  });

  void it('an instance without the JSON format is a ConfigError that says how to enable it', async () => {
    await assert.rejects(new SearxngBackend(closed.url, opts).searchText('x', 2), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /search\.formats/);
      return true;
    });
  });
});
