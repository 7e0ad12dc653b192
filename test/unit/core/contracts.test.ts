// core/contracts: the one definition of each cross-boundary record, id and key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  EvalKeys,
  IdLimits,
  KeyTemplates,
  PolicyKeys,
  RunKeys,
  WorkflowIds,
  isSafeId,
  policyFilesPrefix,
  policyManifestFilesSchema,
  rolloutSummarySchema,
  safeIdProblem,
  sampleKeySegment,
  toSafeId,
  trainerHyperparametersSchema,
  trainingBatchSchema,
} from '../../../core/contracts/index.js';
import { TRAINER_SCHEMA_DIR, trainerContractFiles } from '../../../core/contracts/json-schema.js';
import { repoRoot } from '../../support/paths.js';

test('the JSON Schemas the Python trainer validates against are the ones the zod contracts export', () => {
  for (const [name, text] of Object.entries(trainerContractFiles())) {
    const committed = readFileSync(join(repoRoot, TRAINER_SCHEMA_DIR, name), 'utf8');
    assert.equal(
      committed,
      text,
      `${TRAINER_SCHEMA_DIR}/${name} is stale: run \`npm run build\` and commit it`,
    );
  }
});

test('ids: one alphabet, one limit per kind, a message that names both', () => {
  assert.equal(isSafeId('run', 'r'.repeat(IdLimits.run)), true);
  assert.equal(isSafeId('run', 'r'.repeat(IdLimits.run + 1)), false);
  assert.equal(isSafeId('eval', 'e'.repeat(200)), true);
  for (const bad of ['', 'a/b', 'a b', 'é', 'x:y', '.', '..']) assert.equal(isSafeId('run', bad), false, bad);
  assert.equal(
    safeIdProblem('run', 'run id', 'a/b'),
    'run id "a/b" must be 1-100 letters, digits, ".", "_" or "-", not only dots',
  );
  // Scheduled workflow ids carry a timestamp with ":" — made into an evaluation id.
  assert.equal(toSafeId('eval', 'nightly-run-2026-01-01T03:00:00Z'), 'nightly-run-2026-01-01T03_00_00Z');
  assert.equal(toSafeId('eval', 'x'.repeat(300)).length, 200);
});

test('keys and child ids: the strings recorded histories and stored runs rely on', () => {
  // Changing any of these orphans the children of running workflows and the objects of finished runs.
  assert.equal(WorkflowIds.rolloutGroup('r1', 3, 1, 2), 'r1/step-3/gen-1/group-2');
  assert.equal(WorkflowIds.groupTrajectory('r1/step-3/gen-1/group-2', 5), 'r1/step-3/gen-1/group-2/traj-5');
  assert.equal(WorkflowIds.evaluateSample('ev', 'cat_01'), 'ev/sample-cat_01');
  assert.equal(WorkflowIds.rolloutOf('query-1'), 'query-1/rollout');
  assert.equal(
    WorkflowIds.stamped('query', new Date('2026-01-02T03:04:05.678Z')),
    'query-2026-01-02T03-04-05-678Z',
  );
  assert.equal(RunKeys.group('r1', 3, 1, 2), 'runs/r1/steps/3/groups/gen-1-group-2');
  assert.equal(RunKeys.batch('r1', 3), 'runs/r1/steps/3/batch.json');
  assert.equal(PolicyKeys.version('r1', 4), 'policies/r1/v4/');
  assert.equal(KeyTemplates.policyVersion, 'policies/{runId}/v{version}/');
  assert.equal(KeyTemplates.policyAttempt, 'policies/{runId}/v{version}/attempts/{attempt}/');
  assert.equal(EvalKeys.sampleResult('ev', 'a/b.c'), 'evals/ev/samples/a%2Fb%2Ec.json');
});

test('sample key segments: injective and one path segment', () => {
  const ids = ['cat_01', 'cat_01#0', 'a/b', 'a%2Fb', '..', 'x y', 'é*'];
  const segs = ids.map(sampleKeySegment);
  assert.equal(new Set(segs).size, ids.length);
  for (const s of segs) assert.match(s, /^[A-Za-z0-9%_~!'()-]+$/);
});

test('trainer hyperparameters: bounds and unknown keys are refused with the field named', () => {
  assert.equal(trainerHyperparametersSchema.safeParse({ runId: 'r', step: 0 }).success, true);
  const opts = { dtype: 'bfloat16', gradientCheckpointing: true, microBatchTokens: 16384 };
  assert.equal(trainerHyperparametersSchema.safeParse({ runId: 'r', step: 0, ...opts }).success, true);
  const cases: [object, RegExp][] = [
    [{ runId: 'r', step: -1 }, /step/],
    [{ runId: 'r', step: 0, clipLow: 1 }, /clipLow/],
    [{ runId: 'r', step: 0, dualClipC: 1 }, /dualClipC/],
    [{ runId: 'r', step: 0, lr: 1 }, /lr/],
    [{ runId: 'a/b', step: 0 }, /runId/],
    [
      { runId: 'r', step: 0, dtype: 'fp8' },
      /dtype.*Invalid option: expected one of \\"float32\\"\|\\"bfloat16\\"/,
    ],
    [{ runId: 'r', step: 0, microBatchTokens: 0 }, /microBatchTokens.*Too small: expected number to be >=1/],
    [{ runId: 'r', step: 0, gradientCheckpointing: 'yes' }, /gradientCheckpointing/],
  ];
  for (const [raw, field] of cases) {
    const r = trainerHyperparametersSchema.safeParse(raw);
    assert.equal(r.success, false, JSON.stringify(raw));
    assert.match(
      JSON.stringify(r.error!.issues.map((i) => [i.path, i.message, 'keys' in i ? i.keys : []])),
      field,
    );
  }
});

test('batch: a trajectory without an assistant turn or with a non-s3 image is refused', () => {
  const traj = (messages: object[]) => ({
    trajectoryId: 't',
    groupId: 'g',
    advantage: 1,
    reward: 1,
    messages,
  });
  const batch = (t: object) => ({
    schema: 'segflow.batch/1',
    runId: 'r',
    step: 0,
    policyVersion: 0,
    trajectories: [t],
  });
  const ok = traj([
    { role: 'user', content: 'q <image>', images: [{ uri: 's3://b/k.jpg' }] },
    { role: 'assistant', content: 'a' },
  ]);
  assert.equal(trainingBatchSchema.safeParse(batch(ok)).success, true);
  assert.equal(trainingBatchSchema.safeParse(batch(traj([{ role: 'user', content: 'q' }]))).success, false);
  const local = traj([
    { role: 'user', content: 'q', images: [{ uri: '/tmp/k.jpg' }] },
    { role: 'assistant', content: 'a' },
  ]);
  assert.equal(trainingBatchSchema.safeParse(batch(local)).success, false);
});

test('rollout summary: what the rollout returns parses, a summary without its trajectory does not', () => {
  const summary = {
    trajectoryId: 'r/step-0/gen-0/group-0/traj-0',
    stopReason: 'model_chose_to_finish',
    answer: { status: 'ok', keyframe: 3, box: [1, 2, 3, 4], point: [2, 3], problems: [] },
    turns: 2,
    numSearch: 1,
    searches: [{ tool: 'text_search', query: 'q', backend: 'local', cached: true }],
    policyVersion: 0,
    promptTokens: 10,
    completionTokens: 5,
    trajectory: { uri: 's3://b/t.json', sha256: 'a'.repeat(64), bytes: 1, contentType: 'application/json' },
  };
  assert.equal(rolloutSummarySchema.safeParse(summary).success, true);
  const { trajectory: _t, ...without } = summary;
  assert.equal(rolloutSummarySchema.safeParse(without).success, false);
  assert.equal(rolloutSummarySchema.safeParse({ ...summary, stopReason: 'bored' }).success, false);
});

test("a version manifest's files: where they are (the committed attempt's folder) and names that stay inside it", () => {
  const files = {
    'config.json': { sha256: 'a', bytes: 1 },
    'sub/model.safetensors': { sha256: 'b', bytes: 2 },
  };
  const attempt = policyManifestFilesSchema.parse({ files, filesDir: 'attempts/2-0a1b/', other: 1 });
  assert.equal(policyFilesPrefix('policies/r/v3/', attempt), 'policies/r/v3/attempts/2-0a1b/');
  // written before attempts had folders: the version folder itself
  assert.equal(
    policyFilesPrefix('policies/r/v3', policyManifestFilesSchema.parse({ files })),
    'policies/r/v3/',
  );
  for (const filesDir of [
    '../x/',
    'attempts/../../x/',
    'attempts/a',
    '/attempts/a/',
    'other/a/',
    'attempts/a/b/',
  ])
    assert.equal(policyManifestFilesSchema.safeParse({ files, filesDir }).success, false, filesDir);
  for (const name of ['../x', 'a/../../x', '/etc/passwd', './a', 'a\\..\\b', 'a/./b', ''])
    assert.equal(
      policyManifestFilesSchema.safeParse({ files: { [name]: files['config.json'] } }).success,
      false,
      name,
    );
  for (const name of ['model.safetensors', 'a/b.c', '..a', 'a..b/c'])
    assert.equal(
      policyManifestFilesSchema.safeParse({ files: { [name]: files['config.json'] } }).success,
      true,
      name,
    );
});
