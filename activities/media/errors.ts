/**
 * Errors of the media pipeline. Bad media names the file and what is wrong with it and is never
 * retryable; a failing ffmpeg/ffprobe run carries its exit status and the tail of its stderr.
 */
import { ErrorTypes } from '../../core/contracts/errors.js';
import { SegflowError } from '../errors.js';

/** A file (image, video, frame folder, mask, annotation, parquet) that cannot be used as given. */
export class BadMediaError extends SegflowError {
  /** The file or folder at fault (a path or an s3:// URI). */
  readonly file: string;
  /** What is wrong with it, in words. */
  readonly problem: string;

  constructor(file: string, problem: string, cause?: unknown, details: Record<string, unknown> = {}) {
    super(ErrorTypes.badMedia, `${file}: ${problem}`, {
      retryable: false,
      details: { file, problem, ...details },
      cause,
    });
    this.file = file;
    this.problem = problem;
  }
}

/** How an external tool run ended, when it did not end well. */
export const ToolFailureKinds = {
  /** The binary is not installed or not executable: a deployment problem, never retryable. */
  missing: 'missing',
  /** It exited non-zero (or was killed by a signal it did not get from us). */
  exit: 'exit',
  /** It ran past its time limit and was killed: may succeed on a less busy host. */
  timeout: 'timeout',
  /** Its AbortSignal fired (activity cancelled): not retryable. */
  aborted: 'aborted',
} as const;
export type ToolFailureKind = (typeof ToolFailureKinds)[keyof typeof ToolFailureKinds];

/** ffmpeg / ffprobe (or another helper binary) failed. */
export class ToolProcessError extends SegflowError {
  readonly tool: string;
  readonly kind: ToolFailureKind;
  readonly exitCode: number | null;
  /** The last lines ffmpeg wrote to stderr (its error messages). */
  readonly stderr: string;

  constructor(opts: {
    tool: string;
    kind: ToolFailureKind;
    message: string;
    exitCode?: number | null;
    stderr?: string;
    args?: readonly string[];
    cause?: unknown;
  }) {
    const stderr = opts.stderr ?? '';
    const tail = stderr.trim() ? `\n${opts.tool} stderr:\n${stderr.trim()}` : '';
    super(ErrorTypes.toolProcess, `${opts.message}${tail}`, {
      retryable: opts.kind === 'timeout',
      details: { tool: opts.tool, kind: opts.kind, exitCode: opts.exitCode ?? null, args: opts.args ?? [] },
      cause: opts.cause,
    });
    this.tool = opts.tool;
    this.kind = opts.kind;
    this.exitCode = opts.exitCode ?? null;
    this.stderr = stderr;
  }
}
