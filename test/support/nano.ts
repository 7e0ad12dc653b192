// The nano world in tests: where scripts/nano-setup.sh put it, and its policy server as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { repoRoot } from './paths.js';

export const nanoDir = resolve(repoRoot, process.env.NANO_DIR ?? '.nano');
export const nanoPython = resolve(repoRoot, process.env.NANO_VENV ?? '.venv/nano', 'bin', 'python');

/**
 * Starts nano/policy_server.py on a free port; resolves with its /v1 URL once /health answers. Its
 * log-probs are those of the sampling distribution (`--logprobs-mode processed_logprobs`), what the
 * trainer's importance ratio of pipelined training compares with.
 */
export async function startNanoPolicyServer(dir: string): Promise<{ url: string; child: ChildProcess }> {
  const urlFile = join(mkdtempSync(join(tmpdir(), 'nano-policy-')), 'url');
  const child = spawn(
    nanoPython,
    [
      '-W',
      'ignore',
      '-m',
      'nano.policy_server',
      '--model',
      dir,
      '--port',
      '0',
      '--url-file',
      urlFile,
      '--logprobs-mode',
      'processed_logprobs',
    ],
    {
      cwd: repoRoot,
      env: { ...process.env, PYTHONPATH: repoRoot },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nano policy server exited:\n${out}`);
    if (Date.now() > deadline) throw new Error(`nano policy server not up in 60s:\n${out}`);
    if (existsSync(urlFile)) {
      const url = readFileSync(urlFile, 'utf8').trim();
      const ok = await fetch(url.replace(/\/v1$/, '/health')).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return { url, child };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
