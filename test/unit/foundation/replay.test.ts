// Replays every committed history under test/histories/ against the current workflow code, so a
// non-deterministic change to a workflow fails CI. Record new ones with scripts/record-history.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { repoRoot } from '../../support/paths.js';

const historiesDir = join(repoRoot, 'test', 'histories');
const workflowBundle = { codePath: join(repoRoot, 'dist', 'workflow-bundle.js') };
/** The bundle workers load with tracing on (the OpenTelemetry workflow interceptors inside). */
const tracedBundle = { codePath: join(repoRoot, 'dist', 'workflow-bundle-traced.js') };
const files = readdirSync(historiesDir).filter((f) => f.endsWith('.json'));

test('there are committed histories to replay', () => {
  assert.ok(files.length > 0, `no histories in ${historiesDir}`);
});

for (const file of files) {
  test(`replays ${file} deterministically`, { timeout: 120_000 }, async () => {
    const recorded = JSON.parse(readFileSync(join(historiesDir, file), 'utf8')) as {
      workflowId: string;
      history: unknown;
    };
    await Worker.runReplayHistory({ workflowBundle }, historyFromJSON(recorded.history), recorded.workflowId);
  });
}

test(
  'the traced bundle replays every committed history deterministically',
  { timeout: 300_000 },
  async () => {
    // Tracing adds spans and headers, never commands: histories recorded untraced replay with it on.
    const histories = files.map((file) => {
      const recorded = JSON.parse(readFileSync(join(historiesDir, file), 'utf8')) as {
        workflowId: string;
        history: unknown;
      };
      return { workflowId: recorded.workflowId, history: historyFromJSON(recorded.history) };
    });
    const sinks = { exporter: { export: { fn: () => undefined } } };
    for await (const r of Worker.runReplayHistories({ workflowBundle: tracedBundle, sinks }, histories)) {
      assert.equal(r.error, undefined, `${r.workflowId}: ${String(r.error)}`);
    }
  },
);

test('replay catches a non-deterministic change', { timeout: 120_000 }, async () => {
  // The stackCheck history replayed against a workflow that schedules a different activity must fail.
  const recorded = JSON.parse(readFileSync(join(historiesDir, 'stack-check.json'), 'utf8')) as {
    history: unknown;
  };
  const history = historyFromJSON(recorded.history);
  const changed = join(repoRoot, 'dist', 'test', 'support', 'replay', 'nondeterministic-workflows.js');
  await assert.rejects(
    Worker.runReplayHistory({ workflowsPath: changed }, history, 'stack-check'),
    /[Nn]ondeterminism|DeterminismViolation|does not match/,
  );
});
