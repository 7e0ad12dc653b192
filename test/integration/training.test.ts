// trainingRun on the real dev stack: a real TS worker process (all roles), the real Python trainer
// worker updating a tiny GPT-2-style model built from scratch, a scripted OpenAI-compatible policy
// server (the GPU boundary) that also receives the weight syncs, and a small prepared dataset of
// real photos. Checks versions, metrics, status, DAPO resampling, bounded history, outages, failed
// trajectories and `segr train resume`. The faults compared with an undisturbed run (workers, the
// trainer, Temporal and S3 killed, hosts replaced, a deploy) are the chaos suite's (test/chaos).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { TaskQueues } from '../../core/queues.js';
import type { TrainingConfigInput } from '../../workflows/training-config.js';
import type { TrainingRunResult, TrainingStatus } from '../../workflows/training-run.js';
import {
  error as policyError,
  startFakePolicyServer,
  type FakePolicyServer,
} from '../servers/openai-server.js';
import { startRetrieval } from '../servers/search-servers.js';
import type { LocalServer, Reply } from '../servers/http-server.js';
import { repoRoot } from '../support/paths.js';
import { trainingScript } from '../support/scripted-policies.js';
import {
  startWorkerProcess,
  testClient,
  testConfig,
  testStore,
  uniqueId,
  type WorkerProcess,
  stopProcesses,
} from '../support/stack.js';
import {
  prepareTrainingDataset,
  startTrainerProcess,
  uploadTinyModel,
  waitTrainingStatus,
} from '../support/training.js';

const config = testConfig();
const store = testStore(config);
const tmp = mkdtempSync(join(tmpdir(), 'segflow-training-it-'));
let client: Client;
let policy: FakePolicyServer;
let retrieval: LocalServer;
let worker: WorkerProcess | undefined;
let trainer: WorkerProcess | undefined;
let dataset: string;
let initialPolicy: string;
let workerEnv: NodeJS.ProcessEnv;
let trainerEnv: NodeJS.ProcessEnv;
/** Fault injection: a reply in place of the policy server's normal one (an outage, a broken trajectory). */
let refuse: ((path: string, body: Record<string, unknown>) => Reply | undefined) | undefined;

/** Runs the CLI in this namespace and returns its stdout. */
function segr(...args: string[]): string {
  return execFileSync(process.execPath, [join(repoRoot, 'bin/segr.js'), ...args], { encoding: 'utf8' });
}

async function restartWorker(): Promise<void> {
  if (worker) {
    worker.child.kill('SIGKILL');
    await worker.exited;
  }
  worker = await startWorkerProcess([], workerEnv);
}

async function restartTrainer(): Promise<void> {
  if (trainer) {
    trainer.child.kill('SIGKILL');
    await trainer.exited;
  }
  trainer = await startTrainerProcess(trainerEnv);
}

before(async () => {
  client = await testClient(config);
  policy = await startFakePolicyServer({
    flavor: 'vllm',
    script: trainingScript,
    refuse: (path, body) => refuse?.(path, body),
  });
  retrieval = await startRetrieval({
    documents: [{ id: '1', contents: 'Winning car\nThe orange car won the race.' }],
    text: (d) => String(d.contents),
  });
  workerEnv = {
    SEGFLOW_POLICY_URL: `${policy.url}/v1`,
    // the fake server loads full versions by name through its LoRA endpoint, as the nano server does
    SEGFLOW_POLICY_FULL_WEIGHT_SYNC: 'by-name',
    RETRIEVER_URL: `${retrieval.url}/retrieve`,
    SEGFLOW_TRAINING_POLICY_CACHE_DIR: join(tmp, 'policy-cache'),
  };
  trainerEnv = {
    SEGFLOW_TRAINER_WORK_DIR: join(tmp, 'trainer-work'),
    SEGFLOW_TRAINER_THREADS: '1',
    SEGFLOW_TRAINER_HEARTBEAT_SECONDS: '1',
  };
  const [, datasetUri, modelUri] = await Promise.all([
    Promise.all([restartWorker(), restartTrainer()]),
    prepareTrainingDataset(store, join(tmp, 'dataset'), [
      { id: 'cars', image: 'cars.jpg', query: 'the car that won [search]', ability: 'one-hop' },
      { id: 'truck', image: 'truck.jpg', query: 'the truck' },
      { id: 'groceries', image: 'groceries.jpg', query: 'the groceries [constant]' },
    ]),
    uploadTinyModel(store, join(tmp, 'tiny'), `test/training/${uniqueId('tiny')}`),
  ]);
  dataset = datasetUri;
  initialPolicy = modelUri;
});

after(async () => {
  await stopProcesses([worker, trainer]);
  await Promise.all([policy.close(), retrieval.close()]);
  await client.connection.close();
  store.client.destroy();
});

function runConfig(extra: Partial<TrainingConfigInput> = {}): TrainingConfigInput {
  return {
    dataset,
    initialPolicy: { uri: initialPolicy },
    steps: 3,
    groupSize: 4,
    promptsPerStep: 2,
    seed: 11,
    learningRate: 5e-3,
    dapo: { enabled: true, maxGenerationBatches: 3 },
    loss: { clipHigh: 0.3 },
    trainer: { heartbeatTimeoutSeconds: 3, maxLength: 2048, miniBatches: 2 },
    rollout: { search: { backend: 'retrieval' } },
    ...extra,
  };
}

async function startRun(runId: string, cfg: TrainingConfigInput): Promise<WorkflowHandle> {
  return client.workflow.start('trainingRun', {
    taskQueue: TaskQueues.orchestrator,
    workflowId: runId,
    args: [{ runId, config: cfg }],
    workflowExecutionTimeout: '10 minutes',
  });
}

/** Polls the status query (following continue-as-new) until `until` holds. */
const waitStatus = (runId: string, until: (s: TrainingStatus) => boolean, what: string) =>
  waitTrainingStatus(client, runId, until, what);

interface StepMetricsDoc {
  step: number;
  policyVersion: number;
  droppedGroups: number;
  keptGroups: number;
  generationBatches: number;
  weightsSha256: string;
  pipelined: boolean;
  staleness: number | null;
  sampledFrom: number | null;
  rollouts: {
    trajectories: number;
    failedTrajectories: number;
    reward: { total: { mean: number } };
    searchesPerTrajectory: { mean: number };
    stopReasons: Record<string, number>;
    responseTokens: { mean: number };
  };
  trainer: { reused: boolean; responseTokens: number; logProbShift: { positive: number | null } };
  timings: { rolloutMs: number; updateMs: number; syncMs: number };
}

async function stepMetrics(runId: string, steps = 3): Promise<StepMetricsDoc[]> {
  const out: StepMetricsDoc[] = [];
  for (let k = 0; k < steps; k++)
    out.push(await store.getJson<StepMetricsDoc>(`runs/${runId}/steps/${k}/metrics.json`));
  return out;
}

test(
  'a 3-step run: three new policy versions, weight syncs reach the policy server, metrics in S3 and in the status query, DAPO resamples, history bounded by continue-as-new',
  { timeout: 180_000 },
  async () => {
    const runId = uniqueId('it-train');
    const syncsBefore = policy.requests.filter((r) => r.path === '/v1/load_lora_adapter').length;
    const handle = await startRun(runId, runConfig());
    const mid = await waitStatus(runId, (s) => s.recent.length >= 1, 'step 0 done');
    assert.equal(mid.runId, runId);
    assert.equal(mid.steps, 3);
    assert.equal(mid.recent[0]?.policyVersion, 1);
    // Pause through the CLI: the current step finishes, then the run waits.
    assert.match(segr('train', 'pause', runId), /pausing after this step|· paused/);
    const paused = await waitStatus(runId, (s) => s.phase === 'paused', 'paused');
    await new Promise((r) => setTimeout(r, 1000));
    const still = await handle.query<TrainingStatus>('status');
    assert.deepEqual(
      [still.phase, still.step, still.policy.version],
      ['paused', paused.step, paused.policy.version],
    );
    const shown = segr('train', 'status', runId);
    assert.match(shown, new RegExp(`step ${paused.step}/3 · paused`));
    assert.match(
      shown,
      new RegExp(`policy v${paused.policy.version} \\(${runId}-v${paused.policy.version}\\)`),
    );
    assert.match(shown, /reward components: outcome \d/);
    segr('train', 'resume', runId);
    const result = (await client.workflow.getHandle(runId).result()) as TrainingRunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.steps, 3);
    assert.equal(result.policy.version, 3);
    assert.equal(result.policy.model, `${runId}-v3`);
    assert.deepEqual(
      result.recent.map((r) => r.policyVersion),
      [1, 2, 3],
    );

    // Every version went to the policy server under its name, from the host's downloaded folder.
    const syncs = policy.requests
      .filter((r) => r.path === '/v1/load_lora_adapter')
      .slice(syncsBefore)
      .map((r) => JSON.parse(r.body) as { lora_name: string; lora_path: string })
      // Runs left unfinished by an earlier, interrupted test run resume durably on this stack too.
      .filter((s) => s.lora_name.startsWith(`${runId}-`));
    assert.deepEqual(
      syncs.map((s) => s.lora_name),
      [1, 2, 3].map((v) => `${runId}-v${v}`),
    );
    assert.ok(policy.adapters.has(`${runId}-v3`));
    // Pipelined (the default maxStaleness 1): step 0 ran on v0 (the base model name), step k ≥ 1 was
    // generated during step k−1's update, on version k−1 (or, when a pause held it back, in front on
    // version k), asking for log-probs (the trainer's truncated importance ratio); v2 was never
    // sampled from: step 2 was generated during step 1's update.
    const chats = policy.requests
      .filter((r) => r.path === '/v1/chat/completions')
      .map((r) => JSON.parse(r.body) as { model: string; logprobs?: boolean })
      .filter((b) => b.model === 'policy' || b.model.startsWith(`${runId}-`));
    const models = new Set(chats.map((b) => b.model));
    for (const m of ['policy', `${runId}-v1`]) assert.ok(models.has(m), `rollouts used ${m}`);
    assert.ok(
      !models.has(`${runId}-v2`),
      'no rollout sampled from v2 (its step was generated during the update to it)',
    );
    assert.ok(
      chats.every((b) => b.logprobs === true),
      'pipelined rollouts ask for log-probs',
    );

    // Per-step metrics in S3.
    const metrics = await stepMetrics(runId);
    metrics.forEach((m, k) => {
      assert.equal(m.step, k);
      assert.equal(m.policyVersion, k + 1);
      assert.equal(m.keptGroups, 2);
      assert.ok(m.rollouts.trajectories >= 8);
      assert.ok(m.trainer.responseTokens > 0);
      assert.ok(m.timings.updateMs > 0);
      assert.match(m.weightsSha256, /^[0-9a-f]{64}$/);
      assert.ok((m.rollouts.stopReasons.model_chose_to_finish ?? 0) > 0);
      assert.equal(m.pipelined, true);
      // step k updates v_k; its groups sampled v_k (generated in front) or v_{k-1} (ahead)
      assert.equal(m.staleness, k - (m.sampledFrom ?? NaN));
      assert.ok(m.staleness === 0 || m.staleness === 1, `step ${k} staleness ${m.staleness}`);
    });
    // Step 0 has nothing to overlap; step 2 was generated during step 1's update (nothing paused it).
    assert.deepEqual([metrics[0]!.staleness, metrics[2]!.staleness, metrics[2]!.sampledFrom], [0, 1, 1]);
    // The [constant] group has no reward variance: DAPO dropped it and generated another batch.
    assert.ok(
      metrics.some((m) => m.droppedGroups > 0 && m.generationBatches > 1),
      JSON.stringify(metrics.map((m) => [m.droppedGroups, m.generationBatches])),
    );
    assert.ok(metrics.some((m) => m.rollouts.searchesPerTrajectory.mean > 0));
    // The version folders and the newest-version pointer.
    const manifest = await store.getJson<{
      version: number;
      parent: { version: number };
      weightsSha256: string;
    }>(`policies/${runId}/v3/segflow-policy.json`);
    assert.equal(manifest.parent.version, 2);
    assert.equal(manifest.weightsSha256, result.policy.weightsSha256);
    const latest = await store.getJson<{ version: number; model: string }>(`policies/${runId}/latest.json`);
    assert.deepEqual([latest.version, latest.model], [3, `${runId}-v3`]);

    // The status query answers on the finished run too.
    const final = await handle.query<TrainingStatus>('status');
    assert.equal(final.phase, 'completed');
    assert.equal(final.runs, 3, 'continue-as-new after every step');
    // Search attributes follow the run.
    const desc = await handle.describe();
    assert.deepEqual(desc.searchAttributes.SegflowPolicyVersion, [3]);
    assert.deepEqual(desc.searchAttributes.SegflowStep, [3]);

    // Bounded history: each run of the chain holds one step; none grows with the step count.
    const sizes: number[] = [];
    for await (const wf of client.workflow.list({ query: `WorkflowId = '${runId}'` })) {
      const h = await client.workflow.getHandle(runId, wf.runId).fetchHistory();
      sizes.push(h.events?.length ?? 0);
    }
    assert.equal(sizes.length, 3);
    assert.ok(Math.max(...sizes) < 200, `history sizes ${sizes.join(', ')}`);
  },
);

test(
  'stop via the CLI: the run ends after the current step with status "stopped"',
  { timeout: 90_000 },
  async () => {
    const runId = uniqueId('it-train-stop');
    await startRun(runId, runConfig({ steps: 4, groupSize: 2, promptsPerStep: 1, dapo: { enabled: false } }));
    await waitStatus(runId, (s) => s.phase === 'rollouts', 'rollouts');
    const out = segr('train', 'stop', runId);
    assert.match(out, /stopping after this step/);
    const result = (await client.workflow.getHandle(runId).result()) as TrainingRunResult;
    assert.equal(result.status, 'stopped');
    assert.equal(result.steps, 1);
    assert.equal(result.policy.version, 1);
    assert.match(segr('train', 'status', runId), /step 1\/4 · stopped/);
  },
);

test(
  'a policy server outage of 20 s during rollouts delays the run and fails nothing (retries span the outage tolerance)',
  { timeout: 240_000 },
  async () => {
    const runId = uniqueId('it-train-outage');
    const cfg = runConfig({ steps: 2, groupSize: 2, promptsPerStep: 2, dapo: { enabled: false } });
    const handle = await startRun(runId, cfg);
    // step 0's generation runs in front in both modes (pipelined, later ones overlap updates)
    await waitStatus(runId, (s) => s.step === 0 && s.phase === 'rollouts', 'step 0 rollouts');
    const started = Date.now();
    refuse = (path) =>
      path === '/v1/chat/completions' || path === '/tokenize'
        ? policyError(503, 'ServiceUnavailableError', 'the engine is restarting')
        : undefined;
    try {
      await new Promise((r) => setTimeout(r, 20_000));
    } finally {
      refuse = undefined;
    }
    const result = (await handle.result()) as TrainingRunResult;
    console.log(`# the run finished ${((Date.now() - started) / 1000).toFixed(0)} s after the outage began`);
    assert.equal(result.steps, 2);
    assert.equal(result.policy.version, 2);
    const metrics = await stepMetrics(runId, 2);
    assert.deepEqual(
      metrics.map((m) => [m.rollouts.trajectories, m.rollouts.failedTrajectories]),
      [
        [4, 0],
        [4, 0],
      ],
    );
  },
);

test(
  'a trajectory that keeps failing is a failed trajectory of its group, and the step trains on the rest; past rollout.maxFailedFraction the step fails naming the errors',
  { timeout: 240_000 },
  async () => {
    // Every trajectory whose sampling seed is 3 mod 4 gets a 500 from the server, always: one of
    // the four trajectories of each group.
    refuse = (path, body) =>
      path === '/v1/chat/completions' && typeof body.seed === 'number' && body.seed % 4 === 3
        ? policyError(500, 'InternalServerError', 'CUDA error: an illegal memory access was encountered')
        : undefined;
    try {
      const runId = uniqueId('it-train-broken-traj');
      const cfg = runConfig({
        steps: 2,
        groupSize: 4,
        promptsPerStep: 2,
        dapo: { enabled: false },
        rollout: { search: { backend: 'retrieval' }, outageToleranceSeconds: 3, maxFailedFraction: 0.5 },
      });
      const result = (await (await startRun(runId, cfg)).result()) as TrainingRunResult;
      assert.equal(result.policy.version, 2, 'both steps trained');
      const metrics = await stepMetrics(runId, 2);
      for (const m of metrics) {
        assert.equal(m.rollouts.trajectories + m.rollouts.failedTrajectories, 8);
        assert.equal(m.rollouts.failedTrajectories, 2, 'one of four trajectories per group');
      }

      // The same fault with the default fraction (0.2 < 2/8): the first step fails and says why.
      const strict = uniqueId('it-train-too-many-failed');
      const handle = await startRun(strict, {
        ...cfg,
        rollout: { search: { backend: 'retrieval' }, outageToleranceSeconds: 3 },
      });
      await assert.rejects(
        handle.result(),
        (err: Error & { cause?: { message?: string; type?: string } }) => {
          assert.equal(err.cause?.type, 'TrajectoriesFailed');
          assert.match(
            err.cause?.message ?? '',
            /step 0: 2 of 8 trajectories failed after their retries, more than rollout.maxFailedFraction = 0.2/,
          );
          assert.match(err.cause?.message ?? '', /CUDA error: an illegal memory access/);
          return true;
        },
      );
    } finally {
      refuse = undefined;
    }
  },
);

test(
  '`segr train resume` continues a failed run from its last finished step (policy version, cursor, trainer state); a completed run has nothing to resume',
  { timeout: 240_000 },
  async () => {
    const runId = uniqueId('it-train-resume-failed');
    const cfg = runConfig({
      steps: 3,
      groupSize: 2,
      promptsPerStep: 2,
      dapo: { enabled: false },
      rollout: { search: { backend: 'retrieval' }, outageToleranceSeconds: 3 },
    });
    const handle = await startRun(runId, cfg);
    await waitStatus(runId, (s) => s.recent.length >= 1, 'step 0 recorded');
    // The policy server breaks for good after step 0: every trajectory of the next generation
    // fails, and so does its step (pipelined, that generation may have begun during step 0's
    // update, or be done already: the run fails at step 1 or 2).
    refuse = (path) =>
      path === '/v1/chat/completions' ? policyError(500, 'InternalServerError', 'engine dead') : undefined;
    try {
      await assert.rejects(handle.result(), (err: Error & { cause?: { type?: string } }) => {
        assert.equal(err.cause?.type, 'TrajectoriesFailed');
        return true;
      });
    } finally {
      refuse = undefined;
    }
    const finished = [];
    for (let k = 0; k < 3; k++) {
      const head = await store.head(`runs/${runId}/steps/${k}/metrics.json`);
      if (head) finished.push(head);
    }
    const k = finished.length;
    assert.ok(k === 1 || k === 2, `${k} steps finished before the failure`);
    const out = segr('train', 'resume', runId);
    assert.match(out, new RegExp(`had ended \\(FAILED\\); continuing from step ${k} on policy v${k}`));
    const result = (await client.workflow.getHandle(runId).result()) as TrainingRunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.steps, 3);
    assert.equal(
      result.policy.version,
      3,
      `v${k} was continued from, never remade (no PolicyVersionConflict)`,
    );
    for (const [j, head] of finished.entries())
      assert.equal(
        (await store.head(`runs/${runId}/steps/${j}/metrics.json`))?.sha256,
        head.sha256,
        `step ${j} was not run again`,
      );
    assert.throws(() => segr('train', 'resume', runId), /completed all its 3 steps: nothing to resume/);
  },
);

test('a bad config fails the run at once with the field named', { timeout: 60_000 }, async () => {
  const runId = uniqueId('it-train-bad');
  const handle = await startRun(runId, { ...runConfig(), groupSize: 0 });
  await assert.rejects(handle.result(), (err: Error & { cause?: { message?: string; type?: string } }) => {
    assert.match(err.cause?.message ?? '', /training config of run .* is invalid: groupSize: /);
    assert.equal(err.cause?.type, 'BadInputError');
    return true;
  });
  // The CLI says the run failed and why, with its Web UI link, instead of showing a last phase.
  const shown = segr('train', 'status', runId);
  assert.match(shown, new RegExp(`trainingRun ${runId} failed`));
  assert.match(
    shown,
    /caused by ApplicationFailure BadInputError\b.*: training config of run .* is invalid: groupSize: /,
  );
  assert.match(shown, /web ui: http/);
  // A watch on it ends at once, non-zero.
  const watch = spawnSync(
    process.execPath,
    [join(repoRoot, 'bin/segr.js'), 'train', 'status', '--watch', runId],
    {
      encoding: 'utf8',
      timeout: 30_000,
    },
  );
  assert.equal(watch.status, 1, watch.stdout + watch.stderr);
  assert.match(watch.stdout, new RegExp(`trainingRun ${runId} failed`));
});
