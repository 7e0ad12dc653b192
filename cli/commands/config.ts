import type { Command } from 'commander';
import { redactConfig } from '../../activities/runtime/config-loader.js';
import { cliContext } from '../context.js';
import { emit } from '../output.js';

export function register(program: Command): void {
  program
    .command('config')
    .description('print the effective configuration (defaults < file < environment), secrets redacted')
    .option('--sources', 'also print where each explicitly set key came from')
    .action((opts: { sources?: boolean }, cmd: Command) => {
      const ctx = cliContext(cmd);
      const out: Record<string, unknown> = { config: redactConfig(ctx.config) };
      if (ctx.file) out.file = ctx.file;
      if (opts.sources) out.sources = ctx.sources;
      const doc = opts.sources || ctx.file ? out : out.config;
      emit(cmd, doc, JSON.stringify(doc, null, 2));
    });
}
