/**
 * A policy host's cache of synced versions, bounded: after version k of a run is synced, the run's
 * versions older than the newest `keep` leave the host — their downloaded folders, and the adapters
 * they were loaded as (vLLM keeps every runtime-loaded LoRA registered until it is unloaded). A run
 * of thousands of steps then holds `keep` versions on each host, not thousands. A version evicted
 * and asked for again (an evaluation of an old checkpoint, a straggling rollout) is synced again by
 * the unknown-model self-heal of `policyTurn`.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { KeyTemplates } from '../../core/contracts/keys.js';

/** Where a version's uri names its run and version (`…/policies/<run>/v<k>/`). */
export function versionOf(uri: string): { runId: string; version: number } | undefined {
  const [head, tail] = KeyTemplates.policyVersion.split('{runId}') as [string, string];
  const rest = tail.replace('{version}', '(\\d+)').replace(/[/]/g, '\\/');
  const m = new RegExp(`${head.replace(/[/]/g, '\\/')}([^/]+)${rest}$`).exec(uri);
  return m ? { runId: m[1]!, version: Number(m[2]) } : undefined;
}

export interface EvictedVersion {
  uri: string;
  version: number;
  folder: string;
}

/**
 * Removes the cached folders of `uri`'s run other than its newest `keep` versions and the synced
 * one, and returns what went. A folder is known by the `.complete` marker a finished download
 * leaves (it holds the version's uri); anything else in the cache (downloads in progress, other
 * runs) is left alone.
 */
export async function evictOlderVersions(
  cacheDir: string,
  uri: string,
  keep: number,
): Promise<EvictedVersion[]> {
  const synced = versionOf(uri);
  if (!synced || keep <= 0) return [];
  const cached: EvictedVersion[] = [];
  for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
    const folder = join(cacheDir, name);
    const marked = await readFile(join(folder, '.complete'), 'utf8').catch(() => undefined);
    const v = marked ? versionOf(marked.trim()) : undefined;
    if (v && v.runId === synced.runId) cached.push({ uri: marked!.trim(), version: v.version, folder });
  }
  const newest = [...new Set([synced.version, ...cached.map((c) => c.version)])].sort((a, b) => b - a);
  // the synced version always stays (an old checkpoint synced for an evaluation evicts nothing newer)
  const kept = new Set([...newest.slice(0, keep), synced.version]);
  const evicted = cached.filter((c) => !kept.has(c.version));
  for (const e of evicted) await rm(e.folder, { recursive: true, force: true });
  return evicted;
}
