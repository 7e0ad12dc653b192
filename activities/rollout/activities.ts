/**
 * Rollout bookkeeping activities. `policyTurn` is the policy role's `policyGenerate` plus the name
 * of the host that answered, so the workflow can pin the trajectory's later turns to
 * `segflow-policy@<host>` (its KV/prefix cache). `saveTrajectory` stores a finished trajectory.
 */
import type { ArtifactRef } from '../../core/artifacts.js';
import type { PolicyTurn } from '../policy/client.js';
import type { PolicyGenerateInput } from '../policy/activities.js';
import type { ArtifactStore } from '../storage/artifact-store.js';

export interface PolicyTurnOutput extends PolicyTurn {
  /** The host whose policy server answered. */
  hostId: string;
  latencyMs: number;
}

export interface RolloutActivityDeps {
  store: ArtifactStore;
  hostId: string;
  /** The policy role's generate activity; absent on workers without the policy role. */
  policyGenerate?: (input: PolicyGenerateInput) => Promise<PolicyTurn>;
}

export function createRolloutActivities(deps: RolloutActivityDeps) {
  return {
    async policyTurn(input: PolicyGenerateInput): Promise<PolicyTurnOutput> {
      if (!deps.policyGenerate) {
        throw new Error('policyTurn reached a worker without the policy role');
      }
      const started = Date.now();
      const turn = await deps.policyGenerate(input);
      return { ...turn, hostId: deps.hostId, latencyMs: Date.now() - started };
    },

    /** Writes the whole trajectory under its deterministic key (idempotent: same bytes, no new write). */
    async saveTrajectory(input: { key: string; trajectory: unknown }): Promise<ArtifactRef> {
      return await deps.store.putJson(input.key, input.trajectory);
    },
  };
}

export type RolloutActivities = ReturnType<typeof createRolloutActivities>;
