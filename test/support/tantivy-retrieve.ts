// A real Search-R1 /retrieve server for tests: scripts/search-server/retrieve_tantivy.py (tantivy)
// from the venv scripts/setup-search.sh fills (`.venv/search`), or the venv SEGFLOW_SEARCH_VENV
// names. Started on a free loopback port over a corpus, ready when GET /health answers, killed by
// close().
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

export const searchVenv = process.env.SEGFLOW_SEARCH_VENV ?? join(repoRoot, '.venv', 'search');

export interface RetrieveServer {
  /** The /retrieve URL (search.retrieval.textUrl). */
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

export async function startTantivyRetrieve(opts: {
  corpus: string;
  indexDir: string;
  readyTimeoutMs?: number;
}): Promise<RetrieveServer> {
  const python = join(searchVenv, 'bin', 'python');
  if (!existsSync(python)) {
    throw new Error(
      `${python} is missing: run \`make deps-search\` (bash scripts/setup-search.sh) or point SEGFLOW_SEARCH_VENV at a venv with tantivy`,
    );
  }
  const port = await freePort();
  const script = join(repoRoot, 'scripts', 'search-server', 'retrieve_tantivy.py');
  const args = [script, '--corpus', opts.corpus, '--index-dir', opts.indexDir, '--port', String(port)];
  const child: ChildProcess = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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
    if (child.exitCode !== null)
      throw new Error(`retrieve_tantivy.py exited with ${child.exitCode}: ${output}`);
    try {
      const res = await fetch(`${base}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await close();
      throw new Error(`retrieve_tantivy.py on port ${port} did not answer /health in time: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url: `${base}/retrieve`, close };
}
