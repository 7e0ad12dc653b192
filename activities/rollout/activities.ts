/**
 * The activities a rollout calls, adapted onto the clients that do the work: the policy client
 * (policy role, host-pinned), the search service (search role) and the artifact store. Each
 * validates its input at this edge and leaves failures as typed ApplicationFailures.
 */
import { Context } from '@temporalio/activity';
import type { z } from 'zod';
import type { ArtifactRef } from '../../core/artifacts.js';
import { BadInputError, toApplicationFailure } from '../errors.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import type { SearchService } from '../search/service.js';
import type { BackendName } from '../search/types.js';
import {
  policyTurnInputSchema,
  searchToolInputSchema,
  type PolicyTurnInput,
  type PolicyTurnOutput,
  type SearchToolInput,
  type SearchToolOutput,
} from './types.js';

/** One chat completion against the policy server; implemented by the OpenAI-compatible client. */
export type PolicyGenerate = (
  input: z.output<typeof policyTurnInputSchema>,
  opts: { signal?: AbortSignal; imageUrl: (ref: ArtifactRef) => Promise<string> },
) => Promise<Omit<PolicyTurnOutput, 'hostId' | 'latencyMs'>>;

export interface RolloutActivityDeps {
  store: ArtifactStore;
  hostId: string;
  /** Absent on workers without the policy role. */
  generate?: PolicyGenerate;
  /** Absent on workers without the search role. */
  search?: SearchService;
  defaultSearchBackend?: BackendName;
  /** How images reach the policy server. @default 'data-url' */
  imageUrl?: (ref: ArtifactRef) => Promise<string>;
}

function ctx(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

function parse<S extends z.ZodType>(schema: S, input: unknown, activity: string): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success) {
    throw new BadInputError(
      `${activity}: invalid input: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  }
  return r.data;
}

async function dataUrl(store: ArtifactStore, ref: ArtifactRef): Promise<string> {
  const bytes = await store.getBytes(ref.uri);
  return `data:${ref.contentType};base64,${bytes.toString('base64')}`;
}

export function createRolloutActivities(deps: RolloutActivityDeps) {
  const imageUrl = deps.imageUrl ?? ((ref: ArtifactRef) => dataUrl(deps.store, ref));
  return {
    /** One generation. Heartbeats while the server works, so a dead host is noticed and cancellation reaches the HTTP call. */
    async policyTurn(raw: PolicyTurnInput): Promise<PolicyTurnOutput> {
      try {
        if (!deps.generate) {
          throw new BadInputError(
            'this worker has no policy client: set policy.baseUrl (SEGFLOW_POLICY_URL) on workers with the policy role',
          );
        }
        const input = parse(policyTurnInputSchema, raw, 'policyTurn');
        const c = ctx();
        const started = Date.now();
        const beat = c ? setInterval(() => c.heartbeat({ requestId: input.requestId }), 5000) : undefined;
        try {
          const out = await deps.generate(input, {
            ...(c ? { signal: c.cancellationSignal } : {}),
            imageUrl,
          });
          return { ...out, hostId: deps.hostId, latencyMs: Date.now() - started };
        } finally {
          if (beat) clearInterval(beat);
        }
      } catch (err) {
        throw toApplicationFailure(err);
      }
    },

    /** One text or image search through the shared cache and rate limits. */
    async searchTool(raw: SearchToolInput): Promise<SearchToolOutput> {
      try {
        if (!deps.search)
          throw new BadInputError('this worker has no search service (search role not enabled)');
        const input = parse(searchToolInputSchema, raw, 'searchTool');
        const backend = (input.backend ?? deps.defaultSearchBackend ?? 'local') as BackendName;
        const c = ctx();
        const req = {
          query: input.query,
          ...(input.topk ? { topk: input.topk } : {}),
          ...(input.runId ? { runId: input.runId } : {}),
          ...(c ? { signal: c.cancellationSignal } : {}),
        };
        if (input.tool === 'text_search') {
          const r = await deps.search.text(backend, req);
          return { observation: r.observation, images: [], cached: r.cached, backend: r.backend };
        }
        const r = await deps.search.images(backend, req);
        return {
          observation: r.observation,
          images: r.images.map((i) => i.image),
          cached: r.cached,
          backend: r.backend,
        };
      } catch (err) {
        throw toApplicationFailure(err);
      }
    },

    /** Writes the whole trajectory under its deterministic key (idempotent). */
    async saveTrajectory(input: { key: string; trajectory: unknown }): Promise<ArtifactRef> {
      try {
        return await deps.store.putJson(input.key, input.trajectory);
      } catch (err) {
        throw toApplicationFailure(err);
      }
    },
  };
}

export type RolloutActivities = ReturnType<typeof createRolloutActivities>;
