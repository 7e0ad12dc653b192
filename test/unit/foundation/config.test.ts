import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, redactConfig } from '../../../activities/runtime/config-loader.js';
import { ConfigError } from '../../../activities/errors.js';

function tmpFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'segflow-config-'));
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** An empty config file, so a developer's own segflow.config.yaml never leaks into these tests. */
const noFile = tmpFile('empty.yaml', '');

test('defaults are documented values when nothing is set', () => {
  const { config } = loadConfig({ env: {}, file: tmpFile('empty.yaml', '') });
  assert.equal(config.temporal.address, '127.0.0.1:7233');
  assert.equal(config.temporal.namespace, 'default');
  assert.equal(config.s3.bucket, 'segflow');
  assert.equal(config.dev.uiPort, 8233);
  assert.deepEqual(config.worker.roles, ['orchestrator', 'search', 'media', 'policy', 'segment']);
});

test('file < env < overrides, with sources recorded', () => {
  const file = tmpFile(
    'c.yaml',
    'temporal:\n  address: file-host:7233\n  namespace: from-file\ns3:\n  bucket: file-bucket\n',
  );
  const { config, sources } = loadConfig({
    file,
    env: { SEGFLOW_TEMPORAL_ADDRESS: 'env-host:7233', SEGFLOW_WORKER_ROLES: 'search,media' },
    overrides: { 's3.bucket': 'flag-bucket' },
  });
  assert.equal(config.temporal.address, 'env-host:7233');
  assert.equal(config.temporal.namespace, 'from-file');
  assert.equal(config.s3.bucket, 'flag-bucket');
  assert.deepEqual(config.worker.roles, ['search', 'media']);
  assert.equal(sources['temporal.address'], 'env SEGFLOW_TEMPORAL_ADDRESS');
  assert.equal(sources['temporal.namespace'], `file ${file}`);
  assert.equal(sources['s3.bucket'], 'flag');
});

test('SEGFLOW_* variables win over the standard names they shadow', () => {
  const { config } = loadConfig({
    file: noFile,
    env: { TEMPORAL_ADDRESS: 'std:1', SEGFLOW_TEMPORAL_ADDRESS: 'ours:2' },
  });
  assert.equal(config.temporal.address, 'ours:2');
});

test('an invalid value names the key, the value, its source and what is allowed', () => {
  assert.throws(
    () => loadConfig({ file: noFile, env: { SEGFLOW_DEV_UI_PORT: '99999' } }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /config key "dev\.uiPort" = "99999" \(from env SEGFLOW_DEV_UI_PORT\) is invalid/,
      );
      assert.match(err.message, /65535/);
      return true;
    },
  );
  assert.throws(
    () => loadConfig({ file: noFile, env: { SEGFLOW_WORKER_ROLES: 'search,gpu' } }),
    /worker\.roles.*"search,gpu".*(orchestrator|expected one of)/s,
  );
  assert.throws(
    () => loadConfig({ file: noFile, env: { SEGFLOW_LOG_LEVEL: 'loud' } }),
    /log\.level.*"loud".*"info"/s,
  );
});

test('unknown keys in a file are rejected by name (typos do not pass silently)', () => {
  const file = tmpFile('typo.yaml', 'temporal:\n  adress: x:1\n');
  assert.throws(() => loadConfig({ file, env: {} }), /unknown config key\(s\) "temporal\.adress"/);
});

test('a missing or malformed config file is a clear error', () => {
  assert.throws(
    () => loadConfig({ file: '/nonexistent/segflow.yaml', env: {} }),
    /cannot read config file \/nonexistent/,
  );
  assert.throws(() => loadConfig({ file: tmpFile('bad.yaml', 'a: [1,\n'), env: {} }), /not valid YAML/);
});

test('boolean env values parse "false" as false', () => {
  const { config } = loadConfig({ file: noFile, env: { SEGFLOW_S3_FORCE_PATH_STYLE: 'false' } });
  assert.equal(config.s3.forcePathStyle, false);
});

test('redaction hides every secret and keeps the rest', () => {
  const { config } = loadConfig({
    file: noFile,
    env: { AWS_SECRET_ACCESS_KEY: 'very-secret', TEMPORAL_API_KEY: 'tk', SEGFLOW_POLICY_API_KEY: 'pk' },
  });
  const text = JSON.stringify(redactConfig(config));
  assert.ok(!text.includes('very-secret') && !text.includes('"tk"') && !text.includes('"pk"'));
  assert.match(text, /"secretAccessKey":"\*\*\*"/);
  assert.match(text, /"bucket":"segflow"/);
});

test('without explicit endpoints, clients follow the dev stack ports', () => {
  const { config } = loadConfig({
    file: noFile,
    env: { SEGFLOW_DEV_TEMPORAL_PORT: '17233', SEGFLOW_DEV_UI_PORT: '18233', SEGFLOW_DEV_S3_PORT: '18333' },
  });
  assert.equal(config.temporal.address, '127.0.0.1:17233');
  assert.equal(config.temporal.uiUrl, 'http://127.0.0.1:18233');
  assert.equal(config.s3.endpoint, 'http://127.0.0.1:18333');
  const explicit = loadConfig({
    file: noFile,
    env: {
      SEGFLOW_DEV_TEMPORAL_PORT: '17233',
      SEGFLOW_TEMPORAL_ADDRESS: 'temporal.prod:7233',
      SEGFLOW_S3_ENDPOINT: '',
    },
  }).config;
  assert.equal(explicit.temporal.address, 'temporal.prod:7233');
  assert.equal(explicit.s3.endpoint, '', 'an empty endpoint selects AWS S3');
});
