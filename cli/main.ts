import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { commandRegistrars } from './commands/index.js';
import { outputOption } from './output.js';

export { formatCliError } from './failure.js';

/** The checkout's package.json version: two folders up from dist/cli/main.js, one from cli/main.ts. */
export function packageVersion(): string {
  for (const up of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'segflow' && pkg.version) return pkg.version;
    } catch {
      /* not at this level */
    }
  }
  throw new Error('segr: cannot find segflow’s package.json above the CLI to read its version');
}

export function buildProgram(): Command {
  const program = new Command('segr')
    .description('segflow: Seg-ReSearch reasoning segmentation as durable Temporal workflows')
    .version(packageVersion(), '-V, --version', 'print the segflow version')
    .option(
      '-c, --config <file>',
      'config file (YAML or JSON); default: $SEGFLOW_CONFIG, else ./segflow.config.yaml',
    )
    .addOption(outputOption())
    .showHelpAfterError()
    .configureHelp({ sortSubcommands: true });
  for (const register of commandRegistrars) register(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
