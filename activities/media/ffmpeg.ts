/**
 * A small typed wrapper around the ffmpeg and ffprobe binaries (Debian's, on PATH): every run has a
 * time limit, can be cancelled through an AbortSignal (an activity's cancellation signal), and fails
 * with a ToolProcessError that carries the exit status and the tail of stderr.
 */
import { spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { ToolProcessError, type ToolFailureKind } from './errors.js';

export type MediaTool = 'ffmpeg' | 'ffprobe';

/** Arguments every ffmpeg run starts with: quiet except for errors, never reads the terminal. */
export const FFMPEG_QUIET = ['-hide_banner', '-nostdin', '-loglevel', 'error'] as const;

export interface ToolRunOptions {
  /** Kills the process (SIGKILL) after this many milliseconds. @default 120000 */
  timeoutMs?: number;
  /** Kills the process when it fires (activity cancellation, CLI Ctrl-C). */
  signal?: AbortSignal;
  /** Whether the process reads from a pipe on stdin (else stdin is /dev/null). @default false */
  stdin?: boolean;
  /** How many bytes of stderr are kept for error messages. @default 8192 */
  stderrTailBytes?: number;
}

export interface ToolProcess {
  /** The process's stdout; read it, or the process stalls once the pipe is full. */
  readonly stdout: Readable;
  /** Its stdin, when started with `stdin: true`. */
  readonly stdin: Writable | null;
  /** Resolves when the process exits with status 0 (or was stopped by `stop()`); rejects otherwise. */
  readonly done: Promise<void>;
  /** Stops the process on purpose (the caller has what it needs); `done` then resolves. */
  stop(): void;
}

/** @default 120000 */
export const DEFAULT_TOOL_TIMEOUT_MS = 120_000;

/** Starts ffmpeg or ffprobe with `args`; see {@link ToolProcess}. */
export function startTool(tool: MediaTool, args: readonly string[], opts: ToolRunOptions = {}): ToolProcess {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
  const tailBytes = opts.stderrTailBytes ?? 8192;
  const describe = `${tool} ${args.join(' ')}`;
  const child = spawn(tool, args, { stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });

  let stderrTail = '';
  const stdout = child.stdout!;
  const stderr = child.stderr!;
  stderr.setEncoding('utf8');
  stderr.on('data', (text: string) => {
    stderrTail = (stderrTail + text).slice(-tailBytes);
  });
  // Writes after the process died fail with EPIPE; `done` reports the real cause.
  child.stdin?.on('error', () => {});

  let ending: ToolFailureKind | 'stopped' | undefined;
  const kill = (why: ToolFailureKind | 'stopped') => {
    if (ending === undefined) ending = why;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const timer = setTimeout(() => kill('timeout'), timeoutMs);
  timer.unref();
  const onAbort = () => kill('aborted');
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });

  const done = new Promise<void>((resolve, reject) => {
    let spawnError: NodeJS.ErrnoException | undefined;
    child.once('error', (err: NodeJS.ErrnoException) => {
      spawnError = err;
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (spawnError) {
        const missing = spawnError.code === 'ENOENT' || spawnError.code === 'EACCES';
        reject(
          new ToolProcessError({
            tool,
            kind: missing ? 'missing' : 'exit',
            message: missing
              ? `${tool} is not installed or not executable (${spawnError.code}); install Debian's ffmpeg package (\`apt-get install ffmpeg\`, done by \`make install\`)`
              : `${tool} could not be started: ${spawnError.message}`,
            args,
            cause: spawnError,
          }),
        );
        return;
      }
      if (ending === 'stopped') return resolve();
      if (ending === 'timeout' || ending === 'aborted') {
        reject(
          new ToolProcessError({
            tool,
            kind: ending,
            message:
              ending === 'timeout'
                ? `${tool} ran longer than ${timeoutMs} ms and was killed (${describe})`
                : `${tool} was cancelled (${describe})`,
            stderr: stderrTail,
            args,
          }),
        );
        return;
      }
      if (code === 0) return resolve();
      reject(
        new ToolProcessError({
          tool,
          kind: 'exit',
          exitCode: code,
          message: `${tool} failed with ${code === null ? `signal ${signal}` : `exit status ${code}`} (${describe})`,
          stderr: stderrTail,
          args,
        }),
      );
    });
  });
  // Callers that only await a later step must not leave this rejection unhandled.
  done.catch(() => {});

  return { stdout, stdin: child.stdin, done, stop: () => kill('stopped') };
}

/** Runs a tool to completion and returns its whole stdout (for ffprobe's JSON and small outputs). */
export async function runTool(
  tool: MediaTool,
  args: readonly string[],
  opts: Omit<ToolRunOptions, 'stdin'> = {},
): Promise<Buffer> {
  const proc = startTool(tool, args, opts);
  const chunks: Buffer[] = [];
  proc.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  await proc.done;
  return Buffer.concat(chunks);
}
