import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evictOlderVersions, versionOf } from '../../../activities/training/policy-cache.js';

const uri = (run: string, v: number) => `s3://bucket/prefix/policies/${run}/v${v}/`;

async function cache(entries: [string, string | undefined][]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'policy-cache-'));
  for (const [name, marker] of entries) {
    await mkdir(join(dir, name), { recursive: true });
    await writeFile(join(dir, name, 'adapter_model.safetensors'), 'w');
    if (marker !== undefined) await writeFile(join(dir, name, '.complete'), marker);
  }
  return dir;
}

test('versionOf reads the run and version of a version uri, and nothing else', () => {
  assert.deepEqual(versionOf(uri('run-1', 12)), { runId: 'run-1', version: 12 });
  assert.deepEqual(versionOf('s3://b/policies/r/v0/'), { runId: 'r', version: 0 });
  assert.equal(versionOf('s3://b/models/tiny/'), undefined);
  assert.equal(versionOf('s3://b/policies/r/v1/attempts/x/'), undefined);
});

test("a sync keeps the run's newest versions and removes the older ones, leaving other runs and unfinished downloads", async () => {
  const dir = await cache([
    ['a1', uri('r', 1)],
    ['a2', uri('r', 2)],
    ['a3', uri('r', 3)],
    ['b1', uri('other', 1)],
    ['a4.part-77', undefined], // a download in progress
    ['base', 's3://bucket/models/base/'],
  ]);
  const evicted = await evictOlderVersions(dir, uri('r', 4), 2);
  assert.deepEqual(evicted.map((e) => e.version).sort(), [1, 2]);
  assert.deepEqual((await readdir(dir)).sort(), ['a3', 'a4.part-77', 'b1', 'base']);
  // nothing older than the kept window: nothing goes
  assert.deepEqual(await evictOlderVersions(dir, uri('r', 4), 2), []);
  // keep 1: only the synced version stays (its folder may be elsewhere; the older one goes)
  assert.deepEqual(
    (await evictOlderVersions(dir, uri('r', 4), 1)).map((e) => e.version),
    [3],
  );
  // a uri that names no run version evicts nothing
  assert.deepEqual(await evictOlderVersions(dir, 's3://bucket/models/base/', 1), []);
});
