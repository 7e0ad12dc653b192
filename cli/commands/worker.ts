import type { Command } from 'commander';
import { workerRoles } from '../../core/queues.js';
import { startWorkers } from '../../workers/run.js';
import { cliContext } from '../context.js';

export function register(program: Command): void {
  program
    .command('worker')
    .description(
      'run a worker process polling the task queues of the given roles (SIGTERM drains in-flight work)',
    )
    .option('--roles <list>', `comma-separated roles: ${workerRoles.join(',')} (default: all)`)
    .option('--host-id <id>', 'host name for host-pinned GPU queues (segflow-policy@<id>)')
    .action(async (opts: { roles?: string; hostId?: string }, cmd: Command) => {
      const ctx = cliContext(cmd, { 'worker.roles': opts.roles, 'worker.hostId': opts.hostId });
      const running = await startWorkers(ctx.config, ctx.logger.child({ component: 'worker' }));
      console.error(`segr worker: polling ${running.queues.join(', ')} on ${ctx.config.temporal.address}`);
      await running.done;
    });
}
