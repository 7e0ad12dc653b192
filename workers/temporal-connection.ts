/** Connections to Temporal from config: plain on loopback, TLS/mTLS or API key for clusters and Cloud. */
import { readFileSync } from 'node:fs';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import type { SegflowConfig } from '../core/config/schema.js';

type TlsOption = ConnectionOptions['tls'];

function tlsOptions(t: SegflowConfig['temporal']): TlsOption {
  if (!t.tls.enabled && !t.apiKey) return undefined;
  if (!t.tls.enabled && t.apiKey) return true;
  return {
    ...(t.tls.serverName ? { serverNameOverride: t.tls.serverName } : {}),
    ...(t.tls.caCertPath ? { serverRootCACertificate: readFileSync(t.tls.caCertPath) } : {}),
    ...(t.tls.clientCertPath && t.tls.clientKeyPath
      ? {
          clientCertPair: { crt: readFileSync(t.tls.clientCertPath), key: readFileSync(t.tls.clientKeyPath) },
        }
      : {}),
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
  return new Client({ connection, namespace: t.namespace });
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
