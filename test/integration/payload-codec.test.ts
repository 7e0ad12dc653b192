// The payload codec on the dev stack: a worker process and `segr check` with SEGFLOW_CODEC_KEYS run the
// real stackCheck workflow (one activity on every role queue, heartbeats included); a client without the
// codec then finds only encrypted payloads in its history and cannot read its result, and
// `segr codec-server` (what the Web UI is pointed at) decodes them again.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { StackCheckResult } from '../../workflows/stack-check.js';
import { repoRoot } from '../support/paths.js';
import {
  startProcess,
  startWorkerProcess,
  stopProcesses,
  testClient,
  uniqueId,
  type WorkerProcess,
} from '../support/stack.js';

const keys = `k2:${randomBytes(32).toString('base64')},k1:${randomBytes(32).toString('base64')}`;
const codecEnv = { SEGFLOW_CODEC_KEYS: keys, SEGFLOW_CODEC_COMPRESS: 'true' };
let worker: WorkerProcess;
let codecServer: WorkerProcess | undefined;
let bare: Client;

before(async () => {
  worker = await startWorkerProcess([], codecEnv);
  bare = await testClient(); // the test process's own config: no codec keys
});

after(async () => {
  await stopProcesses([worker, codecServer]);
  await bare.connection.close();
});

/** Every Payload in a history in proto3 JSON (search attributes are indexed by the server: never encoded). */
function payloadsOf(node: unknown, out: { metadata: Record<string, string>; data?: string }[] = []) {
  if (Array.isArray(node)) for (const v of node) payloadsOf(v, out);
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (
      o.metadata &&
      typeof o.metadata === 'object' &&
      ('data' in o || 'encoding' in (o.metadata as object))
    ) {
      out.push(o as { metadata: Record<string, string>; data?: string });
    }
    for (const [k, v] of Object.entries(o)) if (k !== 'searchAttributes') payloadsOf(v, out);
  }
  return out;
}

test(
  'with the codec on, a real workflow runs through the CLI and workers, and its history holds no plaintext',
  {
    timeout: 180_000,
  },
  async () => {
    assert.match(worker.output(), /"payloadCodec":"on"/);
    const workflowId = uniqueId('it-codec');
    const check = spawnSync(
      process.execPath,
      [
        join(repoRoot, 'bin/segr.js'),
        'check',
        '--steps',
        '5',
        '--step-delay-ms',
        '600',
        '--id',
        workflowId,
        '-o',
        'json',
      ],
      { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, ...codecEnv } },
    );
    assert.equal(check.status, 0, check.stderr);
    const result = (JSON.parse(check.stdout) as { result: StackCheckResult }).result;
    assert.equal(result.steps.length, 5);

    const history = await bare.workflow.getHandle(workflowId).fetchHistory();
    const json = historyToJSON(history);
    // what only payloads carry: the objects' hashes and keys, the input's field names, the host id
    const plaintext = [
      ...result.steps.flatMap((s) => [s.ref.sha256, s.ref.uri.replace(/^s3:\/\/[^/]+\//, '')]),
      'stepDelayMs',
      '"waited"',
      'json/plain',
    ];
    for (const p of plaintext) assert.ok(!json.includes(p), `plaintext ${p} in the history`);
    const payloads = payloadsOf(JSON.parse(json));
    // workflow input and result, 5 activity inputs and results, heartbeat-free completions: at least 12
    assert.ok(payloads.length >= 12, `${payloads.length} payloads`);
    for (const p of payloads) {
      assert.equal(Buffer.from(p.metadata.encoding ?? '', 'base64').toString(), 'binary/encrypted');
      assert.equal(Buffer.from(p.metadata['encryption-key-id'] ?? '', 'base64').toString(), 'k2');
    }
    await assert.rejects(bare.workflow.getHandle(workflowId).result(), /binary\/encrypted|encoding/i);

    // what the Web UI does with the codec endpoint: the encrypted workflow input, decoded
    codecServer = await startProcess(
      process.execPath,
      [join(repoRoot, 'bin/segr.js'), 'codec-server', '--listen', '127.0.0.1:0'],
      { env: { SEGFLOW_CODEC_KEYS: keys }, readyText: 'listening on', name: 'codec-server' },
    );
    const url = /listening on (http:\/\/\S+)/.exec(codecServer.output())![1]!;
    type Started = { workflowExecutionStartedEventAttributes: { input: { payloads: unknown[] } } };
    const started = (JSON.parse(json) as { events: Started[] }).events[0]!;
    const input = started.workflowExecutionStartedEventAttributes.input.payloads;
    const res = await fetch(`${url}/decode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-namespace': 'default' },
      body: JSON.stringify({ payloads: input }),
    });
    assert.equal(res.status, 200);
    const [decoded] = ((await res.json()) as { payloads: { data: string }[] }).payloads;
    assert.deepEqual(JSON.parse(Buffer.from(decoded!.data, 'base64').toString()), {
      steps: 5,
      stepDelayMs: 600,
    });
  },
);
