// When `segr train status --watch` (and `train start --watch`) stops polling, and what the status
// block says about a run that did not complete.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WorkflowExecutionStatusName } from '@temporalio/client';
import { watchDecision } from '../../../cli/watch.js';
import { formatStatus } from '../../../cli/commands/train.js';
import type { TrainingStatus } from '../../../workflows/training-run.js';

void test('a completed workflow ends the watch successfully', () => {
  assert.deepEqual(watchDecision('COMPLETED'), { done: true, ok: true });
});

void test('failed, terminated, cancelled and timed-out workflows end the watch as failures', () => {
  for (const status of ['FAILED', 'TERMINATED', 'CANCELLED', 'TIMED_OUT'] as const)
    assert.deepEqual(watchDecision(status), { done: true, ok: false, end: status }, status);
});

void test('running, continuing-as-new, paused and unknown workflows keep the watch polling', () => {
  const going: WorkflowExecutionStatusName[] = [
    'RUNNING',
    'CONTINUED_AS_NEW',
    'PAUSED',
    'UNSPECIFIED',
    'UNKNOWN',
  ];
  for (const status of going) assert.deepEqual(watchDecision(status), { done: false }, status);
  // A status a newer server might add is not taken as an end.
  assert.deepEqual(watchDecision('SOMETHING_NEW' as WorkflowExecutionStatusName), { done: false });
});

const status: TrainingStatus = {
  runId: 'r1',
  step: 2,
  steps: 10,
  phase: 'rollouts',
  paused: false,
  stopRequested: false,
  policy: { version: 2, model: 'r1-v2', uri: 's3://b/policies/r1/v2/' },
  generation: 1,
  groupsStarted: 4,
  groupsDone: 1,
  keptGroups: 1,
  runs: 3,
  recent: [],
};

void test('a run that did not complete shows how it ended, with its phase only as the last one reached', () => {
  assert.match(formatStatus(status), /^run r1: step 2\/10 · rollouts\n/);
  assert.match(
    formatStatus(status, undefined, 'FAILED'),
    /^run r1: step 2\/10 · FAILED \(last phase: rollouts\)\n/,
  );
  assert.match(
    formatStatus({ ...status, paused: true }, undefined, 'TERMINATED'),
    /^run r1: step 2\/10 · TERMINATED \(last phase: rollouts\)\n/,
    'no "pausing after this step" for a run that is over',
  );
});

void test('a pipelined run shows the step generated ahead beside the step in front', () => {
  const updating: TrainingStatus = {
    ...status,
    phase: 'update',
    ahead: { step: 3, policyVersion: 2, generation: 0, groupsDone: 5, groupsStarted: 8 },
  };
  assert.match(
    formatStatus(updating),
    /\n {2}step 3 generated ahead on v2: groups 5\/8 done · generation 0$/m,
  );
  assert.doesNotMatch(formatStatus(status), /generated ahead/);
});
