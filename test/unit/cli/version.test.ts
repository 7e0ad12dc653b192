// `segr --version` prints the version in package.json.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../support/paths.js';

const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };

void test('segr --version and -V print package.json’s version and exit 0', () => {
  for (const flag of ['--version', '-V']) {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'segr.js'), flag], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${version}\n`, flag);
  }
});
