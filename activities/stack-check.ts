/**
 * The smallest real job: each step runs on one role's task queue, writes a JSON note to S3, reads
 * it back and checks its SHA-256. It proves a deployment end to end (queues polled, S3 reachable)
 * and is what `make demo` runs until the rollout workflow lands.
 */
import { activityInfo, sleep } from '@temporalio/activity';
import type { ArtifactRef } from '../core/artifacts.js';
import type { ArtifactStore } from './storage/artifact-store.js';
import { heartbeat } from './edge.js';
import { TransientError } from './errors.js';

export interface StackCheckStepInput {
  /** Groups the notes of one check under `checks/<checkId>/`. */
  checkId: string;
  step: number;
  /** The queue this step was sent to (recorded in the note). */
  queue: string;
  /** Simulated work before the write, with heartbeats (used by crash tests). @default 0 */
  delayMs?: number;
}

export interface StackCheckStepResult {
  ref: ArtifactRef;
  queue: string;
  hostId: string;
  attempt: number;
}

export function createStackCheckActivities(deps: { store: ArtifactStore; hostId: string }) {
  return {
    async stackCheckStep(input: StackCheckStepInput): Promise<StackCheckStepResult> {
      const info = activityInfo();
      const delay = input.delayMs ?? 0;
      for (let waited = 0; waited < delay; waited += 250) {
        heartbeat({ waited });
        await sleep(Math.min(250, delay - waited));
      }
      const key = `checks/${input.checkId}/step-${String(input.step).padStart(3, '0')}.json`;
      // Deterministic content: a retried attempt rewrites the same bytes, so the put is a no-op.
      const note = {
        checkId: input.checkId,
        step: input.step,
        queue: input.queue,
        workflowId: info.workflowExecution?.workflowId ?? null,
      };
      const ref = await deps.store.putJson(key, note);
      const back = await deps.store.getJson<typeof note>(ref.uri);
      if (JSON.stringify(back) !== JSON.stringify(note)) {
        throw new TransientError(`S3 round trip of ${ref.uri} returned different content`);
      }
      return { ref, queue: input.queue, hostId: deps.hostId, attempt: info.attempt };
    },
  };
}

export type StackCheckActivities = ReturnType<typeof createStackCheckActivities>;
