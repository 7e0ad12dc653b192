/**
 * One search as the rollout sees it (spec §7): sanitise the query, look in the shared cache, call
 * the backend within its rate limit (once per identical in-flight query), turn image results into
 * 256×256 JPEGs in S3, and format the `<information>` observation with core/protocol.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { ArtifactRef } from '../../core/artifacts.js';
import type { SegflowConfig } from '../../core/config/schema.js';
import { ToolMessages } from '../../core/protocol/actions.js';
import { formatImageInformation, formatInformation } from '../../core/protocol/observations.js';
import { formatWebPages } from '../../core/protocol/web-pages.js';
import { BadInputError, ConfigError, SegflowError } from '../errors.js';
import { guardedFetch } from '../net/guarded-fetch.js';
import type { PinoLogger } from '../runtime/logger.js';
import { recordPaidSearchCall } from '../runtime/metrics.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { cacheKey, S3SearchCache, SingleFlight, type SearchCache } from './cache.js';
import { BackendLimiter, PaidCallLedger } from './limits.js';
import type { BackendName, ImageHit, SearchBackend, TextHit } from './types.js';

/** Namespace of resized search images in the artifact bucket (content-addressed). */
export const SEARCH_IMAGE_NAMESPACE = 'search-images';

export interface SearchRequest {
  query: string;
  /** @default config.search.textTopk (Serper: search.serper.textTopk) / imageTopk */
  topk?: number;
  /** Run id for the paid-call ledger. */
  runId?: string;
  signal?: AbortSignal;
}

export interface SearchOutcome {
  backend: BackendName;
  /** The `<information>` observation, formatted as the reference does. */
  observation: string;
  /** True when the result came from the shared cache or a concurrent identical search. */
  cached: boolean;
  /** True when this call is the one that called the backend. */
  backendCalled: boolean;
  /** Set when the query was not searched (empty, too long); the observation says why. */
  rejected?: 'empty-query' | 'query-too-long';
}

export interface TextSearchOutcome extends SearchOutcome {
  hits: TextHit[];
}

export interface SearchImage {
  title: string;
  /** The 256×256 JPEG the policy sees. */
  image: ArtifactRef;
  /** Where it came from (URL or corpus file name). */
  source: string;
}

export interface ImageSearchOutcome extends SearchOutcome {
  images: SearchImage[];
}

/** The reference's sanitising: strip whitespace, drop double quotes. */
export function sanitiseQuery(query: string): string {
  return query.replace(/"/g, '').trim();
}

/** Results per text search when the caller names none: Serper has its own (the reference's 3). */
export function defaultTextTopk(config: SegflowConfig['search'], backend: BackendName): number {
  return backend === 'serper' ? config.serper.textTopk : config.textTopk;
}

/**
 * What else decides the local corpus' ranking, for the cache key: results found by one retriever
 * are not served for another.
 */
function rankingVariant(config: SegflowConfig['search'], backend: BackendName): string {
  if (backend !== 'local') return '';
  const l = config.local;
  if (l.retriever !== 'bm25') return `retriever=${l.retriever};e5=${l.e5.model}`;
  return l.hybrid ? `retriever=bm25+dense;w=${l.denseWeight}` : '';
}

/** True when text searches on this backend build the page-fetch observation (spec §7.2). */
export function usesPageFetch(config: SegflowConfig['search'], backend: BackendName): boolean {
  return backend === 'serper' && config.serper.fetchPages;
}

/** The `<information>` observation of text hits, in the format the backend's mode calls for. */
export function textObservation(
  config: SegflowConfig['search'],
  backend: BackendName,
  hits: readonly TextHit[],
  topk: number,
): string {
  if (usesPageFetch(config, backend)) {
    return formatWebPages(
      hits.map((h) => ({
        title: h.title,
        url: h.url ?? '',
        siteName: h.page?.siteName ?? '',
        date: h.page?.date ?? '',
        snippet: h.text,
        context: h.page?.context ?? h.text,
      })),
      // The reference cuts the page-mode observation to max_length × topk (320 × 3 = 960).
      config.maxBodyChars * topk,
    );
  }
  return formatInformation(
    hits.map((h) => ({ title: h.title, body: h.text })),
    { maxLength: config.maxBodyChars },
  );
}

/** Rejects when `signal` aborts, without cancelling the shared work behind `p`. */
function raceAbort<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}

export interface SearchServiceDeps {
  config: SegflowConfig['search'];
  store: ArtifactStore;
  /** The backends this worker may use, created on first use. */
  backend: (name: BackendName) => Promise<SearchBackend>;
  logger?: PinoLogger;
  /** @default S3 cache from config (undefined when config.cache.enabled is false) */
  cache?: SearchCache | undefined;
}

export class SearchService {
  private readonly flights = new SingleFlight();
  private readonly limiter: BackendLimiter;
  private readonly cache: SearchCache | undefined;
  private readonly ledger: PaidCallLedger;

  constructor(private readonly deps: SearchServiceDeps) {
    this.limiter = new BackendLimiter(deps.config.rateLimits);
    this.cache =
      'cache' in deps
        ? deps.cache
        : deps.config.cache.enabled
          ? new S3SearchCache(deps.store, deps.config.cache.prefix, deps.config.cache.ttlSeconds)
          : undefined;
    this.ledger = new PaidCallLedger(deps.store);
  }

  private check(
    query: string,
  ): { query: string } | { rejected: SearchOutcome['rejected']; observation: string } {
    const q = sanitiseQuery(query);
    if (q === '') return { rejected: 'empty-query', observation: ToolMessages.emptySearchQuery };
    const max = this.deps.config.maxQueryChars;
    if ([...q].length > max) {
      return {
        rejected: 'query-too-long',
        observation: `<information>Search query is too long (${[...q].length} characters; the limit is ${max}).</information>`,
      };
    }
    return { query: q };
  }

  /**
   * The shared part: cache lookup, then one rate-limited backend call per identical in-flight
   * query. Runs without any one caller's AbortSignal (callers race their own), so a cancelled
   * activity does not fail the others waiting on the same search.
   */
  private async shared<T>(
    backendName: BackendName,
    kind: 'text' | 'image',
    query: string,
    topk: number,
    variant: string,
    runId: string | undefined,
    compute: (backend: SearchBackend) => Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<{ value: T; cached: boolean; backendCalled: boolean }> {
    const key = cacheKey({ backend: backendName, kind, query, topk, variant });
    const flight = this.flights.do(key, async () => {
      const hit = this.cache ? await this.cache.get<T>(key) : undefined;
      if (hit !== undefined) return { value: hit, fromCache: true };
      const backend = await this.deps.backend(backendName);
      const value = await this.limiter.run(backendName, () => compute(backend));
      if (backend.paid) recordPaidSearchCall(backendName);
      if (backend.paid && runId) await this.ledger.record(runId, backendName, key, query);
      if (this.cache) await this.cache.put(key, query, value);
      return { value, fromCache: false };
    });
    const { value, leader } = await raceAbort(flight, signal);
    return {
      value: value.value,
      cached: value.fromCache || !leader,
      backendCalled: leader && !value.fromCache,
    };
  }

  async text(backendName: BackendName, req: SearchRequest): Promise<TextSearchOutcome> {
    const checked = this.check(req.query);
    if ('rejected' in checked) {
      return {
        backend: backendName,
        observation: checked.observation,
        hits: [],
        cached: false,
        backendCalled: false,
        rejected: checked.rejected,
      };
    }
    const cfg = this.deps.config;
    const topk = req.topk ?? defaultTextTopk(cfg, backendName);
    const pageMode = usesPageFetch(cfg, backendName);
    const { value, cached, backendCalled } = await this.shared(
      backendName,
      'text',
      checked.query,
      topk,
      [pageMode ? 'pages' : '', rankingVariant(cfg, backendName)].filter(Boolean).join(';'),
      req.runId,
      (b) => b.searchText(checked.query, topk),
      req.signal,
    );
    const observation = textObservation(cfg, backendName, value, topk);
    return { backend: backendName, observation, hits: value, cached, backendCalled };
  }

  async images(backendName: BackendName, req: SearchRequest): Promise<ImageSearchOutcome> {
    const checked = this.check(req.query);
    if ('rejected' in checked) {
      return {
        backend: backendName,
        observation: checked.observation,
        images: [],
        cached: false,
        backendCalled: false,
        rejected: checked.rejected,
      };
    }
    const topk = req.topk ?? this.deps.config.imageTopk;
    const size = this.deps.config.imageSize;
    const { value, cached, backendCalled } = await this.shared(
      backendName,
      'image',
      checked.query,
      topk,
      [`size=${size}`, rankingVariant(this.deps.config, backendName)].filter(Boolean).join(';'),
      req.runId,
      async (b) => this.materialise(await b.searchImages(checked.query, topk), topk),
      req.signal,
    );
    return {
      backend: backendName,
      observation: formatImageInformation(value.map((i) => i.title)),
      images: value,
      cached,
      backendCalled,
    };
  }

  /** Downloads (guarded) or reads candidates until `topk` decode, resizes them, stores them. */
  private async materialise(candidates: ImageHit[], topk: number): Promise<SearchImage[]> {
    const out: SearchImage[] = [];
    for (const c of candidates) {
      if (out.length >= topk) break;
      const source = c.source.kind === 'file' ? c.source.path : c.source.url;
      let jpeg: Buffer;
      try {
        jpeg = await this.resized(c);
      } catch (err) {
        // A broken candidate is skipped: the web backends ask for extra candidates for this.
        if (!(err instanceof SegflowError)) throw err;
        this.deps.logger?.warn({ source, err: err.message }, 'skipping an image search result');
        continue;
      }
      // Storage failures are not the candidate's fault: they go up and the activity is retried.
      const image = await this.deps.store.putContentAddressed(
        SEARCH_IMAGE_NAMESPACE,
        jpeg,
        'image/jpeg',
        'jpg',
      );
      out.push({ title: c.title, image, source });
    }
    return out;
  }

  private async resized(c: ImageHit): Promise<Buffer> {
    const cfg = this.deps.config;
    let bytes: Buffer;
    if (c.source.kind === 'file') {
      try {
        bytes = await readFile(c.source.path);
      } catch (err) {
        throw new ConfigError(
          `image file ${c.source.path} of result "${c.title}" cannot be read: ${(err as Error).message}`,
        );
      }
    } else {
      const res = await guardedFetch(c.source.url, {
        allow: cfg.fetch.allow,
        maxBytes: cfg.fetch.maxBytes,
        timeoutMs: cfg.fetch.timeoutMs,
        maxRedirects: cfg.fetch.maxRedirects,
        accept: ['image/'],
      });
      bytes = res.body;
    }
    try {
      return await sharp(bytes, { failOn: 'error', limitInputPixels: 100_000_000 })
        .rotate()
        .resize(cfg.imageSize, cfg.imageSize, { fit: 'fill', kernel: 'lanczos3' })
        .flatten({ background: '#ffffff' })
        .jpeg({ quality: 90 })
        .toBuffer();
    } catch (err) {
      const where = c.source.kind === 'file' ? c.source.path : c.source.url;
      throw new BadInputError(
        `image ${where} of result "${c.title}" cannot be decoded: ${(err as Error).message}`,
      );
    }
  }

  /** Paid calls recorded for a run. */
  paidCalls(runId: string) {
    return this.ledger.count(runId);
  }
}
