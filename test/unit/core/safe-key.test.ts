// The one guard for S3 keys and local paths built from input (core/contracts/safe-key.ts,
// activities/storage/safe-path.ts): hostile ids are refused, nothing accepted leaves its prefix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { posix, resolve, join } from 'node:path';
import fc from 'fast-check';
import { EvalKeys, isSafeId, sampleKeySegment, toSafeId } from '../../../core/contracts/index.js';
import { UnsafeKeyError, keyProblem, keyUnder } from '../../../core/contracts/safe-key.js';
import { pathUnder } from '../../../activities/storage/safe-path.js';
import { toApplicationFailure } from '../../../activities/errors.js';

const hostile = [
  '../x',
  'a/../../b',
  '..',
  '.',
  '/etc/passwd',
  'a//b',
  '',
  'a\\..\\b',
  'a\u0000b',
  'line\nbreak',
  'del\u007f',
  '%2e%2e',
  '%2e%2e%2fx',
  '..%2f..%2fetc',
  '%2E%2E%5Cx',
];

test('keyUnder refuses hostile parts: "..", ".", absolute, empty, backslash, control characters, URL-encoded steps', () => {
  for (const bad of hostile) {
    assert.throws(() => keyUnder('runs', bad), UnsafeKeyError, JSON.stringify(bad));
    // (an empty last part would name the prefix itself: "runs/" is a valid prefix key)
    if (bad) assert.ok(keyProblem(`runs/${bad}/x`), JSON.stringify(bad));
  }
  assert.throws(
    () => keyUnder('runs', 'ok', '../escape'),
    /unsafe key part "..\/escape": it has a "\.\." segment/,
  );
  assert.throws(() => keyUnder('../up', 'x'), /unsafe key prefix/);
});

test('keyUnder joins safe parts under the prefix, a trailing "/" naming a prefix', () => {
  assert.equal(keyUnder('runs', 'r1', 'steps/3/batch.json'), 'runs/r1/steps/3/batch.json');
  assert.equal(keyUnder('runs/', 'r1/', 'x.json'), 'runs/r1/x.json');
  assert.equal(keyUnder('policies', 'r1', 'v2/'), 'policies/r1/v2/');
  assert.equal(keyUnder('', 'a', 'b'), 'a/b');
  assert.equal(
    keyUnder('search-cache', 'serper/text/ab/abcdef.json'),
    'search-cache/serper/text/ab/abcdef.json',
  );
  // dots inside names are fine; only whole "." / ".." steps are refused
  assert.equal(keyUnder('evals', 'e.1', '..hidden', 'v1..2'), 'evals/e.1/..hidden/v1..2');
  // a percent sign that is no step stays literal
  assert.equal(keyUnder('evals', 'a%2Fb'), 'evals/a%2Fb');
  assert.equal(keyUnder('evals', '100%'), 'evals/100%');
});

test('property: whatever an id is, a key built from it is refused or stays under its prefix, even after decoding', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc
          .array(fc.constantFrom('..', '.', '/', '%2e', '%2f', '\\', 'a', '%', '2', 'e', 'f', '\u0000'), {
            maxLength: 8,
          })
          .map((a) => a.join('')),
      ),
      (id) => {
        let key: string;
        try {
          key = keyUnder('queries', id, 'result.json');
        } catch (err) {
          assert.ok(err instanceof UnsafeKeyError);
          return;
        }
        for (const form of [key, safeDecode(key)]) {
          const normal = posix.normalize(form);
          assert.ok(normal.startsWith('queries/') && !normal.startsWith('queries/../'), `${id} -> ${key}`);
          assert.ok(!normal.split('/').includes('..'), `${id} -> ${key}`);
        }
      },
    ),
    { numRuns: 2000 },
  );
});

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

test('a sample id of any text becomes a key segment under its evaluation, or is refused when it is a step', () => {
  assert.equal(EvalKeys.sampleResult('e1', 'a/b c'), 'evals/e1/samples/a%2Fb%20c.json');
  assert.equal(keyProblem(EvalKeys.sampleResult('e1', 'a/b c')), undefined);
  // sampleKeySegment percent-encodes dots: the id ".." would decode to a step, so the guard refuses it
  assert.ok(keyProblem(EvalKeys.samplePrefix('e1', '..')));
  assert.ok(keyProblem(EvalKeys.samplePrefix('e1', '../x')));
  assert.equal(sampleKeySegment('..'), '%2E%2E');
});

test('ids of only dots are not safe ids (they are path steps), and toSafeId never makes one', () => {
  for (const id of ['.', '..', '...']) assert.equal(isSafeId('run', id), false, id);
  assert.equal(isSafeId('run', 'a..b'), true);
  assert.equal(isSafeId('run', '.hidden'), true);
  assert.equal(toSafeId('eval', '..'), '__');
  assert.equal(toSafeId('eval', '../x'), '.._x');
  assert.equal(isSafeId('eval', toSafeId('eval', '..')), true);
});

test('pathUnder keeps names from input inside their folder', () => {
  const dir = resolve('/tmp/segflow-safe-path');
  assert.equal(pathUnder(dir, 'adapter/model.safetensors'), join(dir, 'adapter', 'model.safetensors'));
  assert.equal(pathUnder(dir, ['a', 'b.png']), join(dir, 'a', 'b.png'));
  for (const bad of [...hostile, '/abs/olute']) {
    assert.throws(
      () => pathUnder(dir, bad, 'policy object name'),
      (err: Error) => err.name === 'BadInputError' && /unsafe policy object name/.test(err.message),
      JSON.stringify(bad),
    );
  }
});

test('an unsafe key thrown inside an activity leaves as a non-retryable BadInputError', () => {
  let thrown: unknown;
  try {
    keyUnder('runs', '../x');
  } catch (err) {
    thrown = err;
  }
  const failure = toApplicationFailure(thrown);
  assert.equal(failure.type, 'BadInputError');
  assert.equal(failure.nonRetryable, true);
  assert.match(failure.message, /unsafe key part "\.\.\/x"/);
});
