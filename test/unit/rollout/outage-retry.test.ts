// The rollout's outage tolerance as Temporal retry attempts: backoff 1 s, 2 s, 4 s, … capped at the
// maximum interval, as many attempts as it takes the waits to add up to the tolerance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_OUTAGE_TOLERANCE_SECONDS, outageAttempts } from '../../../workflows/retry.js';

test('the attempts cover the tolerance: the waits before the last attempt reach it, one wait fewer does not', () => {
  const waits = (attempts: number, cap: number) => {
    let total = 0;
    for (let k = 0; k < attempts - 1; k++) total += Math.min(2 ** k, cap);
    return total;
  };
  for (const [tolerance, cap] of [
    [DEFAULT_OUTAGE_TOLERANCE_SECONDS, 30],
    [DEFAULT_OUTAGE_TOLERANCE_SECONDS, 60],
    [3, 30],
    [20, 30],
    [3600, 30],
  ] as const) {
    const attempts = outageAttempts(tolerance, cap);
    assert.ok(
      waits(attempts, cap) >= tolerance,
      `${tolerance} s, cap ${cap}: ${attempts} attempts wait enough`,
    );
    assert.ok(waits(attempts - 1, cap) < tolerance, `${tolerance} s, cap ${cap}: ${attempts - 1} would not`);
  }
  // 1+2+4+8+16 = 31 s, then 30 s a wait: 15 minutes is 35 attempts; 3 s is 3 (waits of 1 s and 2 s)
  assert.equal(outageAttempts(DEFAULT_OUTAGE_TOLERANCE_SECONDS, 30), 35);
  assert.equal(outageAttempts(3, 30), 3);
  assert.equal(outageAttempts(0, 30), 1, 'no tolerance: one attempt');
});
