// Metrics and traces of a short nano training run (README "Observing a run"): a real TS worker process
// (all roles) and the real Python trainer, each serving Prometheus `/metrics` on its own port and
// exporting spans over OTLP/HTTP to a local receiver started here; one trainingRun step on the nano
// world (2 prompts × 4 trajectories), then an evaluation of two samples. Checked: both endpoints serve
// the SDK's worker series and segflow's own, with the values the run stored in
// `runs/<run>/steps/0/metrics.json`; one trace holds the trainingRun, rolloutGroup and rollout
// workflows, their policy and search activities and the trainer's update_policy; the evaluation's
// trace reaches its segmentation activity, and its samples are counted.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import protobuf from 'protobufjs';
import type { Client } from '@temporalio/client';
import { TaskQueues } from '../../core/queues.js';
import type { TrainingRunResult } from '../../workflows/training-run.js';
import type { TrainingConfigInput } from '../../workflows/training-config.js';
import { repoRoot } from '../support/paths.js';
import { startNanoTraining, type NanoTraining } from '../support/nano-training.js';
import { testClient, testConfig, testStore, uniqueId } from '../support/stack.js';

const config = testConfig();
const store = testStore(config);
/** Random high ports: the SDK's Prometheus exporter cannot bind port 0 and report it. */
const port = () => 20_000 + Math.floor(Math.random() * 20_000);
const workerMetrics = `127.0.0.1:${port()}`;
const trainerMetrics = `127.0.0.1:${port()}`;

// The subset of OTLP's ExportTraceServiceRequest the checks read (the Python exporter sends protobuf;
// the TypeScript one JSON). Field numbers from opentelemetry-proto trace/v1 and collector/trace/v1.
const otlp = protobuf
  .parse(
    `
  syntax = "proto3";
  message KeyValue { string key = 1; AnyValue value = 2; }
  message AnyValue { string string_value = 1; }
  message Resource { repeated KeyValue attributes = 1; }
  message Span { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; }
  message ScopeSpans { repeated Span spans = 2; }
  message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
  message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
`,
  )
  .root.lookupType('ExportTraceServiceRequest');

interface ReceivedSpan {
  service: string;
  traceId: string;
  name: string;
}

/** Spans as the receiver got them, from either encoding. */
function spansOf(contentType: string, body: Buffer): ReceivedSpan[] {
  type Json = {
    resourceSpans?: {
      resource?: { attributes?: { key: string; value?: { stringValue?: string } }[] };
      scopeSpans?: { spans?: { traceId: string; name: string }[] }[];
    }[];
  };
  let req: Json;
  if (contentType.includes('json')) req = JSON.parse(body.toString('utf8')) as Json;
  else {
    // bytes as base64 strings, then hex as in the JSON encoding
    req = otlp.toObject(otlp.decode(body), { bytes: String }) as Json;
    for (const rs of req.resourceSpans ?? [])
      for (const ss of rs.scopeSpans ?? [])
        for (const span of ss.spans ?? []) span.traceId = Buffer.from(span.traceId, 'base64').toString('hex');
  }
  return (req.resourceSpans ?? []).flatMap((rs) => {
    const service = rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value?.stringValue ?? '?';
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({ service, traceId: s.traceId, name: s.name })),
    );
  });
}

const received: ReceivedSpan[] = [];
const receiver = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'POST' && req.url === '/v1/traces') {
      received.push(...spansOf(req.headers['content-type'] ?? '', Buffer.concat(chunks)));
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});

let client: Client;
let nano: NanoTraining;

before(async () => {
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const traces = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/traces`;
  client = await testClient(config);
  nano = await startNanoTraining(store, config.s3.endpoint, {
    trainLimit: 8,
    testLimit: 4,
    workerEnv: { SEGFLOW_METRICS_BIND_ADDRESS: workerMetrics, SEGFLOW_OTLP_TRACES_ENDPOINT: traces },
    trainerEnv: { SEGFLOW_METRICS_BIND_ADDRESS: trainerMetrics, SEGFLOW_OTLP_TRACES_ENDPOINT: traces },
  });
});

after(async () => {
  await nano?.stop();
  await client?.connection.close();
  store.client.destroy();
  receiver.close();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition: one sample per line, `name{a="b",…} value`. */
async function scrape(address: string): Promise<Sample[]> {
  const res = await fetch(`http://${address}/metrics`);
  assert.equal(res.status, 200, `GET http://${address}/metrics`);
  const samples: Sample[] = [];
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number {
  const hit = samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(
    hit,
    `no ${name}${JSON.stringify(labels)} among ${[...new Set(samples.map((s) => s.name))].filter((n) => n.includes(name.split('_')[1]!)).join(', ')}`,
  );
  return hit.value;
}

/** A signed value (workflows/metrics.ts setSigned): its positive series minus its negative one. */
const signed = (samples: Sample[], name: string, labels: Record<string, string>) =>
  value(samples, name, { ...labels, sign: 'positive' }) -
  value(samples, name, { ...labels, sign: 'negative' });

const names = (samples: Sample[]) => new Set(samples.map((s) => s.name));

test(
  'a nano training step is observable: metrics on both workers, one trace',
  { timeout: 900_000 },
  async () => {
    const trainConfig = JSON.parse(
      readFileSync(join(repoRoot, 'nano', 'train-config.json'), 'utf8'),
    ) as object;
    const runId = uniqueId('it-obs');
    const cfg = {
      ...trainConfig,
      dataset: nano.world.train,
      initialPolicy: { uri: nano.world.policy, model: 'nano-policy' },
      steps: 1,
      promptsPerStep: 2,
      groupSize: 4,
      seed: 0,
    } as TrainingConfigInput;
    const run = (await client.workflow.execute('trainingRun', {
      taskQueue: TaskQueues.orchestrator,
      workflowId: runId,
      args: [{ runId, config: cfg }],
      workflowExecutionTimeout: '15 minutes',
    })) as TrainingRunResult;
    assert.equal(run.status, 'completed');
    const stored = await store.getJson<{
      keptGroups: number;
      droppedGroups: number;
      rollouts: { reward: { total: { mean: number }; outcome: number; format: number } };
      trainer: { loss: number; gradNorm: number; entropy: number; pgClipFraction: number } | null;
      timings: { rolloutMs: number };
    }>(`runs/${runId}/steps/0/metrics.json`);
    assert.ok(stored.trainer, 'the step trained (a group had a learning signal)');

    // The TS worker: the SDK's series, and segflow's workflow- and activity-side series.
    const ts = await scrape(workerMetrics);
    const tsNames = names(ts);
    console.log(`worker metrics: ${[...tsNames].sort().join(' ')}`);
    for (const sdk of [
      'temporal_workflow_task_schedule_to_start_latency_bucket',
      'temporal_activity_schedule_to_start_latency_bucket',
      'temporal_activity_execution_latency_bucket',
      'temporal_worker_task_slots_available',
    ]) {
      assert.ok(tsNames.has(sdk), `the worker serves ${sdk}`);
    }
    const run_id = runId;
    const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} ≠ ${b}`);
    close(
      signed(ts, 'segflow_reward_mean', { run_id, component: 'total' }),
      stored.rollouts.reward.total.mean,
    );
    close(
      signed(ts, 'segflow_reward_mean', { run_id, component: 'outcome' }),
      stored.rollouts.reward.outcome,
    );
    close(signed(ts, 'segflow_reward_mean', { run_id, component: 'format' }), stored.rollouts.reward.format);
    assert.equal(value(ts, 'segflow_groups_kept', { run_id }), stored.keptGroups);
    assert.equal(value(ts, 'segflow_groups_dropped', { run_id }), stored.droppedGroups);
    assert.equal(value(ts, 'segflow_training_step', { run_id }), 1);
    close(value(ts, 'segflow_step_ms', { run_id, part: 'rollout' }), stored.timings.rolloutMs);
    assert.ok(value(ts, 'segflow_policy_generate_latency_count', {}) > 0, 'policy turns were timed');
    assert.ok(value(ts, 'segflow_search_latency_count', { backend: 'local' }) > 0, 'searches were timed');

    // The trainer: the SDK's series, and the update's metrics as returned to the workflow.
    const py = await scrape(trainerMetrics);
    const pyNames = names(py);
    console.log(`trainer metrics: ${[...pyNames].sort().join(' ')}`);
    assert.ok(
      pyNames.has('temporal_activity_schedule_to_start_latency_bucket'),
      'the trainer serves the SDK series',
    );
    close(signed(py, 'segflow_trainer_loss', { run_id }), stored.trainer.loss);
    close(value(py, 'segflow_trainer_grad_norm', { run_id }), stored.trainer.gradNorm);
    close(value(py, 'segflow_trainer_entropy', { run_id }), stored.trainer.entropy);
    close(value(py, 'segflow_trainer_clip_fraction', { run_id }), stored.trainer.pgClipFraction);

    // Traces: the workflow's spans and every activity's, under the trainingRun's trace id.
    const wanted = [
      'RunWorkflow:trainingRun',
      'RunWorkflow:rolloutGroup',
      'RunWorkflow:rollout',
      'RunActivity:policyTurn',
      'RunActivity:searchTool',
      'RunActivity:update_policy',
    ];
    const deadline = Date.now() + 30_000;
    const root = () => received.find((s) => s.name === 'RunWorkflow:trainingRun');
    const inTrace = () => received.filter((s) => s.traceId === root()?.traceId);
    while (Date.now() < deadline && !wanted.every((n) => inTrace().some((s) => s.name === n))) {
      await new Promise((r) => setTimeout(r, 500));
    }
    const spans = inTrace();
    console.log(
      `trace ${root()?.traceId}: ${spans.length} spans; ${[...new Set(spans.map((s) => `${s.service}/${s.name}`))].sort().join(' ')}`,
    );
    for (const n of wanted) {
      assert.ok(
        spans.some((s) => s.name === n),
        `span ${n} in the trainingRun's trace (received: ${[...new Set(received.map((s) => s.name))].join(', ')})`,
      );
    }
    assert.ok(
      spans.some((s) => s.service === 'segflow-trainer'),
      "the trainer's spans join the trace",
    );
    // An evaluation of two held-out samples: its progress counter, SAM2's time per frame, and its
    // trace down to the segmentation activity (training rollouts of the nano world do not segment).
    const evalId = uniqueId('it-obs-eval');
    await client.workflow.execute('evaluation', {
      taskQueue: TaskQueues.orchestrator,
      workflowId: evalId,
      args: [
        {
          dataset: nano.world.test,
          evalId,
          policy: { model: 'nano-policy', version: 0, sampling: { temperature: 0 } },
          concurrency: 2,
          limit: 2,
        },
      ],
      workflowExecutionTimeout: '10 minutes',
    });
    const after = await scrape(workerMetrics);
    assert.equal(value(after, 'segflow_eval_samples_evaluated', { eval_id: evalId }), 2);
    assert.ok(value(after, 'segflow_sam2_frame_ms_count', {}) > 0, 'SAM2 frames were timed');
    const evalRoot = () => received.find((s) => s.name === 'RunWorkflow:evaluation');
    const segmented = () =>
      received.some((s) => s.traceId === evalRoot()?.traceId && s.name.startsWith('RunActivity:segment'));
    const until = Date.now() + 30_000;
    while (Date.now() < until && !segmented()) await new Promise((r) => setTimeout(r, 500));
    const evalSpans = received.filter((s) => s.traceId === evalRoot()?.traceId);
    console.log(`evaluation trace: ${[...new Set(evalSpans.map((s) => s.name))].sort().join(' ')}`);
    assert.ok(segmented(), 'a segmentation activity span in the evaluation trace');
  },
);
