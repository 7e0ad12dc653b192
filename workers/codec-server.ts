/**
 * The codec endpoint of the Temporal Web UI and CLI (`segr codec-server`): the Temporal codec-server
 * protocol over HTTP, with the process's payload codec (activities/runtime/payload-codec.ts).
 *
 * - `POST …/encode` and `POST …/decode` with `{"payloads": [Payload, …]}` in proto3 JSON (metadata
 *   values and data base64) answer `{"payloads": […]}`; the UI sends its namespace in `X-Namespace`
 *   (one key set serves every namespace here).
 * - CORS for the configured browser origins (the Web UI's): preflight `OPTIONS` answers with the
 *   allowed methods and headers; a request from any other origin is refused (403).
 * - With an auth token configured, every POST needs `Authorization: Bearer <token>` (401 otherwise).
 *
 * On node:http: the protocol is two JSON routes, and the repository has no web framework to reuse.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { PinoLogger } from '../activities/runtime/logger.js';
import { type AesGcmPayloadCodec, PayloadCodecError } from '../activities/runtime/payload-codec.js';

// a CommonJS package: its namespace comes through the default export
const ProtoPayload = proto.temporal.api.common.v1.Payload;

/** Largest request body read (the server's payload limit is 2 MB; a batch of them, base64). */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface CodecServerOptions {
  codec: AesGcmPayloadCodec;
  /** `host:port`. */
  listen: string;
  /** Origins allowed to call it from a browser. */
  corsOrigins: readonly string[];
  /** Required `Authorization: Bearer` token, if any. */
  authToken?: string | undefined;
  logger: PinoLogger;
}

/** Proto3 JSON (`{metadata: {k: base64}, data: base64}`) → Payload, by the proto's own converter. */
export function payloadFromJson(json: unknown): Payload {
  return ProtoPayload.fromObject(json as Record<string, unknown>);
}

/** Payload → proto3 JSON, bytes as base64. */
export function payloadToJson(payload: Payload): Record<string, unknown> {
  return ProtoPayload.toObject(ProtoPayload.fromObject(payload), { bytes: String });
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parsePayloads(text: string): Payload[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'the body is not JSON: expected {"payloads": [...]}');
  }
  const list = (doc as { payloads?: unknown } | null)?.payloads;
  if (!Array.isArray(list)) throw new HttpError(400, 'the body has no "payloads" array');
  return list.map((p, i) => {
    try {
      return payloadFromJson(p);
    } catch (err) {
      throw new HttpError(400, `payload ${i} is not a Payload in proto3 JSON: ${(err as Error).message}`);
    }
  });
}

export function createCodecServer(opts: CodecServerOptions): Server {
  const origins = new Set(opts.corsOrigins.map((o) => new URL(o).origin));
  const cors = (req: IncomingMessage, res: ServerResponse): void => {
    const origin = req.headers.origin;
    if (!origin) return;
    if (!origins.has(origin)) {
      throw new HttpError(403, `origin ${origin} is not allowed (codec.server.corsOrigins)`);
    }
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Access-Control-Allow-Credentials', 'true');
    res.setHeader('Vary', 'Origin');
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    cors(req, res);
    const path = new URL(req.url ?? '/', 'http://codec').pathname.replace(/\/+$/, '');
    const route = path.endsWith('/encode') ? 'encode' : path.endsWith('/decode') ? 'decode' : undefined;
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
      res.setHeader('Access-Control-Max-Age', '600');
      res.writeHead(204).end();
      return;
    }
    if (!route) throw new HttpError(404, 'not found: POST /encode or /decode');
    if (req.method !== 'POST') throw new HttpError(405, `${req.method} is not allowed: POST /${route}`);
    if (opts.authToken) {
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith('Bearer ') || !sameToken(auth.slice('Bearer '.length), opts.authToken)) {
        throw new HttpError(401, 'missing or wrong Authorization: Bearer token');
      }
    }
    const payloads = parsePayloads(await readBody(req));
    let out: Payload[];
    try {
      out = route === 'encode' ? await opts.codec.encode(payloads) : await opts.codec.decode(payloads);
    } catch (err) {
      if (err instanceof PayloadCodecError) throw new HttpError(400, err.message);
      throw err;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ payloads: out.map(payloadToJson) }));
    opts.logger.debug(
      { route, payloads: payloads.length, namespace: req.headers['x-namespace'] },
      'codec request',
    );
  };
  return createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      const message = err instanceof Error ? err.message : String(err);
      if (status === 500) opts.logger.error({ err }, 'codec request failed');
      if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: message }));
    });
  });
}

/** Starts the server; resolves with it and its URL once it listens. */
export async function startCodecServer(opts: CodecServerOptions): Promise<{ server: Server; url: string }> {
  const server = createCodecServer(opts);
  const colon = opts.listen.lastIndexOf(':');
  const host = opts.listen.slice(0, colon);
  const port = Number(opts.listen.slice(colon + 1));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    server,
    url: `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
  };
}
