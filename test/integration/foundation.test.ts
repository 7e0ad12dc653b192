// Real Temporal dev server + real S3 server + real worker processes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { TaskQueues } from '../../core/queues.js';
import type { StackCheckResult } from '../../workflows/stack-check.js';
import { repoRoot } from '../support/paths.js';
import {
  startWorkerProcess,
  testClient,
  testConfig,
  testStore,
  uniqueId,
  type WorkerProcess,
} from '../support/stack.js';

const config = testConfig();
let client: Client;

before(async () => {
  client = await testClient(config);
});
after(async () => {
  await client.connection.close();
});

test('S3: objects round-trip through the real S3 server, idempotently', async () => {
  const store = testStore(config);
  const key = `tests/${uniqueId('roundtrip')}/hello.bin`;
  const body = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251));
  const ref = await store.putBytes(key, body, 'application/octet-stream');
  assert.equal(ref.bytes, 4096);
  assert.deepEqual(await store.getBytes(ref.uri), body);
  const again = await store.putBytes(key, body, 'application/octet-stream');
  assert.deepEqual(again, ref);
  const listed = [];
  for await (const o of store.list(key)) listed.push(o);
  assert.deepEqual(listed, [{ key, bytes: 4096 }]);
  console.log(`s3 round trip ok: ${ref.uri} sha256=${ref.sha256.slice(0, 12)}…`);
  store.client.destroy();
});

test('a real workflow completes on the real server with a real worker, one step per role queue', async () => {
  const worker = await startWorkerProcess();
  try {
    const workflowId = uniqueId('it-stack-check');
    const result = await client.workflow.execute('stackCheck', {
      taskQueue: TaskQueues.orchestrator,
      workflowId,
      args: [{ steps: 5 }],
      workflowExecutionTimeout: '2 minutes',
    });
    const r = result as StackCheckResult;
    assert.deepEqual(
      r.steps.map((s) => s.queue),
      ['segflow', 'segflow-search', 'segflow-media', 'segflow-policy', 'segflow-segment'],
    );
    const store = testStore(config);
    for (const step of r.steps) assert.ok(await store.head(step.ref.uri), `${step.ref.uri} exists in S3`);
    store.client.destroy();
    console.log(`workflow ${workflowId} completed with ${r.steps.length} steps`);
  } finally {
    worker.child.kill('SIGTERM');
    await worker.exited;
  }
});

test(
  'killing the worker mid-workflow (SIGKILL) loses nothing: a new worker finishes it',
  { timeout: 180_000 },
  async () => {
    let first: WorkerProcess | undefined = await startWorkerProcess();
    let second: WorkerProcess | undefined;
    try {
      const workflowId = uniqueId('it-kill-worker');
      const handle = await client.workflow.start('stackCheck', {
        taskQueue: TaskQueues.orchestrator,
        workflowId,
        args: [{ steps: 4, stepDelayMs: 1500 }],
        workflowExecutionTimeout: '3 minutes',
      });
      // Wait until the first step is done and the second is running, then kill the worker hard.
      const store = testStore(config);
      const deadline = Date.now() + 60_000;
      while (!(await store.head(`checks/${workflowId}/step-000.json`))) {
        assert.ok(Date.now() < deadline, 'first step never completed');
        await new Promise((r) => setTimeout(r, 200));
      }
      await new Promise((r) => setTimeout(r, 500));
      first.child.kill('SIGKILL');
      const gone = await first.exited;
      assert.equal(gone.signal, 'SIGKILL');
      first = undefined;
      const described = await handle.describe();
      assert.equal(described.status.name, 'RUNNING', 'the workflow survives the worker');

      second = await startWorkerProcess();
      const result = (await handle.result()) as StackCheckResult;
      assert.equal(result.steps.length, 4);
      assert.equal(result.steps[0]!.attempt, 1, 'the finished first step is not repeated');
      assert.ok(
        result.steps.some((s) => s.attempt > 1),
        `the interrupted step was retried on the new worker: ${JSON.stringify(result.steps.map((s) => s.attempt))}`,
      );
      store.client.destroy();
      console.log(
        `workflow ${workflowId} finished after a worker SIGKILL; attempts ${result.steps.map((s) => s.attempt)}`,
      );
    } finally {
      first?.child.kill('SIGKILL');
      second?.child.kill('SIGTERM');
      if (second) await second.exited;
    }
  },
);

test(
  'SIGTERM drains: an in-flight activity finishes before the worker exits',
  { timeout: 120_000 },
  async () => {
    const worker = await startWorkerProcess();
    const workflowId = uniqueId('it-drain');
    const handle = await client.workflow.start('stackCheck', {
      taskQueue: TaskQueues.orchestrator,
      workflowId,
      args: [{ steps: 1, stepDelayMs: 2000 }],
      workflowExecutionTimeout: '2 minutes',
    });
    await new Promise((r) => setTimeout(r, 1000));
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    assert.equal(exit.code, 0, worker.output());
    const store = testStore(config);
    assert.ok(
      await store.head(`checks/${workflowId}/step-000.json`),
      'the in-flight step completed during the drain',
    );
    store.client.destroy();
    const next = await startWorkerProcess();
    try {
      const result = (await handle.result()) as StackCheckResult;
      assert.equal(result.steps[0]!.attempt, 1, 'the drained activity was not retried');
    } finally {
      next.child.kill('SIGTERM');
      await next.exited;
    }
  },
);

test(
  'data survives `segr dev down` / `segr dev up`: a completed workflow is still listed',
  { timeout: 240_000 },
  async () => {
    const worker = await startWorkerProcess();
    const workflowId = uniqueId('it-persist');
    try {
      await client.workflow.execute('stackCheck', {
        taskQueue: TaskQueues.orchestrator,
        workflowId,
        args: [{ steps: 1 }],
        workflowExecutionTimeout: '1 minute',
      });
    } finally {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
    await client.connection.close();
    const segr = (...args: string[]) =>
      spawnSync(process.execPath, [join(repoRoot, 'bin/segr.js'), ...args], {
        cwd: repoRoot,
        encoding: 'utf8',
      });
    const down = segr('dev', 'down');
    assert.equal(down.status, 0, down.stderr);
    assert.notEqual(segr('dev', 'status', '--quiet').status, 0, 'status reports the stack down');
    const up = segr('dev', 'up');
    assert.equal(up.status, 0, up.stdout + up.stderr);
    const status = segr('dev', 'status', '--json');
    assert.equal(JSON.parse(status.stdout).healthy, true, status.stdout);
    const ui = await fetch(`http://${config.dev.host}:${config.dev.uiPort}/`);
    assert.equal(ui.status, 200, 'the Web UI answers');
    client = await testClient(config);
    const desc = await client.workflow.getHandle(workflowId).describe();
    assert.equal(desc.status.name, 'COMPLETED');
    const store = testStore(config);
    assert.ok(await store.head(`checks/${workflowId}/step-000.json`), 'S3 objects survive too');
    store.client.destroy();
  },
);
