// Chaos on an evaluation: the world of test/integration/evaluation.test.ts (a tiny OK-VOS-layout
// dataset, a scripted vLLM-compatible policy, a local Serper — a paid backend, so the ledger counts —
// and SAM2-contract ONNX models) on the chaos dev stack. The Temporal server is killed (SIGKILL)
// while samples are being evaluated and restarted; the S3 server is stopped for 60 s while samples
// are being evaluated. Each evaluation must end with the per-sample results of the undisturbed
// evaluation, the same summary, no sample failed, each paid search counted once, and the same S3
// objects (none written twice).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { readOkVos } from '../../activities/datasets/okvos.js';
import { prepareDataset } from '../../activities/datasets/prepare.js';
import { EvalKeys, type SampleEvaluation } from '../../core/contracts/index.js';
import type { ArtifactRef } from '../../core/artifacts.js';
import { TaskQueues } from '../../core/queues.js';
import type { EvaluationInput, EvaluationResult } from '../../workflows/evaluation.js';
import { startFakePolicyServer, type FakePolicyServer } from '../servers/openai-server.js';
import { startSerper } from '../servers/search-servers.js';
import type { LocalServer } from '../servers/http-server.js';
import { writeSam2TestModels } from '../support/onnx-models.js';
import {
  startWorkerProcess,
  stopProcesses,
  testClient,
  testConfig,
  testStore,
  uniqueId,
  type WorkerProcess,
} from '../support/stack.js';
import { okvosRows, writeOkvos } from '../activity/evaluation/fixtures.js';
import { evalScript } from '../support/scripted-policies.js';
import { objectsUnder, recordScenario, restartServers, resultOf, sleep, stopServer } from './support.js';

const config = testConfig();
const store = testStore(config);
const tmp = mkdtempSync(join(tmpdir(), 'segflow-chaos-eval-'));
let client: Client;
let policy: FakePolicyServer;
let serper: LocalServer;
let worker: WorkerProcess | undefined;
let dataset: ArtifactRef;

const rows = new Map(okvosRows.map((r) => [r.id, r] as const));

before(async () => {
  client = await testClient(config);
  const parquet = await writeOkvos(join(tmp, 'okvos'));
  dataset = (
    await prepareDataset(store, await readOkVos(parquet), { format: 'okvos', split: 'test', source: parquet })
  ).index;
  policy = await startFakePolicyServer({ flavor: 'vllm', script: (m) => evalScript(rows, m) });
  serper = await startSerper({
    apiKey: 'serper-test-key',
    docs: [
      { title: 'Champion car', snippet: 'The champion drove the red car.', link: 'https://example.com/c' },
    ],
  });
  worker = await startWorkerProcess([], {
    SEGFLOW_POLICY_URL: `${policy.url}/v1`,
    SEGFLOW_SEGMENT_MODELS_DIR: await writeSam2TestModels(join(tmp, 'models')),
    SEGFLOW_SERPER_URL: serper.url,
    SERPER_API_KEY: 'serper-test-key',
    // every search reaches the paid backend, so the ledger has something to count
    SEGFLOW_SEARCH_CACHE: 'false',
  });
});

after(async () => {
  await stopProcesses([worker]);
  await Promise.all([policy.close(), serper.close()]);
  await client.connection.close();
  store.client.destroy();
});

function input(evalId: string): EvaluationInput {
  return {
    evalId,
    dataset: dataset.uri,
    policy: { model: 'policy', version: 1 },
    search: { backend: 'serper' },
    concurrency: 2,
    searchPrices: { serper: 0.001 },
    gallery: 2,
  };
}

interface Outcome {
  result: EvaluationResult;
  samples: string[];
  objects: string[];
}

async function outcome(evalId: string): Promise<Outcome> {
  const result = await resultOf<EvaluationResult>(client, evalId);
  const samples: string[] = [];
  for await (const o of store.list(EvalKeys.samplesPrefix(evalId))) {
    if (!/\/samples\/[^/]+\.json$/.test(o.key)) continue;
    const s = await store.getJson<SampleEvaluation>(o.key);
    samples.push(JSON.stringify([s.sampleId, s.J, s.F, s.JF, s.answerStatus, s.frames.length]));
  }
  const objects = [
    ...(await objectsUnder(store, `evals/${evalId}/`, evalId)),
    ...(await objectsUnder(store, `runs/${evalId}/`, evalId)),
  ];
  return { result, samples: samples.sort(), objects };
}

let undisturbed: Outcome | undefined;

test('undisturbed: an OK-VOS evaluation (the reference)', { timeout: 300_000 }, async () => {
  const evalId = uniqueId('chaos-eval-ref');
  await client.workflow.start('evaluation', {
    taskQueue: TaskQueues.orchestrator,
    workflowId: evalId,
    args: [input(evalId)],
  });
  undisturbed = await outcome(evalId);
  assert.equal(undisturbed.samples.length, okvosRows.length);
  assert.equal(undisturbed.result.metrics.search.paidCalls, 2);
  recordScenario('undisturbed: an OK-VOS evaluation (the reference)', [
    `${undisturbed.samples.length} samples, J&F ${undisturbed.result.metrics.vos?.overall.JF}`,
  ]);
});

/** Starts an evaluation and returns once some, not all, of its samples are stored. */
async function startAndWaitForFirstSample(evalId: string): Promise<void> {
  await client.workflow.start('evaluation', {
    taskQueue: TaskQueues.orchestrator,
    workflowId: evalId,
    args: [input(evalId)],
  });
  const deadline = Date.now() + 120_000;
  for (;;) {
    const n = await objectsUnder(store, EvalKeys.samplesPrefix(evalId), evalId);
    if (n.some((k) => /\/samples\/[^/]+\.json$/.test(k))) return;
    assert.ok(Date.now() < deadline, 'no sample result appeared');
    await sleep(100);
  }
}

/** The evaluation ended as the undisturbed one did; the lines the chaos report records. */
function assertAsUndisturbed(got: Outcome): string[] {
  assert.ok(undisturbed, 'needs the undisturbed evaluation');
  assert.deepEqual(got.samples, undisturbed.samples, 'per-sample J, F, J&F, answer status, frames');
  const m = got.result.metrics;
  const want = undisturbed.result.metrics;
  assert.deepEqual(m.vos, want.vos, 'per-ability and overall J/F/J&F');
  assert.deepEqual(
    [m.search.calls, m.search.paidCalls, m.search.costUsd, m.samples.errors, m.samples.failed ?? 0],
    [want.search.calls, want.search.paidCalls, want.search.costUsd, want.samples.errors, 0],
    'searches and the paid-call ledger: nothing counted twice; no sample failed',
  );
  assert.deepEqual(got.objects, undisturbed.objects, 'the same S3 objects, none twice');
  return [
    `${got.samples.length} per-sample results (J, F, J&F, answer status, frames) = undisturbed, none failed`,
    'per-ability and overall metrics = undisturbed',
    `search calls ${m.search.calls}, paid ${m.search.paidCalls}, cost $${m.search.costUsd} = undisturbed`,
    `${got.objects.length} S3 objects under evals/<id>/ and runs/<id>/ = undisturbed`,
  ];
}

test(
  'the Temporal server killed (SIGKILL) in the middle of an evaluation and restarted',
  { timeout: 400_000 },
  async () => {
    const evalId = uniqueId('chaos-eval');
    await startAndWaitForFirstSample(evalId);
    await stopServer('temporal', 'SIGKILL');
    await sleep(5000);
    await restartServers();
    recordScenario(
      'the Temporal server killed (SIGKILL) in the middle of an evaluation and restarted',
      assertAsUndisturbed(await outcome(evalId)),
    );
  },
);

test('the S3 server stopped for 60 s in the middle of an evaluation', { timeout: 500_000 }, async () => {
  const evalId = uniqueId('chaos-eval-s3');
  await startAndWaitForFirstSample(evalId);
  await stopServer('s3', 'SIGTERM');
  await sleep(60_000);
  await restartServers();
  recordScenario(
    'the S3 server stopped for 60 s in the middle of an evaluation',
    assertAsUndisturbed(await outcome(evalId)),
  );
});
