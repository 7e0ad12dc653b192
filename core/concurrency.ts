/**
 * Bounded concurrency, the one helper for "run these, at most N at a time" in activities and
 * workflows alike. Hand-written rather than p-limit (which CONVENTIONS suggests for activities)
 * because it must also run in the workflow sandbox: it is pure, imports nothing, uses no timers,
 * and starts items in index order, so a workflow replays it deterministically.
 */

/**
 * Runs `fn` over `items` with at most `limit` calls in flight. Calls start in index order (a free
 * slot takes the next item); results come back in the order of `items`. After a call rejects no
 * new item starts, and the returned promise rejects with that first error (calls already in
 * flight run to their end, their outcome ignored).
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!(limit >= 1)) throw new RangeError(`mapLimit: limit must be at least 1, got ${limit}`);
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.floor(limit), items.length) }, lane));
  return results;
}
