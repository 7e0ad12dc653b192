// Per-backend request limits inside one worker, and the pause a 429 + Retry-After puts on them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TransientError } from '../../../activities/errors.js';
import { BackendLimiter } from '../../../activities/search/limits.js';

void test('at most `requests` calls start per interval, per backend', async () => {
  const limiter = new BackendLimiter({ slow: { requests: 2, intervalMs: 300, concurrency: 4 } });
  const t0 = Date.now();
  const starts: number[] = [];
  const others: number[] = [];
  await Promise.all([
    ...Array.from({ length: 5 }, () => limiter.run('slow', async () => void starts.push(Date.now() - t0))),
    // a backend without a configured limit is not held back by another's
    ...Array.from({ length: 5 }, () => limiter.run('free', async () => void others.push(Date.now() - t0))),
  ]);
  starts.sort((a, b) => a - b);
  assert.ok(starts[1]! < 150, `first two start at once: ${starts.join(', ')}`);
  assert.ok(starts[2]! >= 250, `third waits for the next interval: ${starts.join(', ')}`);
  assert.ok(starts[4]! >= 550, `fifth waits two intervals: ${starts.join(', ')}`);
  assert.ok(Math.max(...others) < 150, `unlimited backend ran at once: ${others.join(', ')}`);
});

void test('a 429 with Retry-After holds the backend for that long', async () => {
  const limiter = new BackendLimiter({ api: { requests: 100, intervalMs: 1000, concurrency: 4 } });
  await assert.rejects(
    limiter.run('api', () => Promise.reject(new TransientError('429', {}, undefined, 400))),
    TransientError,
  );
  const t0 = Date.now();
  await limiter.run('api', async () => undefined);
  assert.ok(Date.now() - t0 >= 350, `next call waited ${Date.now() - t0} ms`);
});
