#!/usr/bin/env node
// Runs the compiled test layers with node's built-in test runner.
//   node scripts/run-tests.js [unit|activity|integration|all] [extra node --test args]
// The activity and integration layers need the dev stack (real S3, real Temporal): a running one is
// reused; otherwise it is started before them and stopped after.
//   SEGFLOW_TEST_ONLY=a,b   only the files whose name starts with one of these (e.g. nano-training)
//   SEGFLOW_TEST_SKIP=a,b   every file but those (scripts/test-all.sh runs the nano learning claim
//                           beside the rest of the integration layer this way)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const layers = ['unit', 'activity', 'integration'];
const [which = 'all', ...extra] = process.argv.slice(2);
const selected = which === 'all' ? layers : [which];

function collect(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return collect(p);
    return name.endsWith('.test.js') ? [p] : [];
  });
}

function segr(...args) {
  return spawnSync(process.execPath, [join(root, 'bin/segr.js'), ...args], { stdio: 'inherit', cwd: root });
}

let failed = false;
let startedStack = false;
if (selected.some((l) => l !== 'unit')) {
  const wasUp = segr('dev', 'status', '--quiet').status === 0;
  if (!wasUp) {
    if (segr('dev', 'up').status !== 0) process.exit(1);
    startedStack = true;
  }
}
const names = (v) => (v ?? '').split(',').filter(Boolean);
const only = names(process.env.SEGFLOW_TEST_ONLY);
const skip = names(process.env.SEGFLOW_TEST_SKIP);
const picked = (file) => {
  const base = file.split('/').pop();
  return (only.length === 0 || only.some((n) => base.startsWith(n))) && !skip.some((n) => base.startsWith(n));
};
for (const layer of selected) {
  const files = collect(join(root, 'dist/test', layer))
    .sort()
    .filter(picked);
  if (files.length === 0) {
    console.error(`run-tests: no compiled tests under dist/test/${layer}; run \`npm run build\` first`);
    failed = true;
    continue;
  }
  console.log(`\n=== ${layer} tests (${files.length} files) ===`);
  const concurrency = layer === 'unit' ? [] : ['--test-concurrency=1'];
  const res = spawnSync(process.execPath, ['--test', ...concurrency, ...extra, ...files], {
    stdio: 'inherit',
    cwd: root,
    env: { ...process.env, SEGFLOW_TEST_LAYER: layer },
  });
  if (res.status !== 0) failed = true;
}
if (startedStack) segr('dev', 'down');
process.exit(failed ? 1 : 0);
