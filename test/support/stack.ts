// Integration-test helpers: the real dev stack (started by scripts/run-tests.js or already up),
// worker processes started and killed like in production, and a Temporal client.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { loadConfig } from '../../activities/runtime/config-loader.js';
import { ArtifactStore } from '../../activities/storage/artifact-store.js';
import { connectClient } from '../../workers/temporal-connection.js';
import type { SegflowConfig } from '../../core/config/schema.js';
import { repoRoot } from './paths.js';

export function testConfig(): SegflowConfig {
  return loadConfig().config;
}

export function testStore(config = testConfig()): ArtifactStore {
  return ArtifactStore.fromConfig(config.s3);
}

export async function testClient(config = testConfig()): Promise<Client> {
  return connectClient(config);
}

export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code/signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Stops the processes a test started (SIGTERM: workers drain), skipping ones never started or gone. */
export async function stopProcesses(processes: readonly (WorkerProcess | undefined)[]): Promise<void> {
  for (const p of processes) {
    if (p && p.child.exitCode === null) {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  }
}

/**
 * Starts a long-running process and waits until its output contains `readyText` (it is killed,
 * and the error shows its output, if it exits or times out first).
 */
export async function startProcess(
  command: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; readyText: string; name: string; timeoutMs?: number },
): Promise<WorkerProcess> {
  const child = spawn(command, args, {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  while (!out.includes(opts.readyText)) {
    if (child.exitCode !== null) throw new Error(`${opts.name} exited before it was ready:\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${opts.name} was not ready within ${timeoutMs / 1000}s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, output: () => out, exited };
}

/** Starts `segr worker` as a separate process and waits until its workers poll. */
export async function startWorkerProcess(
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<WorkerProcess> {
  return startProcess(process.execPath, [join(repoRoot, 'bin/segr.js'), 'worker', ...args], {
    env,
    readyText: 'workers polling',
    name: 'worker',
  });
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
