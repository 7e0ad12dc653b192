#!/usr/bin/env node
// `make chaos` (and `make test`): the chaos suite (test/chaos/*.test.ts, compiled to dist/test/chaos)
// on a dev stack of its own, so crashing its Temporal server or stopping its S3 server touches
// nothing else: its own ports and data folder, started here and stopped at the end. They are set
// by SEGFLOW_CHAOS_* (defaults below), never taken from the SEGFLOW_DEV_* that place your own dev
// stack: with those set in the shell, the suite would otherwise kill and restart your stack. Each
// scenario disturbs a run and compares its outcome with an undisturbed run's. Prints the scenarios
// as they run, then one line
//   chaos: N scenarios, P passed, F failed
// and writes chaos-report.json (scenario, passed, seconds, what was compared) in the checkout root
// (CHAOS_REPORT sets another path). Exit code 1 when any scenario failed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

const root = new URL('..', import.meta.url).pathname;
const chaosStack = {
  TEMPORAL_PORT: '7433',
  UI_PORT: '8433',
  S3_PORT: '8533',
  // SeaweedFS binds base+0..5 and base+10000..10003: all below Linux's ephemeral range (32768+)
  SEAWEED_BASE_PORT: '19400',
  DATA_DIR: join(root, '.data', 'chaos'),
};
for (const [k, v] of Object.entries(chaosStack))
  process.env[`SEGFLOW_DEV_${k}`] = process.env[`SEGFLOW_CHAOS_${k}`] ?? v;
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
for (const k of ['SEGFLOW_TEMPORAL_ADDRESS', 'TEMPORAL_ADDRESS', 'SEGFLOW_S3_ENDPOINT']) {
  if (process.env[k]) {
    console.error(`chaos: ${k} is set; the chaos suite runs on its own dev stack only (unset it)`);
    process.exit(2);
  }
}

// `node scripts/chaos.js --stack` prints the stack's settings (JSON) and starts nothing.
if (process.argv[2] === '--stack') {
  console.log(
    JSON.stringify(
      Object.fromEntries(Object.keys(chaosStack).map((k) => [k, process.env[`SEGFLOW_DEV_${k}`]])),
    ),
  );
  process.exit(0);
}

// `node scripts/chaos.js training` runs the files whose names contain "training" only.
const only = process.argv[2] ?? '';
const dir = join(root, 'dist/test/chaos');
const files = existsSync(dir)
  ? readdirSync(dir)
      .filter((f) => f.endsWith('.test.js') && f.includes(only))
      .sort()
      .map((f) => join(dir, f))
  : [];
if (files.length === 0) {
  console.error('chaos: no compiled scenarios under dist/test/chaos; run `npm run build` first');
  process.exit(2);
}

const segr = (...args) =>
  spawnSync(process.execPath, [join(root, 'bin/segr.js'), ...args], { stdio: 'inherit', cwd: root });
const wasUp = segr('dev', 'status', '--quiet').status === 0;
if (!wasUp && segr('dev', 'up').status !== 0) process.exit(1);

const records = join(mkdtempSync(join(tmpdir(), 'segflow-chaos-')), 'records.jsonl');
process.env.SEGFLOW_CHAOS_RECORDS = records;
process.env.SEGFLOW_TEST_LAYER = 'chaos';

const results = [];
const stream = run({ files, concurrency: 1 });
const onResult = (passed) => (e) => {
  if (e.nesting !== 0 || e.details?.type === 'suite') return;
  results.push({ scenario: e.name, passed, seconds: Number((e.details.duration_ms / 1000).toFixed(1)) });
};
stream.on('test:pass', onResult(true));
stream.on('test:fail', onResult(false));
stream.compose(new spec()).pipe(process.stdout);
await new Promise((resolve) => stream.once('end', resolve).once('close', resolve));

if (!wasUp) segr('dev', 'down');
const compared = new Map(
  (existsSync(records) ? readFileSync(records, 'utf8').trim().split('\n').filter(Boolean) : [])
    .map((l) => JSON.parse(l))
    .map((r) => [r.scenario, r.compared]),
);
// A test named "undisturbed…" is the reference the scenarios of its file compare with: reported
// (its failure fails the suite), not counted as a scenario.
const all = results.map((r) => ({ ...r, compared: compared.get(r.scenario) ?? [] }));
const references = all.filter((r) => r.scenario.startsWith('undisturbed'));
const scenarios = all.filter((r) => !r.scenario.startsWith('undisturbed'));
const passed = scenarios.filter((s) => s.passed).length;
const failed = scenarios.length - passed + references.filter((r) => !r.passed).length;
const report = process.env.CHAOS_REPORT ?? join(root, 'chaos-report.json');
writeFileSync(report, JSON.stringify({ scenarios, references, passed, failed }, null, 2) + '\n');
console.log(`chaos: ${scenarios.length} scenarios, ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && scenarios.length > 0 ? 0 : 1);
