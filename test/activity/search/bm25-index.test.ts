// The embedded BM25 engine (activities/search/bm25-index.ts, text-corpus.ts): it ranks as the
// MiniSearch BM25+ index it replaced (same documents, same scores, same order) on the shared KB's
// real questions and on a generated corpus of several windows with repeated passages; its index is
// stored once per corpus content and loaded at the next start; a damaged index, an unwritable index
// folder and a corpus changed under a running worker fail with errors that say what to do.
import assert from 'node:assert/strict';
import {
  appendFileSync,
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../../activities/errors.js';
import { LocalCorpus } from '../../../activities/search/local-corpus.js';
import { TextCorpus } from '../../../activities/search/text-corpus.js';
import { kbQuestions, KB_FACTS } from '../../support/kb-questions.js';
import { miniSearchIndex } from '../../support/minisearch-bm25.js';
import { sharedData } from '../../support/paths.js';
import { writeZipfCorpus } from '../../support/zipf-corpus.js';

const kbFile = sharedData('local_kb', 'text_corpus.jsonl');
const dir = mkdtempSync(join(tmpdir(), 'segflow-bm25-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const fmt = (r: { idx: number; score: number }[]) => r.map((x) => `${x.idx}:${x.score}`).join(' ');

void describe('BM25 engine against MiniSearch BM25+', () => {
  void it('gives the same top 2, the same scores and the same full ranking on every KB question', () => {
    const corpus = TextCorpus.open(kbFile);
    const reference = miniSearchIndex(corpus.all());
    const questions = kbQuestions();
    assert.ok(questions.length >= 100, `${questions.length} questions found in the step records`);
    const differing: string[] = [];
    for (const q of questions) {
      const want = reference.search(q);
      const got = corpus.search(q, 2);
      if (fmt(got) !== fmt(want.slice(0, 2))) differing.push(`${q}: ${fmt(got)} ≠ ${fmt(want.slice(0, 2))}`);
      assert.equal(fmt(corpus.search(q, Infinity)), fmt(want), `full ranking of "${q}"`);
    }
    assert.deepEqual(
      differing,
      [],
      `top-2 agreement ${questions.length - differing.length}/${questions.length}`,
    );
  });

  void it('finds each fact in the top 2 through LocalCorpus', async () => {
    const corpus = await LocalCorpus.load({ textCorpus: kbFile, indexDir: join(dir, 'kb-index') });
    for (const [question, id] of KB_FACTS) {
      const hits = await corpus.searchText(question, 2);
      assert.ok(
        hits.some((h) => h.id === id),
        `${question}: ${hits.map((h) => h.id).join(', ')}`,
      );
    }
  });

  void it('keeps the same top k (1, 2, 5, 10) across windows, with repeated passages and repeated query words', () => {
    const file = join(dir, 'generated.jsonl');
    const { queries } = writeZipfCorpus(file, 10_000, { seed: 7, queryCount: 120, duplicateEvery: 50 });
    const corpus = TextCorpus.open(file);
    const reference = miniSearchIndex(corpus.all());
    const extra = ['film film award', 'Film, AWARD; film?', 'zzzz unknownword', 'the of and', ''];
    for (const q of [...queries.map((x) => x.query), ...extra]) {
      const want = reference.search(q);
      for (const k of [1, 2, 5, 10]) {
        assert.equal(fmt(corpus.search(q, k)), fmt(want.slice(0, k)), `top ${k} of "${q}"`);
      }
    }
  });
});

void describe('stored BM25 index', () => {
  const indexDir = join(dir, 'index');
  const file = join(dir, 'corpus.jsonl');
  copyFileSync(kbFile, file);

  void it('is built on the first start, loaded on the next, and rebuilt when the corpus changes', () => {
    const warnings: string[] = [];
    const first = TextCorpus.open(file, {
      indexDir,
      onWarning: (w) => warnings.push(`${w.line}: ${w.problem}`),
    });
    assert.equal(first.built, true);
    assert.equal(readdirSync(indexDir).length, 1);
    const second = TextCorpus.open(file, {
      indexDir,
      onWarning: (w) => warnings.push(`${w.line}: ${w.problem}`),
    });
    assert.equal(second.built, false, 'the second start loads the stored index');
    assert.equal(second.indexFile, first.indexFile);
    assert.deepEqual(warnings.slice(0, 2), warnings.slice(2), 'the stored index repeats the load warnings');
    for (const q of kbQuestions().slice(0, 40))
      assert.equal(fmt(second.search(q, 2)), fmt(first.search(q, 2)));
    const [hit] = second.search('Roger Federer International Tennis Hall of Fame', 1);
    assert.equal(second.passage(hit!.idx).id, '1');

    appendFileSync(file, JSON.stringify({ id: 'new', contents: 'Zyzzyva\nA genus of weevils' }) + '\n');
    const changed = TextCorpus.open(file, { indexDir });
    assert.equal(changed.built, true, 'a changed corpus is indexed again');
    assert.notEqual(changed.indexFile, first.indexFile);
    assert.equal(changed.passage(changed.search('zyzzyva weevils', 1)[0]!.idx).id, 'new');
  });

  void it('names a damaged index file and says to delete it', () => {
    const corpus = TextCorpus.open(file, { indexDir });
    const stored = corpus.indexFile!;
    const bytes = readFileSync(stored);
    for (const broken of [bytes.subarray(0, bytes.length - 100), Buffer.from('not an index at all')]) {
      writeFileSync(stored, broken);
      assert.throws(
        () => TextCorpus.open(file, { indexDir }),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.message.includes(stored) &&
          /damaged/.test(err.message) &&
          /delete it/.test(err.message),
      );
    }
    rmSync(stored);
    assert.equal(TextCorpus.open(file, { indexDir }).built, true, 'deleted: built again');
  });

  void it('names the setting when the index folder cannot be written', () => {
    const notAFolder = join(dir, 'plain-file');
    writeFileSync(notAFolder, 'x');
    assert.throws(
      () => TextCorpus.open(file, { indexDir: join(notAFolder, 'index') }),
      (err: unknown) => err instanceof ConfigError && /search\.local\.indexDir/.test(err.message),
    );
  });

  void it('says to restart when the corpus file changes under a loaded index', () => {
    const own = join(dir, 'changing.jsonl');
    copyFileSync(kbFile, own);
    const corpus = TextCorpus.open(own, { indexDir });
    const before = statSync(own).size;
    writeFileSync(own, readFileSync(own, 'utf8').replace('Federer', 'Fedorer'));
    assert.equal(statSync(own).size, before);
    assert.throws(
      () => corpus.passage(0),
      (err: unknown) => err instanceof ConfigError && /changed since it was indexed/.test(err.message),
    );
  });
});
