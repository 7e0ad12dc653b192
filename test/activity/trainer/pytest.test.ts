// Runs the Python trainer's pytest suite (trainer/tests) and the nano policy family's
// (nano/tests/test_trainer_family.py, a trainer plugin) in the trainer venv, so node's runner
// reports them with the other layers. Their update tests use the dev stack's S3, hence this layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../support/paths.js';
import { nanoTrainerEnv, requireTrainerVenv, trainerPython } from '../../support/training.js';

const suites = ['trainer/tests', 'nano/tests/test_trainer_family.py'].map((p) => join(repoRoot, p));

void test('trainer pytest suite (loss hand values, tokenisation masks, updates, idempotency, LoRA, policy families, VLM images, FSDP, bad input)', { timeout: 600_000 }, () => {
  requireTrainerVenv();
  const r = spawnSync(trainerPython, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', ...suites], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, SEGFLOW_TRAINER_THREADS: '1', ...nanoTrainerEnv() },
  });
  const out = `${r.stdout}\n${r.stderr}`;
  const summary = out.split('\n').filter((l) => /\d+ (passed|failed|error)/.test(l)).at(-1) ?? '(no summary)';
  console.log(`pytest: ${summary.replace(/=+/g, '').trim()}`);
  assert.equal(r.status, 0, `pytest failed:\n${out.slice(-6000)}`);
  assert.match(summary, /\d+ passed/);
  assert.doesNotMatch(summary, /failed|error/);
});
