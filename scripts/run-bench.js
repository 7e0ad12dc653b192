#!/usr/bin/env node
// npm run bench: runs every compiled benchmark (dist/bench/*.bench.js) one after another, each in
// its own process so peak-RSS numbers are not polluted by the others. Each prints its own baseline
// and ratio. Pass names to run a subset: npm run bench -- metrics media
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const dir = join(root, 'dist/bench');
if (!existsSync(dir)) {
  console.error('run-bench: dist/bench is missing; run `npm run build` first');
  process.exit(1);
}
const only = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.js'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();
let failed = 0;
for (const f of files) {
  console.log(`\n=== ${f} ===`);
  const res = spawnSync(process.execPath, ['--expose-gc', join(dir, f)], { stdio: 'inherit', cwd: root });
  if (res.status !== 0) failed++;
}
console.log(`\n${files.length - failed} benchmarks ran, ${failed} failed`);
process.exit(failed ? 1 : 0);
