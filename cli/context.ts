/**
 * What every `segr` command needs: the loaded config (from --config, file and env) and a logger;
 * and, for the commands that talk to Temporal, one connected client closed however they end.
 */
import type { Command } from 'commander';
import type { Client } from '@temporalio/client';
import type { SegflowConfig } from '../core/config/schema.js';
import { loadConfig, type LoadedConfig } from '../activities/runtime/config-loader.js';
import { createLogger, type PinoLogger } from '../activities/runtime/logger.js';
import { ArtifactStore } from '../activities/storage/artifact-store.js';
import { connectClient, workflowUiLink } from '../workers/temporal-connection.js';

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

export interface ClientSession {
  client: Client;
  /** The artifact store, created on first use. */
  readonly store: ArtifactStore;
  /** The Web UI link of a workflow (of one run, when `runId` is given). */
  ui: (workflowId: string, runId?: string) => string;
}

/** Runs `fn` with a Temporal client (and the artifact store), closing both however `fn` ends. */
export async function withClient<T>(
  config: SegflowConfig,
  fn: (session: ClientSession) => Promise<T>,
): Promise<T> {
  const client = await connectClient(config);
  let store: ArtifactStore | undefined;
  try {
    return await fn({
      client,
      get store() {
        return (store ??= ArtifactStore.fromConfig(config.s3));
      },
      ui: (workflowId, runId) => workflowUiLink(config, workflowId, runId),
    });
  } finally {
    store?.client.destroy();
    await client.connection.close();
  }
}
