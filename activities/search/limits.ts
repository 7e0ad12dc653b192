/**
 * Per-backend request limits inside one search worker (p-queue: at most `requests` starts per
 * `intervalMs`, at most `concurrency` in flight), a pause of the backend's queue when the service
 * answers 429 with Retry-After, and the per-run ledger of paid calls.
 *
 * Across workers, the search task queue's own rate (`maxTaskQueueActivitiesPerSecond` on the
 * worker) bounds the total; these limits keep one worker from bursting past a provider's limit.
 */
import { RunKeys } from '../../core/contracts/keys.js';
import PQueue from 'p-queue';
import { SegflowError } from '../errors.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { keyUnder } from '../../core/contracts/safe-key.js';

export interface RateLimit {
  requests: number;
  intervalMs: number;
  concurrency: number;
}

export class BackendLimiter {
  private readonly queues = new Map<string, PQueue>();
  private readonly pausedUntil = new Map<string, number>();

  constructor(private readonly limits: Readonly<Record<string, RateLimit>>) {}

  private queueFor(backend: string): PQueue {
    let q = this.queues.get(backend);
    if (!q) {
      const limit = this.limits[backend];
      q = limit
        ? new PQueue({
            concurrency: limit.concurrency,
            intervalCap: limit.requests,
            interval: limit.intervalMs,
            carryoverIntervalCount: true,
          })
        : new PQueue({ concurrency: Infinity });
      this.queues.set(backend, q);
    }
    return q;
  }

  /** Runs `fn` within the backend's limits; a 429 with Retry-After holds the backend's queue that long. */
  async run<T>(backend: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const q = this.queueFor(backend);
    return q.add(
      async () => {
        try {
          return await fn();
        } catch (err) {
          if (err instanceof SegflowError && err.retryAfterMs !== undefined && err.retryAfterMs > 0) {
            this.hold(backend, q, err.retryAfterMs);
          }
          throw err;
        }
      },
      signal ? { signal } : {},
    );
  }

  private hold(backend: string, q: PQueue, ms: number): void {
    const until = Date.now() + ms;
    if ((this.pausedUntil.get(backend) ?? 0) >= until) return;
    this.pausedUntil.set(backend, until);
    q.pause();
    setTimeout(() => {
      if ((this.pausedUntil.get(backend) ?? 0) <= Date.now()) q.start();
    }, ms);
  }
}

/**
 * The per-run ledger of paid backend calls: one small object per call under
 * `runs/<runId>/search-usage/`, keyed by the call's cache key so a retried activity does not count
 * twice. Counting lists the prefix.
 */
export class PaidCallLedger {
  constructor(private readonly store: ArtifactStore) {}

  private prefix(runId: string): string {
    return RunKeys.searchUsage(runId);
  }

  async record(runId: string, backend: string, key: string, query: string): Promise<void> {
    await this.store.putJson(keyUnder(this.prefix(runId), `${key}.json`), { backend, query });
  }

  /** Paid calls made for a run, per backend. */
  async count(runId: string): Promise<{ total: number; byBackend: Record<string, number> }> {
    const byBackend: Record<string, number> = {};
    let total = 0;
    for await (const obj of this.store.list(this.prefix(runId))) {
      const backend = obj.key.slice(this.prefix(runId).length).split('/')[0] ?? 'unknown';
      byBackend[backend] = (byBackend[backend] ?? 0) + 1;
      total++;
    }
    return { total, byBackend };
  }
}
