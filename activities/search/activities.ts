/**
 * Search activities, registered on the `search` role (queue `segflow-search`). Inputs are
 * validated at this edge; every failure leaves as a typed ApplicationFailure (retryable or not,
 * with Retry-After as the next retry delay).
 */
import { IdSchemas } from '../../core/contracts/ids.js';
import { z } from 'zod';
import type { SegflowConfig } from '../../core/config/schema.js';
import { encoderFromConfig } from '../embeddings/activities.js';
import type { TextEncoder } from '../embeddings/encoder.js';
import { cancellationSignal, parseActivityInput } from '../edge.js';
import type { PinoLogger } from '../runtime/logger.js';
import { recordSearch } from '../runtime/metrics.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { OpenAiEmbeddings } from '../embeddings/openai-embeddings.js';
import { LocalCorpus, type E5Retrieval } from './local-corpus.js';
import { fetchPageText } from './page-text.js';
import { SearchService, type ImageSearchOutcome, type TextSearchOutcome } from './service.js';
import { BackendNames, type BackendName, type SearchBackend } from './types.js';
import { DuckDuckGoBackend, RetrievalServerBackend, SearxngBackend, SerperBackend } from './web-backends.js';

export const searchToolInput = z.strictObject({
  /** Which tool the policy called (spec §3.1). */
  tool: z.enum(['text_search', 'image_search']),
  /** The query as the policy wrote it (sanitised here, as the reference does). */
  query: z.string().max(100_000),
  /** @default config.search.backend */
  backend: z.enum(BackendNames).optional(),
  /** @default config.search.textTopk / imageTopk */
  topk: z.number().int().min(1).max(100).optional(),
  /** Run id, for the per-run count of paid calls. */
  runId: IdSchemas.ledger.optional(),
});
export type SearchToolInput = z.infer<typeof searchToolInput>;

export type SearchToolResult =
  (TextSearchOutcome & { tool: 'text_search' }) | (ImageSearchOutcome & { tool: 'image_search' });

export const paidCallsInput = z.strictObject({ runId: IdSchemas.ledger });

/** The e5 side of the local corpus: a client of the configured embeddings server, vectors cached on disk. */
export async function e5Retrieval(config: SegflowConfig['search']['local']['e5']): Promise<E5Retrieval> {
  const client = await OpenAiEmbeddings.connect({
    baseUrl: config.url,
    model: config.model,
    roleInput: config.roleInput,
    apiKey: config.apiKey,
    batchSize: config.batchSize,
    timeoutMs: config.timeoutMs,
  });
  return {
    queries: client.encoder('query'),
    passages: client.encoder('passage'),
    cache: { dir: config.cacheDir, modelKey: client.cacheKey },
  };
}

/** Builds the backend a config names (the local corpus is loaded once, lazily). */
export function backendFactory(
  config: SegflowConfig['search'],
  opts: { logger?: PinoLogger; encoder?: () => Promise<TextEncoder> } = {},
): (name: BackendName) => Promise<SearchBackend> {
  const made = new Map<BackendName, Promise<SearchBackend>>();
  const http = { timeoutMs: config.timeoutMs };
  const create = async (name: BackendName): Promise<SearchBackend> => {
    switch (name) {
      case 'local':
        return LocalCorpus.load({
          textCorpus: config.local.textCorpus,
          indexDir: config.local.indexDir,
          imageCorpus: config.local.imageCorpus,
          imageDir: config.local.imageDir,
          retriever: config.local.retriever,
          e5: config.local.retriever === 'bm25' ? undefined : await e5Retrieval(config.local.e5),
          hybrid: config.local.hybrid,
          denseWeight: config.local.denseWeight,
          encoder: config.local.hybrid && opts.encoder ? await opts.encoder() : undefined,
          onWarning: (w) => opts.logger?.warn(w, `corpus ${w.file}:${w.line}: ${w.problem}`),
        });
      case 'serper':
        return new SerperBackend(
          config.serper.url,
          config.serper.apiKey,
          http,
          config.serper.fetchPages
            ? {
                fetchText: (url, signal) =>
                  fetchPageText(url, {
                    allow: config.fetch.allow,
                    maxBytes: config.fetch.maxBytes,
                    timeoutMs: config.fetch.timeoutMs,
                    maxRedirects: config.fetch.maxRedirects,
                    ...(signal ? { signal } : {}),
                  }),
                contextChars: config.maxBodyChars,
              }
            : undefined,
        );
      case 'duckduckgo':
        return new DuckDuckGoBackend(config.duckduckgo.htmlUrl, config.duckduckgo.url, http);
      case 'retrieval':
        return new RetrievalServerBackend(
          config.retrieval.textUrl,
          config.retrieval.imageUrl,
          config.retrieval.imageDir,
          http,
        );
      case 'searxng':
        return new SearxngBackend(config.searxng.url, http);
    }
  };
  return (name) => {
    let p = made.get(name);
    if (!p) {
      p = create(name);
      made.set(name, p);
      p.catch(() => made.delete(name));
    }
    return p;
  };
}

export interface SearchActivityDeps {
  config: SegflowConfig;
  store: ArtifactStore;
  logger?: PinoLogger;
  /** @default built from config */
  service?: SearchService;
  /** Shared encoder loader for hybrid search. @default loaded from config.embeddings on first use */
  encoder?: () => Promise<TextEncoder>;
}

export function createSearchActivities(deps: SearchActivityDeps) {
  const service =
    deps.service ??
    new SearchService({
      config: deps.config.search,
      store: deps.store,
      ...(deps.logger ? { logger: deps.logger } : {}),
      backend: backendFactory(deps.config.search, {
        ...(deps.logger ? { logger: deps.logger } : {}),
        encoder: deps.encoder ?? encoderFromConfig(deps.config.embeddings),
      }),
    });
  return {
    /** Runs a `<search>` call: text or image search on the configured backend, observation formatted. */
    async searchTool(input: SearchToolInput): Promise<SearchToolResult> {
      const req = parseActivityInput(searchToolInput, input, 'searchTool');
      const backend = req.backend ?? deps.config.search.backend;
      const request = {
        query: req.query,
        ...(req.topk !== undefined ? { topk: req.topk } : {}),
        ...(req.runId !== undefined ? { runId: req.runId } : {}),
        ...(cancellationSignal() ? { signal: cancellationSignal()! } : {}),
      };
      const t0 = performance.now();
      const result: SearchToolResult =
        req.tool === 'text_search'
          ? { tool: 'text_search', ...(await service.text(backend, request)) }
          : { tool: 'image_search', ...(await service.images(backend, request)) };
      if (!result.rejected) recordSearch(backend, req.tool, performance.now() - t0, result.cached);
      return result;
    },

    /** Paid search calls a run has made, per backend. */
    async searchPaidCalls(input: {
      runId: string;
    }): Promise<{ total: number; byBackend: Record<string, number> }> {
      return await service.paidCalls(parseActivityInput(paidCallsInput, input, 'searchPaidCalls').runId);
    },
  };
}
