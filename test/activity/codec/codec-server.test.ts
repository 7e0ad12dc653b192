// `segr codec-server` over HTTP, as the Temporal Web UI calls it: POST /encode and /decode with
// {payloads: [...]} in proto3 JSON, CORS for the UI's origin only, and the bearer token when one is set.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Payload } from '@temporalio/common';
import { AesGcmPayloadCodec, parseCodecKeys } from '../../../activities/runtime/payload-codec.js';
import { payloadFromJson, payloadToJson } from '../../../workers/codec-server.js';
import { repoRoot } from '../../support/paths.js';
import { startProcess, stopProcesses, type WorkerProcess } from '../../support/stack.js';

const keys = `k1:${randomBytes(32).toString('base64')}`;
const token = randomBytes(16).toString('hex');
const uiOrigin = 'http://127.0.0.1:48233';
const codec = new AesGcmPayloadCodec(parseCodecKeys(keys, 'test'));
const utf8 = (s: string) => new TextEncoder().encode(s);
const sample: Payload = { metadata: { encoding: utf8('json/plain') }, data: utf8('{"query":"the red car"}') };
let server: WorkerProcess;
let url: string;

before(async () => {
  server = await startProcess(
    process.execPath,
    [join(repoRoot, 'bin/segr.js'), 'codec-server', '--listen', '127.0.0.1:0', '--cors-origin', uiOrigin],
    {
      env: { SEGFLOW_CODEC_KEYS: keys, SEGFLOW_CODEC_SERVER_AUTH_TOKEN: token },
      readyText: 'listening on',
      name: 'codec-server',
    },
  );
  url = /listening on (http:\/\/\S+)/.exec(server.output())![1]!;
});

after(() => stopProcesses([server]));

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

test('decode turns encrypted payloads back into the originals; encode encrypts what the workers can read', async () => {
  const encrypted = await codec.encode([sample]);
  const res = await post('/decode', { payloads: encrypted.map(payloadToJson) }, { 'x-namespace': 'default' });
  assert.equal(res.status, 200);
  const decoded = ((await res.json()) as { payloads: unknown[] }).payloads.map(payloadFromJson);
  assert.deepEqual(decoded.map(payloadToJson), [payloadToJson(sample)]);
  // the UI's endpoint may carry a path: …/codec/decode works the same
  assert.equal((await post('/some/prefix/decode', { payloads: [] })).status, 200);
  const enc = await post('/encode', { payloads: [payloadToJson(sample)] });
  const [back] = ((await enc.json()) as { payloads: unknown[] }).payloads.map(payloadFromJson);
  assert.equal(new TextDecoder().decode(back!.metadata!['encoding']), 'binary/encrypted');
  assert.deepEqual((await codec.decode([back!])).map(payloadToJson), [payloadToJson(sample)]);
  // an unencrypted payload passes through decode unchanged
  const clear = await post('/decode', { payloads: [payloadToJson(sample)] });
  assert.deepEqual((await clear.json()) as unknown, { payloads: [payloadToJson(sample)] });
});

test('CORS: the Web UI origin gets its preflight and headers; another origin is refused', async () => {
  const pre = await fetch(`${url}/decode`, {
    method: 'OPTIONS',
    headers: {
      origin: uiOrigin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type,x-namespace,authorization',
    },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), uiOrigin);
  assert.match(pre.headers.get('access-control-allow-headers') ?? '', /X-Namespace/);
  assert.match(pre.headers.get('access-control-allow-headers') ?? '', /Authorization/);
  assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
  const ok = await post('/decode', { payloads: [] }, { origin: uiOrigin });
  assert.equal(ok.headers.get('access-control-allow-origin'), uiOrigin);
  const evil = await post('/decode', { payloads: [] }, { origin: 'https://evil.example' });
  assert.equal(evil.status, 403);
  assert.equal(evil.headers.get('access-control-allow-origin'), null);
  const evilPre = await fetch(`${url}/decode`, {
    method: 'OPTIONS',
    headers: { origin: 'https://evil.example' },
  });
  assert.equal(evilPre.status, 403);
});

test('the bearer token is required; bad requests are named', async () => {
  const payloads = { payloads: (await codec.encode([sample])).map(payloadToJson) };
  assert.equal((await post('/decode', payloads, { authorization: '' })).status, 401);
  assert.equal((await post('/decode', payloads, { authorization: `Bearer ${token}x` })).status, 401);
  const notJson = await post('/decode', 'nope');
  assert.equal(notJson.status, 400);
  assert.match(((await notJson.json()) as { error: string }).error, /not JSON/);
  assert.equal((await post('/decode', { nothing: 1 })).status, 400);
  const other = new AesGcmPayloadCodec(parseCodecKeys(`k9:${randomBytes(32).toString('base64')}`, 'test'));
  const unknown = await post('/decode', { payloads: (await other.encode([sample])).map(payloadToJson) });
  assert.equal(unknown.status, 400);
  assert.match(((await unknown.json()) as { error: string }).error, /key "k9", which is not among/);
  assert.equal((await fetch(`${url}/decode`, { headers: { authorization: `Bearer ${token}` } })).status, 405);
  assert.equal((await post('/other', payloads)).status, 404);
});
