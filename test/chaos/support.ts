// What every chaos scenario shares: control of the chaos dev stack's servers (a crash, a stop, a
// restart), the comparison of a disturbed run's S3 objects with an undisturbed run's, and the record
// each scenario leaves for `chaos-report.json` (scripts/chaos.js reads them).
import { appendFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { DevStack } from '../../cli/dev/stack.js';
import type { ArtifactStore } from '../../activities/storage/artifact-store.js';
import { testConfig } from '../support/stack.js';

export const stack = new DevStack(testConfig());

/** Crashes (SIGKILL) or stops (SIGTERM) one server of the dev stack; its data stays. */
export async function stopServer(name: 'temporal' | 's3', signal: NodeJS.Signals): Promise<void> {
  const pid = await stack.stop(name, signal);
  assert.ok(pid !== undefined, `the dev ${name} server was not running`);
  console.log(`# chaos: ${name} server (pid ${pid}) ${signal === 'SIGKILL' ? 'killed' : 'stopped'}`);
}

/** Starts what is not running again (same ports, same data) and waits until it is healthy. */
export async function restartServers(): Promise<void> {
  await stack.up(() => undefined);
  console.log('# chaos: dev stack servers back');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Awaits `fn` through a server outage: a call that fails because the Temporal frontend is down (or
 * just came back) is tried again until `timeoutMs` passes.
 */
export async function outlast<T>(fn: () => Promise<T>, what: string, timeoutMs = 300_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const text = String((err as Error)?.message ?? err);
      const transient =
        /UNAVAILABLE|ECONNREFUSED|connect|transport|DEADLINE_EXCEEDED|Connection|socket/i.test(text);
      if (!transient || Date.now() > deadline) throw err;
      await sleep(500);
    }
  }
}

/** The result of a workflow, waited for across Temporal server restarts. */
export function resultOf<T>(client: Client, workflowId: string): Promise<T> {
  return outlast(() => client.workflow.getHandle(workflowId).result() as Promise<T>, `${workflowId} result`);
}

/**
 * Every object under `prefix` with its content hash, the id replaced by a placeholder in keys and
 * bodies (so two runs' objects compare), attempt folders of a policy version collapsed (an update's
 * files live under its attempt's folder: which attempt won is not part of the outcome).
 */
export async function objectsUnder(
  store: ArtifactStore,
  prefix: string,
  id: string,
  opts: { contents?: (key: string) => boolean } = {},
): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list(prefix)) {
    const key = o.key
      .split(id)
      .join('<id>')
      .replace(/\/attempts\/[^/]+\//, '/attempts/*/');
    if (opts.contents?.(o.key)) {
      const body = (await store.getBytes(o.key)).toString('utf8').split(id).join('<id>');
      out.push(`${key} ${createHash('sha256').update(body).digest('hex').slice(0, 16)}`);
    } else out.push(key);
  }
  return out.sort();
}

/** What one scenario compared, for chaos-report.json (`SEGFLOW_CHAOS_RECORDS`, one JSON line each). */
export function recordScenario(scenario: string, compared: string[]): void {
  const file = process.env.SEGFLOW_CHAOS_RECORDS;
  if (file) appendFileSync(file, JSON.stringify({ scenario, compared }) + '\n');
}
