// The failure report `segr` prints when a workflow it started or watches does not complete: the
// cause chain from the SDK's own failure classes, and the Web UI link.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  ChildWorkflowFailure,
  RetryState,
  TerminatedFailure,
  TimeoutFailure,
  TimeoutType,
} from '@temporalio/common';
import {
  WorkflowNotCompletedError,
  failureChain,
  formatCliError,
  formatFailureChain,
  workflowEndOf,
} from '../../../cli/failure.js';

const ui = 'http://127.0.0.1:8233/namespaces/default/workflows/query-1';

/** What handle.result() rejects with when a workflow fails on an activity's non-retryable error. */
function activityFailedWorkflow(): WorkflowFailedError {
  const app = ApplicationFailure.create({
    message: 'policy server http://127.0.0.1:8000/v1 answered 404: model "policy-v9" does not exist',
    type: 'PolicyServerError',
    nonRetryable: true,
  });
  const activity = new ActivityFailure(
    'Activity task failed',
    'policyTurn',
    '3',
    RetryState.NON_RETRYABLE_FAILURE,
    'worker-1@host',
    app,
  );
  return new WorkflowFailedError('Workflow execution failed', activity, RetryState.NON_RETRYABLE_FAILURE);
}

void test('the chain names every link outermost first: class, ApplicationFailure type, message', () => {
  const chain = failureChain(activityFailedWorkflow());
  assert.deepEqual(
    chain.map((l) => [l.name, l.type, l.message]),
    [
      ['WorkflowFailedError', undefined, 'Workflow execution failed'],
      ['ActivityFailure', undefined, 'Activity task failed'],
      [
        'ApplicationFailure',
        'PolicyServerError',
        'policy server http://127.0.0.1:8000/v1 answered 404: model "policy-v9" does not exist',
      ],
    ],
  );
  assert.deepEqual(chain[1]?.context, ['activity policyTurn']);
  assert.deepEqual(chain[2]?.context, ['non-retryable']);
});

void test('a failed workflow prints what failed, every cause with its type, and the Web UI link', () => {
  const err = new WorkflowNotCompletedError(
    'segmentQuery',
    'query-1',
    workflowEndOf(activityFailedWorkflow()),
    ui,
    activityFailedWorkflow(),
  );
  assert.equal(
    formatCliError(err),
    [
      'segmentQuery query-1 failed',
      '  WorkflowFailedError: Workflow execution failed',
      '  caused by ActivityFailure (activity policyTurn): Activity task failed',
      '  caused by ApplicationFailure PolicyServerError (non-retryable): policy server http://127.0.0.1:8000/v1 answered 404: model "policy-v9" does not exist',
      `  web ui: ${ui}`,
    ].join('\n'),
  );
});

void test('a child workflow failure names the child; exhausted retries are said', () => {
  const app = ApplicationFailure.create({ message: 'SAM2 ran out of memory', type: 'SegmentError' });
  const activity = new ActivityFailure(
    'Activity task failed',
    'segmentVideo',
    '7',
    RetryState.MAXIMUM_ATTEMPTS_REACHED,
    undefined,
    app,
  );
  const child = new ChildWorkflowFailure(
    'default',
    { workflowId: 'r1/step-2/group-0/traj-1', runId: 'abc' },
    'rollout',
    RetryState.NON_RETRYABLE_FAILURE,
    activity,
  );
  const text = formatFailureChain(
    new WorkflowFailedError('Workflow execution failed', child, 'NON_RETRYABLE_FAILURE'),
  );
  assert.match(
    text,
    /caused by ChildWorkflowFailure \(child rollout r1\/step-2\/group-0\/traj-1\): Child Workflow execution failed/,
  );
  assert.match(
    text,
    /caused by ActivityFailure \(activity segmentVideo, retry state MAXIMUM_ATTEMPTS_REACHED\): Activity task failed/,
  );
  assert.match(text, /caused by ApplicationFailure SegmentError: SAM2 ran out of memory$/);
});

void test('multi-line messages (zod problem lists) stay indented under their link', () => {
  const app = ApplicationFailure.create({
    message: 'training config is invalid:\ngroupSize: too small\nsteps: required',
    type: 'BadInputError',
  });
  const text = formatFailureChain(
    new WorkflowFailedError('Workflow execution failed', app, 'NON_RETRYABLE_FAILURE'),
  );
  assert.deepEqual(text.split('\n'), [
    '  WorkflowFailedError: Workflow execution failed',
    '  caused by ApplicationFailure BadInputError: training config is invalid:',
    '      groupSize: too small',
    '      steps: required',
  ]);
});

void test('terminated, cancelled and timed-out workflows are told apart from failed ones', () => {
  // The shapes handle.result() rejects with for each close event.
  const terminated = new WorkflowFailedError(
    'operator: bad data',
    new TerminatedFailure('operator: bad data'),
    'NON_RETRYABLE_FAILURE',
  );
  const cancelled = new WorkflowFailedError(
    'Workflow execution cancelled',
    new CancelledFailure('Workflow canceled'),
    'NON_RETRYABLE_FAILURE',
  );
  const timedOut = new WorkflowFailedError(
    'Workflow execution timed out',
    new TimeoutFailure('Workflow execution timed out', undefined, TimeoutType.START_TO_CLOSE),
    'TIMEOUT',
  );
  assert.equal(workflowEndOf(terminated), 'TERMINATED');
  assert.equal(workflowEndOf(cancelled), 'CANCELLED');
  assert.equal(workflowEndOf(timedOut), 'TIMED_OUT');
  assert.equal(workflowEndOf(activityFailedWorkflow()), 'FAILED');

  const t = formatCliError(new WorkflowNotCompletedError('trainingRun', 'r1', 'TERMINATED', ui, terminated));
  assert.match(t, /^trainingRun r1 was terminated\n/);
  assert.match(t, /caused by TerminatedFailure: operator: bad data/, 'the termination reason is shown');
  const o = formatCliError(new WorkflowNotCompletedError('stackCheck', 's1', 'TIMED_OUT', ui, timedOut));
  assert.match(o, /^stackCheck s1 timed out\n/);
  assert.match(o, /TimeoutFailure \(START_TO_CLOSE timeout\)/);
});

void test('other errors print their message, and their causes when they have any', () => {
  assert.equal(
    formatCliError(new Error('--dataset "x" must be the index')),
    '--dataset "x" must be the index',
  );
  assert.equal(formatCliError('plain string'), 'plain string');
  const update = new Error('Workflow Update failed', {
    cause: ApplicationFailure.create({ message: 'the run is not paused', type: 'BadInputError' }),
  });
  assert.equal(
    formatCliError(update),
    'Workflow Update failed\n  caused by ApplicationFailure BadInputError: the run is not paused',
  );
});

void test('a cyclic cause chain ends', () => {
  const a = new Error('a');
  const b = new Error('b', { cause: a });
  (a as { cause?: unknown }).cause = b;
  assert.deepEqual(
    failureChain(a).map((l) => l.message),
    ['a', 'b'],
  );
});
