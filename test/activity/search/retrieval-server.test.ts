// The scale-out path (README, "Search at scale"): segflow's Search-R1 retrieval client
// (RetrievalServerBackend) against a real search server speaking /retrieve in front of a real
// engine, scripts/search-server/retrieve_tantivy.py over tantivy, on the shared KB: the facts come
// back in the top 2 with title and body split and scores in order; the server's index is built once
// and reused by a second server; a server that is gone is named in a retryable error.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TransientError } from '../../../activities/errors.js';
import { RetrievalServerBackend } from '../../../activities/search/web-backends.js';
import { KB_FACTS } from '../../support/kb-questions.js';
import { sharedData } from '../../support/paths.js';
import { startTantivyRetrieve, type RetrieveServer } from '../../support/tantivy-retrieve.js';

const corpus = sharedData('local_kb', 'text_corpus.jsonl');
const indexDir = mkdtempSync(join(tmpdir(), 'segflow-tantivy-'));

void describe('retrieval client against a tantivy /retrieve server', () => {
  let server: RetrieveServer;
  let backend: RetrievalServerBackend;
  before(async () => {
    server = await startTantivyRetrieve({ corpus, indexDir });
    backend = new RetrievalServerBackend(server.url, server.url, sharedData('local_kb', 'images'), {
      timeoutMs: 10_000,
    });
  });
  after(async () => {
    await server?.close();
    rmSync(indexDir, { recursive: true, force: true });
  });

  for (const [question, id] of KB_FACTS) {
    void it(`finds passage ${id} in the top 2 for "${question}"`, async () => {
      const hits = await backend.searchText(question, 2);
      assert.equal(hits.length, 2);
      assert.ok(
        hits.some((h) => h.id === id),
        `top 2 were ${hits.map((h) => `${h.id} (${h.title})`).join(', ')}`,
      );
      assert.ok(hits[0]!.score >= hits[1]!.score && hits[1]!.score > 0);
    });
  }

  void it('splits title and body as "Title\\nBody"', async () => {
    const [hit] = await backend.searchText('61st Grammy Best Pop Solo Performance Lady Gaga', 1);
    assert.equal(hit!.title, 'the 61st Grammy Award for Best Pop Solo Performance');
    assert.match(hit!.text, /^Lady Gaga won the Best Pop Solo Performance award/);
  });

  void it('answers a query with no indexed word with no hits', async () => {
    assert.deepEqual(await backend.searchText('zzzqqq', 2), []);
  });

  void it('builds its index once: a second server on the same folder opens it', async () => {
    const built = readdirSync(indexDir);
    assert.equal(built.length, 1);
    const complete = join(indexDir, built[0]!, '.complete');
    const builtAt = statSync(complete).mtimeMs;
    const second = await startTantivyRetrieve({ corpus, indexDir });
    try {
      assert.deepEqual(readdirSync(indexDir), built);
      assert.equal(statSync(complete).mtimeMs, builtAt, 'not built again');
      const hits = await new RetrievalServerBackend(second.url, second.url, '.', {
        timeoutMs: 10_000,
      }).searchText(KB_FACTS[1]![0], 1);
      assert.equal(hits[0]?.id, KB_FACTS[1]![1]);
    } finally {
      await second.close();
    }
    // Once it is gone, the client names the server it could not reach (a retryable failure).
    await assert.rejects(
      new RetrievalServerBackend(second.url, second.url, '.', { timeoutMs: 10_000 }).searchText('Federer', 1),
      (err: unknown) =>
        err instanceof TransientError &&
        err.message.includes(second.url) &&
        /could not reach/.test(err.message),
    );
  });
});
