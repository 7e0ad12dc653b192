/**
 * The one typed configuration of segflow. Pure (zod only): loading from file and environment lives
 * in activities/runtime/config-loader.ts. Every option documents its default.
 */
import { z } from 'zod';
import { workerRoles, type WorkerRole } from '../queues.js';

const port = z.coerce.number().int().min(1).max(65535);
const positiveInt = z.coerce.number().int().min(1);
/** Booleans from env/file: true/false/1/0 (zod's coerce.boolean would read "false" as true). */
const flag = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1'),
]);

const rolesSchema = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean))
  .pipe(z.array(z.enum(workerRoles as [WorkerRole, ...WorkerRole[]])).min(1));

export const configSchema = z.strictObject({
  temporal: z
    .strictObject({
      /** Frontend gRPC address. @default "127.0.0.1:7233" */
      address: z.string().min(1).default('127.0.0.1:7233'),
      /** @default "default" */
      namespace: z.string().min(1).default('default'),
      /** Web UI base URL, used to print links. @default "http://127.0.0.1:8233" */
      uiUrl: z.string().url().default('http://127.0.0.1:8233'),
      /** TLS for Temporal Cloud or a self-hosted cluster with mTLS. @default disabled */
      tls: z
        .strictObject({
          enabled: flag.default(false),
          serverName: z.string().optional(),
          caCertPath: z.string().optional(),
          clientCertPath: z.string().optional(),
          clientKeyPath: z.string().optional(),
        })
        .prefault({}),
      /** API key (secret; from TEMPORAL_API_KEY). Implies TLS. @default none */
      apiKey: z.string().optional(),
    })
    .prefault({}),
  s3: z
    .strictObject({
      /** S3 endpoint; leave empty for AWS S3. @default "http://127.0.0.1:8333" (the dev stack) */
      endpoint: z.string().default('http://127.0.0.1:8333'),
      /** @default "us-east-1" */
      region: z.string().min(1).default('us-east-1'),
      /** Bucket holding all segflow artifacts. @default "segflow" */
      bucket: z
        .string()
        .regex(
          /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
          'must be a valid S3 bucket name (3-63 chars, a-z 0-9 . -)',
        )
        .default('segflow'),
      /** Key prefix inside the bucket. @default "" */
      prefix: z.string().default(''),
      /** Path-style addressing (MinIO, SeaweedFS). @default true */
      forcePathStyle: flag.default(true),
      /** Secret; from AWS_ACCESS_KEY_ID. @default "segflow" (the dev stack's identity) */
      accessKeyId: z.string().default('segflow'),
      /** Secret; from AWS_SECRET_ACCESS_KEY. @default "segflow-dev-secret" (the dev stack's identity) */
      secretAccessKey: z.string().default('segflow-dev-secret'),
    })
    .prefault({}),
  dev: z
    .strictObject({
      /** Where the dev stack keeps its data (git-ignored). @default ".data" */
      dataDir: z.string().default('.data'),
      /** Where the project installs dev tools (git-ignored). @default ".tools" */
      toolsDir: z.string().default('.tools'),
      /** @default "127.0.0.1" */
      host: z.string().default('127.0.0.1'),
      /** Temporal frontend gRPC port. @default 7233 */
      temporalPort: port.default(7233),
      /** Temporal Web UI port. @default 8233 */
      uiPort: port.default(8233),
      /** S3 API port. @default 8333 */
      s3Port: port.default(8333),
      /** First of the SeaweedFS internal ports (master, volume, filer, then their gRPC ports +10000). @default 9333 */
      seaweedBasePort: z.coerce.number().int().min(1024).max(55000).default(9333),
    })
    .prefault({}),
  worker: z
    .strictObject({
      /** Roles this process serves. @default all roles */
      roles: rolesSchema.default([...workerRoles]),
      /** Name of this host for host-pinned queues (`segflow-policy@<hostId>`). @default "local" */
      hostId: z
        .string()
        .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" or "-"')
        .default('local'),
      /** How long SIGTERM waits for in-flight activities before cancelling them. @default 30000 */
      shutdownGraceMs: z.coerce.number().int().min(0).default(30_000),
      /** Concurrent activities per queue. GPU queues are fixed, since no tuner sees GPU memory. */
      concurrency: z
        .strictObject({
          /** @default 16 */ orchestrator: positiveInt.default(16),
          /** @default 16 */ search: positiveInt.default(16),
          /** @default 2 */ media: positiveInt.default(2),
          /** @default 8 */ policy: positiveInt.default(8),
          /** @default 1 */ segment: positiveInt.default(1),
        })
        .prefault({}),
    })
    .prefault({}),
  log: z
    .strictObject({
      /** @default "info" */
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    })
    .prefault({}),
  policy: z
    .strictObject({
      /** OpenAI-compatible base URL of the policy server (vLLM etc.). @default none */
      baseUrl: z.string().url().optional(),
      /** Model name sent to the server. @default "policy" */
      model: z.string().default('policy'),
      /** Secret; from SEGFLOW_POLICY_API_KEY. @default none */
      apiKey: z.string().optional(),
    })
    .prefault({}),
});

export type SegflowConfig = z.infer<typeof configSchema>;
export type SegflowConfigInput = z.input<typeof configSchema>;

/** Keys whose values are secrets: redacted by `segr config` and in logs. */
export const secretKeys = [
  'temporal.apiKey',
  's3.accessKeyId',
  's3.secretAccessKey',
  'policy.apiKey',
] as const;

/**
 * Environment variables and the config keys they set. Standard names (TEMPORAL_*, AWS_*) are
 * honoured so the same deployment conventions as other Temporal/S3 tools apply.
 */
export const envBindings: Readonly<Record<string, string>> = {
  SEGFLOW_TEMPORAL_ADDRESS: 'temporal.address',
  TEMPORAL_ADDRESS: 'temporal.address',
  SEGFLOW_TEMPORAL_NAMESPACE: 'temporal.namespace',
  TEMPORAL_NAMESPACE: 'temporal.namespace',
  SEGFLOW_TEMPORAL_UI_URL: 'temporal.uiUrl',
  SEGFLOW_TEMPORAL_TLS: 'temporal.tls.enabled',
  SEGFLOW_TEMPORAL_TLS_SERVER_NAME: 'temporal.tls.serverName',
  TEMPORAL_TLS_CA: 'temporal.tls.caCertPath',
  TEMPORAL_TLS_CERT: 'temporal.tls.clientCertPath',
  TEMPORAL_TLS_KEY: 'temporal.tls.clientKeyPath',
  TEMPORAL_API_KEY: 'temporal.apiKey',
  SEGFLOW_S3_ENDPOINT: 's3.endpoint',
  AWS_ENDPOINT_URL_S3: 's3.endpoint',
  SEGFLOW_S3_REGION: 's3.region',
  AWS_REGION: 's3.region',
  SEGFLOW_S3_BUCKET: 's3.bucket',
  SEGFLOW_S3_PREFIX: 's3.prefix',
  SEGFLOW_S3_FORCE_PATH_STYLE: 's3.forcePathStyle',
  AWS_ACCESS_KEY_ID: 's3.accessKeyId',
  AWS_SECRET_ACCESS_KEY: 's3.secretAccessKey',
  SEGFLOW_DEV_DATA_DIR: 'dev.dataDir',
  SEGFLOW_DEV_TOOLS_DIR: 'dev.toolsDir',
  SEGFLOW_DEV_HOST: 'dev.host',
  SEGFLOW_DEV_TEMPORAL_PORT: 'dev.temporalPort',
  SEGFLOW_DEV_UI_PORT: 'dev.uiPort',
  SEGFLOW_DEV_S3_PORT: 'dev.s3Port',
  SEGFLOW_DEV_SEAWEED_BASE_PORT: 'dev.seaweedBasePort',
  SEGFLOW_WORKER_ROLES: 'worker.roles',
  SEGFLOW_WORKER_HOST_ID: 'worker.hostId',
  SEGFLOW_WORKER_SHUTDOWN_GRACE_MS: 'worker.shutdownGraceMs',
  SEGFLOW_LOG_LEVEL: 'log.level',
  SEGFLOW_POLICY_URL: 'policy.baseUrl',
  SEGFLOW_POLICY_MODEL: 'policy.model',
  SEGFLOW_POLICY_API_KEY: 'policy.apiKey',
};
