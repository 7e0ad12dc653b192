// The chaos suite kills and restarts the servers of its dev stack, so that stack must never be the
// developer's own: the SEGFLOW_DEV_* that place your dev stack do not move it; SEGFLOW_CHAOS_* do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../support/paths.js';

const chaosStack = (env: Record<string, string>) => {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^SEGFLOW_(DEV|CHAOS)_/.test(k)),
  );
  const out = execFileSync(process.execPath, [join(repoRoot, 'scripts/chaos.js'), '--stack'], {
    env: { ...clean, ...env },
    encoding: 'utf8',
  });
  return JSON.parse(out) as Record<string, string>;
};

test('the chaos stack keeps its own ports and data folder when SEGFLOW_DEV_* place your dev stack elsewhere', () => {
  const own = chaosStack({});
  assert.deepEqual(
    { ...own, DATA_DIR: own.DATA_DIR!.endsWith(join('.data', 'chaos')) },
    { TEMPORAL_PORT: '7433', UI_PORT: '8433', S3_PORT: '8533', SEAWEED_BASE_PORT: '19400', DATA_DIR: true },
  );
  const mine = {
    SEGFLOW_DEV_TEMPORAL_PORT: '47233',
    SEGFLOW_DEV_UI_PORT: '48233',
    SEGFLOW_DEV_S3_PORT: '48334',
    SEGFLOW_DEV_SEAWEED_BASE_PORT: '32400',
    SEGFLOW_DEV_DATA_DIR: '/tmp/my-stack',
  };
  assert.deepEqual(chaosStack(mine), own);
  assert.deepEqual(chaosStack({ ...mine, SEGFLOW_CHAOS_S3_PORT: '9533', SEGFLOW_CHAOS_DATA_DIR: '/tmp/c' }), {
    ...own,
    S3_PORT: '9533',
    DATA_DIR: '/tmp/c',
  });
});
