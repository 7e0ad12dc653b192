// The artifact store against the real S3 server of the dev stack.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { HeadObjectCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { contentAddressedKey } from '../../../core/artifacts.js';
import {
  ArtifactNotFoundError,
  ArtifactStore,
  classifyS3Error,
  createS3Client,
  MULTIPART_THRESHOLD,
} from '../../../activities/storage/artifact-store.js';
import { BadInputError, ConfigError, TransientError } from '../../../activities/errors.js';
import { testConfig, testStore, uniqueId } from '../../support/stack.js';

const store = testStore();
const prefix = uniqueId('store-test');
const dir = mkdtempSync(join(tmpdir(), 'segflow-store-'));
after(() => store.client.destroy());

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('put, head, get, list and presign a small object', async () => {
  const body = Buffer.from('{"hello":"s3"}');
  const ref = await store.putBytes(`${prefix}/a/one.json`, body, 'application/json');
  assert.deepEqual(ref, {
    uri: `s3://${store.bucket}/${prefix}/a/one.json`,
    sha256: sha(body),
    bytes: body.length,
    contentType: 'application/json',
  });
  assert.deepEqual(await store.head(ref.uri), ref);
  assert.deepEqual(await store.head(`${prefix}/a/one.json`), ref);
  assert.ok((await store.getBytes(ref.uri)).equals(body));
  assert.deepEqual(await store.getJson(ref.uri), { hello: 's3' });
  await store.putBytes(`${prefix}/a/two.txt`, Buffer.from('2'), 'text/plain');
  await store.putBytes(`${prefix}/b/three.txt`, Buffer.from('3'), 'text/plain');
  const listed = [];
  for await (const o of store.list(`${prefix}/a/`)) listed.push(o);
  assert.deepEqual(listed.map((o) => o.key).sort(), [`${prefix}/a/one.json`, `${prefix}/a/two.txt`]);
  const url = await store.presign(ref.uri, 60);
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '{"hello":"s3"}');
  assert.equal(await store.head(`${prefix}/a/missing.json`), undefined);
});

test('idempotent put: the same bytes at the same key are not written again; different bytes are', async () => {
  const key = `${prefix}/idem.bin`;
  const first = await store.putBytes(key, Buffer.from('same'), 'application/octet-stream');
  const before = await store.client.send(new HeadObjectCommand({ Bucket: store.bucket, Key: key }));
  await new Promise((r) => setTimeout(r, 1100)); // Last-Modified has 1 s resolution
  const second = await store.putBytes(key, Buffer.from('same'), 'application/octet-stream');
  const afterPut = await store.client.send(new HeadObjectCommand({ Bucket: store.bucket, Key: key }));
  assert.deepEqual(second, first);
  assert.equal(afterPut.ETag, before.ETag);
  assert.equal(
    afterPut.LastModified?.getTime(),
    before.LastModified?.getTime(),
    'a second identical put rewrote the object',
  );
  const changed = await store.putBytes(key, Buffer.from('different'), 'application/octet-stream');
  assert.notEqual(changed.sha256, first.sha256);
  assert.equal((await store.getBytes(key)).toString(), 'different');
});

test('content-addressed keys: the same bytes always land at the same key', async () => {
  const body = Buffer.from(`content ${prefix}`);
  const a = await store.putContentAddressed(`${prefix}/ca`, body, 'text/plain', 'txt');
  const b = await store.putContentAddressed(`${prefix}/ca`, Buffer.from(body), 'text/plain', '.txt');
  assert.equal(a.uri, b.uri);
  assert.equal(a.uri, store.uriOf(contentAddressedKey(`${prefix}/ca`, sha(body), 'txt')));
});

test(`a file over ${MULTIPART_THRESHOLD / 2 ** 20} MiB goes up multipart and streams back intact`, async () => {
  const path = join(dir, 'big.bin');
  const out = createWriteStream(path);
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < 21; i++) {
    chunk.fill(i * 11);
    chunk.writeUInt32LE(i, 0);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  const ref = await store.putFileContentAddressed(`${prefix}/big`, path, 'application/octet-stream', 'bin');
  assert.equal(ref.bytes, 21 * 2 ** 20);
  const head = await store.client.send(
    new HeadObjectCommand({ Bucket: store.bucket, Key: ref.uri.replace(`s3://${store.bucket}/`, '') }),
  );
  assert.match(
    head.ETag ?? '',
    /-\d+"?$/,
    `multipart objects have an ETag ending in -<parts>, got ${head.ETag}`,
  );
  // Streamed download with the SHA-256 checked against the ref.
  const back = join(dir, 'back.bin');
  await store.downloadToFile(ref, back);
  assert.equal(statSync(back).size, ref.bytes);
  assert.equal(sha(readFileSync(back)), ref.sha256);
  // getStream yields chunks, not one buffer.
  let chunks = 0;
  let total = 0;
  for await (const c of await store.getStream(ref.uri)) {
    chunks++;
    total += (c as Buffer).length;
  }
  assert.equal(total, ref.bytes);
  assert.ok(chunks > 1);
  // A second put of the same file is a no-op that returns the same ref.
  assert.deepEqual(
    await store.putFileContentAddressed(`${prefix}/big`, path, 'application/octet-stream', 'bin'),
    ref,
  );
});

test('a download whose bytes do not match the ref is a retryable error', async () => {
  const ref = await store.putBytes(`${prefix}/check.txt`, Buffer.from('abc'), 'text/plain');
  const err = await store
    .downloadToFile({ ...ref, sha256: '0'.repeat(64) }, join(dir, 'check.txt'))
    .catch((e: unknown) => e);
  assert.ok(err instanceof TransientError);
  assert.match(err.message, /has sha256 .* expected 0{64}/);
});

test('errors are classified: missing object, wrong credentials, foreign bucket, unreachable server', async () => {
  const missing = await store.getBytes(`${prefix}/nope.json`).catch((e: unknown) => e);
  assert.ok(missing instanceof ArtifactNotFoundError);
  assert.equal(missing.retryable, false);

  // (A missing bucket is not tried here: SeaweedFS creates buckets on first write for an admin
  // identity; its classification is covered by the classifyS3Error test below.)
  const config = testConfig();
  const badCreds = new ArtifactStore(createS3Client({ ...config.s3, secretAccessKey: 'wrong-secret' }), {
    bucket: config.s3.bucket,
  });
  const bc = await badCreds
    .putBytes(`${prefix}/creds.txt`, Buffer.from('x'), 'text/plain')
    .catch((e: unknown) => e);
  badCreds.client.destroy();
  assert.ok(bc instanceof ConfigError, String(bc));
  assert.equal(bc.retryable, false);

  await assert.rejects(store.head('s3://another-bucket/key'), BadInputError);

  const down = new ArtifactStore(createS3Client({ ...config.s3, endpoint: 'http://127.0.0.1:1' }), {
    bucket: config.s3.bucket,
  });
  const dn = await down.head('x').catch((e: unknown) => e);
  down.client.destroy();
  assert.ok(dn instanceof TransientError, String(dn));
  assert.equal(dn.retryable, true);
});

test('classifyS3Error: 5xx and throttling retry, other 4xx do not', () => {
  const mk = (name: string, status: number) =>
    new S3ServiceException({
      name,
      $fault: status >= 500 ? 'server' : 'client',
      $metadata: { httpStatusCode: status },
    });
  assert.equal(classifyS3Error(mk('InternalError', 500), 'put').retryable, true);
  assert.equal(classifyS3Error(mk('SlowDown', 503), 'put').retryable, true);
  assert.equal(classifyS3Error(mk('TooManyRequests', 429), 'put').retryable, true);
  assert.equal(classifyS3Error(mk('AccessDenied', 403), 'put').retryable, false);
  assert.equal(classifyS3Error(mk('InvalidRange', 416), 'get').retryable, false);
  const nb = classifyS3Error(mk('NoSuchBucket', 404), 'put x');
  assert.ok(nb instanceof ConfigError);
  assert.match(nb.message, /run `segr dev up`/);
});

test('keys built from hostile ids never reach S3: "..", absolute, empty and control-character segments are bad input', async () => {
  const sentinel = `${prefix}/sentinel.txt`;
  await store.putBytes(sentinel, Buffer.from('kept'), 'text/plain');
  const hostileKeys = [
    `${prefix}/queries/../../sentinel.txt`,
    `queries/../${prefix}/sentinel.txt`,
    `/${prefix}/abs.txt`,
    `${prefix}//double.txt`,
    `${prefix}/ctl\u0000.txt`,
    `${prefix}/%2e%2e/enc.txt`,
    `s3://${store.bucket}/${prefix}/../sentinel.txt`,
  ];
  for (const key of hostileKeys) {
    await assert.rejects(
      store.putBytes(key, Buffer.from('overwritten'), 'text/plain'),
      (err: Error) => err instanceof BadInputError && /unsafe S3 key/.test(err.message),
      key,
    );
    await assert.rejects(store.getBytes(key), BadInputError, key);
    await assert.rejects(store.head(key), BadInputError, key);
  }
  await assert.rejects(async () => {
    for await (const o of store.list(`${prefix}/../`)) void o;
  }, BadInputError);
  assert.equal((await store.getBytes(sentinel)).toString(), 'kept');
  // the whole bucket (an empty prefix) may still be listed
  const first = await store.list('')[Symbol.asyncIterator]().next();
  assert.equal(first.done, false);
});
