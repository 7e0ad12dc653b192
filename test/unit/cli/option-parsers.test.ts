// Numeric options: a bad value is refused before anything starts, with the flag and the value named.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import {
  intInRange,
  nonNegativeInt,
  nonNegativeNumber,
  positiveInt,
  positiveNumber,
} from '../../../cli/option-parsers.js';
import { repoRoot } from '../../support/paths.js';

function refuses(parse: (v: string) => number, value: string, message: string) {
  assert.throws(
    () => parse(value),
    (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError, `${value}: ${String(err)}`);
      assert.equal(err.message, message);
      return true;
    },
  );
}

void test('whole-number parsers accept whole numbers in range and name the flag otherwise', () => {
  assert.equal(positiveInt('--steps')('3'), 3);
  assert.equal(nonNegativeInt('--seed')('0'), 0);
  assert.equal(intInRange('--topk', 1, 1000)('1000'), 1000);
  refuses(positiveInt('--steps'), 'abc', '--steps must be a whole number >= 1, got "abc"');
  refuses(positiveInt('--steps'), '0', '--steps must be a whole number >= 1, got "0"');
  refuses(positiveInt('--steps'), '2.5', '--steps must be a whole number >= 1, got "2.5"');
  refuses(nonNegativeInt('--seed'), '-1', '--seed must be a whole number >= 0, got "-1"');
  // Number('') is 0: an empty value must not pass as zero.
  refuses(nonNegativeInt('--seed'), '', '--seed must be a whole number >= 0, got ""');
  refuses(intInRange('--topk', 1, 1000), '1001', '--topk must be a whole number from 1 to 1000, got "1001"');
});

void test('number parsers accept finite numbers in range and name the flag otherwise', () => {
  assert.equal(positiveNumber('--lr')('1e-6'), 1e-6);
  assert.equal(nonNegativeNumber('--kl')('0'), 0);
  refuses(positiveNumber('--lr'), '0', '--lr must be a number > 0, got "0"');
  refuses(positiveNumber('--lr'), 'fast', '--lr must be a number > 0, got "fast"');
  refuses(nonNegativeNumber('--kl'), '-0.1', '--kl must be a number >= 0, got "-0.1"');
  refuses(nonNegativeNumber('--kl'), 'Infinity', '--kl must be a number >= 0, got "Infinity"');
  refuses(nonNegativeNumber('--kl'), ' ', '--kl must be a number >= 0, got " "');
});

/** Runs `segr` with the arguments; option parsing happens before any server is contacted. */
function segr(...args: string[]) {
  return spawnSync(process.execPath, [join(repoRoot, 'bin', 'segr.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, SEGFLOW_LOG_LEVEL: 'silent' },
  });
}

void test('every command refuses a bad number for its option with exit 1 and the flag named', () => {
  const cases: [string[], RegExp][] = [
    [['check', '--steps', 'abc'], /--steps must be a whole number >= 1, got "abc"/],
    [['check', '--step-delay-ms', '-5'], /--step-delay-ms must be a whole number >= 0, got "-5"/],
    [
      ['run', '--media', 'a.jpg', '--query', 'q', '--frames', '0'],
      /--frames must be a whole number >= 1, got "0"/,
    ],
    [['search', 'q', '--topk', '5000'], /--topk must be a whole number from 1 to 1000, got "5000"/],
    [
      ['segment', '--video', 'v', '--keyframe', 'first', '--box', '1,2,3,4', '--out', 'o'],
      /--keyframe must be a whole number >= 0, got "first"/,
    ],
    [
      ['eval-masks', '--pred', 'p', '--gt', 'g', '--bound-th', '0'],
      /--bound-th must be a number > 0, got "0"/,
    ],
    [
      ['train', 'start', '--dataset', 's3://b/d.json', '--initial-policy', 's3://b/p/', '--steps', '1.5'],
      /--steps must be a whole number >= 1, got "1.5"/,
    ],
    [
      [
        'train',
        'start',
        '--dataset',
        's3://b/d.json',
        '--initial-policy',
        's3://b/p/',
        '--steps',
        '2',
        '--lr',
        '0',
      ],
      /--lr must be a number > 0, got "0"/,
    ],
  ];
  for (const [args, message] of cases) {
    const r = segr(...args);
    assert.equal(r.status, 1, `segr ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, `segr ${args.join(' ')}`);
  }
});
