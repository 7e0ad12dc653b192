import { log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import { TaskQueues } from '../core/queues.js';
import type { StackCheckActivities, StackCheckStepResult } from '../activities/stack-check.js';

export interface StackCheckInput {
  /** Number of steps; step i runs on the i-th role queue, round robin. @default 5 */
  steps?: number;
  /** Simulated work per step, in milliseconds. @default 0 */
  stepDelayMs?: number;
}

export interface StackCheckResult {
  steps: StackCheckStepResult[];
}

const roleQueues = [
  TaskQueues.orchestrator,
  TaskQueues.search,
  TaskQueues.media,
  TaskQueues.policy,
  TaskQueues.segment,
];

/** Runs one durable step per role queue, each writing and re-reading an S3 object. */
export async function stackCheck(input: StackCheckInput = {}): Promise<StackCheckResult> {
  const steps = input.steps ?? roleQueues.length;
  const checkId = workflowInfo().workflowId;
  const results: StackCheckStepResult[] = [];
  for (let step = 0; step < steps; step++) {
    const queue = roleQueues[step % roleQueues.length]!;
    // Short timeouts: this is a health check, a stuck queue should surface quickly. The heartbeat
    // timeout lets a crashed worker's attempt be retried on a new worker within seconds.
    const { stackCheckStep } = proxyActivities<StackCheckActivities>({
      taskQueue: queue,
      startToCloseTimeout: '2 minutes',
      heartbeatTimeout: '5 seconds',
      retry: { initialInterval: '500 ms', maximumAttempts: 10 },
    });
    const result = await stackCheckStep({ checkId, step, queue, delayMs: input.stepDelayMs ?? 0 });
    log.info('stack check step done', { step, queue, uri: result.ref.uri });
    results.push(result);
  }
  return { steps: results };
}
