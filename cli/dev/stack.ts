/**
 * The dev stack: a Temporal dev server (persistent SQLite, Web UI) and a SeaweedFS S3 server on
 * loopback, installed by infra/dev/install-tools.sh into git-ignored folders. `up` is idempotent,
 * `down` stops only the processes `up` started (tracked by pid files), and data survives both.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envBindings, type SegflowConfig } from '../../core/config/schema.js';
import { SearchAttributes } from '../../core/queues.js';

import { ConfigError, SegflowError } from '../../activities/errors.js';
import { ArtifactStore } from '../../activities/storage/artifact-store.js';
import { connectClient } from '../../workers/temporal-connection.js';

/** temporal.api.enums.v1.IndexedValueType of each search attribute type segflow uses. */
const INDEXED_VALUE_TYPES = { Keyword: 2, Int: 3, Double: 4 } as const;
/** The object the S3 health check reads back (see s3Health). */
export const S3_HEALTH_PROBE = 'segflow-dev/health-probe';

const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

export class DevStackError extends SegflowError {
  constructor(message: string) {
    super('DevStackError', message, { retryable: false });
  }
}

interface ServiceSpec {
  name: 'temporal' | 's3';
  binary: string;
  args: string[];
  /** Ports the service binds, each with the config key that sets it. */
  ports: { port: number; key: string; offset?: number }[];
}

export interface ServiceStatus {
  name: string;
  pid?: number;
  running: boolean;
  healthy: boolean;
  detail: string;
}

export class DevStack {
  readonly dataDir: string;
  readonly runDir: string;
  readonly toolsDir: string;

  constructor(readonly config: SegflowConfig) {
    this.dataDir = resolve(config.dev.dataDir);
    this.runDir = join(this.dataDir, 'dev');
    this.toolsDir = resolve(config.dev.toolsDir);
  }

  get endpoints(): Record<string, string> {
    const d = this.config.dev;
    return {
      temporal: `${d.host}:${d.temporalPort}`,
      webUi: `http://${d.host}:${d.uiPort}`,
      s3: `http://${d.host}:${d.s3Port}`,
      bucket: this.config.s3.bucket,
    };
  }

  private services(): ServiceSpec[] {
    const d = this.config.dev;
    const bin = join(this.toolsDir, 'venv', 'bin');
    const b = d.seaweedBasePort;
    const temporalArgs = [
      'server',
      'start-dev',
      '--ip',
      d.host,
      '--port',
      String(d.temporalPort),
      '--ui-port',
      String(d.uiPort),
      '--db-filename',
      join(this.dataDir, 'temporal', 'temporal.db'),
      '--ui-disable-news-fetch',
      ...(d.uiCodecEndpoint ? ['--ui-codec-endpoint', d.uiCodecEndpoint] : []),
      // WAL + synchronous=normal: durable across process crashes (not power loss), and 3.6× the
      // rollouts/s of the default journal at 8 concurrent rollouts (measured with an earlier version of bench/orchestration.bench.ts).
      '--sqlite-pragma',
      'journal_mode=wal',
      '--sqlite-pragma',
      'synchronous=normal',
      '--log-level',
      'warn',
      ...Object.entries(SearchAttributes).flatMap(([key, type]) => ['--search-attribute', `${key}=${type}`]),
      ...(this.config.temporal.namespace !== 'default'
        ? ['--namespace', this.config.temporal.namespace]
        : []),
    ];
    const s3Args = [
      'server',
      `-dir=${join(this.dataDir, 's3')}`,
      `-ip=${d.host}`,
      `-ip.bind=${d.host}`,
      `-master.port=${b}`,
      `-master.port.grpc=${b + 10000}`,
      `-volume.port=${b + 1}`,
      `-volume.port.grpc=${b + 10001}`,
      '-filer',
      `-filer.port=${b + 2}`,
      `-filer.port.grpc=${b + 10002}`,
      '-s3',
      `-s3.port=${d.s3Port}`,
      `-s3.port.grpc=${b + 10003}`,
      `-s3.port.iceberg=${b + 4}`,
      `-s3.port.lance=${b + 5}`,
      `-s3.config=${join(this.runDir, 's3-identities.json')}`,
      '-master.volumeSizeLimitMB=1024',
      '-volume.max=0',
    ];
    return [
      {
        name: 'temporal',
        binary: join(bin, 'temporal'),
        args: temporalArgs,
        ports: [
          { port: d.temporalPort, key: 'dev.temporalPort' },
          { port: d.uiPort, key: 'dev.uiPort' },
        ],
      },
      {
        name: 's3',
        binary: join(bin, 'weed'),
        args: s3Args,
        ports: [
          { port: d.s3Port, key: 'dev.s3Port' },
          ...[0, 1, 2, 4, 5, 10000, 10001, 10002, 10003].map((offset) => ({
            port: b + offset,
            key: 'dev.seaweedBasePort',
            offset,
          })),
        ],
      },
    ];
  }

  private pidFile(name: string): string {
    return join(this.runDir, `${name}.pid`);
  }

  /** The pid of a service this stack started, if that process is still alive and is ours. */
  private livePid(spec: ServiceSpec): number | undefined {
    const file = this.pidFile(spec.name);
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      process.kill(pid, 0);
    } catch {
      return undefined;
    }
    // A recycled pid belonging to another program is not ours.
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmdline.includes(spec.binary)) return undefined;
    } catch {
      /* no /proc (macOS): trust the pid file */
    }
    return pid;
  }

  installTools(): void {
    const script = join(repoRoot, 'infra', 'dev', 'install-tools.sh');
    const res = spawnSync('bash', [script], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, SEGFLOW_DEV_TOOLS_DIR: this.toolsDir },
    });
    if (res.status !== 0) {
      throw new DevStackError(
        `installing the dev tools failed (${script} exited ${res.status}); see the output above`,
      );
    }
  }

  async up(log: (line: string) => void = console.log): Promise<void> {
    this.installTools();
    mkdirSync(this.runDir, { recursive: true });
    mkdirSync(join(this.dataDir, 'temporal'), { recursive: true });
    mkdirSync(join(this.dataDir, 's3'), { recursive: true });
    writeFileSync(
      join(this.runDir, 's3-identities.json'),
      JSON.stringify({
        identities: [
          {
            name: 'segflow',
            credentials: [
              { accessKey: this.config.s3.accessKeyId, secretKey: this.config.s3.secretAccessKey },
            ],
            actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'],
          },
        ],
      }),
      { mode: 0o600 },
    );

    for (const spec of this.services()) {
      if (this.livePid(spec) !== undefined) {
        log(`${spec.name}: already running (pid ${this.livePid(spec)})`);
        continue;
      }
      for (const { port, key, offset } of spec.ports) {
        if (!(await portFree(this.config.dev.host, port))) {
          const envName = Object.entries(envBindings).find(([, k]) => k === key)?.[0];
          const which = offset === undefined ? key : `${key} + ${offset}`;
          throw new ConfigError(
            `port ${port} (${which}) on ${this.config.dev.host} is already in use by another process, so the dev ${spec.name} server cannot start; free the port or change ${key}${envName ? ` (env ${envName})` : ''}`,
            { port, key },
          );
        }
      }
      const logFd = openSync(join(this.runDir, `${spec.name}.log`), 'a');
      const child = spawn(spec.binary, spec.args, {
        detached: true,
        stdio: ['ignore', logFd, logFd],
        cwd: this.dataDir,
      });
      if (child.pid === undefined) throw new DevStackError(`could not start ${spec.binary}`);
      writeFileSync(this.pidFile(spec.name), String(child.pid));
      child.unref();
      log(`${spec.name}: started (pid ${child.pid}, log ${join(this.runDir, `${spec.name}.log`)})`);
    }

    await this.waitHealthy(90_000);
    const e = this.endpoints;
    log(`temporal: ${e.temporal} (namespace ${this.config.temporal.namespace})`);
    log(`web ui:   ${e.webUi}`);
    log(`s3:       ${e.s3} (bucket ${e.bucket})`);
  }

  private async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: ServiceStatus[] = [];
    while (Date.now() < deadline) {
      last = await this.status();
      if (last.every((s) => s.healthy)) return;
      const dead = last.find((s) => !s.running);
      if (dead) {
        throw new DevStackError(
          `dev ${dead.name} server exited during start-up; see ${join(this.runDir, `${dead.name}.log`)}`,
        );
      }
      await sleep(500);
    }
    throw new DevStackError(
      `dev stack not healthy after ${timeoutMs / 1000}s: ${last.map((s) => `${s.name}: ${s.detail}`).join('; ')}`,
    );
  }

  async status(): Promise<ServiceStatus[]> {
    const out: ServiceStatus[] = [];
    for (const spec of this.services()) {
      const pid = this.livePid(spec);
      if (pid === undefined) {
        out.push({ name: spec.name, running: false, healthy: false, detail: 'not running' });
        continue;
      }
      const detail = spec.name === 'temporal' ? await this.temporalHealth() : await this.s3Health();
      out.push({ name: spec.name, pid, running: true, healthy: detail === 'healthy', detail });
    }
    return out;
  }

  private async temporalHealth(): Promise<string> {
    const cfg = { ...this.config, temporal: { ...this.config.temporal, address: this.endpoints.temporal! } };
    try {
      const client = await connectClient(cfg, { connectTimeoutMs: 2000 });
      try {
        await client.workflowService.getSystemInfo({});
        const attrs = await client.connection.operatorService.listSearchAttributes({
          namespace: cfg.temporal.namespace,
        });
        const missing = Object.keys(SearchAttributes).filter((k) => !(k in (attrs.customAttributes ?? {})));
        if (missing.length > 0) {
          // The server registers `--search-attribute`s only for a fresh database: a stack whose data
          // predates a new attribute gets it here (idempotent; the next health check sees it).
          await client.connection.operatorService
            .addSearchAttributes({
              namespace: cfg.temporal.namespace,
              searchAttributes: Object.fromEntries(
                missing.map((k) => [
                  k,
                  INDEXED_VALUE_TYPES[SearchAttributes[k as keyof typeof SearchAttributes]],
                ]),
              ),
            })
            .catch(() => undefined);
          return `search attributes not registered yet: ${missing.join(', ')}`;
        }
      } finally {
        await client.connection.close();
      }
    } catch (err) {
      return `frontend not answering: ${(err as Error).message}`;
    }
    try {
      const res = await fetch(this.endpoints.webUi!, { signal: AbortSignal.timeout(2000) });
      if (!res.ok) return `web ui answered HTTP ${res.status}`;
    } catch (err) {
      return `web ui not answering: ${(err as Error).message}`;
    }
    return 'healthy';
  }

  private async s3Health(): Promise<string> {
    const store = ArtifactStore.fromConfig({ ...this.config.s3, endpoint: this.endpoints.s3! });
    try {
      await store.ensureBucket();
      // A SeaweedFS restarted over its data answers S3 before its volume server has registered its
      // volumes with the master again: reads of stored objects then fail (500 "volume id not
      // found"). So the check reads back an object stored in an earlier check (written now if
      // there is none), which needs the volumes registered, not only the bucket listed.
      if (!(await store.head(S3_HEALTH_PROBE)))
        await store.putBytes(S3_HEALTH_PROBE, Buffer.from('segflow dev stack health probe\n'), 'text/plain');
      await store.getBytes(S3_HEALTH_PROBE);
      return 'healthy';
    } catch (err) {
      return `s3 not ready: ${(err as Error).message}`;
    } finally {
      store.client.destroy();
    }
  }

  /**
   * Stops one service with `signal` (SIGKILL: a crash, as the chaos suite does it; SIGTERM: an
   * orderly stop) and waits until it is gone; its data stays, and `up()` starts it again. Returns
   * the pid it stopped, or undefined when the service was not running.
   */
  async stop(name: ServiceSpec['name'], signal: NodeJS.Signals): Promise<number | undefined> {
    const spec = this.services().find((s) => s.name === name)!;
    const pid = this.livePid(spec);
    if (pid === undefined) return undefined;
    signalGroup(pid, signal);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && alive(pid)) await sleep(100);
    if (alive(pid)) signalGroup(pid, 'SIGKILL');
    while (alive(pid)) await sleep(100);
    rmSync(this.pidFile(spec.name), { force: true });
    return pid;
  }

  async down(log: (line: string) => void = console.log): Promise<void> {
    for (const spec of this.services()) {
      const pid = this.livePid(spec);
      if (pid === undefined) {
        log(`${spec.name}: not running`);
        rmSync(this.pidFile(spec.name), { force: true });
        continue;
      }
      // Each service was started detached as its own process group: stop the whole group.
      signalGroup(pid, 'SIGTERM');
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && alive(pid)) await sleep(200);
      if (alive(pid)) signalGroup(pid, 'SIGKILL');
      rmSync(this.pidFile(spec.name), { force: true });
      log(`${spec.name}: stopped (pid ${pid})`);
    }
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.once('error', () => resolveFree(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolveFree(true)));
  });
}
