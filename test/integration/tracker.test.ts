// The experiment tracker on the real dev stack: a 2-step trainingRun (the tiny model of
// training.test.ts, trained by the real Python trainer worker) with `tracker: {backends: [mlflow,
// tensorboard]}`, a real MLflow server from PyPI (.venv/trackers), and the logged metrics read back
// through MlflowClient and TensorBoard's EventAccumulator: one run named by the segflow run id,
// every step once, every value equal to the step's metrics.json.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { TaskQueues } from '../../core/queues.js';
import { flattenMetrics } from '../../core/tracking.js';
import type { TrainingConfigInput } from '../../workflows/training-config.js';
import type { TrainingRunResult } from '../../workflows/training-run.js';
import { startFakePolicyServer, type FakePolicyServer, type WireMessage } from '../servers/openai-server.js';
import {
  startWorkerProcess,
  testClient,
  testConfig,
  testStore,
  uniqueId,
  type WorkerProcess,
  stopProcesses,
} from '../support/stack.js';
import { prepareTrainingDataset, startTrainerProcess, uploadTinyModel } from '../support/training.js';
import {
  mlflowHistory,
  startMlflowServer,
  tensorboardHistory,
  type MetricHistory,
  type MlflowServer,
} from '../support/trackers.js';

const config = testConfig();
const store = testStore(config);
const tmp = mkdtempSync(join(tmpdir(), 'segflow-tracker-it-'));
const tensorboardDir = join(tmp, 'tensorboard');
let client: Client;
let policy: FakePolicyServer;
let mlflow: MlflowServer;
let worker: WorkerProcess;
let trainer: WorkerProcess;
let dataset: string;
let initialPolicy: string;

function textOf(m: WireMessage | undefined): string {
  if (!m) return '';
  return typeof m.content === 'string' ? m.content : m.content.map((p) => p.text ?? '').join('');
}

/** A keyframe, then a box that hits the target for even seeds and misses for odd ones (reward variance). */
function script(messages: WireMessage[], _model: string, body: Record<string, unknown>): string {
  const fid = [...textOf(messages[1]).matchAll(/frame (\d+)/g)].map((m) => Number(m[1]))[0] ?? 0;
  if (!messages.some((m) => m.role === 'assistant'))
    return `<thinking>Frame ${fid} shows it.</thinking>\n<keyframe> ${fid} </keyframe>`;
  const box =
    typeof body.seed === 'number' && body.seed % 2 === 1 ? '[10, 10, 60, 60]' : '[200, 250, 700, 800]';
  return `<thinking>There it is.</thinking>\n<answer> {"bbox_2d": ${box}, "point_2d": [450, 500]} </answer>`;
}

before(async () => {
  client = await testClient(config);
  [policy, mlflow] = await Promise.all([
    startFakePolicyServer({ flavor: 'vllm', script }),
    startMlflowServer(),
  ]);
  [worker, trainer, dataset, initialPolicy] = await Promise.all([
    startWorkerProcess([], {
      SEGFLOW_POLICY_URL: `${policy.url}/v1`,
      // the fake server loads full versions by name through its LoRA endpoint, as the nano server does
      SEGFLOW_POLICY_FULL_WEIGHT_SYNC: 'by-name',
      SEGFLOW_TRAINING_POLICY_CACHE_DIR: join(tmp, 'policy-cache'),
    }),
    startTrainerProcess({
      SEGFLOW_TRAINER_WORK_DIR: join(tmp, 'trainer-work'),
      SEGFLOW_TRAINER_THREADS: '1',
      SEGFLOW_TRAINER_HEARTBEAT_SECONDS: '1',
      SEGFLOW_TRACKER_MLFLOW_URI: mlflow.uri,
      SEGFLOW_TRACKER_TENSORBOARD_DIR: tensorboardDir,
    }),
    prepareTrainingDataset(store, join(tmp, 'dataset'), [
      { id: 'truck', image: 'truck.jpg', query: 'the truck' },
      { id: 'cars', image: 'cars.jpg', query: 'the car that won' },
    ]),
    uploadTinyModel(store, join(tmp, 'tiny'), `test/tracker/${uniqueId('tiny')}`),
  ]);
});

after(async () => {
  await stopProcesses([worker, trainer]);
  await Promise.all([policy?.close(), mlflow?.close()]);
  await client.connection.close();
  store.client.destroy();
});

test(
  'a 2-step run logs every step once to MLflow and TensorBoard, with the values of metrics.json',
  { timeout: 240_000 },
  async () => {
    const runId = uniqueId('it-track');
    const experiment = uniqueId('segflow-it');
    const cfg: TrainingConfigInput = {
      dataset,
      initialPolicy: { uri: initialPolicy },
      steps: 2,
      groupSize: 2,
      promptsPerStep: 2,
      seed: 5,
      learningRate: 5e-3,
      trainer: { heartbeatTimeoutSeconds: 5, maxLength: 2048, miniBatches: 1 },
      tracker: { backends: ['mlflow', 'tensorboard'], experiment },
    };
    const result = (await client.workflow.execute('trainingRun', {
      taskQueue: TaskQueues.orchestrator,
      workflowId: runId,
      args: [{ runId, config: cfg }],
      workflowExecutionTimeout: '4 minutes',
    })) as TrainingRunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.policy.version, 2, 'both steps trained (reward variance in every group)');

    // What each step wrote to S3, flattened as the workflow flattens it for the trackers.
    const want: MetricHistory = {};
    for (const k of [0, 1]) {
      const doc = await store.getJson<Record<string, unknown>>(`runs/${runId}/steps/${k}/metrics.json`);
      const { schema: _s, runId: _r, step: _k, ...metrics } = doc;
      for (const [key, value] of Object.entries(flattenMetrics(metrics))) (want[key] ??= []).push([k, value]);
    }
    assert.ok(want['rollouts/reward/total/mean'] && want['trainer/loss'] && want['timings/totalMs']);

    const ml = mlflowHistory(mlflow.uri, experiment, runId);
    assert.equal(ml.runs, 1, 'one MLflow run for the segflow run');
    assert.equal(ml.name, runId);
    // every key, every step once, the exact float64 of metrics.json
    assert.deepEqual(ml.metrics, want);

    // TensorBoard keeps scalars as float32: equal to metrics.json rounded to float32
    const tb = tensorboardHistory(join(tensorboardDir, runId));
    const want32 = Object.fromEntries(
      Object.entries(want).map(([key, points]) => [key, points.map(([k, v]) => [k, Math.fround(v)])]),
    );
    assert.deepEqual(tb, want32);
  },
);
