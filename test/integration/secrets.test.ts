// Secrets never reach a history, an S3 object or a log. A worker process is given planted secrets — a
// policy API key, a Serper API key, a SearXNG URL with user:password in it, payload codec keys, the S3
// secret key — and two real evaluations run whose activities fail in ways that echo them: the policy
// server answers 401 repeating the key it was sent, Serper answers 403 repeating its key, the SearXNG
// URL cannot even be requested (and the error quotes it), and the policy server answers 400 quoting
// the presigned S3 image URL (X-Amz-Credential, X-Amz-Signature). Then every event of every workflow of
// both runs (raw, and with every payload decoded by the codec), every S3 object under their prefixes
// and the worker's whole log are searched: none of the planted strings may appear, while the failures
// themselves (scrubbed) are there.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { loadConfig } from '../../activities/runtime/config-loader.js';
import { AesGcmPayloadCodec, parseCodecKeys } from '../../activities/runtime/payload-codec.js';
import { EvalKeys, RunKeys } from '../../core/contracts/keys.js';
import { TaskQueues } from '../../core/queues.js';
import { connectClient } from '../../workers/temporal-connection.js';
import { payloadFromJson, payloadToJson } from '../../workers/codec-server.js';
import type { EvaluationInput } from '../../workflows/evaluation.js';
import {
  error as policyError,
  startFakePolicyServer,
  type FakePolicyServer,
  type WireMessage,
} from '../servers/openai-server.js';
import { startSearxng, startSerper } from '../servers/search-servers.js';
import type { LocalServer } from '../servers/http-server.js';
import { prepareTrainingDataset } from '../support/training.js';
import {
  startWorkerProcess,
  stopProcesses,
  testClient,
  testConfig,
  testStore,
  uniqueId,
  type WorkerProcess,
} from '../support/stack.js';

const tag = randomBytes(6).toString('hex');
const planted = {
  policyKey: `sk-planted-policy-${tag}`,
  serperKey: `serper-planted-key-${tag}`,
  urlPassword: `url-planted-pass-${tag}`,
  codecKey: randomBytes(32).toString('base64'),
};
const codecKeys = `k-${tag}:${planted.codecKey}`;
const config = testConfig();
const store = testStore(config);
const tmp = mkdtempSync(join(tmpdir(), 'segflow-secrets-it-'));
let policy: FakePolicyServer;
let serper: LocalServer;
let searxng: LocalServer;
let worker: WorkerProcess;
let bare: Client;
let client: Client;
let dataset: string;

const textOf = (m: WireMessage | undefined) =>
  !m ? '' : typeof m.content === 'string' ? m.content : m.content.map((p) => p.text ?? '').join('');

before(async () => {
  policy = await startFakePolicyServer({
    flavor: 'vllm',
    // every sample searches first: its search backend decides how it fails
    script: (messages) =>
      `<thinking>I need to know more.</thinking>\n<search> {"name": "text_search", "query": "red car ${messages.length}"} </search>`,
    refuse: (path, body, headers) => {
      const messages = Array.isArray(body.messages) ? (body.messages as WireMessage[]) : [];
      const user = textOf(messages[1]);
      // a server that repeats the key it was sent (as some APIs' "Incorrect API key provided: …" do)
      if (user.includes('[p1]'))
        return policyError(
          401,
          'AuthenticationError',
          `Incorrect API key provided: ${String(headers.authorization)}`,
        );
      // a server that quotes the image URL it could not fetch: a presigned S3 URL
      if (user.includes('[p3]') && path === '/v1/chat/completions') {
        const urls = JSON.stringify(body).match(/https?:\/\/[^"\\]+X-Amz-Signature=[^"\\]+/g) ?? [];
        return policyError(400, 'BadRequestError', `could not fetch image ${urls[0] ?? '(none)'}`);
      }
      return undefined;
    },
  });
  serper = await startSerper({ apiKey: 'the-real-serper-key', echoKey: true, docs: [] });
  searxng = await startSearxng({ docs: [] });
  const credentialed = new URL(searxng.url);
  credentialed.username = 'planted-user';
  credentialed.password = planted.urlPassword;
  const configFile = join(tmp, 'segflow.config.yaml');
  writeFileSync(configFile, 'policy:\n  imageTransport: presigned-url\n');
  worker = await startWorkerProcess([], {
    SEGFLOW_CONFIG: configFile,
    SEGFLOW_POLICY_URL: `${policy.url}/v1`,
    SEGFLOW_POLICY_API_KEY: planted.policyKey,
    SEGFLOW_SERPER_URL: serper.url,
    SERPER_API_KEY: planted.serperKey,
    SEGFLOW_SEARXNG_URL: credentialed.toString(),
    SEGFLOW_SEARCH_CACHE: 'false',
    SEGFLOW_CODEC_KEYS: codecKeys,
  });
  bare = await testClient(config);
  client = await connectClient(loadConfig({ overrides: { 'codec.keys': codecKeys } }).config);
  dataset = await prepareTrainingDataset(store, join(tmp, 'data'), [
    { id: 'p1', image: 'cars.jpg', query: 'the red car [p1]' },
    { id: 'p2', image: 'cars.jpg', query: 'the blue car [p2]' },
    { id: 'p3', image: 'cars.jpg', query: 'the green car [p3]' },
  ]);
});

after(async () => {
  await stopProcesses([worker]);
  await Promise.all([policy.close(), serper.close(), searxng.close()]);
  await bare.connection.close();
  await client.connection.close();
  store.client.destroy();
});

/** The histories of a workflow and all its descendants, raw (as a codec-less client reads them). */
async function histories(workflowId: string, out = new Map<string, string>()): Promise<Map<string, string>> {
  const json = historyToJSON(await bare.workflow.getHandle(workflowId).fetchHistory());
  out.set(workflowId, json);
  type Event = { startChildWorkflowExecutionInitiatedEventAttributes?: { workflowId?: string } };
  const events = (JSON.parse(json) as { events: Event[] }).events;
  for (const e of events) {
    const child = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
    if (child && !out.has(child)) await histories(child, out);
  }
  return out;
}

/** A history with every payload replaced by its decoded form (what a codec-holding reader sees). */
async function decoded(json: string, codec: AesGcmPayloadCodec): Promise<string> {
  const walk = async (node: unknown): Promise<unknown> => {
    if (Array.isArray(node)) return Promise.all(node.map(walk));
    if (!node || typeof node !== 'object') return node;
    const o = node as Record<string, unknown>;
    if (o.metadata && typeof o.metadata === 'object' && 'data' in o) {
      const [p] = await codec.decode([payloadFromJson(o)]);
      const plain = payloadToJson(p as Payload) as { metadata?: Record<string, string>; data?: string };
      return { metadata: plain.metadata, data: Buffer.from(plain.data ?? '', 'base64').toString('utf8') };
    }
    return Object.fromEntries(await Promise.all(Object.entries(o).map(async ([k, v]) => [k, await walk(v)])));
  };
  return JSON.stringify(await walk(JSON.parse(json)));
}

async function objectsUnder(prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const o of store.list(prefix)) out.set(o.key, (await store.getBytes(o.key)).toString('utf8'));
  return out;
}

test(
  'planted secrets appear in no history event, no S3 object of the runs and no worker log line',
  { timeout: 300_000 },
  async () => {
    const runs: string[] = [];
    for (const backend of ['serper', 'searxng'] as const) {
      const evalId = uniqueId(`it-secrets-${backend}`);
      const input: EvaluationInput = {
        evalId,
        dataset,
        policy: { model: 'policy', version: 1 },
        search: { backend },
        concurrency: 3,
        outageToleranceSeconds: 2,
      };
      await client.workflow.execute('evaluation', {
        taskQueue: TaskQueues.orchestrator,
        workflowId: evalId,
        args: [input],
        workflowExecutionTimeout: '4 minutes',
      });
      runs.push(evalId);
    }
    // the planted key really was sent: the echo below is the worker's own secret
    assert.ok(policy.requests.some((r) => r.headers.authorization === `Bearer ${planted.policyKey}`));
    assert.ok(serper.requests.some((r) => r.headers['x-api-key'] === planted.serperKey));

    const codec = new AesGcmPayloadCodec(parseCodecKeys(codecKeys, 'test'));
    const texts = new Map<string, string>();
    for (const evalId of runs) {
      for (const [id, json] of await histories(evalId)) {
        texts.set(`history ${id}`, json);
        texts.set(`history ${id} (decoded)`, await decoded(json, codec));
      }
      for (const prefix of [`evals/${evalId}/`, RunKeys.searchUsage(evalId)]) {
        for (const [key, body] of await objectsUnder(prefix)) texts.set(`s3 ${key}`, body);
      }
    }
    texts.set('worker log', worker.output());
    assert.ok(
      [...texts.keys()].filter((k) => k.startsWith('history')).length >= 2 * 2 * 4,
      'evaluations, samples, rollouts',
    );
    assert.ok(
      [...texts.keys()].some((k) => k.endsWith('report.html')),
      'the reports were written',
    );

    const secrets = [...Object.values(planted), config.s3.secretAccessKey, 'planted-user:'];
    const leaks: string[] = [];
    for (const [where, text] of texts) {
      for (const s of secrets) if (text.includes(s)) leaks.push(`${where}: ${s}`);
      for (const m of text.matchAll(/X-Amz-(Signature|Credential)=(?!\*\*\*)[^&"\s]{4}/g))
        leaks.push(`${where}: ${m[0]}`);
    }
    assert.deepEqual(leaks, [], 'planted secrets leaked');

    // the failures happened, echoed their secrets, and were scrubbed where they were recorded
    const stored = [...texts]
      .filter(([k]) => k.startsWith('s3 ') && k.includes('/samples/'))
      .map(([, v]) => v)
      .join('\n');
    const decodedHistories = [...texts]
      .filter(([k]) => k.endsWith('(decoded)'))
      .map(([, v]) => v)
      .join('\n');
    for (const all of [stored, decodedHistories]) {
      assert.match(all, /Incorrect API key provided: Bearer \*\*\*/);
      assert.match(all, /Unauthorized: invalid key \*\*\*/);
      assert.match(all, /includes credentials: http:\/\/\*\*\*@127\.0\.0\.1/);
      assert.match(all, /X-Amz-Credential=\*\*\*/);
    }
    assert.match(worker.output(), /Activity failed/);
    assert.ok(EvalKeys.summary(runs[0]!));
  },
);
