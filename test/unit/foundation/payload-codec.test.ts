// The payload codec, TypeScript side (activities/runtime/payload-codec.ts): AES-256-GCM with optional
// zlib, key rotation, refusals, and how config turns it on. The cross-check with the Python codec is
// test/activity/codec/payload-codec.test.ts; the dev-stack round trip test/integration/payload-codec.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Payload } from '@temporalio/common';
import { loadConfig } from '../../../activities/runtime/config-loader.js';
import {
  AesGcmPayloadCodec,
  PayloadCodecError,
  dataConverterFor,
  parseCodecKeys,
  payloadCodecFromConfig,
} from '../../../activities/runtime/payload-codec.js';
import { ConfigError } from '../../../activities/errors.js';

const k1 = randomBytes(32).toString('base64');
const k2 = randomBytes(32).toString('base64');
const keys = `k2:${k2},k1:${k1}`;
const noFile = join(mkdtempSync(join(tmpdir(), 'segflow-codec-')), 'empty.yaml');
writeFileSync(noFile, '');

const text = (s: string) => new TextEncoder().encode(s);
const plain = (s: string): Payload => ({
  metadata: { encoding: text('json/plain') },
  data: text(JSON.stringify(s)),
});
const meta = (p: Payload, k: string) => new TextDecoder().decode(p.metadata![k]);
const same = (a: Payload, b: Payload) => {
  assert.deepEqual(Object.keys(a.metadata ?? {}).sort(), Object.keys(b.metadata ?? {}).sort());
  for (const k of Object.keys(a.metadata ?? {})) assert.equal(meta(a, k), meta(b, k));
  assert.equal(Buffer.from(a.data!).toString('hex'), Buffer.from(b.data!).toString('hex'));
};

test('encrypts with the first key, decrypts with any listed key, a fresh nonce every time', async () => {
  const codec = new AesGcmPayloadCodec(parseCodecKeys(keys, 'test'));
  const old = new AesGcmPayloadCodec(parseCodecKeys(`k1:${k1}`, 'test'));
  const p = plain('the red car');
  const [enc] = await codec.encode([p]);
  assert.equal(meta(enc!, 'encoding'), 'binary/encrypted');
  assert.equal(meta(enc!, 'encryption-key-id'), 'k2');
  assert.equal(meta(enc!, 'encryption-cipher'), 'AES-256-GCM');
  assert.ok(!Buffer.from(enc!.data!).includes('red car'));
  same((await codec.decode([enc!]))[0]!, p);
  same((await codec.decode(await old.encode([p])))[0]!, p); // rotation: the old key still decrypts
  await assert.rejects(old.decode([enc!]), /key "k2", which is not among this process's codec keys \[k1\]/);
  const [again] = await codec.encode([p]);
  assert.notEqual(Buffer.from(again!.data!).toString('hex'), Buffer.from(enc!.data!).toString('hex'));
});

test('compression only where it helps; any codec reads compressed payloads', async () => {
  const codec = new AesGcmPayloadCodec(parseCodecKeys(`k1:${k1}`, 'test'), { compress: true });
  const big = plain('segment '.repeat(200));
  const [encBig, encSmall] = await codec.encode([big, plain('tiny')]);
  assert.equal(meta(encBig!, 'encryption-compression'), 'zlib');
  assert.ok(encBig!.data!.length < big.data!.length / 4);
  assert.equal(meta(encSmall!, 'encryption-compression'), 'none');
  same((await new AesGcmPayloadCodec(parseCodecKeys(`k1:${k1}`, 'test')).decode([encBig!]))[0]!, big);
});

test('a tampered, relabelled or truncated payload is refused; an unencrypted one passes through', async () => {
  const codec = new AesGcmPayloadCodec(parseCodecKeys(`k1:${k1}`, 'test'), { compress: true });
  const [enc] = await codec.encode([plain('x'.repeat(500))]);
  const data = Buffer.from(enc!.data!);
  data[data.length - 1]! ^= 1;
  await assert.rejects(codec.decode([{ ...enc!, data }]), (e: Error) => e instanceof PayloadCodecError);
  const relabelled = { ...enc!, metadata: { ...enc!.metadata, 'encryption-compression': text('none') } };
  await assert.rejects(codec.decode([relabelled]), /failed authentication/);
  await assert.rejects(codec.decode([{ ...enc!, data: enc!.data!.subarray(0, 10) }]), /truncated/);
  const clear = plain('clear');
  same((await codec.decode([clear]))[0]!, clear);
});

test('bad keys are named by entry and id, never by their material', () => {
  const cases: [string, RegExp][] = [
    ['', /holds no key/],
    ['nokey', /entry 1 is not "id:base64key"/],
    [`a b:${k1}`, /entry 1 is not/],
    [`k:${Buffer.from('short').toString('base64')}`, /key "k" is not 32 bytes of base64/],
    [`k:${k1},k:${k2}`, /lists key id "k" twice/],
  ];
  for (const [input, message] of cases) {
    assert.throws(
      () => parseCodecKeys(input, 'SEGFLOW_CODEC_KEYS'),
      (e: Error) => e instanceof ConfigError && message.test(e.message) && !e.message.includes(k1),
      input,
    );
  }
});

test('config turns it on for every client and worker: SEGFLOW_CODEC_KEYS or a key file; off by default', () => {
  const off = loadConfig({ env: {}, file: noFile }).config;
  assert.deepEqual(dataConverterFor(off), {});
  const on = loadConfig({
    env: { SEGFLOW_CODEC_KEYS: keys, SEGFLOW_CODEC_COMPRESS: 'true' },
    file: noFile,
  }).config;
  const codec = payloadCodecFromConfig(on);
  assert.deepEqual(codec?.keyIds, ['k2', 'k1']);
  assert.equal(dataConverterFor(on).payloadCodecs?.length, 1);
  const keyFile = join(mkdtempSync(join(tmpdir(), 'segflow-codec-')), 'keys');
  writeFileSync(keyFile, keys.replace(',', '\n'));
  const fromFile = loadConfig({ env: { SEGFLOW_CODEC_KEY_FILE: keyFile }, file: noFile }).config;
  assert.deepEqual(payloadCodecFromConfig(fromFile)?.keyIds, ['k2', 'k1']);
  const both = loadConfig({
    env: { SEGFLOW_CODEC_KEYS: keys, SEGFLOW_CODEC_KEY_FILE: keyFile },
    file: noFile,
  });
  assert.throws(() => payloadCodecFromConfig(both.config), /both codec.keys .* and codec.keyFile/);
  const missing = loadConfig({ env: { SEGFLOW_CODEC_KEY_FILE: `${keyFile}.nope` }, file: noFile });
  assert.throws(
    () => payloadCodecFromConfig(missing.config),
    /cannot read the payload codec key file .*ENOENT/,
  );
});
