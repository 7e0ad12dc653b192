// Training activities on the dev stack's S3: prompt sampling from a prepared index, batch assembly,
// metrics and the newest-version pointer, and the weight sync against a vLLM-like server.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createPolicyActivities } from '../../../activities/policy/activities.js';
import {
  createPolicySyncActivities,
  createTrainingActivities,
} from '../../../activities/training/activities.js';
import type { ArtifactRef } from '../../../core/artifacts.js';
import { POLICY_MANIFEST_FILE, PolicyKeys } from '../../../core/contracts/index.js';
import { startFakePolicyServer, type FakePolicyServer } from '../../servers/openai-server.js';
import { throughWorkerInterceptors } from '../../support/activity-env.js';
import { testConfig, testStore, uniqueId } from '../../support/stack.js';

const config = testConfig();
const store = testStore(config);
const acts = throughWorkerInterceptors(createTrainingActivities({ store }));
const tmp = mkdtempSync(join(tmpdir(), 'segflow-training-act-'));
const prefix = `test/training-activities/${uniqueId('t')}`;
let policy: FakePolicyServer;
let index: string;

const frame = (n: number): ArtifactRef => ({
  uri: `s3://segflow/x/${n}.jpg`,
  sha256: 'a'.repeat(64),
  bytes: 1,
  contentType: 'image/jpeg',
});

async function rejectsWith(p: Promise<unknown>, type: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error & { type?: string; nonRetryable?: boolean }) => {
    assert.equal(err.type, type);
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, message);
    return true;
  });
}

before(async () => {
  policy = await startFakePolicyServer({ flavor: 'vllm', script: () => 'ok' });
  const samples = [];
  for (const id of ['a', 'b', 'c']) {
    const ref = await store.putJson(`${prefix}/samples/${id}.json`, {
      schema: 'segflow.sample/1',
      id,
      question: `find ${id}`,
      ability: id === 'c' ? null : 'in-video',
      frames: [{ index: 0, fid: 0, original: frame(0), policy: frame(1) }],
      groundTruth: { '0': { bbox_2d: [1, 2, 3, 4], point_2d: [2, 3], area: 1, max_conn_area: 1 } },
    });
    samples.push({ id, ability: null, ref });
  }
  index = (await store.putJson(`${prefix}/index.json`, { schema: 'segflow.dataset/1', samples })).uri;
});

after(async () => {
  await policy.close();
  store.client.destroy();
});

void test('trainingSamplePrompts: seeded prompts as rolloutGroup samples, cursor across epochs', async () => {
  const r1 = await acts.trainingSamplePrompts({
    dataset: index,
    seed: 1,
    cursor: { epoch: 0, position: 0 },
    count: 2,
  });
  const r2 = await acts.trainingSamplePrompts({ dataset: index, seed: 1, cursor: r1.cursor, count: 2 });
  assert.deepEqual(r2.cursor, { epoch: 1, position: 1 });
  const firstEpoch = [...r1.samples, r2.samples[0]!].map((s) => s.id).sort();
  assert.deepEqual(firstEpoch, ['a', 'b', 'c'], 'an epoch visits every sample once');
  const c = [...r1.samples, ...r2.samples].find((s) => s.id === 'c')!;
  assert.equal(c.ability, 'one-hop', 'a sample without ability may search');
  assert.deepEqual(c.frames, [{ fid: 0, policy: frame(1), original: frame(0) }]);
  assert.equal(c.question, 'find c');
});

void test('trainingSamplePrompts: bad datasets are named, non-retryable errors', async () => {
  const notIndex = (await store.putJson(`${prefix}/not-index.json`, { schema: 'other' })).uri;
  await rejectsWith(
    acts.trainingSamplePrompts({ dataset: notIndex, seed: 0, cursor: { epoch: 0, position: 0 }, count: 1 }),
    'BadInputError',
    /is not a prepared dataset index .*segr dataset prepare/,
  );
  await rejectsWith(
    acts.trainingSamplePrompts({
      dataset: `s3://segflow/${prefix}/missing.json`,
      seed: 0,
      cursor: { epoch: 0, position: 0 },
      count: 1,
    }),
    'BadInputError',
    /dataset index .*missing.json does not exist/,
  );
  await rejectsWith(
    acts.trainingSamplePrompts({ dataset: index, seed: 0, cursor: { epoch: 0, position: 0 }, count: 0 }),
    'BadInputError',
    /count: /,
  );
});

void test('trainingAssembleBatch: the trainer batch with messages, advantages and rewards', async () => {
  const traj = await store.putJson(`${prefix}/traj.json`, {
    messages: [
      { role: 'system', content: 's' },
      { role: 'user', content: 'frame 0 <image>', images: [frame(1)] },
      { role: 'assistant', content: '<answer> x </answer>' },
    ],
  });
  const input = {
    runId: 'run-a',
    step: 4,
    policyVersion: 4,
    trajectories: [{ trajectoryId: 't0', groupId: 'g', trajectory: traj, advantage: 0.5, reward: 2 }],
  };
  const ref = await acts.trainingAssembleBatch(input);
  assert.equal(ref.uri, store.uriOf('runs/run-a/steps/4/batch.json'));
  const again = await acts.trainingAssembleBatch(input);
  assert.equal(again.sha256, ref.sha256, 'a retry writes the same bytes');
  const doc = await store.getJson<{
    schema: string;
    trajectories: { messages: unknown[]; advantage: number }[];
  }>(ref.uri);
  assert.equal(doc.schema, 'segflow.batch/1');
  // the image refs travel with their message (a multimodal trainer reads them; text-only ones ignore them)
  assert.deepEqual(doc.trajectories[0]!.messages[1], {
    role: 'user',
    content: 'frame 0 <image>',
    images: [{ uri: frame(1).uri, sha256: frame(1).sha256 }],
  });
  assert.deepEqual(doc.trajectories[0]!.messages[2], { role: 'assistant', content: '<answer> x </answer>' });
  const empty = await store.putJson(`${prefix}/empty-traj.json`, { messages: [] });
  await rejectsWith(
    acts.trainingAssembleBatch({
      ...input,
      trajectories: [{ ...input.trajectories[0]!, trajectory: empty }],
    }),
    'BadInputError',
    /trajectory t0 .* has no messages/,
  );
  await rejectsWith(
    acts.trainingAssembleBatch({
      ...input,
      trajectories: [{ ...input.trajectories[0]!, advantage: Number.NaN }],
    }),
    'BadInputError',
    /trajectories\.0\.advantage/,
  );
});

void test('trainingSamplePromptRefs: the same seeded order as record references; trainingLoadSample loads one', async () => {
  const args = { dataset: index, seed: 1, cursor: { epoch: 0, position: 0 }, count: 4 };
  const whole = await acts.trainingSamplePrompts(args);
  const refs = await acts.trainingSamplePromptRefs(args);
  assert.deepEqual(refs.cursor, whole.cursor);
  assert.deepEqual(
    refs.samples.map((s) => s.id),
    whole.samples.map((s) => s.id),
  );
  for (const [i, ref] of refs.samples.entries()) {
    assert.match(ref.record.uri, new RegExp(`/samples/${ref.id}\\.json$`));
    assert.deepEqual(await acts.trainingLoadSample({ record: ref.record }), whole.samples[i]);
  }
  const notSample = await store.putJson(`${prefix}/not-sample.json`, { schema: 'other' });
  await rejectsWith(
    acts.trainingLoadSample({ record: notSample }),
    'BadInputError',
    /sample record .*not-sample.json has schema "other", expected "segflow.sample\/1"/,
  );
});

void test('trainingAssembleBatch from stored group results: the same batch as the listed trajectories', async () => {
  const traj = (i: number) =>
    store.putJson(`${prefix}/groups/traj-${i}.json`, {
      messages: [
        { role: 'user', content: `q ${i}` },
        { role: 'assistant', content: `<answer> ${i} </answer>` },
      ],
    });
  const refs = [await traj(0), await traj(1), await traj(2)];
  const trajectory = (i: number, advantage: number, total: number) => ({
    summary: { trajectoryId: `g${i < 2 ? 0 : 1}/traj-${i}`, trajectory: refs[i]! },
    advantage,
    reward: { total },
  });
  const g0 = await acts.trainingSaveGroup({
    key: `${prefix}/groups/g0/group.json`,
    result: { groupId: 'g0', trajectories: [trajectory(0, 1, 2), trajectory(1, -1, 0)] },
  });
  const g1 = await acts.trainingSaveGroup({
    key: `${prefix}/groups/g1/group.json`,
    result: { groupId: 'g1', trajectories: [trajectory(2, 0.5, 1)] },
  });
  const base = { runId: uniqueId('run'), step: 0, policyVersion: 0 };
  const byGroups = await store.getBytes(
    (await acts.trainingAssembleBatch({ ...base, groups: [g0, g1] })).uri,
  );
  const listed = await store.getBytes(
    (
      await acts.trainingAssembleBatch({
        ...base,
        trajectories: [
          { trajectoryId: 'g0/traj-0', groupId: 'g0', trajectory: refs[0]!, advantage: 1, reward: 2 },
          { trajectoryId: 'g0/traj-1', groupId: 'g0', trajectory: refs[1]!, advantage: -1, reward: 0 },
          { trajectoryId: 'g1/traj-2', groupId: 'g1', trajectory: refs[2]!, advantage: 0.5, reward: 1 },
        ],
      })
    ).uri,
  );
  assert.equal(byGroups.toString(), listed.toString());
  await rejectsWith(
    acts.trainingAssembleBatch({ ...base, groups: [g0], trajectories: [] }),
    'BadInputError',
    /give either trajectories or groups/,
  );
  await rejectsWith(
    acts.trainingSaveGroup({
      key: `${prefix}/groups/g0/other.json`,
      result: { groupId: 'g0', trajectories: [] },
    }),
    'BadInputError',
    /must be a group result key ending in "\/group.json"/,
  );
});

void test('trainingWriteMetrics: step metrics and the newest-version pointer', async () => {
  const runId = uniqueId('run');
  const ref = await acts.trainingWriteMetrics({
    runId,
    step: 0,
    metrics: { meanReward: 1 },
    latest: { version: 1, model: `${runId}-v1`, uri: 's3://segflow/p/' },
  });
  assert.deepEqual(await store.getJson(ref.uri), {
    schema: 'segflow.training-metrics/1',
    runId,
    step: 0,
    meanReward: 1,
  });
  assert.deepEqual(await store.getJson(`policies/${runId}/latest.json`), {
    version: 1,
    model: `${runId}-v1`,
    uri: 's3://segflow/p/',
  });
});

void test('policySyncWeights: downloads the version once per host and loads it on the policy server', async () => {
  const cfg = { ...config, policy: { ...config.policy, baseUrl: `${policy.url}/v1` } };
  const sync = throughWorkerInterceptors(
    createPolicySyncActivities({
      store,
      cacheDir: join(tmp, 'cache'),
      hostId: 'h1',
      policyLoadAdapter: createPolicyActivities({ config: cfg, store }).policyLoadAdapter,
      policyReloadWeights: createPolicyActivities({ config: cfg, store }).policyReloadWeights,
      // a server that loads whole models by name (the nano policy server)
      fullWeightSync: 'by-name',
      servedModel: 'policy',
    }),
  );
  const version = `${prefix}/policies/v1`;
  await store.putJson(`${version}/config.json`, { model_type: 'gpt2' });
  await store.putBytes(
    `${version}/sub/model.safetensors`,
    Buffer.from('weights'),
    'application/octet-stream',
  );
  const input = { policy: { uri: store.uriOf(`${version}/`), version: 1 }, name: 'run-a-v1' };
  const first = await sync.policySyncWeights(input);
  assert.deepEqual([first.hostId, first.files, first.downloaded], ['h1', 2, true]);
  assert.equal(readFileSync(join(first.path, 'sub/model.safetensors'), 'utf8'), 'weights');
  assert.equal(policy.adapters.get('run-a-v1'), first.path);
  // A retry (or a second run on this host) reloads without downloading again.
  const again = await sync.policySyncWeights(input);
  assert.deepEqual([again.downloaded, again.path], [false, first.path]);
  // vLLM refuses a second load of a name: the adapter is unloaded and loaded again.
  assert.equal(policy.requests.filter((r) => r.path === '/v1/unload_lora_adapter').length, 1);
  assert.equal(policy.adapters.get('run-a-v1'), first.path);
  await rejectsWith(
    sync.policySyncWeights({
      policy: { uri: store.uriOf(`${prefix}/policies/none/`), version: 2 },
      name: 'x',
    }),
    'BadInputError',
    /policy version 2 at .* has no files/,
  );
  await rejectsWith(sync.policySyncWeights({ ...input, name: 'bad name' }), 'BadInputError', /name: /);
  assert.ok(!existsSync(join(tmp, 'cache', 'none')));
});

void test('policySyncWeights: a LoRA version loads as an adapter under its name; a full version is reloaded in place, never through the LoRA endpoint', async () => {
  const dev = await startFakePolicyServer({
    flavor: 'vllm',
    script: () => 'ok',
    devMode: true,
    model: 'base',
  });
  const plain = await startFakePolicyServer({ flavor: 'vllm', script: () => 'ok', model: 'base' });
  try {
    const syncFor = (server: FakePolicyServer) => {
      const cfg = { ...config, policy: { ...config.policy, baseUrl: `${server.url}/v1`, model: 'base' } };
      const policyActs = createPolicyActivities({ config: cfg, store });
      return throughWorkerInterceptors(
        createPolicySyncActivities({
          store,
          cacheDir: join(tmp, `cache-${server.url.split(':').at(-1)}`),
          hostId: 'h2',
          policyLoadAdapter: policyActs.policyLoadAdapter,
          policyReloadWeights: policyActs.policyReloadWeights,
          fullWeightSync: 'reload',
          servedModel: 'base',
        }),
      );
    };
    const lora = `${prefix}/policies/lora-v1`;
    await store.putJson(`${lora}/adapter_config.json`, { peft_type: 'LORA', r: 8 });
    await store.putBytes(`${lora}/adapter_model.safetensors`, Buffer.from('a'), 'application/octet-stream');
    const full = `${prefix}/policies/full-v2`;
    await store.putJson(`${full}/config.json`, { model_type: 'qwen2_5_vl' });
    await store.putBytes(`${full}/model.safetensors`, Buffer.from('w'), 'application/octet-stream');

    const sync = syncFor(dev);
    const a = await sync.policySyncWeights({
      policy: { uri: store.uriOf(`${lora}/`), version: 1 },
      name: 'run-b-v1',
    });
    assert.deepEqual([a.how, a.served], ['adapter', 'run-b-v1']);
    assert.equal(dev.adapters.get('run-b-v1'), a.path);
    const loadsBefore = dev.requests.filter((r) => r.path === '/v1/load_lora_adapter').length;
    const f = await sync.policySyncWeights({
      policy: { uri: store.uriOf(`${full}/`), version: 2 },
      name: 'run-b-v2',
    });
    // the server reloads the folder and keeps serving under its own name; the LoRA endpoint is not called
    assert.deepEqual([f.how, f.served], ['reload', 'base']);
    assert.deepEqual(dev.reloads, [f.path]);
    // what the old weights computed is dropped: image embeddings and the KV prefix cache
    assert.deepEqual(dev.resets, ['encoder', 'prefix']);
    assert.equal(dev.requests.filter((r) => r.path === '/v1/load_lora_adapter').length, loadsBefore);
    assert.ok(!dev.adapters.has('run-b-v2'));
    // a model whose LM head is tied to its embedding: vLLM's reload would serve neither version
    const tied = `${prefix}/policies/tied-v3`;
    await store.putJson(`${tied}/config.json`, {
      model_type: 'qwen2_5_vl',
      text_config: { tie_word_embeddings: true },
    });
    await rejectsWith(
      sync.policySyncWeights({ policy: { uri: store.uriOf(`${tied}/`), version: 3 }, name: 'run-b-v3' }),
      'ConfigError',
      /ties its LM head to its input embedding .* Train LoRA/,
    );
    assert.deepEqual(dev.reloads, [f.path]);
    // a vLLM without VLLM_SERVER_DEV_MODE: the error says what to do
    await rejectsWith(
      syncFor(plain).policySyncWeights({
        policy: { uri: store.uriOf(`${full}/`), version: 2 },
        name: 'run-b-v2',
      }),
      'ConfigError',
      /cannot reload full weights \(HTTP 404\): start vLLM with VLLM_SERVER_DEV_MODE=1/,
    );
  } finally {
    await Promise.all([dev.close(), plain.close()]);
  }
});

/** Every file under a folder, by its path relative to it, with its text. */
function filesUnder(folder: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(folder, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) {
      const path = join(e.parentPath, e.name);
      out[relative(folder, path)] = readFileSync(path, 'utf8');
    }
  }
  return out;
}

/** Stores files under `dir` and returns them as a manifest's `files`. */
async function putFiles(dir: string, files: Record<string, string>) {
  const listed: Record<string, { sha256: string; bytes: number }> = {};
  for (const [rel, text] of Object.entries(files)) {
    await store.putBytes(`${dir}${rel}`, Buffer.from(text), 'application/octet-stream');
    listed[rel] = { sha256: createHash('sha256').update(text).digest('hex'), bytes: Buffer.byteLength(text) };
  }
  return listed;
}

void test('policySyncWeights: downloads exactly the files the manifest lists, from the attempt it names; stray attempt folders are never read; an old-layout version still reads', async () => {
  const sync = throughWorkerInterceptors(
    createPolicySyncActivities({
      store,
      cacheDir: join(tmp, 'cache-attempts'),
      hostId: 'h3',
      policyLoadAdapter: async () => ({ loaded: true, alreadyLoaded: false }),
      policyReloadWeights: async () => ({ reloaded: true }),
      fullWeightSync: 'by-name',
      servedModel: 'policy',
    }),
  );
  const committed = { 'config.json': '{"model_type": "gpt2"}', 'sub/model.safetensors': 'committed weights' };
  // A version whose retry (attempt 2) committed while the timed-out attempt 1 kept writing its own
  // folder with other bytes, and an attempt 3 left an unfinished folder.
  const v = `${prefix}/policies/attempts-v1/`;
  const files = await putFiles(`${v}attempts/2-b2b2/`, committed);
  await putFiles(`${v}attempts/1-a1a1/`, {
    'config.json': '{"model_type": "gpt2"}',
    'sub/model.safetensors': 'zombie weights',
    'extra.bin': 'x',
  });
  await putFiles(`${v}attempts/3-c3c3/`, { 'sub/model.safetensors': 'unfinished' });
  const manifest = JSON.stringify({
    schema: 'segflow.policy/1',
    version: 1,
    files,
    filesDir: 'attempts/2-b2b2/',
  });
  await store.putBytes(`${v}${POLICY_MANIFEST_FILE}`, Buffer.from(manifest), 'application/json');
  const r = await sync.policySyncWeights({ policy: { uri: store.uriOf(v), version: 1 }, name: 'run-c-v1' });
  assert.equal(r.files, 2);
  assert.deepEqual(filesUnder(r.path), {
    ...committed,
    [POLICY_MANIFEST_FILE]: manifest,
    '.complete': store.uriOf(v),
  });

  // A version written before attempts had folders: its files are in the version folder itself (a
  // stray attempts/ folder there is not among them).
  const old = `${prefix}/policies/old-v2/`;
  const oldFiles = await putFiles(old, committed);
  await putFiles(`${old}attempts/9-9999/`, { 'sub/model.safetensors': 'stray' });
  const oldManifest = JSON.stringify({ schema: 'segflow.policy/1', version: 2, files: oldFiles });
  await store.putBytes(`${old}${POLICY_MANIFEST_FILE}`, Buffer.from(oldManifest), 'application/json');
  const o = await sync.policySyncWeights({ policy: { uri: store.uriOf(old), version: 2 }, name: 'run-c-v2' });
  assert.deepEqual(filesUnder(o.path), {
    ...committed,
    [POLICY_MANIFEST_FILE]: oldManifest,
    '.complete': store.uriOf(old),
  });

  // A folder without a manifest (a run's initial policy): all of it but an attempts/ folder.
  const initial = `${prefix}/policies/initial-v0/`;
  await putFiles(initial, committed);
  await putFiles(`${initial}attempts/1-0000/`, { 'model.safetensors': 'unfinished' });
  const i = await sync.policySyncWeights({
    policy: { uri: store.uriOf(initial), version: 0 },
    name: 'run-c-v0',
  });
  assert.deepEqual(filesUnder(i.path), { ...committed, '.complete': store.uriOf(initial) });

  // A stored file that is not the one the manifest committed is refused, not served.
  const bad = `${prefix}/policies/bad-v3/`;
  const badFiles = await putFiles(`${bad}attempts/1-dddd/`, committed);
  await store.putBytes(
    `${bad}attempts/1-dddd/sub/model.safetensors`,
    Buffer.from('overwritten'),
    'application/octet-stream',
  );
  await store.putJson(`${bad}${POLICY_MANIFEST_FILE}`, { files: badFiles, filesDir: 'attempts/1-dddd/' });
  await assert.rejects(
    sync.policySyncWeights({ policy: { uri: store.uriOf(bad), version: 3 }, name: 'run-c-v3' }),
    /sub\/model\.safetensors has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}/,
  );
  // A manifest whose folder or names would leave the version folder is refused.
  for (const [n, doc] of [
    [4, { files: badFiles, filesDir: '../other/' }],
    [5, { files: { '../../x': { sha256: 'a', bytes: 1 } } }],
  ] as const) {
    const escape = `${prefix}/policies/escape-v${n}/`;
    await store.putJson(`${escape}${POLICY_MANIFEST_FILE}`, doc);
    await rejectsWith(
      sync.policySyncWeights({ policy: { uri: store.uriOf(escape), version: n }, name: `run-c-v${n}` }),
      'BadInputError',
      /the manifest of policy version .* does not list its files: (filesDir: "attempts\/<attempt>\/"|files\.\.\.\/\.\.\/x: Invalid key)/,
    );
  }
});

void test("policySyncWeights: a host keeps a run's newest keepVersions versions; older folders go and their adapters are unloaded", async () => {
  const cfg = { ...config, policy: { ...config.policy, baseUrl: `${policy.url}/v1` } };
  const policyActs = createPolicyActivities({ config: cfg, store });
  const cacheDir = join(tmp, 'cache-evict');
  const sync = throughWorkerInterceptors(
    createPolicySyncActivities({
      store,
      cacheDir,
      hostId: 'h4',
      policyLoadAdapter: policyActs.policyLoadAdapter,
      policyReloadWeights: policyActs.policyReloadWeights,
      policyUnloadAdapter: policyActs.policyUnloadAdapter,
      keepVersions: 2,
      fullWeightSync: 'by-name',
      servedModel: 'policy',
    }),
  );
  const runId = uniqueId('evict');
  const paths: string[] = [];
  for (const v of [1, 2, 3]) {
    const key = PolicyKeys.version(runId, v);
    await putFiles(key, { 'adapter_config.json': '{}', 'adapter_model.safetensors': `weights ${v}` });
    const r = await sync.policySyncWeights({
      policy: { uri: store.uriOf(key), version: v },
      name: `${runId}-v${v}`,
    });
    paths.push(r.path);
  }
  assert.deepEqual(
    paths.map((p) => existsSync(p)),
    [false, true, true],
    'v1 left the host once v3 came',
  );
  assert.deepEqual(
    [1, 2, 3].map((v) => policy.adapters.has(`${runId}-v${v}`)),
    [false, true, true],
    "v1's adapter was unloaded from the server",
  );
  // asked for again (an evaluation of an old checkpoint): downloaded and loaded again
  const back = await sync.policySyncWeights({
    policy: { uri: store.uriOf(PolicyKeys.version(runId, 1)), version: 1 },
    name: `${runId}-v1`,
  });
  assert.equal(back.downloaded, true);
  assert.ok(policy.adapters.has(`${runId}-v1`));
});
