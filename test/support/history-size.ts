// Sizes of recorded workflow histories, for the size tests: per run, the number of events and the
// largest payload blob in any event. A blob is what the server checks against its blob size limit
// (2 MiB by default): a Payloads message (an activity's or child's input, a result, a workflow
// input) or a single Payload (a memo or search attribute field, failure details). Sizes are the
// protobuf encoding's bytes, computed from the decoded history (@temporalio/proto is not a direct
// dependency, and the encoding of these two messages is three lines).
import type { Client } from '@temporalio/client';

/** Temporal's default hard limits (server dynamic config `limit.blobSize.error`, `limit.historyCount.error`). */
export const TEMPORAL_BLOB_LIMIT_BYTES = 2 * 1024 * 1024;
export const TEMPORAL_HISTORY_EVENTS_LIMIT = 51_200;
/** And the sizes it warns at (`limit.blobSize.warn`, `limit.historyCount.warn`). */
export const TEMPORAL_BLOB_WARN_BYTES = 512 * 1024;
export const TEMPORAL_HISTORY_EVENTS_WARN = 10_240;

export interface RunSize {
  workflowId: string;
  runId: string;
  workflowType: string;
  events: number;
  /** Largest payload blob in the run's history, in bytes. */
  largestPayload: number;
  /** The event and field that held it, e.g. "ActivityTaskScheduled(trainingSamplePromptRefs).input". */
  largestAt: string;
  /** The run id of the next run of a continue-as-new chain. */
  continuedAs?: string;
}

const varintLength = (n: number): number =>
  n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
/** A length-delimited field: its tag byte, the length and the bytes. */
const field = (bytes: number): number => 1 + varintLength(bytes) + bytes;

interface PayloadLike {
  metadata?: Record<string, Uint8Array> | null;
  data?: Uint8Array | null;
}

function payloadBytes(p: PayloadLike): number {
  let n = 0;
  for (const [k, v] of Object.entries(p.metadata ?? {}))
    n += field(field(Buffer.byteLength(k)) + field(v.length));
  if (p.data && p.data.length > 0) n += field(p.data.length);
  return n;
}

function payloadsBytes(ps: PayloadLike[]): number {
  return ps.reduce((n, p) => n + field(payloadBytes(p)), 0);
}

const isPayload = (v: unknown): v is PayloadLike =>
  typeof v === 'object' && v !== null && 'data' in v && (v as PayloadLike).data instanceof Uint8Array;

/** The largest blob under `value` and where it is. */
function largestBlob(value: unknown, path: string): { bytes: number; at: string } {
  let best = { bytes: 0, at: '' };
  const visit = (v: unknown, at: string): void => {
    if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return;
    if (Array.isArray((v as { payloads?: unknown }).payloads)) {
      const bytes = payloadsBytes((v as { payloads: PayloadLike[] }).payloads);
      if (bytes > best.bytes) best = { bytes, at };
      return;
    }
    if (isPayload(v)) {
      const bytes = payloadBytes(v);
      if (bytes > best.bytes) best = { bytes, at };
      return;
    }
    for (const [k, child] of Object.entries(v)) visit(child, `${at}.${k}`);
  };
  visit(value, path);
  return best;
}

type HistoryEvent = Record<string, unknown> & { eventType?: number | string | null };

function eventName(e: HistoryEvent): string {
  const attrs = Object.keys(e).find((k) => k.endsWith('EventAttributes') && e[k]);
  if (!attrs) return 'event';
  const a = e[attrs] as Record<string, { name?: string } | undefined>;
  const type = a.activityType?.name ?? a.workflowType?.name;
  const name = attrs.replace(/EventAttributes$/, '');
  return `${name[0]!.toUpperCase()}${name.slice(1)}${type ? `(${type})` : ''}`;
}

/** One run's size (the latest run of the workflow id without `runId`). */
export async function measureRun(client: Client, workflowId: string, runId?: string): Promise<RunSize> {
  const handle = client.workflow.getHandle(workflowId, runId);
  const history = await handle.fetchHistory();
  const events = (history.events ?? []) as unknown as HistoryEvent[];
  let largest = { bytes: 0, at: '' };
  let workflowType = '';
  let continuedAs: string | undefined;
  for (const e of events) {
    const started = e.workflowExecutionStartedEventAttributes as
      { workflowType?: { name?: string } } | undefined;
    if (started?.workflowType?.name) workflowType = started.workflowType.name;
    const can = e.workflowExecutionContinuedAsNewEventAttributes as
      { newExecutionRunId?: string } | undefined;
    if (can?.newExecutionRunId) continuedAs = can.newExecutionRunId;
    const blob = largestBlob(e, eventName(e));
    if (blob.bytes > largest.bytes) largest = blob;
  }
  return {
    workflowId,
    runId: runId ?? (await handle.describe()).runId,
    workflowType,
    events: events.length,
    largestPayload: largest.bytes,
    largestAt: largest.at,
    ...(continuedAs ? { continuedAs } : {}),
  };
}

/** Every run of a continue-as-new chain, from its first run. */
export async function measureChain(
  client: Client,
  workflowId: string,
  firstRunId: string,
): Promise<RunSize[]> {
  const runs: RunSize[] = [];
  let runId: string | undefined = firstRunId;
  while (runId) {
    const run = await measureRun(client, workflowId, runId);
    runs.push(run);
    runId = run.continuedAs;
  }
  return runs;
}

/** Per workflow type: runs, the most events in one run and the largest payload (with where it was). */
export function summarise(
  runs: readonly RunSize[],
): Map<string, { runs: number; maxEvents: number; largestPayload: number; largestAt: string }> {
  const out = new Map<
    string,
    { runs: number; maxEvents: number; largestPayload: number; largestAt: string }
  >();
  for (const r of runs) {
    const s = out.get(r.workflowType) ?? { runs: 0, maxEvents: 0, largestPayload: 0, largestAt: '' };
    s.runs += 1;
    s.maxEvents = Math.max(s.maxEvents, r.events);
    if (r.largestPayload > s.largestPayload) {
      s.largestPayload = r.largestPayload;
      s.largestAt = r.largestAt;
    }
    out.set(r.workflowType, s);
  }
  return out;
}
