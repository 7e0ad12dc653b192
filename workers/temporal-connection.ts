/**
 * Connections to Temporal from config: plain on loopback, TLS/mTLS or API key for clusters and
 * Cloud; clients encrypt payloads when the payload codec is configured (codec.keys).
 */
import { readFileSync } from 'node:fs';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import type { SegflowConfig } from '../core/config/schema.js';
import { ConfigError } from '../activities/errors.js';
import { dataConverterFor } from '../activities/runtime/payload-codec.js';

type TlsOption = ConnectionOptions['tls'];

/** A PEM given inline or as a file (inline wins), read with the file named on failure. */
function pem(what: string, data: string | undefined, path: string | undefined): Buffer | undefined {
  if (data) return Buffer.from(data);
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`cannot read the Temporal TLS ${what} ${path}: ${(err as Error).message}`, {
      path,
    });
  }
}

export function tlsOptions(t: SegflowConfig['temporal']): TlsOption {
  // TLS is on when asked for, or implied by an API key or by TLS material (as the Python trainer
  // decides: trainer/segflow_trainer/settings.py)
  const material =
    t.tls.serverName ||
    t.tls.caCertPath ||
    t.tls.caCertData ||
    t.tls.clientCertPath ||
    t.tls.clientCertData ||
    t.tls.clientKeyPath ||
    t.tls.clientKeyData;
  if (!t.tls.enabled && !material && !t.apiKey) return undefined;
  if (!t.tls.enabled && !material && t.apiKey) return true;
  const ca = pem('CA certificate', t.tls.caCertData, t.tls.caCertPath);
  const crt = pem('client certificate', t.tls.clientCertData, t.tls.clientCertPath);
  const key = pem('client key', t.tls.clientKeyData, t.tls.clientKeyPath);
  if ((crt === undefined) !== (key === undefined)) {
    throw new ConfigError(
      `mTLS needs both a client certificate and its key; only the ${crt ? 'certificate' : 'key'} is set ` +
        '(temporal.tls.clientCertPath/clientKeyPath, TEMPORAL_TLS_CLIENT_CERT_PATH/TEMPORAL_TLS_CLIENT_KEY_PATH, or a profile)',
    );
  }
  return {
    ...(t.tls.serverName ? { serverNameOverride: t.tls.serverName } : {}),
    ...(ca ? { serverRootCACertificate: ca } : {}),
    ...(crt && key ? { clientCertPair: { crt, key } } : {}),
  };
}

export async function connectClient(
  config: SegflowConfig,
  opts: { connectTimeoutMs?: number } = {},
): Promise<Client> {
  const t = config.temporal;
  const tls = tlsOptions(t);
  const connection = await Connection.connect({
    address: t.address,
    ...(tls !== undefined ? { tls } : {}),
    ...(t.apiKey ? { apiKey: t.apiKey } : {}),
    ...(opts.connectTimeoutMs ? { connectTimeout: opts.connectTimeoutMs } : {}),
  });
  return new Client({ connection, namespace: t.namespace, dataConverter: dataConverterFor(config) });
}

export async function connectNative(config: SegflowConfig): Promise<NativeConnection> {
  const t = config.temporal;
  const tls = tlsOptions(t) as NativeConnectionOptions['tls'];
  return NativeConnection.connect({
    address: t.address,
    ...(tls !== undefined ? { tls } : {}),
    ...(t.apiKey ? { apiKey: t.apiKey } : {}),
  });
}

/** Web UI link to one workflow execution. */
export function workflowUiLink(config: SegflowConfig, workflowId: string, runId?: string): string {
  const base = config.temporal.uiUrl.replace(/\/+$/, '');
  const ns = encodeURIComponent(config.temporal.namespace);
  const id = encodeURIComponent(workflowId);
  return runId
    ? `${base}/namespaces/${ns}/workflows/${id}/${encodeURIComponent(runId)}/history`
    : `${base}/namespaces/${ns}/workflows/${id}`;
}
