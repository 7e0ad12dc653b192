/**
 * The one worker process: polls the task queues of the requested roles. GPU roles also poll their
 * host-pinned queue. SIGTERM/SIGINT drain in-flight activities for `worker.shutdownGraceMs`.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import type { SegflowConfig } from '../core/config/schema.js';
import { hostQueue, TaskQueues, type WorkerRole } from '../core/queues.js';
import { activityErrorInterceptors } from '../activities/error-interceptor.js';
import { ConfigError } from '../activities/errors.js';
import { activitiesForRole } from '../activities/registry.js';
import { PinoTemporalLogger, type PinoLogger } from '../activities/runtime/logger.js';
import { dataConverterFor } from '../activities/runtime/payload-codec.js';
import { ArtifactStore } from '../activities/storage/artifact-store.js';
import { connectNative } from './temporal-connection.js';
import { runtimeTelemetryOptions, startTracing, workflowBundleFile } from './telemetry.js';

const workflowsPath = fileURLToPath(new URL('../workflows/index.js', import.meta.url));

let runtimeInstalled = false;

/**
 * Installs the Temporal Runtime once per process: its logs (SDK, core, workflow and activity `log`)
 * into pino, and its metrics on Prometheus when `observability.metrics.bindAddress` is set.
 */
export function installRuntime(config: SegflowConfig, logger: PinoLogger): void {
  if (runtimeInstalled) return;
  Runtime.install({
    logger: new PinoTemporalLogger(logger),
    telemetryOptions: runtimeTelemetryOptions(config),
  });
  runtimeInstalled = true;
}

/** The task queues a role polls, host-pinned ones included. */
export function queuesForRole(role: WorkerRole, hostId: string): string[] {
  const queue = TaskQueues[role];
  return role === 'policy' || role === 'segment' ? [queue, hostQueue(queue, hostId)] : [queue];
}

export interface RunningWorkers {
  workers: Worker[];
  queues: string[];
  /** Resolves when every worker has stopped (after shutdown() or a signal). */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

export async function startWorkers(
  config: SegflowConfig,
  logger: PinoLogger,
  opts: { roles?: WorkerRole[]; connection?: NativeConnection } = {},
): Promise<RunningWorkers> {
  installRuntime(config, logger);
  const tracing = startTracing(config);
  /** Prebuilt by `npm run build` (scripts/bundle-workflows.js); bundling at start-up is the fallback. */
  const workflowBundlePath = fileURLToPath(new URL(`../${workflowBundleFile(config)}`, import.meta.url));
  const roles = opts.roles ?? config.worker.roles;
  const connection = opts.connection ?? (await connectNative(config));
  const store = ArtifactStore.fromConfig(config.s3);
  const deps = { config, store, logger };
  // payloads encrypted (and compressed) when codec.keys is set: the same converter on every queue
  const dataConverter = dataConverterFor(config);
  const workers: Worker[] = [];
  const queues: string[] = [];
  for (const role of roles) {
    const activities = activitiesForRole(role, deps);
    for (const taskQueue of queuesForRole(role, config.worker.hostId)) {
      const options: WorkerOptions = {
        connection,
        namespace: config.temporal.namespace,
        taskQueue,
        activities,
        dataConverter,
        // Every activity failure leaves as a typed ApplicationFailure (activities/errors.ts).
        // Tracing first: its span then covers the error mapping too.
        interceptors: { activity: [...(tracing?.activityInterceptors ?? []), activityErrorInterceptors] },
        ...(tracing ? { sinks: tracing.sinks } : {}),
        maxConcurrentActivityTaskExecutions: config.worker.concurrency[role],
        shutdownGraceTime: config.worker.shutdownGraceMs,
        identity: `${config.worker.hostId}/${role}/${process.pid}`,
        ...(role === 'search' && config.worker.searchActivitiesPerSecond
          ? { maxTaskQueueActivitiesPerSecond: config.worker.searchActivitiesPerSecond }
          : {}),
      };
      if (role === 'orchestrator') {
        if (config.worker.workflowBundle) {
          if (!existsSync(config.worker.workflowBundle)) {
            throw new ConfigError(
              `worker.workflowBundle ${config.worker.workflowBundle} does not exist: give the path of a bundle bundleWorkflowCode wrote, or unset SEGFLOW_WORKER_WORKFLOW_BUNDLE`,
            );
          }
          options.workflowBundle = { codePath: config.worker.workflowBundle };
        } else if (existsSync(workflowBundlePath)) {
          options.workflowBundle = { codePath: workflowBundlePath };
        } else {
          options.workflowsPath = workflowsPath;
          if (tracing) options.interceptors!.workflowModules = [tracing.workflowInterceptorModule];
        }
      }
      workers.push(await Worker.create(options));
      queues.push(taskQueue);
    }
  }
  logger.info(
    { roles, queues, hostId: config.worker.hostId, payloadCodec: dataConverter.payloadCodecs ? 'on' : 'off' },
    'workers polling',
  );
  const done = Promise.all(workers.map((w) => w.run())).then(async () => {
    if (!opts.connection) await connection.close();
    store.client.destroy();
    await tracing?.shutdown();
  });
  return {
    workers,
    queues,
    done,
    async shutdown() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await done;
    },
  };
}
