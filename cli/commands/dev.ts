import type { Command } from 'commander';
import { DevStack } from '../dev/stack.js';
import { cliContext } from '../context.js';
import { emit, outputFormat } from '../output.js';

export function register(program: Command): void {
  const dev = program
    .command('dev')
    .description('the local dev stack: Temporal dev server (+ Web UI) and an S3 server on loopback');

  dev
    .command('up')
    .description('install (pinned, into .tools/) and start the dev stack; harmless when already up')
    .action(async (_opts, cmd: Command) => {
      const { config } = cliContext(cmd);
      const stack = new DevStack(config);
      await stack.up();
      console.log(`\ndev stack is up. Web UI: ${stack.endpoints.webUi}`);
    });

  dev
    .command('down')
    .description('stop what `segr dev up` started (data under dev.dataDir is kept)')
    .action(async (_opts, cmd: Command) => {
      await new DevStack(cliContext(cmd).config).down();
    });

  dev
    .command('status')
    .description('health of each dev service; exits 1 unless all are healthy')
    .option('--quiet', 'print nothing, only set the exit code')
    .option('--json', 'same as --output json')
    .action(async (opts: { quiet?: boolean }, cmd: Command) => {
      const stack = new DevStack(cliContext(cmd).config);
      const status = await stack.status();
      const healthy = status.every((s) => s.healthy);
      if (outputFormat(cmd) === 'json')
        emit(cmd, { healthy, services: status, endpoints: stack.endpoints }, '');
      else if (!opts.quiet) {
        for (const s of status)
          console.log(
            `${s.name.padEnd(9)} ${s.healthy ? 'healthy' : 'DOWN'}  ${s.pid ? `pid ${s.pid}  ` : ''}${s.detail}`,
          );
        const e = stack.endpoints;
        console.log(`endpoints: temporal ${e.temporal}, web ui ${e.webUi}, s3 ${e.s3} (bucket ${e.bucket})`);
      }
      process.exitCode = healthy ? 0 : 1;
    });
}
