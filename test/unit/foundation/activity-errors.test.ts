// The worker's activity interceptor maps what an activity throws onto the ApplicationFailure a
// workflow sees: type, retryability, next retry delay and message (scrubbed of secrets, with
// scrubbed copies of its causes: unit/core/redact.test.ts); cancellations pass through.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { DefaultLogger } from '@temporalio/worker';
import { BadInputError, ConfigError, TransientError } from '../../../activities/errors.js';
import { activityEnvironment } from '../../support/activity-env.js';

const throwing = (err: unknown) => async (): Promise<never> => {
  throw err;
};

async function failureOf(err: unknown): Promise<unknown> {
  // The SDK logs every failed activity at WARN; these failures are the point of the test.
  return activityEnvironment({}, { logger: new DefaultLogger('ERROR') })
    .run(throwing(err))
    .then(
      () => assert.fail('the activity did not fail'),
      (e: unknown) => e,
    );
}

void test('a SegflowError leaves as an ApplicationFailure of its type, retryability, delay and message', async () => {
  const cause = new Error('socket hang up');
  const transient = await failureOf(
    new TransientError('search API answered 429', { status: 429 }, cause, 3000),
  );
  assert.ok(transient instanceof ApplicationFailure);
  assert.equal(transient.type, 'TransientError');
  assert.equal(transient.nonRetryable, false);
  assert.equal(transient.nextRetryDelay, 3000);
  assert.equal(transient.message, 'search API answered 429');
  assert.deepEqual(transient.details, [{ status: 429 }]);
  assert.equal(transient.cause?.message, cause.message);
  assert.equal(transient.cause?.name, cause.name);

  const bad = await failureOf(new BadInputError('searchTool input is invalid: tool: bad'));
  assert.ok(bad instanceof ApplicationFailure);
  assert.equal(bad.type, 'BadInputError');
  assert.equal(bad.nonRetryable, true);
  assert.equal(bad.nextRetryDelay, undefined);
  assert.equal(bad.message, 'searchTool input is invalid: tool: bad');

  const config = await failureOf(new ConfigError('set SEGFLOW_POLICY_URL'));
  assert.ok(config instanceof ApplicationFailure);
  assert.equal(config.type, 'ConfigError');
  assert.equal(config.nonRetryable, true);
});

void test('any other error becomes a retryable ApplicationFailure named after its class', async () => {
  const err = new RangeError('index 9 out of range');
  const f = await failureOf(err);
  assert.ok(f instanceof ApplicationFailure);
  assert.equal(f.type, 'RangeError');
  assert.equal(f.nonRetryable, false);
  assert.equal(f.message, 'index 9 out of range');
  assert.equal(f.cause?.name, 'RangeError');
  assert.equal(f.cause?.message, err.message);
  const s = await failureOf('a string');
  assert.ok(s instanceof ApplicationFailure);
  assert.equal(s.type, 'Error');
  assert.equal(s.message, 'a string');
});

void test("an ApplicationFailure keeps its type, retryability and message; Temporal's own failures (a cancellation) pass through untouched", async () => {
  const app = ApplicationFailure.nonRetryable('already typed', 'PolicyVersionConflict');
  const f = await failureOf(app);
  assert.ok(f instanceof ApplicationFailure);
  assert.equal(f.type, 'PolicyVersionConflict');
  assert.equal(f.nonRetryable, true);
  assert.equal(f.message, 'already typed');
  const cancelled = new CancelledFailure('CANCELLED');
  assert.equal(await failureOf(cancelled), cancelled);
});

void test('outside an activity environment nothing maps: the caller sees the SegflowError itself', async () => {
  await assert.rejects(throwing(new BadInputError('bad'))(), (e: unknown) => e instanceof BadInputError);
});
