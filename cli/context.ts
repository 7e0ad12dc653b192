/** What every `segr` command needs: the loaded config (from --config, file and env) and a logger. */
import type { Command } from 'commander';
import type { SegflowConfig } from '../core/config/schema.js';
import { loadConfig, type LoadedConfig } from '../activities/runtime/config-loader.js';
import { createLogger, type PinoLogger } from '../activities/runtime/logger.js';

export interface CliContext extends LoadedConfig {
  config: SegflowConfig;
  logger: PinoLogger;
}

/** Reads the global `--config` option from the root command. */
export function cliContext(command: Command, overrides: Record<string, unknown> = {}): CliContext {
  let root = command;
  while (root.parent) root = root.parent;
  const file = root.opts<{ config?: string }>().config;
  const loaded = loadConfig({ ...(file ? { file } : {}), overrides });
  return { ...loaded, logger: createLogger(loaded.config.log.level) };
}
