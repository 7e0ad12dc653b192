// The TypeScript and Python payload codecs speak one wire format (core/contracts/payload-codec.ts): a
// payload either side encrypts (compressed or not, with any listed key) the other decrypts to the
// same bytes. Python side: `python -m segflow_trainer.codec encode|decode` in the trainer venv.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Payload } from '@temporalio/common';
import { AesGcmPayloadCodec, parseCodecKeys } from '../../../activities/runtime/payload-codec.js';
import { payloadFromJson, payloadToJson } from '../../../workers/codec-server.js';
import { repoRoot } from '../../support/paths.js';
import { requireTrainerVenv, trainerPython } from '../../support/training.js';

const keys = `new:${randomBytes(32).toString('base64')},old:${randomBytes(32).toString('base64')}`;
const utf8 = (s: string) => new TextEncoder().encode(s);

function python(command: 'encode' | 'decode', payloads: Payload[], env: NodeJS.ProcessEnv): Payload[] {
  requireTrainerVenv();
  const r = spawnSync(trainerPython, ['-m', 'segflow_trainer.codec', command], {
    cwd: join(repoRoot, 'trainer'),
    input: JSON.stringify({ payloads: payloads.map(payloadToJson) }),
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  assert.equal(r.status, 0, `segflow_trainer.codec ${command} failed:\n${r.stderr}`);
  return (JSON.parse(r.stdout) as { payloads: unknown[] }).payloads.map(payloadFromJson);
}

/** Payloads like the SDK's: JSON, a null, raw bytes, a large JSON document (compressible). */
const samples: Payload[] = [
  { metadata: { encoding: utf8('json/plain') }, data: utf8(JSON.stringify({ query: 'the red car', n: 3 })) },
  { metadata: { encoding: utf8('binary/null') }, data: new Uint8Array() },
  { metadata: { encoding: utf8('binary/plain') }, data: randomBytes(300) },
  {
    metadata: { encoding: utf8('json/plain'), 'x-extra': utf8('kept') },
    data: utf8(
      JSON.stringify({ frames: Array.from({ length: 200 }, (_, i) => `s3://segflow/derived/${i}.jpg`) }),
    ),
  },
];

function assertSame(got: Payload[], want: Payload[]): void {
  assert.deepEqual(got.map(payloadToJson), want.map(payloadToJson));
}

for (const compress of [false, true]) {
  test(`TypeScript-encrypted payloads decrypt in Python and Python-encrypted ones in TypeScript (compress ${compress})`, async () => {
    const env = { SEGFLOW_CODEC_KEYS: keys, SEGFLOW_CODEC_COMPRESS: String(compress) };
    const ts = new AesGcmPayloadCodec(parseCodecKeys(keys, 'test'), { compress });
    const fromTs = await ts.encode(samples);
    assertSame(python('decode', fromTs, env), samples);
    const fromPy = python('encode', samples, env);
    for (const p of fromPy) {
      assert.equal(new TextDecoder().decode(p.metadata!['encoding']), 'binary/encrypted');
      assert.equal(new TextDecoder().decode(p.metadata!['encryption-key-id']), 'new');
    }
    const compressed = fromPy.map((p) => new TextDecoder().decode(p.metadata!['encryption-compression']));
    assert.deepEqual(
      compressed,
      compress ? ['none', 'none', 'none', 'zlib'] : ['none', 'none', 'none', 'none'],
    );
    assertSame(await ts.decode(fromPy), samples);
  });
}

test('a key rotated out on one side is named by its id on the other; a key only in the old list still decrypts', async () => {
  const oldOnly = keys.split(',')[1]!;
  const tsOld = new AesGcmPayloadCodec(parseCodecKeys(oldOnly, 'test'));
  assertSame(python('decode', await tsOld.encode(samples), { SEGFLOW_CODEC_KEYS: keys }), samples);
  requireTrainerVenv();
  const r = spawnSync(trainerPython, ['-m', 'segflow_trainer.codec', 'decode'], {
    cwd: join(repoRoot, 'trainer'),
    input: JSON.stringify({
      payloads: (await new AesGcmPayloadCodec(parseCodecKeys(keys, 'test')).encode(samples)).map(
        payloadToJson,
      ),
    }),
    encoding: 'utf8',
    env: { ...process.env, SEGFLOW_CODEC_KEYS: oldOnly },
  });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /encrypted with key 'new', which is not among this process's codec keys \['old'\]/);
});
