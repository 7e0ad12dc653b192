// `segr search` on the real local KB: --json shape, the observation format, errors by name.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, sharedData } from '../../support/paths.js';

const corpus = sharedData('local_kb', 'text_corpus.jsonl');

function segr(...args: string[]) {
  const res = spawnSync(process.execPath, [join(repoRoot, 'bin', 'segr.js'), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, SEGFLOW_CONFIG: '/dev/null' },
  });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

void test('segr search --json prints {"results":[{id,title,text,score}]} with the fact in the top 2', () => {
  const r = segr(
    'search',
    '--backend',
    'local',
    '--corpus',
    corpus,
    '--topk',
    '2',
    '--json',
    'Who won Best Pop Solo Performance at the 61st Grammy Awards?',
  );
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    results: { id: string; title: string; text: string; score: number }[];
  };
  assert.equal(out.results.length, 2);
  assert.deepEqual(Object.keys(out.results[0]!), ['id', 'title', 'text', 'score']);
  assert.ok(out.results.some((x) => x.id === '2'));
  // the blank line is reported on stderr by file and line, and the search still works
  assert.match(r.stderr, /text_corpus\.jsonl:147: blank line/);
});

void test('segr search prints the observation the policy would see', () => {
  const r = segr('search', '--corpus', corpus, '--topk', '1', 'Roger Federer Hall of Fame 2026');
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^<information>1\. \(Title: A tremendous honour - Roger Federer elected to International Tennis Hall of Fame for 2026\) The 20-time/,
  );
  assert.ok(r.stdout.endsWith('</information>\n\n'));
});

void test('segr search names bad options and missing files', () => {
  assert.match(
    segr('search', '--backend', 'bing', 'x').stderr,
    /--backend "bing" is not one of local, serper/,
  );
  assert.match(
    segr('search', '--topk', 'two', 'x').stderr,
    /--topk must be a whole number from 1 to 1000, got "two"/,
  );
  const missing = segr('search', '--corpus', '/nonexistent/c.jsonl', 'x');
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /cannot read corpus file \/nonexistent\/c\.jsonl: ENOENT/);
});
