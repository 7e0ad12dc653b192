// The evaluation workflow on the real dev stack: a tiny OK-VOS-layout dataset and a ReasonSeg
// folder made here, prepared with `segr dataset prepare`'s code, evaluated by a real worker process
// against a scripted OpenAI-compatible policy, a local Serper (paid backend, so the ledger counts),
// and SAM2-contract ONNX test models. Checks: metrics equal `segr eval-masks` on the same masks;
// a SIGKILLed worker mid-evaluation loses nothing and counts nothing twice; a policy outage on some
// samples stores them as failed (not scored) and a re-run with the same id evaluates them; an id
// reused with other settings is refused unless started afresh; a schedule evaluates the newest
// checkpoint once; the report renders in headless Chromium with tables and plots.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { readOkVos } from '../../activities/datasets/okvos.js';
import { prepareDataset } from '../../activities/datasets/prepare.js';
import { readReasonSeg } from '../../activities/datasets/reasonseg.js';
import { createEvaluationActivities } from '../../activities/evaluation/activities.js';
import {
  EvalKeys,
  WorkflowIds,
  type EvaluationSummary,
  type SampleEvaluation,
  type StoredSample,
} from '../../core/contracts/index.js';
import { describeFailure } from '../../core/evaluation/rerun.js';
import { decodeMaskPng } from '../../activities/media/mask-png.js';
import { encodeMaskPng, maskSequenceLookup, type MaskSequence } from '../../activities/media/masks.js';
import {
  renderTrainingDashboard,
  parseTrainingMetrics,
} from '../../activities/reports/training-dashboard.js';
import type { ArtifactRef } from '../../core/artifacts.js';
import { summariseByAbility } from '../../core/metrics/summary.js';
import { TaskQueues } from '../../core/queues.js';
import { evaluationSchedule } from '../../cli/commands/schedule.js';
import type { EvaluationInput, EvaluationResult } from '../../workflows/evaluation.js';
import {
  error as policyError,
  startFakePolicyServer,
  type FakePolicyServer,
  type WireMessage,
} from '../servers/openai-server.js';
import { startSerper } from '../servers/search-servers.js';
import type { LocalServer } from '../servers/http-server.js';
import { writeSam2TestModels } from '../support/onnx-models.js';
import { assertOutageTolerant } from '../support/retry-policies.js';
import { DEFAULT_OUTAGE_TOLERANCE_SECONDS } from '../../workflows/retry.js';
import { repoRoot } from '../support/paths.js';
import { evalScript, textOf } from '../support/scripted-policies.js';
import {
  startWorkerProcess,
  testClient,
  testConfig,
  testStore,
  uniqueId,
  type WorkerProcess,
} from '../support/stack.js';
import {
  frameName,
  okvosRows,
  reasonSegRows,
  writeOkvos,
  writeReasonSeg,
  type Behaviour,
  type Clip,
} from '../activity/evaluation/fixtures.js';

const CHROMIUM = '/usr/bin/chromium';
const config = testConfig();
const store = testStore(config);
let client: Client;
let policy: FakePolicyServer;
let serper: LocalServer;
let worker: WorkerProcess | undefined;
let workerEnv: NodeJS.ProcessEnv;
const tmp = mkdtempSync(join(tmpdir(), 'segflow-eval-it-'));
let okvosRoot: string;
let okvosIndex: ArtifactRef;
let reasonSegIndex: ArtifactRef;
let reasonSegDir: string;
const runs: Record<string, EvaluationResult> = {};

const byMarker = new Map<string, { clip: Clip; behaviour: Behaviour }>([
  ...okvosRows.map((r) => [r.id, r] as const),
  ...reasonSegRows.map((r, i) => [`r${i + 1}`, r] as const),
]);

/**
 * Near-miss mode: every answer's box reaches x = 1004, past the 0–1000 range, so the rollout's
 * answer check rejects it while the reference (`sam2_okvos.py`) still segments it.
 */
let nearMiss = false;

/** Outage mode: the policy server answers 503 to every request of these samples (by marker). */
const outage = new Set<string>();

/** The scripted policy (test/support/scripted-policies.ts), in near-miss mode when set. */
const script = (messages: WireMessage[]) => evalScript(byMarker, messages, { nearMiss });

async function startWorker(): Promise<void> {
  worker = await startWorkerProcess([], workerEnv);
}

async function stopWorker(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!worker) return;
  worker.child.kill(signal);
  await worker.exited;
  worker = undefined;
}

before(async () => {
  client = await testClient(config);
  okvosRoot = join(tmp, 'okvos');
  const parquet = await writeOkvos(okvosRoot);
  reasonSegDir = await writeReasonSeg(join(tmp, 'reasonseg', 'val'));
  okvosIndex = (
    await prepareDataset(store, await readOkVos(parquet), { format: 'okvos', split: 'test', source: parquet })
  ).index;
  reasonSegIndex = (
    await prepareDataset(store, await readReasonSeg(reasonSegDir), {
      format: 'reasonseg',
      split: 'val',
      source: reasonSegDir,
    })
  ).index;
  policy = await startFakePolicyServer({
    flavor: 'vllm',
    script,
    // an outage chosen per sample: its policy calls get vLLM's 503 while its marker is listed
    refuse: (path, body) => {
      if (path !== '/tokenize' && path !== '/v1/chat/completions') return undefined;
      const messages = Array.isArray(body.messages) ? (body.messages as WireMessage[]) : [];
      const marker = /\[([qr]\d+)\]/.exec(textOf(messages[1]))?.[1];
      return marker !== undefined && outage.has(marker)
        ? policyError(503, 'ServiceUnavailableError', 'outage (HTTP 503)')
        : undefined;
    },
  });
  serper = await startSerper({
    apiKey: 'serper-test-key',
    docs: [
      {
        title: 'Champion car',
        snippet: 'The champion drove the red car and a blue car.',
        link: 'https://example.com/c',
      },
    ],
  });
  workerEnv = {
    SEGFLOW_POLICY_URL: `${policy.url}/v1`,
    SEGFLOW_SEGMENT_MODELS_DIR: await writeSam2TestModels(join(tmp, 'models')),
    SEGFLOW_SERPER_URL: serper.url,
    SERPER_API_KEY: 'serper-test-key',
    // Every search reaches the (paid) backend, so the ledger has something to count.
    SEGFLOW_SEARCH_CACHE: 'false',
  };
  await startWorker();
});

after(async () => {
  await stopWorker();
  await policy.close();
  await serper.close();
  await client.connection.close();
  store.client.destroy();
});

function evalInput(
  evalId: string,
  dataset: ArtifactRef,
  extra: Partial<EvaluationInput> = {},
): EvaluationInput {
  return {
    evalId,
    dataset: dataset.uri,
    policy: { model: 'policy', version: 1 },
    search: { backend: 'serper' },
    concurrency: 2,
    searchPrices: { serper: 0.001 },
    gallery: 2,
    ...extra,
  };
}

async function resultKeys(evalId: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(EvalKeys.samplesPrefix(evalId))) {
    if (/\/samples\/[^/]+\.json$/.test(o.key)) keys.push(o.key);
  }
  return keys.sort();
}

async function sampleResults(evalId: string): Promise<SampleEvaluation[]> {
  return Promise.all((await resultKeys(evalId)).map((k) => store.getJson<SampleEvaluation>(k)));
}

/** `segr eval-masks` (the CLI, as a user runs it) on a folder of predicted PNGs against a ground-truth folder. */
function evalMasksCli(
  pred: string,
  gt: string,
): { J: number; F: number; frames: { name: string; J: number }[] } {
  return JSON.parse(
    execFileSync(
      process.execPath,
      [join(repoRoot, 'bin/segr.js'), 'eval-masks', '--pred', pred, '--gt', gt],
      {
        cwd: repoRoot,
        encoding: 'utf8',
      },
    ),
  ) as { J: number; F: number; frames: { name: string; J: number }[] };
}

/** The sample's predicted masks downloaded under the ground truth's frame names. */
async function downloadPrediction(s: SampleEvaluation, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  if (!s.prediction) return;
  const manifest = await store.getJson<{ frames: { frame: number; mask: string }[] }>(s.prediction.uri);
  for (const f of manifest.frames) {
    if (await store.head(f.mask))
      writeFileSync(join(dir, `${frameName(f.frame)}.png`), await store.getBytes(f.mask));
  }
}

test(
  'OK-VOS evaluation end to end: per-ability J/F/J&F equal `segr eval-masks` on the same masks; searches, cost, stop reasons',
  { timeout: 180_000 },
  async () => {
    const evalId = uniqueId('it-eval-okvos');
    const started = Date.now();
    const r = (await client.workflow.execute('evaluation', {
      taskQueue: TaskQueues.orchestrator,
      workflowId: evalId,
      args: [evalInput(evalId, okvosIndex)],
      workflowExecutionTimeout: '5 minutes',
    })) as EvaluationResult;
    console.log(
      `# OK-VOS evaluation of ${okvosRows.length} samples took ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    runs.okvos = r;
    assert.equal(r.evaluated, 4);
    assert.equal(r.skipped, 0);
    const results = await sampleResults(evalId);
    assert.equal(results.length, okvosRows.length, 'one stored result per sample');

    // Each sample: J and F equal `segr eval-masks` on the predicted PNGs vs the original annotation folder.
    const fromCli: { id: string; ability: string; J: number; F: number }[] = [];
    for (const row of okvosRows) {
      const s = results.find((x) => x.sampleId === row.id)!;
      const pred = join(tmp, 'pred', evalId, row.id);
      await downloadPrediction(s, pred);
      const gt = join(okvosRoot, 'test', 'Annotations', row.clip.video, String(row.oid));
      const em = evalMasksCli(pred, gt);
      assert.equal(s.frames.length, em.frames.length, `${row.id}: all annotated frames scored`);
      assert.equal(s.J, em.J, `${row.id} J`);
      assert.equal(s.F, em.F, `${row.id} F`);
      fromCli.push({ id: row.id, ability: row.ability, J: em.J, F: em.F });
    }
    const expected = summariseByAbility(fromCli, ['one-hop', 'multi-hop', 'relational', 'in-video']);
    const m = r.metrics;
    assert.ok(m.vos);
    for (const a of ['one-hop', 'multi-hop', 'relational', 'in-video']) {
      assert.equal(m.vos.perAbility[a]!.JF, expected.perAbility[a]!.JF, a);
      assert.equal(m.vos.perAbility[a]!.count, 1);
    }
    assert.equal(m.vos.overall.J, expected.overall.J);
    assert.equal(m.vos.overall.F, expected.overall.F);
    assert.equal(m.vos.overall.JF, expected.overall.JF);
    console.log(
      `# J&F overall ${(m.vos.overall.JF * 100).toFixed(2)}; per ability ${Object.entries(m.vos.perAbility)
        .map(([a, v]) => `${a} ${(v.JF * 100).toFixed(2)}`)
        .join(', ')}`,
    );
    // The exact answer beats the shifted one, which beats no answer.
    const jf = (id: string) => results.find((x) => x.sampleId === id)!.JF;
    assert.ok(jf('q1') > jf('q2') && jf('q2') > jf('q3'), `${jf('q1')} > ${jf('q2')} > ${jf('q3')}`);
    assert.equal(results.find((x) => x.sampleId === 'q3')!.answerStatus, 'no_keyframe');

    // Searches: the three search-prompt samples that answer searched once each (q3 stops at once, q4 is in-video).
    assert.equal(m.search.calls, 2);
    assert.deepEqual(m.search.byBackend, { serper: 2 });
    assert.equal(m.search.paidCalls, 2, 'the ledger counted each paid call once');
    assert.equal(m.search.costUsd, 0.002);
    assert.deepEqual(m.stopReasons, { model_chose_to_finish: 4 });
    assert.deepEqual(m.answerStatus, { no_keyframe: 1, ok: 3 });
    assert.equal(m.samples.errors, 0);

    // Report and JSON in S3.
    const html = (await store.getBytes(r.report.html.uri)).toString('utf8');
    assert.match(html, /<table id="vos-table">/);
    const json = await store.getJson<{ samples: unknown[]; gallery: { best: string[]; worst: string[] } }>(
      r.report.json.uri,
    );
    assert.equal(json.samples.length, 4);
    assert.equal(json.gallery.best.length + json.gallery.worst.length, 4);
  },
);

test(
  'no activity of an evaluation or its samples gives up inside the outage tolerance: load, SAM2, scoring and the report retry an S3 outage like the rollout',
  { timeout: 30_000 },
  async () => {
    const evalId = runs.okvos?.evalId;
    assert.ok(evalId, 'the OK-VOS evaluation ran first');
    assertOutageTolerant(
      await client.workflow.getHandle(evalId).fetchHistory(),
      DEFAULT_OUTAGE_TOLERANCE_SECONDS,
      ['evalPlan', 'searchPaidCalls', 'evalAggregate', 'evalReport'],
      'evaluation',
    );
    // q1 answers with a keyframe, so its sample loads, segments the video and is scored
    const sample = WorkflowIds.evaluateSample(evalId, 'q1');
    assertOutageTolerant(
      await client.workflow.getHandle(sample).fetchHistory(),
      DEFAULT_OUTAGE_TOLERANCE_SECONDS,
      ['evalLoadSample', 'queryLocateKeyframe', 'segmentVideo', 'evalScoreSample'],
      sample,
    );
  },
);

test(
  'a near-miss answer (coordinates past 1000) is segmented as the reference does; the stricter rule is an option',
  { timeout: 240_000 },
  async () => {
    nearMiss = true;
    try {
      const run = async (extra: Partial<EvaluationInput>) => {
        const evalId = uniqueId('it-eval-near-miss');
        await client.workflow.execute('evaluation', {
          taskQueue: TaskQueues.orchestrator,
          workflowId: evalId,
          args: [evalInput(evalId, okvosIndex, extra)],
          workflowExecutionTimeout: '5 minutes',
        });
        return new Map((await sampleResults(evalId)).map((s) => [s.sampleId, s]));
      };
      const reference = await run({});
      const usable = await run({ segmentation: { when: 'usable' } });
      for (const id of ['q1', 'q2', 'q4']) {
        const r = reference.get(id)!;
        const u = usable.get(id)!;
        assert.notEqual(r.answerStatus, 'ok', `${id}: the rollout check rejects the answer`);
        assert.ok(r.prediction, `${id}: the reference rule segments the near miss`);
        assert.ok(r.JF > 0, `${id}: J&F ${r.JF} > 0 under the reference rule`);
        assert.equal(u.JF, 0, `${id}: the usable-only rule leaves it unsegmented`);
      }
    } finally {
      nearMiss = false;
    }
  },
);

test(
  '`segr eval` runs an evaluation from the CLI and writes the report; `segr report training` and `segr schedule eval` check their input',
  { timeout: 120_000 },
  async () => {
    // Asynchronous: the scripted policy and Serper servers live in this process's event loop.
    const segr = (args: string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [join(repoRoot, 'bin/segr.js'), ...args], { cwd: repoRoot });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.once('close', (status) => resolve({ status, stdout, stderr }));
      });
    const evalId = uniqueId('it-eval-cli');
    const html = join(tmp, 'cli-report.html');
    const json = join(tmp, 'cli-report.json');
    const r = await segr([
      'eval',
      '--dataset',
      okvosIndex.uri,
      '--policy',
      'policy',
      '--policy-version',
      '1',
      '--search',
      'serper',
      '--limit',
      '1',
      '--search-price',
      'serper=0.002',
      '--remote',
      '--id',
      evalId,
      '--report',
      html,
      '--json',
      json,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^one-hop\s+1\s+[\d.]+\s+[\d.]+\s+[\d.]+$/m);
    assert.match(r.stdout, /searches 1 \(0 cached\), paid 1, cost \$0\.0020/);
    assert.match(readFileSync(html, 'utf8'), /<table id="vos-table">/);
    assert.equal((JSON.parse(readFileSync(json, 'utf8')) as { samples: unknown[] }).samples.length, 1);

    const steps = join(tmp, 'steps.jsonl');
    writeFileSync(
      steps,
      [0, 1, 2]
        .map((step) =>
          JSON.stringify({
            runId: 'r',
            step,
            policyVersion: step,
            reward: { mean: step, components: { outcome: step / 2 } },
            searchesPerTrajectory: { mean: 1 },
            responseLength: { mean: 100 },
          }),
        )
        .join('\n'),
    );
    const dash = await segr(['report', 'training', '--metrics', steps, '--out', join(tmp, 'dash.html')]);
    assert.equal(dash.status, 0, dash.stderr);
    assert.match(dash.stdout, /wrote .*dash\.html \(3 steps\)/);
    const bad = await segr([
      'report',
      'training',
      '--metrics',
      join(tmp, 'nope.jsonl'),
      '--out',
      join(tmp, 'x.html'),
    ]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--metrics .*nope\.jsonl does not exist/);
    const noSpec = await segr([
      'schedule',
      'eval',
      '--id',
      's1',
      '--dataset',
      okvosIndex.uri,
      '--latest-from',
      'policies/r/latest.json',
    ]);
    assert.notEqual(noSpec.status, 0);
    assert.match(noSpec.stderr, /give exactly one of --every .* or --cron/);
    const badDataset = await segr(['eval', '--dataset', '/tmp/whatever', '--remote']);
    assert.notEqual(badDataset.status, 0);
    assert.match(
      badDataset.stderr,
      /--dataset "\/tmp\/whatever" must be the index `segr dataset prepare` printed/,
    );
  },
);

test(
  'ReasonSeg evaluation: gIoU/cIoU under each empty-union convention equal an independent count on the same masks',
  { timeout: 120_000 },
  async () => {
    const evalId = uniqueId('it-eval-reasonseg');
    const r = (await client.workflow.execute('evaluation', {
      taskQueue: TaskQueues.orchestrator,
      workflowId: evalId,
      // Two samples per run: the third comes after a continue-as-new.
      args: [evalInput(evalId, reasonSegIndex, { concurrency: 3, pageSize: 2 })],
      workflowExecutionTimeout: '5 minutes',
    })) as EvaluationResult;
    runs.reasonseg = r;
    const lastRun = await client.workflow.getHandle(evalId).fetchHistory();
    assert.ok(
      lastRun.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId,
      'the evaluation continued as new between pages',
    );
    assert.equal(r.evaluated, 3, 'progress carried across runs');
    const results = await sampleResults(evalId);
    assert.equal(results.length, 3);
    let sumI = 0;
    let sumU = 0;
    const ious: number[] = [];
    for (const s of results) {
      const rec = await store.getJson<{ masks: ArtifactRef }>(s.record.uri);
      const gt = maskSequenceLookup(await store.getJson<MaskSequence>(rec.masks.uri))(0)!;
      const gtDir = join(tmp, 'rs-gt', evalId, s.sampleId);
      const predDir = join(tmp, 'rs-pred', evalId, s.sampleId);
      mkdirSync(gtDir, { recursive: true });
      mkdirSync(predDir, { recursive: true });
      writeFileSync(join(gtDir, 'mask.png'), await encodeMaskPng(gt));
      let pred: Uint8Array = new Uint8Array(gt.data.length);
      if (s.prediction) {
        const png = await store.getBytes(s.prediction.uri);
        writeFileSync(join(predDir, 'mask.png'), png);
        pred = (await decodeMaskPng(png, s.prediction.uri)).data;
      }
      let i = 0;
      let u = 0;
      for (let k = 0; k < pred.length; k++) {
        if (pred[k] && gt.data[k]) i++;
        if (pred[k] || gt.data[k]) u++;
      }
      assert.equal(s.intersection, i, s.sampleId);
      assert.equal(s.union, u, s.sampleId);
      // eval-masks' J of one image is its IoU.
      assert.equal(evalMasksCli(predDir, gtDir).J, u === 0 ? 1 : i / u);
      sumI += i;
      sumU += u;
      ious.push(u === 0 ? 0 : i / u);
    }
    const rs = r.metrics.reasonSeg!;
    assert.equal(rs.segzero.gIoU, ious.reduce((a, b) => a + b, 0) / ious.length);
    assert.equal(rs.segzero.cIoU, sumI / sumU);
    assert.equal(rs.skip.counted, 3);
    assert.ok(
      Math.abs(rs.lisa.gIoU - rs.segzero.gIoU) < 1e-6,
      'no empty-union sample: the conventions agree',
    );
    assert.ok(ious[results.findIndex((s) => s.sampleId === 'img_c')]! === 0, 'no answer: I = 0, U = |GT|');
    console.log(
      `# ReasonSeg gIoU ${(rs.lisa.gIoU * 100).toFixed(2)} cIoU ${(rs.lisa.cIoU * 100).toFixed(2)}`,
    );
    assert.equal(r.metrics.vos, null);
  },
);

test(
  'SIGKILL of the worker mid-evaluation: a new worker finishes it; one result per sample and the same aggregates as the undisturbed run',
  { timeout: 240_000 },
  async () => {
    assert.ok(runs.okvos, 'needs the undisturbed run');
    const evalId = uniqueId('it-eval-kill');
    const handle = await client.workflow.start('evaluation', {
      taskQueue: TaskQueues.orchestrator,
      workflowId: evalId,
      args: [evalInput(evalId, okvosIndex, { concurrency: 1 })],
      workflowExecutionTimeout: '5 minutes',
    });
    const deadline = Date.now() + 120_000;
    while ((await resultKeys(evalId)).length === 0) {
      assert.ok(Date.now() < deadline, 'no sample finished');
      await new Promise((res) => setTimeout(res, 100));
    }
    const before = (await resultKeys(evalId)).length;
    await stopWorker('SIGKILL');
    assert.ok(before < okvosRows.length, 'killed in the middle');
    await startWorker();
    const r = (await handle.result()) as EvaluationResult;
    const keys = await resultKeys(evalId);
    assert.equal(keys.length, okvosRows.length, 'nothing lost, nothing doubled');
    assert.equal(r.evaluated, okvosRows.length);
    const strip = (x: EvaluationSummary) => ({ ...x, evalId: '' });
    assert.deepEqual(strip(r.metrics), strip(runs.okvos!.metrics), 'same aggregates as the undisturbed run');
    // Exactly one child per sample, with its deterministic id.
    const history = await handle.fetchHistory();
    const children = (history.events ?? [])
      .map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId)
      .filter((x): x is string => Boolean(x));
    assert.deepEqual(
      children,
      okvosRows.map((row) => `${evalId}/sample-${row.id}`),
    );
    console.log(`# killed after ${before} of ${okvosRows.length} samples; resumed to ${keys.length}`);
  },
);

test(
  'a policy outage (503) on some samples: stored as failed, not scored 0, left out of the metrics and reported; a re-run with the same id evaluates them and ends with the undisturbed metrics',
  { timeout: 300_000 },
  async () => {
    assert.ok(runs.okvos, 'needs the undisturbed run');
    const evalId = uniqueId('it-eval-outage');
    const run = async () =>
      (await client.workflow.execute('evaluation', {
        taskQueue: TaskQueues.orchestrator,
        workflowId: evalId,
        // the down samples give up after 3 s of retries instead of the default 15 minutes
        args: [evalInput(evalId, okvosIndex, { outageToleranceSeconds: 3 })],
        workflowExecutionTimeout: '5 minutes',
      })) as EvaluationResult;
    let started = Date.now();
    outage.add('q1').add('q4');
    let first: EvaluationResult;
    try {
      first = await run();
    } finally {
      outage.clear();
    }
    console.log(`# evaluation with q1, q4 down took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(first.evaluated, 4);
    assert.equal(first.failed, 2);
    const m = first.metrics;
    assert.equal(m.samples.scored, 2);
    assert.equal(m.samples.failed, 2);
    assert.equal(m.samples.errors, 0, 'an outage is not a scored error');
    assert.deepEqual(
      m.samples.failedSamples?.map((f) => [f.sampleId, f.ability, f.type]),
      [
        ['q1', 'one-hop', 'TransientError'],
        ['q4', 'in-video', 'TransientError'],
      ],
    );
    assert.match(m.samples.failedSamples![0]!.message, /HTTP 503/);
    const stored = new Map(
      (await Promise.all((await resultKeys(evalId)).map((k) => store.getJson<StoredSample>(k)))).map((x) => [
        x.sampleId,
        x,
      ]),
    );
    assert.equal(stored.get('q1')!.schema, 'segflow.eval-sample-failed/1', 'stored as failed, not as J&F 0');
    assert.equal(stored.get('q4')!.schema, 'segflow.eval-sample-failed/1');
    // The metrics hold only the two scored samples, each with its undisturbed score.
    const undisturbed = runs.okvos!.metrics.vos!;
    assert.equal(m.vos!.overall.count, 2);
    assert.equal(m.vos!.perAbility['one-hop']!.count, 0);
    assert.equal(m.vos!.perAbility['multi-hop']!.JF, undisturbed.perAbility['multi-hop']!.JF);
    assert.equal(m.vos!.perAbility.relational!.JF, undisturbed.perAbility.relational!.JF);
    assert.equal(
      m.vos!.overall.JF,
      (undisturbed.perAbility['multi-hop']!.JF + undisturbed.perAbility.relational!.JF) / 2,
    );
    const html = (await store.getBytes(first.report.html.uri)).toString('utf8');
    assert.match(html, /id="failed-note">2 samples failed for an infrastructure reason/);
    assert.ok(
      html.includes(`re-run the evaluation with the same id (segr eval --id ${evalId}, same settings)`),
      'the report says how to retry them',
    );

    started = Date.now();
    const second = await run();
    console.log(`# the re-run took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(second.evaluated, 2, 'the failed samples were evaluated again');
    assert.equal(second.skipped, 2, 'the scored ones were not');
    assert.equal(second.failed, 0);
    const strip = (x: EvaluationSummary) => ({ ...x, evalId: '' });
    assert.deepEqual(strip(second.metrics), strip(runs.okvos!.metrics), "the undisturbed run's metrics");
    runs.outage = second;
  },
);

test(
  'an id reused with another policy version or search backend is refused, naming what differs; `fresh` evaluates afresh',
  { timeout: 240_000 },
  async () => {
    assert.ok(runs.outage, 'needs the evaluation of the outage test (policy v1, serper)');
    const evalId = runs.outage.evalId;
    const run = async (extra: Partial<EvaluationInput>) =>
      (await client.workflow.execute('evaluation', {
        taskQueue: TaskQueues.orchestrator,
        workflowId: evalId,
        args: [evalInput(evalId, okvosIndex, extra)],
        workflowExecutionTimeout: '5 minutes',
      })) as EvaluationResult;
    const refusal = async (extra: Partial<EvaluationInput>) => {
      const err = await run(extra).then(
        () => assert.fail('the evaluation ran'),
        (e: unknown) => e,
      );
      return describeFailure(err);
    };
    const v2 = { policy: { model: 'policy', version: 2 } };
    const byVersion = await refusal(v2);
    assert.match(
      byVersion,
      new RegExp(`evaluation ${evalId} already holds results made with other settings`),
    );
    assert.match(byVersion, /policy\.version: 1 → 2/);
    assert.match(byVersion, /--fresh/);
    const bySearch = await refusal({ search: { backend: 'local' } });
    assert.match(bySearch, /search\.backend: "serper" → "local"/);
    assert.doesNotMatch(bySearch, /policy\.version/);

    const fresh = await run({ ...v2, fresh: true, limit: 1 });
    assert.equal(fresh.evaluated, 1, 'evaluated afresh although a score was stored');
    assert.equal(fresh.skipped, 0);
    assert.equal(fresh.metrics.policy.version, 2);
    const q1 = await store.getJson<SampleEvaluation>(EvalKeys.sampleResult(evalId, 'q1'));
    assert.equal(q1.policyVersion, 2);
    // The id now belongs to v2: its re-run reuses the fresh score and evaluates the rest again.
    const next = await run({ ...v2, limit: 2 });
    assert.equal(next.skipped, 1);
    assert.equal(next.evaluated, 1, 'the v1 score of q2 is not reused for v2');
    assert.equal(
      (await store.getJson<SampleEvaluation>(EvalKeys.sampleResult(evalId, 'q2'))).policyVersion,
      2,
    );
    assert.match(await refusal({}), /policy\.version: 2 → 1/);
  },
);

test(
  'a schedule evaluates the newest checkpoint from its pointer, and does not evaluate an unchanged checkpoint twice',
  { timeout: 120_000 },
  async () => {
    const scheduleId = uniqueId('it-sched');
    const pointer = `runs/${scheduleId}/policy/latest.json`;
    await store.putJson(pointer, { version: 7, model: 'policy' });
    const options = evaluationSchedule({
      id: scheduleId,
      dataset: okvosIndex.uri,
      latestFrom: pointer,
      every: '1d',
      search: 'serper',
      limit: 1,
      paused: true,
    });
    await client.schedule.create(options);
    const h = client.schedule.getHandle(scheduleId);
    try {
      const runOnce = async (n: number): Promise<EvaluationResult> => {
        await h.trigger();
        const deadline = Date.now() + 60_000;
        for (;;) {
          const d = await h.describe();
          if (d.info.recentActions.length >= n) {
            const wf = d.info.recentActions[n - 1]!.action.workflow;
            return (await client.workflow
              .getHandle(wf.workflowId, wf.firstExecutionRunId)
              .result()) as EvaluationResult;
          }
          assert.ok(Date.now() < deadline, 'the schedule did not start');
          await new Promise((res) => setTimeout(res, 200));
        }
      };
      const first = await runOnce(1);
      assert.equal(first.evalId, `${scheduleId}-v7`);
      assert.equal(first.metrics.policy.version, 7);
      assert.equal(first.evaluated, 1);
      const second = await runOnce(2);
      assert.equal(second.evalId, `${scheduleId}-v7`);
      assert.equal(second.evaluated, 0, 'the unchanged checkpoint was not evaluated again');
      assert.equal(second.skipped, 1);
      assert.deepEqual(second.metrics.vos, first.metrics.vos);
    } finally {
      await h.delete();
    }
  },
);

test(
  'the report renders offline in headless Chromium: non-empty tables, bars, checkpoint curve and gallery; the training dashboard too',
  {
    timeout: 120_000,
    skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install -y chromium)`,
  },
  async () => {
    assert.ok(runs.okvos, 'needs the OK-VOS run');
    // Re-render now that the dataset has evaluations at two policy versions (1 and 7): a real curve.
    const activities = createEvaluationActivities({ store });
    const report = await activities.evalReport({ evalId: runs.okvos.evalId, gallery: 2 });
    const htmlPath = join(tmp, 'report.html');
    writeFileSync(htmlPath, await store.getBytes(report.html.uri));
    const steps = Array.from({ length: 10 }, (_, step) => ({
      runId: 'run-demo',
      step,
      policyVersion: step + 1,
      reward: {
        mean: 1 + 0.3 * step,
        components: { format: 1, outcome: 0.2 * step, igr: 0.1 + 0.03 * step },
      },
      searchesPerTrajectory: { mean: 1 + (step % 3) * 0.5, max: 3 },
      responseLength: { mean: 300 + 20 * step, max: 800 },
      stopReasons: { model_chose_to_finish: 60, max_turns_reached: 4 },
    }));
    const dashPath = join(tmp, 'training.html');
    writeFileSync(
      dashPath,
      renderTrainingDashboard(
        parseTrainingMetrics(steps.map((value, i) => ({ value, origin: `step ${i}` }))),
        {
          generatedAt: new Date().toISOString(),
        },
      ),
    );

    const { chromium } = await import('playwright-core');
    // Playwright takes the profile folder as launchPersistentContext's first argument (it refuses
    // --user-data-dir among the args); everything else is the flag set a locked-down CI wants.
    const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'segflow-chromium-')), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1300, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = await browser.newPage();
      const external: string[] = [];
      page.on('request', (req) => {
        if (!/^(file|data):/.test(req.url())) external.push(req.url());
      });
      await page.goto(`file://${htmlPath}`, { waitUntil: 'load' });
      const count = (selector: string) => page.locator(selector).count();
      const seen = {
        vosRows: await count('#vos-table tbody tr'),
        sampleRows: await count('#samples-table tbody tr'),
        checkpointRows: await count('#checkpoint-table tbody tr'),
        bars: await count('svg.bar-chart rect.bar'),
        curvePoints: await count('svg.line-chart circle.point'),
        curvePaths: await count('svg.line-chart path.line'),
        images: await count('figure img'),
        // The page has no DOM types here (tsconfig lib), so the check runs as a string.
        loadedImages: await page.evaluate<number>(
          "[...document.querySelectorAll('figure img')].filter((i) => i.complete && i.naturalWidth > 0).length",
        ),
        chartHeight: Math.round((await page.locator('svg.bar-chart').first().boundingBox())?.height ?? 0),
      };
      assert.equal(seen.vosRows, 5, 'four abilities and overall');
      assert.equal(seen.sampleRows, 4);
      assert.ok(seen.checkpointRows >= 3, 'this dataset has several evaluations');
      assert.equal(seen.bars, 15, 'J, F, J&F for four abilities and overall');
      assert.ok(seen.curvePoints >= 6 && seen.curvePaths >= 3, JSON.stringify(seen));
      assert.equal(seen.images, 4);
      assert.equal(seen.loadedImages, 4, 'gallery data-URL images decode');
      assert.ok(seen.chartHeight > 100);
      const shot = join(tmp, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 20_000, 'a real screenshot');
      await page.goto(`file://${dashPath}`, { waitUntil: 'load' });
      const dash = {
        charts: await count('svg.line-chart'),
        points: await count('svg.line-chart circle.point'),
        rows: await count('#steps-table tbody tr'),
      };
      assert.deepEqual(dash, { charts: 4, points: 10 * (4 + 2 + 2 + 1), rows: 10 });
      const dashShot = join(tmp, 'training.png');
      await page.screenshot({ path: dashShot, fullPage: true });
      assert.deepEqual(external, [], 'the pages fetched nothing from the network');
      if (process.env.SEGFLOW_REPORT_SCREENSHOTS) {
        mkdirSync(process.env.SEGFLOW_REPORT_SCREENSHOTS, { recursive: true });
        for (const f of ['report.png', 'training.png', 'report.html', 'training.html'])
          writeFileSync(join(process.env.SEGFLOW_REPORT_SCREENSHOTS, f), readFileSync(join(tmp, f)));
      }
    } finally {
      await browser.close();
    }
  },
);
