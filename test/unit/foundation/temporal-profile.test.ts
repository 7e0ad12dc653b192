// The Temporal SDKs' environment configuration: a TOML profile (TEMPORAL_CONFIG_FILE /
// TEMPORAL_PROFILE) and the standard TEMPORAL_* names reach segflow's temporal.* settings, below
// segflow's own file, SEGFLOW_* variables and flags; TLS material is read or refused clearly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../activities/runtime/config-loader.js';
import { ConfigError } from '../../../activities/errors.js';
import { tlsOptions } from '../../../workers/temporal-connection.js';

const dir = mkdtempSync(join(tmpdir(), 'segflow-temporal-profile-'));
const noFile = join(dir, 'empty.yaml');
writeFileSync(noFile, '');
const toml = join(dir, 'temporal.toml');
writeFileSync(
  toml,
  [
    '[profile.default]',
    'address = "localhost:7233"',
    '',
    '[profile.cloud]',
    'address = "acct.tmprl.cloud:7233"',
    'namespace = "prod.acct"',
    'api_key = "cloud-key"',
    '',
    '[profile.mtls]',
    'address = "temporal.internal:7233"',
    '[profile.mtls.tls]',
    'server_name = "temporal.internal"',
    'client_cert_data = "-----BEGIN CERTIFICATE-----\\nCERT\\n-----END CERTIFICATE-----"',
    'client_key_data = "-----BEGIN PRIVATE KEY-----\\nKEY\\n-----END PRIVATE KEY-----"',
    '',
  ].join('\n'),
);
// HOME points at an empty folder so a developer's own ~/.config/temporalio never leaks in
const home = mkdtempSync(join(tmpdir(), 'segflow-home-'));

test('a Temporal profile sets temporal.* (address, namespace, API key → TLS) and says where from', () => {
  const { config, sources } = loadConfig({
    file: noFile,
    env: { HOME: home, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'cloud' },
  });
  assert.equal(config.temporal.address, 'acct.tmprl.cloud:7233');
  assert.equal(config.temporal.namespace, 'prod.acct');
  assert.equal(config.temporal.apiKey, 'cloud-key');
  assert.equal(tlsOptions(config.temporal), true, 'an API key implies TLS');
  assert.match(sources['temporal.address']!, /temporal profile "cloud" of .*temporal\.toml/);
});

test("segflow's own settings win over the profile; the SDKs' standard TEMPORAL_* names are read", () => {
  const { config, sources } = loadConfig({
    file: noFile,
    env: {
      HOME: home,
      TEMPORAL_CONFIG_FILE: toml,
      TEMPORAL_PROFILE: 'cloud',
      SEGFLOW_TEMPORAL_ADDRESS: 'override:7233',
      TEMPORAL_NAMESPACE: 'from-env',
      TEMPORAL_TLS_SERVER_NAME: 'sni.example',
    },
  });
  assert.equal(config.temporal.address, 'override:7233');
  assert.equal(sources['temporal.address'], 'env SEGFLOW_TEMPORAL_ADDRESS');
  assert.equal(config.temporal.namespace, 'from-env');
  assert.equal(config.temporal.tls.serverName, 'sni.example');
});

test('mTLS from a profile with inline PEMs becomes the connection TLS; a half-configured pair is refused', () => {
  const { config } = loadConfig({
    file: noFile,
    env: { HOME: home, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'mtls' },
  });
  const tls = tlsOptions(config.temporal);
  assert.ok(tls && typeof tls === 'object');
  assert.equal(tls.serverNameOverride, 'temporal.internal');
  assert.match(tls.clientCertPair!.crt.toString(), /CERT/);
  assert.match(tls.clientCertPair!.key.toString(), /KEY/);
  const { config: half } = loadConfig({
    file: noFile,
    env: { HOME: home, TEMPORAL_TLS: 'true', TEMPORAL_TLS_CLIENT_CERT_PATH: toml },
  });
  assert.throws(
    () => tlsOptions(half.temporal),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /needs both a client certificate and its key; only the certificate is set/);
      return true;
    },
  );
  const { config: missing } = loadConfig({
    file: noFile,
    env: { HOME: home, TEMPORAL_TLS: 'true', TEMPORAL_TLS_SERVER_CA_CERT_PATH: join(dir, 'nope.pem') },
  });
  assert.throws(
    () => tlsOptions(missing.temporal),
    /cannot read the Temporal TLS CA certificate .*nope\.pem/,
  );
});

test('a named profile or file that does not exist is a clear error; no profile changes nothing', () => {
  assert.throws(
    () =>
      loadConfig({
        file: noFile,
        env: { HOME: home, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'staging' },
      }),
    (e: unknown) =>
      e instanceof ConfigError && /temporal profile "staging".*Profile 'staging' not found/.test(e.message),
  );
  assert.throws(
    () => loadConfig({ file: noFile, env: { HOME: home, TEMPORAL_CONFIG_FILE: join(dir, 'missing.toml') } }),
    /TEMPORAL_CONFIG_FILE .*missing\.toml does not exist/,
  );
  const { config, sources } = loadConfig({ file: noFile, env: { HOME: home } });
  assert.equal(config.temporal.address, '127.0.0.1:7233');
  assert.equal(sources['temporal.address'], undefined);
});
