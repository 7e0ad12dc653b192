// The nano world generator (nano/world.py): its pytest suite (determinism by seed, OK-VOS layout,
// queries that only a search resolves), then a generated world read by the project's own OK-VOS
// reader and served by the local search backend, unchanged.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readOkVos } from '../../../activities/datasets/okvos.js';
import { LocalCorpus } from '../../../activities/search/local-corpus.js';
import { repoRoot } from '../../support/paths.js';

const python = join(repoRoot, process.env.NANO_VENV ?? '.venv/nano', 'bin', 'python');
const out = mkdtempSync(join(tmpdir(), 'segflow-nano-world-'));

function run(args: string[]) {
  assert.ok(
    existsSync(python),
    `${python} is missing: run bash scripts/nano-setup.sh (make deps-nano) first`,
  );
  const r = spawnSync(python, args, { cwd: repoRoot, encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, output: `${r.stdout}\n${r.stderr}` };
}

before(() => {
  const r = run(['-m', 'nano.world', '--out', out, '--seed', '7', '--train', '8', '--test', '4']);
  assert.equal(r.code, 0, r.output);
});
after(() => rmSync(out, { recursive: true, force: true }));

test('nano/tests (pytest) pass', () => {
  const r = run(['-m', 'pytest', 'nano/tests', '-q', '-p', 'no:cacheprovider']);
  assert.equal(r.code, 0, r.output);
});

test('the OK-VOS reader loads a generated split unchanged, frames and masks included', async () => {
  const samples = await readOkVos(join(out, 'test.parquet'));
  assert.equal(samples.length, 4);
  assert.deepEqual(
    samples.map((s) => s.ability),
    ['in-video', 'one-hop', 'multi-hop', 'relational'],
  );
  for (const s of samples) {
    const { media, annotation } = s;
    assert.ok(media.kind === 'frames' && annotation.kind === 'mask-folder', s.origin);
    assert.equal(media.images?.length, 10);
    for (const name of media.images ?? []) {
      assert.ok(existsSync(join(media.dir, `${name}.jpg`)), `${media.dir}/${name}.jpg`);
      assert.ok(existsSync(join(annotation.dir, `${name}.png`)), `${annotation.dir}/${name}.png`);
    }
    assert.equal(s.steps === undefined, s.ability === 'in-video');
  }
});

test('the local search backend serves the generated corpus: each reference step finds its passage', async () => {
  const corpus = await LocalCorpus.load({ textCorpus: join(out, 'corpus.jsonl') });
  const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8')) as {
    splits: Record<string, { steps: string[]; facts: { artifact?: string; order?: string } }[]>;
  };
  let checked = 0;
  for (const s of [...meta.splits.train!, ...meta.splits.test!]) {
    for (const step of s.steps) {
      const hits = await corpus.searchText(step, 2);
      const want = step.endsWith(' order emblem') ? `${s.facts.order} order` : s.facts.artifact;
      assert.equal(hits[0]?.title, want, `"${step}" → ${JSON.stringify(hits.map((h) => h.title))}`);
      checked++;
    }
  }
  assert.ok(checked >= 8, `checked ${checked} steps`);
});
