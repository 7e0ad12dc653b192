/**
 * pino JSON logs for every segflow process, and the bridge that routes Temporal's Runtime logger
 * (SDK, core, workflow `log` and activity `log` messages) into the same pino stream.
 */
import { pino, type Logger as PinoLogger, type Level } from 'pino';
import type { Logger as TemporalLogger, LogLevel, LogMetadata } from '@temporalio/common';
import { redact } from './redact.js';

export type { PinoLogger };

const redactPaths = [
  'apiKey',
  'secretAccessKey',
  'accessKeyId',
  '*.apiKey',
  '*.secretAccessKey',
  '*.accessKeyId',
  'headers.authorization',
  'headers["x-api-key"]',
];

/**
 * A pino logger writing JSON lines to stderr (stdout stays free for command output). Besides the
 * field paths above, every line is scrubbed of the process's secrets and of credential-shaped text
 * (runtime/redact.ts) on its way out, whatever logged it: segflow, the Temporal SDK, core.
 */
export function createLogger(level: string = 'info', bindings: Record<string, unknown> = {}): PinoLogger {
  const stderr = pino.destination({ fd: 2, sync: true });
  return pino(
    { level, base: { pid: process.pid, ...bindings }, redact: { paths: redactPaths, censor: '***' } },
    { write: (line: string) => stderr.write(redact(line)) },
  );
}

const levelMap: Record<LogLevel, Level> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/** Temporal's Logger interface on top of pino. */
export class PinoTemporalLogger implements TemporalLogger {
  constructor(private readonly logger: PinoLogger) {}

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const clean: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(meta ?? {})) clean[k] = v;
    this.logger[levelMap[level]](clean, message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}
