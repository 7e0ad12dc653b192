import { WorkflowIds } from '../../core/contracts/keys.js';
import type { Command } from 'commander';
import { TaskQueues } from '../../core/queues.js';
import { stackCheck } from '../../workflows/stack-check.js';
import { cliContext, withClient } from '../context.js';
import { workflowResult } from '../failure.js';
import { nonNegativeInt, positiveInt } from '../option-parsers.js';
import { emit, jsonDocument } from '../output.js';

export function register(program: Command): void {
  program
    .command('check')
    .description(
      'run the stackCheck workflow: one durable step per role queue, each round-tripping an S3 object',
    )
    .option('--steps <n>', 'number of steps', positiveInt('--steps'), 5)
    .option('--step-delay-ms <ms>', 'simulated work per step', nonNegativeInt('--step-delay-ms'), 0)
    .option('--id <workflowId>', 'workflow id (default: stack-check-<timestamp>)')
    .action(async (opts: { steps: number; stepDelayMs: number; id?: string }, cmd: Command) => {
      await withClient(cliContext(cmd).config, async ({ client, ui: uiLink }) => {
        const workflowId = opts.id ?? WorkflowIds.stamped('stack-check', new Date());
        const handle = await client.workflow.start(stackCheck, {
          taskQueue: TaskQueues.orchestrator,
          workflowId,
          args: [{ steps: opts.steps, stepDelayMs: opts.stepDelayMs }],
          workflowExecutionTimeout: '10 minutes',
        });
        const ui = uiLink(workflowId, handle.firstExecutionRunId);
        console.error(`started ${workflowId}: ${ui}`);
        const result = await workflowResult(handle, 'stackCheck', ui);
        const doc = { workflowId, ui: uiLink(workflowId), result };
        // check prints JSON in both formats (as it always has).
        emit(cmd, doc, jsonDocument(doc).trimEnd());
      });
    });
}
