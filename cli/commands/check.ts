import type { Command } from 'commander';
import { TaskQueues } from '../../core/queues.js';
import { connectClient, workflowUiLink } from '../../workers/temporal-connection.js';
import { cliContext } from '../context.js';

export function register(program: Command): void {
  program
    .command('check')
    .description(
      'run the stackCheck workflow: one durable step per role queue, each round-tripping an S3 object',
    )
    .option('--steps <n>', 'number of steps', '5')
    .option('--step-delay-ms <ms>', 'simulated work per step', '0')
    .option('--id <workflowId>', 'workflow id (default: stack-check-<timestamp>)')
    .action(async (opts: { steps: string; stepDelayMs: string; id?: string }, cmd: Command) => {
      const { config } = cliContext(cmd);
      const client = await connectClient(config);
      try {
        const workflowId = opts.id ?? `stack-check-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        const handle = await client.workflow.start('stackCheck', {
          taskQueue: TaskQueues.orchestrator,
          workflowId,
          args: [{ steps: Number(opts.steps), stepDelayMs: Number(opts.stepDelayMs) }],
          workflowExecutionTimeout: '10 minutes',
        });
        console.error(
          `started ${workflowId}: ${workflowUiLink(config, workflowId, handle.firstExecutionRunId)}`,
        );
        const result = await handle.result();
        console.log(JSON.stringify({ workflowId, ui: workflowUiLink(config, workflowId), result }, null, 2));
      } finally {
        await client.connection.close();
      }
    });
}
