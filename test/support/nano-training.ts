// The nano world set up for training, as test/integration/nano-training.test.ts and
// bench/pipeline.bench.ts use it: the world published into S3, the nano policy server (the GPU
// boundary), a TS worker process (all roles) and the Python trainer worker (nano policy family).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Client } from '@temporalio/client';
import { TaskQueues } from '../../core/queues.js';
import type { ArtifactStore } from '../../activities/storage/artifact-store.js';
import { publishNanoWorld, type NanoPublished } from '../../cli/commands/nano.js';
import type { TrainingRunResult } from '../../workflows/training-run.js';
import type { TrainingConfigInput } from '../../workflows/training-config.js';
import { repoRoot } from './paths.js';
import { nanoDir, startNanoPolicyServer } from './nano.js';
import { startWorkerProcess, stopProcesses, type WorkerProcess } from './stack.js';
import { nanoTrainerEnv, startTrainerProcess } from './training.js';

/** nano/train-config.json: the nano world's GRPO settings. */
export const nanoTrainConfig = JSON.parse(
  readFileSync(join(repoRoot, 'nano', 'train-config.json'), 'utf8'),
) as Partial<TrainingConfigInput> & { rollout?: { sampling?: { temperature?: number } } };

export interface NanoTraining {
  world: NanoPublished;
  server: { url: string; child: ChildProcess };
  worker: WorkerProcess;
  trainer: WorkerProcess;
  stop(): Promise<void>;
}

/** Publishes the nano world and starts its policy server, a worker and the trainer. */
export async function startNanoTraining(
  store: ArtifactStore,
  endpoint: string,
  opts: {
    trainLimit?: number;
    testLimit?: number;
    /** Added to the worker's environment (metrics and trace endpoints, …). */
    workerEnv?: NodeJS.ProcessEnv;
    /** Added to the trainer's environment. */
    trainerEnv?: NodeJS.ProcessEnv;
  } = {},
): Promise<NanoTraining> {
  const tmp = mkdtempSync(join(tmpdir(), 'nano-training-'));
  const t0 = Date.now();
  const world = await publishNanoWorld(store, {
    dir: nanoDir,
    trainLimit: opts.trainLimit ?? 96,
    testLimit: opts.testLimit ?? 48,
    endpoint,
  });
  console.log(`nano world ${world.build} in S3 (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  const server = await startNanoPolicyServer(join(nanoDir, 'models', 'policy', 'v0'));
  const [worker, trainer] = await Promise.all([
    startWorkerProcess([], {
      SEGFLOW_POLICY_URL: server.url,
      // the nano policy server loads each full version by name
      SEGFLOW_POLICY_FULL_WEIGHT_SYNC: 'by-name',
      SEGFLOW_POLICY_MODEL: 'nano-policy',
      SEGFLOW_POLICY_MAX_MODEL_LEN: '640',
      SEGFLOW_SEGMENT_MODELS_DIR: join(nanoDir, 'models', 'sam2'),
      SEGFLOW_SEARCH_CORPUS: world.corpus,
      SEGFLOW_SEARCH_BACKEND: 'local',
      SEGFLOW_TRAINING_POLICY_CACHE_DIR: join(tmp, 'policy-cache'),
      ...opts.workerEnv,
    }),
    startTrainerProcess({
      SEGFLOW_TRAINER_WORK_DIR: join(tmp, 'trainer-work'),
      ...nanoTrainerEnv(),
      ...opts.trainerEnv,
    }),
  ]);
  return {
    world,
    server,
    worker,
    trainer,
    async stop() {
      await stopProcesses([worker, trainer]);
      server.child.kill('SIGKILL');
    },
  };
}

/** A trainingRun of nano/train-config.json from the published SFT policy; resolves with its result and wall time. */
export async function runNanoTraining(
  client: Client,
  world: NanoPublished,
  runId: string,
  overrides: Partial<TrainingConfigInput> & { steps: number; seed: number },
): Promise<{ run: TrainingRunResult; seconds: number }> {
  const t0 = Date.now();
  const run = (await client.workflow.execute('trainingRun', {
    taskQueue: TaskQueues.orchestrator,
    workflowId: runId,
    args: [
      {
        runId,
        config: {
          ...nanoTrainConfig,
          dataset: world.train,
          initialPolicy: { uri: world.policy, model: 'nano-policy' },
          ...overrides,
        } as TrainingConfigInput,
      },
    ],
    workflowExecutionTimeout: '40 minutes',
  })) as TrainingRunResult;
  return { run, seconds: (Date.now() - t0) / 1000 };
}
