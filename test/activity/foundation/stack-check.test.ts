import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CancelledFailure } from '@temporalio/common';
import { createStackCheckActivities, type StackCheckStepResult } from '../../../activities/stack-check.js';
import { activityEnvironment } from '../../support/activity-env.js';
import { testStore, uniqueId } from '../../support/stack.js';

test('stackCheckStep writes its note to the real S3 server and re-reads it; a retry rewrites the same bytes', async () => {
  const store = testStore();
  const { stackCheckStep } = createStackCheckActivities({ store, hostId: 'test-host' });
  const checkId = uniqueId('act-check');
  const env = activityEnvironment({ attempt: 1 });
  const first: StackCheckStepResult = await env.run(stackCheckStep, {
    checkId,
    step: 3,
    queue: 'segflow-media',
  });
  assert.equal(first.ref.uri, `s3://${store.bucket}/checks/${checkId}/step-003.json`);
  assert.equal(first.hostId, 'test-host');
  const retry: StackCheckStepResult = await activityEnvironment({ attempt: 2 }).run(stackCheckStep, {
    checkId,
    step: 3,
    queue: 'segflow-media',
  });
  assert.equal(retry.ref.sha256, first.ref.sha256);
  assert.equal(retry.attempt, 2);
  const note = await store.getJson<{ step: number; queue: string }>(first.ref.uri);
  assert.deepEqual([note.step, note.queue], [3, 'segflow-media']);
  store.client.destroy();
});

test('stackCheckStep heartbeats while it works and stops when cancelled, writing nothing', async () => {
  const store = testStore();
  const { stackCheckStep } = createStackCheckActivities({ store, hostId: 'test-host' });
  const checkId = uniqueId('act-cancel');
  const env = activityEnvironment();
  const beats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d));
  const running = env.run(stackCheckStep, { checkId, step: 0, queue: 'segflow', delayMs: 5000 });
  await new Promise((r) => setTimeout(r, 600));
  env.cancel();
  await assert.rejects(running, CancelledFailure);
  assert.ok(beats.length >= 2, `heartbeats sent: ${beats.length}`);
  assert.equal(await store.head(`checks/${checkId}/step-000.json`), undefined);
  store.client.destroy();
});
