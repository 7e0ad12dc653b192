/**
 * The process's secrets and the scrubbing of every text that leaves it (core/redact.ts has the
 * rules). Loading the config registers its secret values (config-loader.ts); then
 * - activity failures (message, details, the whole cause chain and its stack traces) are scrubbed
 *   once, where the worker maps them (activities/errors.ts `activityFailure`), so histories, the
 *   S3 records and reports built from them, and the SDK's own "Activity failed" log carry none;
 * - every log line is scrubbed on its way to stderr (runtime/logger.ts);
 * - the CLI scrubs the failures it prints (cli/failure.ts).
 */
import { secretKeys, type SegflowConfig } from '../../core/config/schema.js';
import { redactText, redactValue } from '../../core/redact.js';

const secrets = new Set<string>();

/** Adds values to scrub (empty and undefined ones are ignored). */
export function registerSecrets(values: Iterable<string | undefined>): void {
  for (const v of values) if (v) secrets.add(v);
}

/** The secret values of a config: every `secretKeys` entry, and each codec key on its own. */
export function secretValuesOf(config: SegflowConfig): string[] {
  const out: string[] = [];
  for (const dotted of secretKeys) {
    let v: unknown = config;
    for (const part of dotted.split('.')) v = (v as Record<string, unknown> | undefined)?.[part];
    if (typeof v === 'string' && v) out.push(v);
  }
  // codec.keys is `id:base64key,…`: each key's material is a secret by itself
  for (const entry of (config.codec.keys ?? '').split(/[\s,]+/)) {
    const material = entry.slice(entry.indexOf(':') + 1);
    if (material) out.push(material);
  }
  return out;
}

/** `text` scrubbed of this process's secrets and of credential-shaped parts. */
export function redact(text: string): string {
  return redactText(text, secrets);
}

/** A JSON-like value with every string scrubbed. */
export function redactDeep<T>(value: T): T {
  return redactValue(value, secrets);
}

/**
 * A copy of an error chain with every message and stack scrubbed: plain Errors keep their name
 * (what Temporal records as the cause's type); at most 10 causes deep.
 */
export function redactedCause(err: unknown, depth = 0): Error | undefined {
  if (err === undefined || err === null || depth > 10) return undefined;
  const e = err instanceof Error ? err : new Error(String(err));
  const copy = new Error(redact(e.message));
  copy.name = e.name;
  copy.stack = e.stack === undefined ? undefined : redact(e.stack);
  const cause = redactedCause((e as { cause?: unknown }).cause, depth + 1);
  if (cause) Object.defineProperty(copy, 'cause', { value: cause, enumerable: false, writable: true });
  return copy;
}
