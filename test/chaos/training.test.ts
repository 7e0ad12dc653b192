// Chaos on trainingRun (issue: days-long runs survive a GPU cluster's ordinary faults). The world of
// test/integration/training.test.ts: the chaos dev stack's real Temporal and S3 servers, real worker
// processes split as on a cluster (a CPU worker for orchestration, search, media and segmentation;
// a policy-host worker per GPU host, pinned queue `segflow-policy@<host>`), the real Python trainer
// updating a tiny GPT-2-style model, and a scripted vLLM-compatible server per policy host (the GPU
// boundary). Training is pipelined (maxStaleness 1, the default: each step after the first is
// generated during the previous update). Each scenario disturbs a 2-step run (the restarted policy
// server a 3-step one, whose last step samples a trained version) and then compares it with the
// undisturbed run of the same config: the same final weights hash, the same per-step rewards and trajectory counts,
// nothing failed, the same S3 objects under the run's prefixes (the batch the trainer read byte for
// byte), so nothing was lost, nothing counted twice, and no object was written twice.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import { TaskQueues } from '../../core/queues.js';
import type { TrainingConfigInput } from '../../workflows/training-config.js';
import type { TrainingRunResult, TrainingStatus } from '../../workflows/training-run.js';
import {
  holdLaterTurns,
  laterTurnRequests,
  startFakePolicyServer,
  type FakePolicyServer,
} from '../servers/openai-server.js';
import { startRetrieval } from '../servers/search-servers.js';
import type { LocalServer } from '../servers/http-server.js';
import { repoRoot } from '../support/paths.js';
import { trainingScript } from '../support/scripted-policies.js';
import {
  startWorkerProcess,
  stopProcesses,
  testClient,
  testConfig,
  testStore,
  uniqueId,
  type WorkerProcess,
} from '../support/stack.js';
import {
  prepareTrainingDataset,
  startTrainerProcess,
  uploadTinyModel,
  waitTrainingStatus,
} from '../support/training.js';
import { objectsUnder, recordScenario, restartServers, resultOf, sleep, stopServer } from './support.js';

const config = testConfig();
const store = testStore(config);
const tmp = mkdtempSync(join(tmpdir(), 'segflow-chaos-training-'));
let client: Client;
let retrieval: LocalServer;
let trainer: WorkerProcess | undefined;
let cpuWorker: WorkerProcess | undefined;
/** The policy host in service, its worker and its policy server. */
let host: { id: string; worker?: WorkerProcess; server: FakePolicyServer };
let dataset: string;
let initialPolicy: string;
let deployedBundle: string;
const cpuRoles = 'orchestrator,search,media,segment';

/**
 * While set, the policy servers hang on every turn after a trajectory's first (a GPU host that
 * stopped answering): trajectories are then pinned to the host and waiting on it.
 */
let hangLaterTurns = false;

/** A GPU host's policy server (a new, empty one: a replaced pod's vLLM has no adapters). */
function startPolicyServer(port?: number): Promise<FakePolicyServer> {
  return startFakePolicyServer({
    flavor: 'vllm',
    script: trainingScript,
    refuse: holdLaterTurns(() => hangLaterTurns),
    ...(port ? { port } : {}),
  });
}

function hostWorkerEnv(hostId: string, server: FakePolicyServer): NodeJS.ProcessEnv {
  return {
    SEGFLOW_WORKER_ROLES: 'policy',
    SEGFLOW_WORKER_HOST_ID: hostId,
    SEGFLOW_POLICY_URL: `${server.url}/v1`,
    SEGFLOW_POLICY_FULL_WEIGHT_SYNC: 'by-name',
    SEGFLOW_TRAINING_POLICY_CACHE_DIR: join(tmp, `policy-cache-${hostId}`),
  };
}

async function startCpuWorker(env: NodeJS.ProcessEnv = {}): Promise<void> {
  cpuWorker = await startWorkerProcess([], {
    SEGFLOW_WORKER_ROLES: cpuRoles,
    SEGFLOW_WORKER_HOST_ID: 'cpu-0',
    RETRIEVER_URL: `${retrieval.url}/retrieve`,
    ...env,
  });
}

async function startHost(id: string, server: FakePolicyServer): Promise<void> {
  host = { id, server, worker: await startWorkerProcess([], hostWorkerEnv(id, server)) };
}

async function kill(p: WorkerProcess | undefined): Promise<void> {
  if (p && p.child.exitCode === null) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
}

const trainerEnv = (): NodeJS.ProcessEnv => ({
  SEGFLOW_TRAINER_WORK_DIR: join(tmp, 'trainer-work'),
  SEGFLOW_TRAINER_THREADS: '1',
  SEGFLOW_TRAINER_HEARTBEAT_SECONDS: '1',
});

before(async () => {
  client = await testClient(config);
  retrieval = await startRetrieval({
    documents: [{ id: '1', contents: 'Winning car\nThe orange car won the race.' }],
    text: (d) => String(d.contents),
  });
  const server = await startPolicyServer();
  const [, , , datasetUri, modelUri, bundle] = await Promise.all([
    startCpuWorker(),
    startHost('gpu-a', server),
    startTrainerProcess(trainerEnv()).then((t) => (trainer = t)),
    prepareTrainingDataset(store, join(tmp, 'dataset'), [
      { id: 'cars', image: 'cars.jpg', query: 'the car that won [search]', ability: 'one-hop' },
      { id: 'truck', image: 'truck.jpg', query: 'the truck' },
      { id: 'groceries', image: 'groceries.jpg', query: 'the groceries' },
    ]),
    uploadTinyModel(store, join(tmp, 'tiny'), `test/chaos/${uniqueId('tiny')}`),
    bundleWorkflowCode({
      workflowsPath: join(repoRoot, 'dist/test/chaos/deployed/workflows.js'),
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error },
    }),
  ]);
  dataset = datasetUri;
  initialPolicy = modelUri;
  deployedBundle = join(tmp, 'deployed-workflow-bundle.js');
  await writeFile(deployedBundle, bundle.code);
});

after(async () => {
  await stopProcesses([cpuWorker, host?.worker, trainer]);
  await Promise.all([host?.server.close(), retrieval.close()]);
  await client.connection.close();
  store.client.destroy();
});

/** Two steps of two prompts × four trajectories; host affinity 5 s so a lost host shows quickly. */
function runConfig(steps = 2): TrainingConfigInput {
  return {
    dataset,
    initialPolicy: { uri: initialPolicy },
    steps,
    groupSize: 4,
    promptsPerStep: 2,
    seed: 11,
    learningRate: 5e-3,
    dapo: { enabled: false },
    loss: { clipHigh: 0.3 },
    trainer: { heartbeatTimeoutSeconds: 3, maxLength: 2048, miniBatches: 2 },
    rollout: { search: { backend: 'retrieval' }, hostAffinitySeconds: 5 },
    policyHosts: [host.id],
  };
}

async function startRun(runId: string, steps = 2): Promise<void> {
  await client.workflow.start('trainingRun', {
    taskQueue: TaskQueues.orchestrator,
    workflowId: runId,
    args: [{ runId, config: runConfig(steps) }],
    workflowExecutionTimeout: '15 minutes',
  });
}

/** Polls the status query until `until` holds. */
const waitStatus = (runId: string, until: (s: TrainingStatus) => boolean, what: string) =>
  waitTrainingStatus(client, runId, until, what, { timeoutMs: 240_000 });

interface StepMetrics {
  weightsSha256: string;
  syncFallbacks?: { host: string; to: string }[];
  rollouts: { trajectories: number; failedTrajectories: number; reward: { total: { mean: number } } };
}

interface Outcome {
  runId: string;
  result: TrainingRunResult;
  steps: StepMetrics[];
  objects: string[];
}

async function outcome(runId: string, count = 2): Promise<Outcome> {
  const result = await resultOf<TrainingRunResult>(client, runId);
  const steps = await Promise.all(
    Array.from({ length: count }, (_, k) =>
      store.getJson<StepMetrics>(`runs/${runId}/steps/${k}/metrics.json`),
    ),
  );
  // The batch (what the trainer trained on) byte for byte; every other object by key.
  const contents = (key: string) => key.endsWith('/batch.json');
  const objects = [
    ...(await objectsUnder(store, `runs/${runId}/`, runId, { contents })),
    ...(await objectsUnder(store, `policies/${runId}/`, runId)),
  ];
  return { runId, result, steps, objects };
}

let undisturbed: Outcome | undefined;
/** The undisturbed 3-step run: the reference of the scenario that needs a step sampling a trained version. */
let undisturbed3: Outcome | undefined;

/** The disturbed run ended as the undisturbed one did; returns what was compared. */
function assertSameOutcome(got: Outcome, reference = undisturbed): string[] {
  assert.ok(reference, 'needs the undisturbed run');
  const want = reference;
  assert.equal(got.result.status, 'completed');
  assert.equal(got.result.policy.version, want.result.policy.version);
  assert.equal(got.result.policy.weightsSha256, want.result.policy.weightsSha256, 'final weights');
  assert.deepEqual(
    got.steps.map((s) => [s.weightsSha256, s.rollouts.trajectories, s.rollouts.failedTrajectories]),
    want.steps.map((s) => [s.weightsSha256, s.rollouts.trajectories, s.rollouts.failedTrajectories]),
    'per-step weights and trajectory counts',
  );
  assert.deepEqual(
    got.steps.map((s) => s.rollouts.reward.total.mean),
    want.steps.map((s) => s.rollouts.reward.total.mean),
    'per-step mean reward',
  );
  assert.deepEqual(got.objects, want.objects, 'the same S3 objects (batches byte for byte), none twice');
  return [
    `final weights sha256 ${got.result.policy.weightsSha256?.slice(0, 16)} = undisturbed`,
    'per-step weights sha256, trajectories, failed trajectories (0), mean reward = undisturbed',
    `${got.objects.length} S3 objects under runs/<run>/ and policies/<run>/ = undisturbed (batch.json byte for byte)`,
  ];
}

test(
  'undisturbed: a 2-step run on the cluster layout (the reference of every scenario)',
  { timeout: 300_000 },
  async () => {
    const runId = uniqueId('chaos-ref');
    await startRun(runId);
    undisturbed = await outcome(runId);
    assert.equal(undisturbed.result.policy.version, 2);
    for (const s of undisturbed.steps) {
      assert.equal(s.rollouts.trajectories, 8);
      assert.equal(s.rollouts.failedTrajectories, 0);
    }
    recordScenario('undisturbed', [
      `final weights sha256 ${undisturbed.result.policy.weightsSha256?.slice(0, 16)}`,
    ]);
  },
);

test(
  'the Temporal server killed (SIGKILL) in the middle of a training step and restarted',
  { timeout: 400_000 },
  async () => {
    const runId = uniqueId('chaos-temporal');
    await startRun(runId);
    await waitStatus(
      runId,
      (s) => s.step === 0 && s.phase === 'rollouts' && s.groupsStarted > 0,
      'step 0 rollouts',
    );
    await sleep(1000);
    await stopServer('temporal', 'SIGKILL');
    await sleep(5000);
    await restartServers();
    recordScenario(
      'the Temporal server killed (SIGKILL) in the middle of a training step and restarted',
      assertSameOutcome(await outcome(runId)),
    );
  },
);

test('the S3 server stopped for 60 s during rollouts', { timeout: 500_000 }, async () => {
  const runId = uniqueId('chaos-s3');
  await startRun(runId);
  // pipelined, step 1's rollouts run during step 0's update (or, once it is recorded, in front)
  await waitStatus(
    runId,
    (s) => (s.ahead?.step === 1 && s.ahead.groupsStarted > 0) || (s.step === 1 && s.phase === 'rollouts'),
    'step 1 rollouts',
  );
  // an object stored before the stop is readable as soon as the stack says it is up again (a
  // restarted SeaweedFS answers S3 before its volumes are registered; the health check waits for them)
  const before = await store.putJson(`test/chaos/${runId}-before-stop.json`, { runId });
  await stopServer('s3', 'SIGTERM');
  await sleep(60_000);
  await restartServers();
  assert.deepEqual(await store.getJson(before.uri), { runId }, 'an object stored before the S3 restart');
  recordScenario('the S3 server stopped for 60 s during rollouts', assertSameOutcome(await outcome(runId)));
});

test(
  'undisturbed: a 3-step run (the reference of the restarted policy server)',
  { timeout: 300_000 },
  async () => {
    const runId = uniqueId('chaos-ref3');
    await startRun(runId, 3);
    undisturbed3 = await outcome(runId, 3);
    assert.equal(undisturbed3.result.policy.version, 3);
  },
);

test('the policy server restarted during rollouts with its adapters gone', { timeout: 400_000 }, async () => {
  // Pipelined (the default), step k ≥ 1 samples from version k − 1 during step k − 1's update: the
  // first rollouts on a trained version (v1) are step 2's, generated during step 1's update.
  const runId = uniqueId('chaos-vllm');
  await startRun(runId, 3);
  await waitStatus(
    runId,
    (s) =>
      (s.ahead?.step === 2 && s.ahead.groupsStarted > 0 && s.ahead.groupsDone === 0) ||
      (s.step === 2 && s.phase === 'rollouts' && s.groupsDone === 0 && s.groupsStarted > 0),
    'step 2 rollouts on v1',
  );
  const port = Number(new URL(host.server.url).port);
  await host.server.close();
  await sleep(3000);
  const restarted = await startPolicyServer(port);
  host.server = restarted;
  const got = await outcome(runId, 3);
  const compared = assertSameOutcome(got, undisturbed3);
  const v1 = `${runId}-v1`;
  assert.ok(
    restarted.requests.some((r) => r.path === '/v1/load_lora_adapter' && r.body.includes(`"${v1}"`)),
    'the restarted server was given v1 again before serving it',
  );
  recordScenario('the policy server restarted during rollouts with its adapters gone', [
    ...compared,
    'the restarted server loaded the run version again (unknown adapter → sync → retry)',
  ]);
});

/** The host fallbacks the trajectories of a step recorded (trajectory.json in S3). */
async function hostFallbacks(runId: string, step: number): Promise<{ from: string; to: string }[]> {
  const out: { from: string; to: string }[] = [];
  for await (const o of store.list(`runs/${runId}/steps/${step}/groups/`)) {
    if (!o.key.endsWith('/trajectory.json')) continue;
    const t = await store.getJson<{ hostFallbacks?: { from: string; to: string }[] }>(o.key);
    out.push(...(t.hostFallbacks ?? []));
  }
  return out;
}

/** Replaces the policy host by a new pod with another id and a fresh policy server. */
async function replaceHost(id: string): Promise<string> {
  const old = host;
  await kill(old.worker);
  await old.server.close();
  await startHost(id, await startPolicyServer());
  return old.id;
}

test(
  'the policy-host worker killed mid-trajectory and replaced by one with a different host id',
  { timeout: 500_000 },
  async () => {
    const runId = uniqueId('chaos-host');
    const laterTurns = () => laterTurnRequests(host.server);
    const seen = laterTurns();
    hangLaterTurns = true;
    try {
      await startRun(runId);
      // trajectories had their first turn on the host and wait on it for their second: kill it there
      const deadline = Date.now() + 120_000;
      while (laterTurns() === seen) {
        assert.ok(Date.now() < deadline, 'no second turn reached the host');
        await sleep(20);
      }
      await sleep(500);
    } finally {
      hangLaterTurns = false;
    }
    const from = await replaceHost('gpu-b');
    const got = await outcome(runId);
    const compared = assertSameOutcome(got);
    // Pinned turns fell back to the shared queue and say so; both weight syncs found gpu-a gone and
    // synced the host that serves instead.
    const fallbacks = await hostFallbacks(runId, 0);
    assert.ok(fallbacks.length > 0, 'a trajectory recorded its host fallback');
    for (const f of fallbacks) assert.deepEqual([f.from, f.to], [from, 'gpu-b']);
    for (const s of got.steps) assert.deepEqual(s.syncFallbacks, [{ host: from, to: 'gpu-b' }]);
    recordScenario(
      'the policy-host worker killed mid-trajectory and replaced by one with a different host id',
      [
        ...compared,
        `${fallbacks.length} pinned turns fell back ${from} → gpu-b (recorded in their trajectories)`,
        `both weight syncs fell back ${from} → gpu-b (recorded in the step metrics)`,
      ],
    );
  },
);

test(
  'the policy-host worker killed between update and sync, replaced by one with a different id; `segr train hosts` moves the run to it',
  { timeout: 500_000 },
  async () => {
    const runId = uniqueId('chaos-host-sync');
    await startRun(runId);
    await waitStatus(runId, (s) => s.step === 0 && s.phase === 'update', 'step 0 update');
    const from = await replaceHost('gpu-c');
    const out = execFileSync(
      process.execPath,
      [join(repoRoot, 'bin/segr.js'), 'train', 'hosts', runId, 'gpu-c'],
      {
        encoding: 'utf8',
      },
    );
    assert.match(out, new RegExp(`policy hosts of ${runId}: gpu-c`));
    const got = await outcome(runId);
    const compared = assertSameOutcome(got);
    // step 0's sync either saw the update or fell back to the shared queue; step 1's went to gpu-c
    const first = got.steps[0]!.syncFallbacks;
    assert.ok(
      first === undefined || JSON.stringify(first) === JSON.stringify([{ host: from, to: 'gpu-c' }]),
      `step 0 sync fallbacks ${JSON.stringify(first)}`,
    );
    assert.equal(got.steps[1]!.syncFallbacks, undefined, 'step 1 synced gpu-c directly');
    const final = await client.workflow.getHandle(runId).query<TrainingStatus>('status');
    assert.deepEqual(final.policyHosts, ['gpu-c']);
    recordScenario(
      'the policy-host worker killed between update and sync, replaced by one with a different id; `segr train hosts` moves the run to it',
      [...compared, 'the run synced the new host (policyHosts update, or the shared-queue fallback)'],
    );
  },
);

test(
  'the trainer killed mid-update, then both the CPU worker and the trainer killed mid-step',
  { timeout: 400_000 },
  async () => {
    const runId = uniqueId('chaos-trainer');
    await startRun(runId);
    await waitStatus(runId, (s) => s.phase === 'update' && s.step === 0, 'step 0 update');
    await sleep(300);
    await kill(trainer);
    trainer = await startTrainerProcess(trainerEnv());
    // Step 1: the orchestrator and the trainer die once the step's rollouts are done; none of the
    // step's rollout groups runs again.
    await waitStatus(runId, (s) => s.step === 1 && s.phase === 'update', 'step 1 update');
    const groupRuns = async () => {
      const ids: string[] = [];
      for await (const wf of client.workflow.list({ query: `WorkflowId STARTS_WITH '${runId}/step-1/'` }))
        ids.push(`${wf.workflowId}@${wf.runId}`);
      return ids.sort();
    };
    const before = await groupRuns();
    await Promise.all([kill(cpuWorker), kill(trainer)]);
    await Promise.all([startCpuWorker(), startTrainerProcess(trainerEnv()).then((t) => (trainer = t))]);
    const compared = assertSameOutcome(await outcome(runId));
    assert.deepEqual(await groupRuns(), before, 'the finished rollouts of step 1 were reused');
    recordScenario(
      'the trainer killed mid-update, then both the CPU worker and the trainer killed mid-step',
      [...compared, `step 1's ${before.length} rollout workflows were reused, none started again`],
    );
  },
);

test(
  'new workflow code deployed mid-run (a patched() change): the run completes, the change takes effect at its next continue-as-new',
  { timeout: 400_000 },
  async () => {
    const runId = uniqueId('chaos-deploy');
    await startRun(runId);
    await waitStatus(
      runId,
      (s) => s.step === 0 && s.phase === 'rollouts' && s.groupsStarted > 0,
      'step 0 rollouts',
    );
    // A rolling deploy: the old worker drains (SIGTERM), the new code takes over.
    await stopProcesses([cpuWorker]);
    await startCpuWorker({ SEGFLOW_WORKER_WORKFLOW_BUNDLE: deployedBundle });
    try {
      const got = await outcome(runId);
      const compared = assertSameOutcome(got);
      const memos: unknown[] = [];
      for await (const wf of client.workflow.list({ query: `WorkflowId = '${runId}'` })) {
        const d = await client.workflow.getHandle(runId, wf.runId).describe();
        memos.push(d.memo?.deployedChange ?? null);
      }
      // the run after the deploy's continue-as-new carries the change; the run it began in does not
      assert.equal(memos.length, 2, 'one run per step (continue-as-new after each)');
      assert.deepEqual(memos.map(String).sort(), ['chaos-v2', 'null']);
      recordScenario(
        'new workflow code deployed mid-run (a patched() change): the run completes, the change takes effect at its next continue-as-new',
        [
          ...compared,
          'the run that began on the old code replayed on the new code; the next run carries the change',
        ],
      );
    } finally {
      await stopProcesses([cpuWorker]);
      await startCpuWorker();
    }
  },
);
