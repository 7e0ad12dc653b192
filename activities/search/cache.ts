/**
 * The shared search cache: results keyed by backend, kind (text/image), normalised query and
 * topk, stored as small JSON objects in the artifact bucket so every search worker of every run
 * shares them, with a TTL. In front of it, a single-flight map: identical searches in flight in
 * one worker wait for the first one instead of calling the backend again (a rollout group sends
 * its 8 identical first queries at once, before any of them could be cached).
 *
 * S3 rather than a local SQLite file: node 20 has no node:sqlite, better-sqlite3 needs a native
 * build from source here (its prebuilt binaries come from GitHub, not npm), and a bucket is shared
 * by all search workers while a file is shared only by the processes of one host.
 */
import { createHash } from 'node:crypto';
import { ArtifactNotFoundError, type ArtifactStore } from '../storage/artifact-store.js';
import { keyUnder } from '../../core/contracts/safe-key.js';

/** Query normalisation for the cache key: Unicode NFKC, case-folded, whitespace collapsed. */
export function normaliseQuery(query: string): string {
  return query.normalize('NFKC').toLowerCase().replace(/\s+/gu, ' ').trim();
}

export interface CacheKeyParts {
  backend: string;
  kind: 'text' | 'image';
  query: string;
  topk: number;
  /** Anything else that changes results (image size, body cut). */
  variant?: string;
}

export function cacheKey(parts: CacheKeyParts): string {
  const material = JSON.stringify([
    parts.backend,
    parts.kind,
    normaliseQuery(parts.query),
    parts.topk,
    parts.variant ?? '',
  ]);
  const hash = createHash('sha256').update(material).digest('hex');
  return `${parts.backend}/${parts.kind}/${hash.slice(0, 2)}/${hash}`;
}

interface Entry<T> {
  storedAt: number;
  expiresAt: number;
  query: string;
  value: T;
}

export interface SearchCache {
  get<T>(key: string): Promise<T | undefined>;
  put<T>(key: string, query: string, value: T): Promise<void>;
}

export class S3SearchCache implements SearchCache {
  constructor(
    private readonly store: ArtifactStore,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  private objectKey(key: string): string {
    return keyUnder(this.prefix, `${key}.json`);
  }

  async get<T>(key: string): Promise<T | undefined> {
    let entry: Entry<T>;
    try {
      entry = await this.store.getJson<Entry<T>>(this.objectKey(key));
    } catch (err) {
      if (err instanceof ArtifactNotFoundError) return undefined;
      throw err;
    }
    if (typeof entry?.expiresAt !== 'number' || entry.expiresAt <= this.now()) return undefined;
    return entry.value;
  }

  async put<T>(key: string, query: string, value: T): Promise<void> {
    const storedAt = this.now();
    const entry: Entry<T> = { storedAt, expiresAt: storedAt + this.ttlSeconds * 1000, query, value };
    await this.store.putJson(this.objectKey(key), entry);
  }
}

/** Concurrent calls with the same key share one execution. */
export class SingleFlight {
  private readonly inFlight = new Map<string, Promise<unknown>>();

  /** Runs `fn` unless a call with `key` is already running; `leader` tells which one ran it. */
  async do<T>(key: string, fn: () => Promise<T>): Promise<{ value: T; leader: boolean }> {
    const running = this.inFlight.get(key) as Promise<T> | undefined;
    if (running) return { value: await running, leader: false };
    const p = fn();
    this.inFlight.set(key, p);
    try {
      return { value: await p, leader: true };
    } finally {
      this.inFlight.delete(key);
    }
  }

  get size(): number {
    return this.inFlight.size;
  }
}
