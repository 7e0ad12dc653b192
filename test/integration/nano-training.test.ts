// The nano world learns, end to end on the dev stack: the SFT nano policy (nano/policy_server.py, the
// GPU-boundary stand-in speaking vLLM's wire protocol), a real TS worker process (all roles), the
// real Python trainer worker (trainer/, nano policy family), the nano world published into S3
// (`segr nano publish`: policy v0, segmenter, prepared train/test splits).
//
// Evaluation workflow on the held-out test split before training, a short trainingRun
// (nano/train-config.json) from the SFT policy with every version synced into the policy server,
// the same evaluation after. Checked by default: the run completes from the published v0, every
// version is a nano checkpoint the trainer made from it, each update favours the batch's
// positive-advantage trajectories over its negative ones, the policy server serves the last version
// to the evaluation, and both evaluations score every held-out sample with an outcome reward.
//
// NOT established (issue 9, nano/README.md): that the outcome reward rises by more than seed noise.
// The measurement is here: NANO_ASSERT_LEARNING=1 NANO_TRAIN_STEPS=8 NANO_EVAL_SEEDS=1,2,3 runs
// sampled evaluations (the training temperature) at each seed before and after and asserts the rise exceeds twice the
// seed-to-seed spread; with the current nano policy it does not (measured numbers in the README).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import type { Client } from '@temporalio/client';
import { TaskQueues } from '../../core/queues.js';
import { publishNanoWorld, type NanoPublished } from '../../cli/commands/nano.js';
import type { EvaluationResult } from '../../workflows/evaluation.js';
import type { TrainingRunResult } from '../../workflows/training-run.js';
import type { TrainingConfigInput } from '../../workflows/training-config.js';
import { repoRoot } from '../support/paths.js';
import { nanoDir, startNanoPolicyServer } from '../support/nano.js';
import {
  startWorkerProcess,
  testClient,
  testConfig,
  testStore,
  uniqueId,
  type WorkerProcess,
} from '../support/stack.js';
import { startTrainerProcess } from '../support/training.js';

const ASSERT_LEARNING = process.env.NANO_ASSERT_LEARNING === '1';
const STEPS = Number(process.env.NANO_TRAIN_STEPS ?? 2);
const EVAL_SEEDS = (process.env.NANO_EVAL_SEEDS ?? '').split(',').filter(Boolean).map(Number);
const TRAIN_SEED = Number(process.env.NANO_TRAIN_SEED ?? 0);
/** Held-out samples per evaluation (the published test split has 48). */
const EVAL_LIMIT = Number(process.env.NANO_EVAL_LIMIT ?? (ASSERT_LEARNING ? 48 : 16));

const config = testConfig();
const store = testStore(config);
const tmp = mkdtempSync(join(tmpdir(), 'nano-training-it-'));
let client: Client;
let world: NanoPublished;
let server: { url: string; child: ChildProcess };
let worker: WorkerProcess;
let trainer: WorkerProcess;

before(async () => {
  client = await testClient(config);
  const t0 = Date.now();
  world = await publishNanoWorld(store, {
    dir: nanoDir,
    trainLimit: 96,
    testLimit: 48,
    endpoint: config.s3.endpoint,
  });
  console.log(`nano world ${world.build} in S3 (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  server = await startNanoPolicyServer(join(nanoDir, 'models', 'policy', 'v0'));
  [worker, trainer] = await Promise.all([
    startWorkerProcess([], {
      SEGFLOW_POLICY_URL: server.url,
      SEGFLOW_POLICY_MODEL: 'nano-policy',
      SEGFLOW_POLICY_MAX_MODEL_LEN: '640',
      SEGFLOW_SEGMENT_MODELS_DIR: join(nanoDir, 'models', 'sam2'),
      SEGFLOW_SEARCH_CORPUS: world.corpus,
      SEGFLOW_SEARCH_BACKEND: 'local',
      SEGFLOW_TRAINING_POLICY_CACHE_DIR: join(tmp, 'policy-cache'),
    }),
    startTrainerProcess({ SEGFLOW_TRAINER_WORK_DIR: join(tmp, 'trainer-work') }),
  ]);
});

after(async () => {
  for (const p of [worker, trainer]) {
    if (!p) continue;
    p.child.kill('SIGKILL');
    await p.exited;
  }
  server?.child.kill('SIGKILL');
  await client?.connection.close();
  store.client.destroy();
});

async function evaluate(
  id: string,
  model: string,
  version: number,
  sampling: { temperature: number; seed?: number },
): Promise<EvaluationResult> {
  return (await client.workflow.execute('evaluation', {
    taskQueue: TaskQueues.orchestrator,
    workflowId: id,
    args: [
      {
        dataset: world.test,
        evalId: id,
        policy: { model, version, sampling },
        concurrency: 4,
        limit: EVAL_LIMIT,
      },
    ],
    workflowExecutionTimeout: '20 minutes',
  })) as EvaluationResult;
}

const outcome = (r: EvaluationResult): number => {
  assert.ok(r.metrics.reward, `evaluation ${r.evalId} has no reward`);
  return r.metrics.reward.outcome;
};
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const sd = (v: number[]) =>
  v.length < 2 ? 0 : Math.sqrt(v.reduce((a, x) => a + (x - mean(v)) ** 2, 0) / (v.length - 1));

const trainConfig = JSON.parse(readFileSync(join(repoRoot, 'nano', 'train-config.json'), 'utf8')) as {
  rollout?: { sampling?: { temperature?: number } };
};
/** Sampled evaluations decode as the training rollouts do. */
const SAMPLED_T = trainConfig.rollout?.sampling?.temperature ?? 1;

/** Greedy and the sampled seeds, all held-out samples each. */
async function evaluateAll(tag: string, model: string, version: number) {
  const greedy = await evaluate(uniqueId(`it-nano-${tag}-greedy`), model, version, { temperature: 0 });
  const sampled: number[] = [];
  for (const seed of EVAL_SEEDS) {
    sampled.push(
      outcome(
        await evaluate(uniqueId(`it-nano-${tag}-s${seed}`), model, version, { temperature: SAMPLED_T, seed }),
      ),
    );
  }
  return { greedy, sampled };
}

test(
  ASSERT_LEARNING
    ? `the nano policy learns: ${STEPS} GRPO steps raise the mean outcome reward on held-out prompts by more than seed noise`
    : `nano training end to end: evaluation, ${STEPS} GRPO steps from the published SFT policy, evaluation of the last version`,
  { timeout: 3_600_000 },
  async () => {
    const t0 = Date.now();
    const beforeEval = await evaluateAll('before', 'nano-policy', 0);
    const tBefore = Date.now();

    const runId = uniqueId('it-nano-train');
    const cfg = {
      ...trainConfig,
      dataset: world.train,
      initialPolicy: { uri: world.policy, model: 'nano-policy' },
      steps: STEPS,
      seed: TRAIN_SEED,
    } as TrainingConfigInput;
    const run = (await client.workflow.execute('trainingRun', {
      taskQueue: TaskQueues.orchestrator,
      workflowId: runId,
      args: [{ runId, config: cfg }],
      workflowExecutionTimeout: '40 minutes',
    })) as TrainingRunResult;
    const tTrain = Date.now();
    assert.equal(run.status, 'completed');
    assert.equal(run.policy.version, STEPS);
    assert.equal(run.policy.model, `${runId}-v${STEPS}`);
    const steps = await Promise.all(
      Array.from({ length: STEPS }, (_, k) =>
        store.getJson<{
          rollouts: { trajectories: number; reward: { outcome: number } };
          trainer: {
            trajectories: number;
            logProbShift: { positive: number | null; negative: number | null };
          };
        }>(`runs/${runId}/steps/${k}/metrics.json`),
      ),
    );
    for (const [k, m] of steps.entries()) {
      // every version is a nano checkpoint the trainer made from its parent, back to the published v0
      const manifest = await store.getJson<{ kind: string; reference: string; parent: { version: number } }>(
        store.uriOf(`policies/${runId}/v${k + 1}/segflow-policy.json`),
      );
      assert.equal(manifest.kind, 'full');
      assert.equal(manifest.reference, world.policy);
      assert.equal(manifest.parent.version, k);
      const config = await store.getJson<{ model_type: string }>(
        store.uriOf(`policies/${runId}/v${k + 1}/config.json`),
      );
      assert.equal(config.model_type, 'segflow-nano-policy');
      assert.equal(m.trainer.trajectories, m.rollouts.trajectories);
      const { positive, negative } = m.trainer.logProbShift;
      if (positive !== null && negative !== null)
        assert.ok(
          positive > negative,
          `step ${k}: the update favoured negative-advantage trajectories (${positive} <= ${negative})`,
        );
    }

    const afterEval = await evaluateAll('after', run.policy.model, run.policy.version);
    const tAfter = Date.now();
    for (const e of [beforeEval.greedy, afterEval.greedy]) {
      assert.equal(e.metrics.samples.scored, EVAL_LIMIT);
      assert.equal(e.metrics.samples.errors, 0);
      assert.equal(e.metrics.reward?.samples, EVAL_LIMIT);
    }
    assert.deepEqual(afterEval.greedy.metrics.policy, { model: run.policy.model, version: STEPS });

    const b = beforeEval.sampled;
    const a = afterEval.sampled;
    const noise = Math.max(sd(b), sd(a));
    const rise = mean(a) - mean(b);
    console.log(
      [
        `nano training: ${STEPS} steps in ${((tTrain - tBefore) / 1000).toFixed(0)} s; evaluations ${((tBefore - t0) / 1000).toFixed(0)} s + ${((tAfter - tTrain) / 1000).toFixed(0)} s (${EVAL_LIMIT} held-out samples each)`,
        `training outcome reward per step: ${steps.map((m) => m.rollouts.reward.outcome.toFixed(3)).join(' ')}`,
        `held-out outcome reward, greedy: before ${outcome(beforeEval.greedy).toFixed(3)}, after ${outcome(afterEval.greedy).toFixed(3)}; usable answers ${beforeEval.greedy.metrics.answerStatus.ok ?? 0} -> ${afterEval.greedy.metrics.answerStatus.ok ?? 0}`,
        ...(EVAL_SEEDS.length
          ? [
              `held-out outcome reward, sampled (T=${SAMPLED_T}) seeds ${EVAL_SEEDS.join(',')}: before ${b.map((x) => x.toFixed(3)).join(' ')} (mean ${mean(b).toFixed(3)} ± ${sd(b).toFixed(3)}), after ${a.map((x) => x.toFixed(3)).join(' ')} (mean ${mean(a).toFixed(3)} ± ${sd(a).toFixed(3)}); rise ${rise.toFixed(3)} vs seed noise ${noise.toFixed(3)}`,
            ]
          : []),
      ].join('\n'),
    );
    if (ASSERT_LEARNING) {
      assert.ok(EVAL_SEEDS.length >= 2, 'NANO_ASSERT_LEARNING needs NANO_EVAL_SEEDS with at least two seeds');
      assert.ok(
        rise > 2 * noise && rise > 0,
        `mean outcome reward rose by ${rise.toFixed(3)}, not more than twice the seed noise ${noise.toFixed(3)}`,
      );
    }
  },
);
