/**
 * Rollout bookkeeping activities. `policyTurn` is the policy role's `policyGenerate` plus the name
 * of the host that answered, so the workflow can pin the trajectory's later turns to
 * `segflow-policy@<host>` (its KV/prefix cache). `saveTrajectory` stores a finished trajectory.
 *
 * A policy server that restarted has forgotten the LoRA adapters loaded into it at runtime; its
 * answer for the run's own version is then "model does not exist" (HTTP 404). When the turn names
 * the version's folder (`adapter`), `policyTurn` loads it again (the same `policySyncWeights` a
 * weight sync runs) and repeats the request once, instead of failing the trajectory.
 */
import type { ArtifactRef } from '../../core/artifacts.js';
import { SegflowError } from '../errors.js';
import type { PolicyTurn } from '../policy/client.js';
import type { PolicyGenerateInput } from '../policy/activities.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import type { SyncWeightsInput } from '../training/activities.js';
import { log } from '@temporalio/activity';

export interface PolicyTurnOutput extends PolicyTurn {
  /** The host whose policy server answered. */
  hostId: string;
  latencyMs: number;
  /** Set when the host's server had lost the adapter and it was loaded again for this turn. */
  adapterReloaded?: boolean;
}

export type PolicyTurnInput = PolicyGenerateInput & {
  /** The version the request's `model` names, to load again if the server lost it. */
  adapter?: SyncWeightsInput['policy'];
};

export interface RolloutActivityDeps {
  store: ArtifactStore;
  hostId: string;
  /** The policy role's generate activity; absent on workers without the policy role. */
  policyGenerate?: (input: PolicyGenerateInput) => Promise<PolicyTurn>;
  /** The policy role's weight sync (loads a version into this host's server). */
  policySyncWeights?: (input: SyncWeightsInput) => Promise<unknown>;
}

/** The server's answer that it does not serve `model` (vLLM: 404 "The model `x` does not exist."). */
export function isUnknownModel(err: unknown, model: string | undefined): boolean {
  return (
    err instanceof SegflowError &&
    err.details.status === 404 &&
    model !== undefined &&
    String(err.details.body ?? err.message).includes(model)
  );
}

export function createRolloutActivities(deps: RolloutActivityDeps) {
  return {
    async policyTurn(input: PolicyTurnInput): Promise<PolicyTurnOutput> {
      if (!deps.policyGenerate) {
        throw new Error('policyTurn reached a worker without the policy role');
      }
      const { adapter, ...request } = input;
      const started = Date.now();
      try {
        const turn = await deps.policyGenerate(request);
        return { ...turn, hostId: deps.hostId, latencyMs: Date.now() - started };
      } catch (err) {
        if (!adapter || !deps.policySyncWeights || !isUnknownModel(err, request.model)) throw err;
        log.warn('the policy server lost the adapter (a restart?); loading it again', {
          model: request.model,
          uri: adapter.uri,
          hostId: deps.hostId,
        });
        await deps.policySyncWeights({ policy: adapter, name: request.model! });
        const turn = await deps.policyGenerate(request);
        return { ...turn, hostId: deps.hostId, latencyMs: Date.now() - started, adapterReloaded: true };
      }
    },

    /** Writes the whole trajectory under its deterministic key (idempotent: same bytes, no new write). */
    async saveTrajectory(input: { key: string; trajectory: unknown }): Promise<ArtifactRef> {
      return await deps.store.putJson(input.key, input.trajectory);
    },
  };
}

export type RolloutActivities = ReturnType<typeof createRolloutActivities>;
