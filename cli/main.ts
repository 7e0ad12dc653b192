import { Command } from 'commander';
import { commandRegistrars } from './commands/index.js';

export function buildProgram(): Command {
  const program = new Command('segr')
    .description('segflow: Seg-ReSearch reasoning segmentation as durable Temporal workflows')
    .option(
      '-c, --config <file>',
      'config file (YAML or JSON); default: $SEGFLOW_CONFIG, else ./segflow.config.yaml',
    )
    .showHelpAfterError()
    .configureHelp({ sortSubcommands: true });
  for (const register of commandRegistrars) register(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
