// mapLimit: at most `limit` in flight, starts in index order, results in input order, stops on the first failure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mapLimit } from '../../../core/concurrency.js';

/** A call that finishes when the test says so. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

void test('keeps at most `limit` calls in flight and starts them in index order', async () => {
  const calls = Array.from({ length: 7 }, () => deferred<number>());
  const started: number[] = [];
  let inFlight = 0;
  let peak = 0;
  const all = mapLimit([10, 11, 12, 13, 14, 15, 16], 3, async (x, i) => {
    started.push(i);
    peak = Math.max(peak, ++inFlight);
    try {
      return (await calls[i]!.promise) + x;
    } finally {
      inFlight--;
    }
  });
  await tick();
  assert.deepEqual(started, [0, 1, 2]);
  // Finish them out of order: each free slot takes the next item.
  calls[2]!.resolve(200);
  await tick();
  assert.deepEqual(started, [0, 1, 2, 3]);
  calls[0]!.resolve(0);
  await tick();
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
  for (const [i, c] of calls.entries()) c.resolve(i * 100);
  assert.deepEqual(await all, [10, 111, 212, 313, 414, 515, 616]);
  assert.equal(peak, 3);
});

void test('results follow the input order, whatever order the calls finish in', async () => {
  const delays = [30, 5, 20, 0, 10];
  const out = await mapLimit(
    delays,
    2,
    (d, i) => new Promise<string>((r) => setTimeout(() => r(`#${i}`), d)),
  );
  assert.deepEqual(out, ['#0', '#1', '#2', '#3', '#4']);
});

void test('an empty list resolves to an empty list; a limit above the length runs everything at once', async () => {
  assert.deepEqual(await mapLimit([], 4, () => Promise.reject(new Error('never called'))), []);
  let inFlight = 0;
  let peak = 0;
  const out = await mapLimit([1, 2, 3], 100, async (x) => {
    peak = Math.max(peak, ++inFlight);
    await tick();
    inFlight--;
    return x * 2;
  });
  assert.deepEqual(out, [2, 4, 6]);
  assert.equal(peak, 3);
});

void test('after the first failure no new item starts, and the promise rejects with that error', async () => {
  const started: number[] = [];
  await assert.rejects(
    mapLimit([0, 1, 2, 3, 4, 5], 2, async (_, i) => {
      started.push(i);
      await tick();
      if (i === 1) throw new Error('item 1 failed');
      return i;
    }),
    /item 1 failed/,
  );
  await tick();
  // 0 and 1 start together; 0 finishes and takes 2 before 1 fails; nothing starts after that.
  assert.deepEqual(started, [0, 1, 2]);
});

void test('a limit below 1 (or not a number) is refused', async () => {
  await assert.rejects(
    mapLimit([1], 0, async (x) => x),
    /limit must be at least 1, got 0/,
  );
  await assert.rejects(
    mapLimit([1], Number.NaN, async (x) => x),
    /got NaN/,
  );
});
