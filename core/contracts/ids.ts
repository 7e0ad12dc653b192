/**
 * The ids that become S3 key segments, workflow ids, adapter names or ledger keys: one alphabet
 * (letters, digits, ".", "_", "-") and one length limit per kind of id, each defined here once.
 * Limits: a run id is also part of every served model name (`<run>-v<k>`, at most 128) and of every
 * child workflow id under it, so it is the shortest; an evaluation id may come from a scheduled
 * workflow id (a schedule id plus a timestamp), so it is the longest.
 */
import { z } from 'zod';

export const SAFE_ID_CHARS = 'letters, digits, ".", "_" or "-", not only dots';

/** How long each kind of id may be. */
export const IdLimits = {
  run: 100,
  eval: 200,
  schedule: 150,
  servedModel: 128,
  /** Policy host ids (`segflow-policy@<host>`). */
  host: 100,
  /** The paid-call ledger is keyed by a run id or an evaluation id. */
  ledger: 200,
} as const;

export type IdKind = keyof typeof IdLimits;

/** `.` and `..` (any run of dots) are path steps, never names: refused (core/contracts/safe-key.ts). */
export function safeIdPattern(max: number): RegExp {
  return new RegExp(`^(?!\\.+$)[A-Za-z0-9._-]{1,${max}}$`);
}

/** A zod string of the safe alphabet, at most `max` characters; the message says both. */
export function safeIdSchema(max: number) {
  return z.string().regex(safeIdPattern(max), `${SAFE_ID_CHARS} (1 to ${max} characters)`);
}

export const IdSchemas = {
  run: safeIdSchema(IdLimits.run),
  eval: safeIdSchema(IdLimits.eval),
  schedule: safeIdSchema(IdLimits.schedule),
  servedModel: safeIdSchema(IdLimits.servedModel),
  host: safeIdSchema(IdLimits.host),
  ledger: safeIdSchema(IdLimits.ledger),
} as const;

/** True when `id` is a valid id of this kind. */
export function isSafeId(kind: IdKind, id: string): boolean {
  return safeIdPattern(IdLimits[kind]).test(id);
}

/** The message for an id that is not valid: names the id, the alphabet and the limit. */
export function safeIdProblem(kind: IdKind, label: string, id: string): string {
  return `${label} ${JSON.stringify(id)} must be 1-${IdLimits[kind]} ${SAFE_ID_CHARS}`;
}

/** Any string made into an id of this kind: other characters (and an id of only dots) become "_", then truncated. */
export function toSafeId(kind: IdKind, text: string): string {
  const id = text.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, IdLimits[kind]);
  return /^\.+$/.test(id) ? id.replace(/\./g, '_') : id;
}
