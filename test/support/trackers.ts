// The experiment trackers' own tools for tests (.venv/trackers, scripts/setup-trackers.sh): a real
// MLflow tracking server on a free port (SQLite backend and file artifacts in a temp dir), and the
// read-back of what a run logged through MlflowClient and TensorBoard's EventAccumulator
// (tracker_readback.py).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from './paths.js';

const trackersBin = join(repoRoot, '.venv/trackers/bin');

/** metric name → [[step, value], …] by step. */
export type MetricHistory = Record<string, [number, number][]>;

export interface MlflowServer {
  uri: string;
  dir: string;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** `mlflow server` on a free port; resolves once /health answers. */
export async function startMlflowServer(): Promise<MlflowServer> {
  const mlflow = join(trackersBin, 'mlflow');
  if (!existsSync(mlflow)) {
    throw new Error(`the trackers venv is missing: run \`bash scripts/setup-trackers.sh\` (${mlflow})`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'segflow-mlflow-'));
  const port = await freePort();
  const logFd = openSync(join(dir, 'server.log'), 'w');
  const child: ChildProcess = spawn(
    mlflow,
    [
      'server',
      ...['--host', '127.0.0.1', '--port', String(port), '--workers', '1'],
      ...['--backend-store-uri', `sqlite:///${join(dir, 'mlflow.db')}`],
      ...['--default-artifact-root', pathToFileURL(join(dir, 'artifacts')).href],
    ],
    { stdio: ['ignore', logFd, logFd], detached: true },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const uri = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      if ((await fetch(`${uri}/health`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`mlflow server did not start (log: ${join(dir, 'server.log')})`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return {
    uri,
    dir,
    async close() {
      // the server's own process group (gunicorn/uvicorn workers included)
      if (child.exitCode === null && child.pid) process.kill(-child.pid, 'SIGTERM');
      await exited;
    },
  };
}

function readback(...args: string[]): unknown {
  const r = spawnSync(
    join(trackersBin, 'python'),
    [join(repoRoot, 'test/support/tracker_readback.py'), ...args],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`tracker_readback.py ${args.join(' ')} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** The MLflow runs tagged with a segflow run id, and every value of every metric of the first. */
export function mlflowHistory(
  uri: string,
  experiment: string,
  runId: string,
): { runs: number; name?: string; metrics: MetricHistory } {
  return readback('mlflow', uri, experiment, runId) as {
    runs: number;
    name?: string;
    metrics: MetricHistory;
  };
}

/** Every scalar event TensorBoard reads from a run's log dir. */
export function tensorboardHistory(logdir: string): MetricHistory {
  return (readback('tensorboard', logdir) as { metrics: MetricHistory }).metrics;
}
