// Temporal's own floor for the orchestration benchmark (bench/orchestration.bench.ts): a workflow
// that does nothing but await a chain of no-op activities, so the time a step costs is only what
// Temporal charges for it. Bundled on its own (not part of workflows/index.ts, not on segflow's queues).
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';

export interface NoopActivities {
  /** Returns its argument plus one: the chain's result proves every step ran. */
  noop(n: number): Promise<number>;
}

/**
 * Where the chain's activities run:
 * - `remote`: on another task queue than the workflow's (as the rollout's policy and search calls
 *   leave the orchestrator queue), dispatched through matching to that queue's poller;
 * - `eager`: on the workflow's own queue, handed back with the workflow task's completion (eager
 *   activity dispatch) when this worker has a free activity slot;
 * - `local`: as local activities, run by the workflow's worker without a round trip per step.
 */
export type FloorMode = 'remote' | 'eager' | 'local';

export interface NoopChainInput {
  steps: number;
  mode: FloorMode;
  /** The activity queue of `remote` mode. */
  activityQueue?: string;
}

const options = { startToCloseTimeout: '1 minute' } as const;

export async function noopChain(input: NoopChainInput): Promise<number> {
  const acts =
    input.mode === 'local'
      ? proxyLocalActivities<NoopActivities>(options)
      : proxyActivities<NoopActivities>({
          ...options,
          ...(input.mode === 'remote' ? { taskQueue: input.activityQueue } : {}),
        });
  let n = 0;
  for (let i = 0; i < input.steps; i++) n = await acts.noop(n);
  return n;
}
