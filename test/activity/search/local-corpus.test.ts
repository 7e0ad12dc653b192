// The embedded corpus backend on the real local KB (../shared/data/local_kb): facts come back in
// the top 2, the blank line is skipped with a warning naming it, broken files fail by name.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OnnxTextEncoder } from '../../../activities/embeddings/encoder.js';
import { BadInputError, ConfigError } from '../../../activities/errors.js';
import { LocalCorpus, type LoadWarning } from '../../../activities/search/local-corpus.js';
import { repoRoot, sharedData } from '../../support/paths.js';

const kb = sharedData('local_kb');
const textCorpus = join(kb, 'text_corpus.jsonl');

/** Questions about facts in the real corpus, and the id of the passage that holds the answer. */
const facts: [string, string][] = [
  ['Who won the Best Pop Solo Performance award at the 61st Grammy Awards?', '2'],
  ['Roger Federer International Tennis Hall of Fame class', '1'],
  ['Which spokesperson did Trick-or-Treat for UNICEF choose in 2014?', '0'],
  ['Where does Diana Prince work in Wonder Woman 1984?', '4'],
  ['60th Annual Grammy Awards most nominations', '3'],
];

void describe('LocalCorpus on the real local KB', () => {
  let corpus: LocalCorpus;
  const warnings: LoadWarning[] = [];
  before(async () => {
    corpus = await LocalCorpus.load({
      textCorpus,
      imageCorpus: join(kb, 'image_corpus.jsonl'),
      imageDir: join(kb, 'images'),
      onWarning: (w) => warnings.push(w),
    });
  });

  void it('loads every passage and warns about the blank line and the repeated id by line number', () => {
    assert.equal(corpus.passages.length, 185);
    assert.equal(corpus.images.length, 99);
    assert.deepEqual(warnings, [
      { file: textCorpus, line: 147, problem: 'blank line' },
      { file: textCorpus, line: 148, problem: 'id "145" already used on line 146; kept both' },
    ]);
  });

  for (const [question, id] of facts) {
    void it(`finds passage ${id} in the top 2 for "${question}"`, async () => {
      const hits = await corpus.searchText(question, 2);
      assert.ok(
        hits.some((h) => h.id === id),
        `top 2 were ${hits.map((h) => `${h.id} (${h.title})`).join(', ')}`,
      );
      assert.ok(hits[0]!.score >= hits[1]!.score);
    });
  }

  void it('splits title and body as "Title\\nBody"', async () => {
    const [hit] = await corpus.searchText('61st Grammy Best Pop Solo Performance Lady Gaga', 1);
    assert.equal(hit!.title, 'the 61st Grammy Award for Best Pop Solo Performance');
    assert.match(hit!.text, /^Lady Gaga won the Best Pop Solo Performance award/);
  });

  void it('finds an image by name, as a file in the image folder', async () => {
    const [hit] = await corpus.searchImages('Bugatti Bolide hypercar', 1);
    assert.equal(hit!.title, 'Bugatti Bolide');
    assert.deepEqual(hit!.source, { kind: 'file', path: join(kb, 'images', 'Bugatti Bolide.webp') });
    assert.ok(existsSync(join(kb, 'images', 'Bugatti Bolide.webp')));
  });

  void it('returns nothing rather than failing for a query with no indexed word', async () => {
    assert.deepEqual(await corpus.searchText('zzzqqq', 2), []);
  });
});

void describe('LocalCorpus with broken files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'segflow-corpus-'));

  void it('skips blank, non-JSON and incomplete lines with warnings naming file and line', async () => {
    const file = join(dir, 'mixed.jsonl');
    writeFileSync(
      file,
      [
        '{"id": 1, "contents": "Alpha\\nThe first passage about alpacas"}',
        '',
        '{"id": 2, "contents": "Beta\\nbroken',
        '[1, 2]',
        '{"id": 3}',
        '{"contents": "no id"}',
        '{"id": "4", "contents": "Gamma\\nA passage about gamma rays"}',
        '{"id": 1, "contents": "Duplicate\\nsame id again"}',
      ].join('\n') + '\n',
    );
    const warnings: LoadWarning[] = [];
    const c = await LocalCorpus.load({ textCorpus: file, onWarning: (w) => warnings.push(w) });
    assert.deepEqual(
      c.passages.map((p) => p.id),
      ['1', '4', '1'],
    );
    assert.deepEqual(
      warnings.map((w) => [w.line, w.problem.split(' (')[0]]),
      [
        [2, 'blank line'],
        [3, 'not valid JSON'],
        [4, 'not a JSON object'],
        [5, 'missing "contents"'],
        [6, 'missing "id"'],
        [8, 'id "1" already used on line 1; kept both'],
      ],
    );
    assert.ok(warnings.every((w) => w.file === file));
    assert.equal((await c.searchText('gamma rays', 1))[0]?.id, '4');
  });

  void it('fails with a non-retryable error naming the file when no line is usable', async () => {
    const file = join(dir, 'empty.jsonl');
    writeFileSync(file, '\n\nnot json\n');
    await assert.rejects(LocalCorpus.load({ textCorpus: file }), (err: unknown) => {
      assert.ok(err instanceof BadInputError);
      assert.ok(err.message.includes(file));
      assert.match(err.message, /no usable passage/);
      return true;
    });
  });

  void it('names a missing corpus file and the setting to change', async () => {
    await assert.rejects(LocalCorpus.load({ textCorpus: join(dir, 'nope.jsonl') }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /nope\.jsonl: ENOENT/);
      assert.match(err.message, /SEGFLOW_SEARCH_CORPUS/);
      return true;
    });
  });
});

void describe('LocalCorpus hybrid (BM25 + all-MiniLM-L6-v2)', () => {
  let encoder: OnnxTextEncoder;
  let corpus: LocalCorpus;
  before(async () => {
    encoder = await OnnxTextEncoder.load(join(repoRoot, '.models', 'all-MiniLM-L6-v2'), { threads: 2 });
    corpus = await LocalCorpus.load({ textCorpus, hybrid: true, encoder, denseWeight: 0.5 });
  });
  after(() => encoder.release());

  for (const [question, id] of facts) {
    void it(`finds passage ${id} in the top 2 for "${question}"`, async () => {
      const hits = await corpus.searchText(question, 2);
      assert.ok(
        hits.some((h) => h.id === id),
        `top 2 were ${hits.map((h) => h.id).join(', ')}`,
      );
    });
  }

  void it('finds a passage by meaning when no rare word is shared', async () => {
    const hits = await corpus.searchText('tennis legend inducted into the hall of fame', 2);
    assert.ok(
      hits.some((h) => h.id === '1'),
      `top 2 were ${hits.map((h) => `${h.id} ${h.title}`).join(', ')}`,
    );
  });
});
