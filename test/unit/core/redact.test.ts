// Secrets scrubbed out of error texts and logs (core/redact.ts, activities/runtime/redact.ts,
// activities/errors.ts): known values in every form, URL user-info, credential query parameters,
// bearer tokens and key headers; an activity failure is scrubbed down its whole cause chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { REDACTED, redactText, redactValue } from '../../../core/redact.js';
import { activityFailure, ConfigError, TransientError } from '../../../activities/errors.js';
import { registerSecrets, secretValuesOf } from '../../../activities/runtime/redact.js';
import { loadConfig } from '../../../activities/runtime/config-loader.js';
import { formatCliError } from '../../../cli/failure.js';

const key = 'sk-planted-0123456789abcdef';

test('known secret values go, as written, JSON-escaped or percent-encoded; short values are left alone', () => {
  const odd = 'p@ss/w"rd+x=1';
  const text = `key ${key} in ${JSON.stringify({ k: odd })} and url ?x=${encodeURIComponent(odd)} and ${odd}`;
  const out = redactText(text, [key, odd, 'short']);
  assert.ok(!out.includes(key) && !out.includes(odd) && !out.includes(encodeURIComponent(odd)), out);
  assert.ok(!out.includes(JSON.stringify(odd).slice(1, -1)), out);
  assert.equal(redactText('a short word', ['short']), 'a short word');
});

test('URL user-info, credential query parameters, bearer tokens and key headers go; the rest stays', () => {
  const cases: [string, string][] = [
    [
      'could not reach http://admin:hunter2secret@10.0.0.5:8888/search?q=cats&format=json: ECONNREFUSED',
      'could not reach http://***@10.0.0.5:8888/search?q=cats&format=json: ECONNREFUSED',
    ],
    ['https://ghp_tokentokentoken@github.com/x', 'https://***@github.com/x'],
    [
      'GET https://s3.example/b/k.jpg?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=ab12cd&X-Amz-SignedHeaders=host',
      'GET https://s3.example/b/k.jpg?X-Amz-Algorithm=AWS4&X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-SignedHeaders=host',
    ],
    ['https://maps.example/api?key=AIzaSyA-123&lang=en', 'https://maps.example/api?key=***&lang=en'],
    [
      'https://x.example/cb?api_key=abc&token=def&access_token=ghi',
      'https://x.example/cb?api_key=***&token=***&access_token=***',
    ],
    ['Authorization: Bearer sk-abcdefghijklmnop', 'Authorization: Bearer ***'],
    ['{"x-api-key":"serper-0123456789"}', '{"x-api-key":"***"}'],
    [
      'HTTP 401 from http://127.0.0.1:9/v1/chat/completions',
      'HTTP 401 from http://127.0.0.1:9/v1/chat/completions',
    ],
    ['keyframe 12 is not one of the sampled frames', 'keyframe 12 is not one of the sampled frames'],
    ['s3://segflow/evals/e1/samples/a%2Fb.json', 's3://segflow/evals/e1/samples/a%2Fb.json'],
  ];
  for (const [input, want] of cases) assert.equal(redactText(input), want);
  assert.equal(redactText(redactText(cases[2]![0])), cases[2]![1], 'idempotent');
});

test('redactValue scrubs every string of a JSON-like value', () => {
  const v = redactValue({ url: 'http://u:pw123456@h/x', n: 3, list: [`k ${key}`], nested: { ok: 'fine' } }, [
    key,
  ]);
  assert.deepEqual(v, {
    url: `http://${REDACTED}@h/x`,
    n: 3,
    list: [`k ${REDACTED}`],
    nested: { ok: 'fine' },
  });
});

test('an activity failure is scrubbed: message, details, every cause and stack, ApplicationFailures too', () => {
  registerSecrets([key]);
  const net = new TypeError(
    `Request cannot be constructed from a URL that includes credentials: http://u:pw-secret-1@h/`,
  );
  const err = new TransientError(
    `searxng search could not reach http://u:pw-secret-1@h/search?q=x: ${net.message}`,
    { url: 'http://u:pw-secret-1@h/search' },
    net,
  );
  const f = activityFailure(err) as ApplicationFailure;
  const all = JSON.stringify({
    m: f.message,
    s: f.stack,
    d: f.details,
    c: f.cause?.message,
    cs: f.cause?.stack,
  });
  assert.ok(!all.includes('pw-secret-1'), all);
  assert.equal(f.type, 'TransientError');
  assert.equal(f.nonRetryable, false);
  assert.equal(f.cause?.name, 'TypeError');
  const refused = activityFailure(new ConfigError(`policy server said: Incorrect API key provided: ${key}`));
  assert.ok(!refused.message.includes(key));
  assert.match(refused.message, /Incorrect API key provided: \*\*\*/);
  const raised = ApplicationFailure.create({
    message: `raised with ${key}`,
    type: 'X',
    nonRetryable: true,
    details: [{ echo: key }],
    nextRetryDelay: 1000,
  });
  const copied = activityFailure(raised) as ApplicationFailure;
  assert.equal(copied.type, 'X');
  assert.equal(copied.nonRetryable, true);
  assert.equal(copied.nextRetryDelay, 1000);
  assert.ok(!JSON.stringify([copied.message, copied.details, copied.stack]).includes(key));
  assert.ok(!formatCliError(new Error(`boom ${key}`)).includes(key));
});

test('loading a config registers its secrets: every secret key and each codec key by itself', () => {
  const material = Buffer.alloc(32, 7).toString('base64');
  const { config } = loadConfig({
    env: {
      SEGFLOW_POLICY_API_KEY: 'policy-key-123456',
      SERPER_API_KEY: 'serper-key-123456',
      AWS_SECRET_ACCESS_KEY: 's3-secret-123456',
      SEGFLOW_CODEC_KEYS: `k1:${material}`,
      SEGFLOW_CODEC_SERVER_AUTH_TOKEN: 'codec-token-123456',
    },
    file: '/dev/null',
  });
  const values = secretValuesOf(config);
  for (const v of [
    'policy-key-123456',
    'serper-key-123456',
    's3-secret-123456',
    material,
    'codec-token-123456',
  ]) {
    assert.ok(values.includes(v), v);
  }
  assert.ok(!formatCliError(new Error(`x ${material} y`)).includes(material));
});
