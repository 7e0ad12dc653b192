// A local OpenAI-compatible chat-completions server standing in for a GPU policy server. It
// speaks the wire protocol of vLLM (stop_reason, include_stop_str_in_output, return_token_ids,
// /tokenize, /v1/load_lora_adapter), SGLang (matched_stop) or a plain server that drops stop
// strings and reports nothing (llama.cpp-like). The "model" is a script: a function from the
// messages to the full text it would write; the server applies stop strings, max_tokens, the
// context length and logprobs to it the way those servers do. Test-only.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { json, startServer, type LocalServer, type Reply } from './http-server.js';

export type Flavor = 'vllm' | 'sglang' | 'plain';

type Part = { type: string; text?: string; image_url?: { url?: string } };
export type WireMessage = { role: string; content: string | Part[] };

export interface FakePolicyOptions {
  flavor: Flavor;
  /** The text the model would write for these messages (before stop strings and limits). */
  script: (messages: WireMessage[], model: string, body: Record<string, unknown>) => string;
  maxModelLen?: number;
  apiKey?: string;
  /** Replies served before normal ones (429, 500, slow answers). */
  faults?: Reply[];
  /**
   * A reply in place of the normal one for chosen requests (an outage: every request gets 503 for a
   * while; a broken trajectory: its seed always gets 500), or undefined to answer normally. The
   * request's headers are given too (a server that echoes the key it was sent).
   */
  refuse?: (path: string, body: Record<string, unknown>, headers: IncomingHttpHeaders) => Reply | undefined;
  /** Base model name. @default "policy" */
  model?: string;
  /** Serve vLLM's dev-mode `/collective_rpc` (VLLM_SERVER_DEV_MODE=1): full-weight reloads. */
  devMode?: boolean;
  /** Listen on this port (a restarted server where its clients expect it). @default a free port */
  port?: number;
}

export interface FakePolicyServer extends LocalServer {
  adapters: Map<string, string>;
  /** The folders `/collective_rpc` `reload_weights` reloaded the base model from, in order (devMode only). */
  reloads: string[];
  /** The caches reset after reloads (`encoder`, `prefix`), in order. */
  resets: string[];
}

/** The fake tokenizer: one token per whitespace-led word. */
export function fakeTokens(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

function tokenId(token: string): number {
  return createHash('sha256').update(token).digest().readUInt32BE(0) % 150_000;
}

const IMAGE_TOKENS = 64;

function promptTokens(messages: WireMessage[]): number {
  let n = 0;
  for (const m of messages) {
    n += 4;
    if (typeof m.content === 'string') n += fakeTokens(m.content).length;
    else for (const p of m.content) n += p.type === 'text' ? fakeTokens(p.text ?? '').length : IMAGE_TOKENS;
  }
  return n + 3;
}

/**
 * A `refuse` that, while `holding()`, holds every chat request for a turn after the first (its
 * messages hold an assistant turn) unanswered for 10 minutes: host-failure tests kill the host while
 * its pinned turn generates, leaving nothing to a race with the scripted answer.
 */
export function holdLaterTurns(holding: () => boolean): NonNullable<FakePolicyOptions['refuse']> {
  return (path, body) =>
    holding() &&
    path === '/v1/chat/completions' &&
    (body.messages as WireMessage[] | undefined)?.some((m) => m.role === 'assistant')
      ? { status: 503, delayMs: 600_000 }
      : undefined;
}

/** How many chat requests for a turn after the first this server has received (held ones too). */
export function laterTurnRequests(server: LocalServer): number {
  return server.requests.filter((r) => r.path === '/v1/chat/completions' && r.body.includes('"assistant"'))
    .length;
}

export function error(status: number, type: string, message: string): Reply {
  return json({ object: 'error', message, type, param: null, code: status }, status);
}

export async function startFakePolicyServer(opts: FakePolicyOptions): Promise<FakePolicyServer> {
  const adapters = new Map<string, string>();
  const reloads: string[] = [];
  const resets: string[] = [];
  const base = opts.model ?? 'policy';
  const maxModelLen = opts.maxModelLen ?? 32768;
  const server = await startServer((req) => {
    const fault = opts.faults?.shift();
    if (fault) return fault;
    if (opts.apiKey && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      return json(
        {
          error: {
            message: 'Incorrect API key provided',
            type: 'invalid_request_error',
            code: 'invalid_api_key',
          },
        },
        401,
      );
    }
    let body: Record<string, unknown> = {};
    if (req.body) {
      try {
        body = JSON.parse(req.body) as Record<string, unknown>;
      } catch {
        return error(400, 'BadRequestError', 'Invalid JSON body');
      }
    }
    const refused = opts.refuse?.(req.path, body, req.headers);
    if (refused) return refused;

    if (req.path === '/v1/load_lora_adapter' && opts.flavor === 'vllm') {
      const name = String(body.lora_name ?? '');
      if (!name || !body.lora_path)
        return error(400, 'BadRequestError', 'Both lora_name and lora_path must be provided.');
      if (adapters.has(name))
        return error(400, 'BadRequestError', `The lora adapter '${name}' has already been loaded.`);
      adapters.set(name, String(body.lora_path));
      return {
        status: 200,
        headers: { 'content-type': 'text/plain' },
        body: `Success: LoRA adapter '${name}' added successfully.`,
      };
    }
    // vLLM's dev-mode RPC (VLLM_SERVER_DEV_MODE=1): only `reload_weights` with a weights_path
    if (req.path === '/collective_rpc' && opts.flavor === 'vllm' && opts.devMode) {
      const kwargs = (body.kwargs ?? {}) as Record<string, unknown>;
      if (body.method !== 'reload_weights' || typeof kwargs.weights_path !== 'string')
        return error(400, 'BadRequestError', `unsupported collective_rpc ${JSON.stringify(body)}`);
      reloads.push(kwargs.weights_path);
      return json({ results: [null] });
    }
    if (req.path === '/reset_encoder_cache' && opts.flavor === 'vllm' && opts.devMode) {
      resets.push('encoder');
      return { status: 200, headers: {}, body: '' };
    }
    if (req.path === '/reset_prefix_cache' && opts.flavor === 'vllm' && opts.devMode) {
      resets.push('prefix');
      return json({ success: true });
    }
    if (req.path === '/v1/unload_lora_adapter' && opts.flavor === 'vllm') {
      const name = String(body.lora_name ?? '');
      if (!adapters.delete(name))
        return error(404, 'NotFoundError', `The lora adapter '${name}' cannot be found.`);
      return {
        status: 200,
        headers: { 'content-type': 'text/plain' },
        body: `Success: LoRA adapter '${name}' removed successfully.`,
      };
    }
    if (req.path === '/tokenize' && opts.flavor === 'vllm') {
      const messages = body.messages as WireMessage[];
      const count = promptTokens(messages);
      return json({ count, max_model_len: maxModelLen, tokens: Array.from({ length: count }, (_, i) => i) });
    }
    if (req.path !== '/v1/chat/completions') return json({ detail: 'Not Found' }, 404);

    const model = String(body.model ?? '');
    if (model !== base && !adapters.has(model))
      return error(404, 'NotFoundError', `The model \`${model}\` does not exist.`);
    const messages = body.messages;
    if (!Array.isArray(messages) || messages.length === 0)
      return error(400, 'BadRequestError', 'messages must be a non-empty list');
    for (const m of messages as WireMessage[]) {
      if (typeof m.content === 'string') continue;
      for (const p of m.content) {
        if (p.type !== 'image_url') continue;
        const url = p.image_url?.url ?? '';
        const data = /^data:image\/[a-z]+;base64,(.*)$/.exec(url);
        if (data) {
          const bytes = Buffer.from(data[1]!, 'base64');
          if (bytes.length === 0) return error(400, 'BadRequestError', 'image data URL holds no bytes');
        } else if (!/^https?:\/\//.test(url)) {
          return error(400, 'BadRequestError', `Invalid image URL: ${url.slice(0, 40)}`);
        }
      }
    }
    const prompt = promptTokens(messages as WireMessage[]);
    const maxTokens = typeof body.max_tokens === 'number' ? body.max_tokens : maxModelLen - prompt;
    if (prompt + maxTokens > maxModelLen) {
      return error(
        400,
        'BadRequestError',
        `This model's maximum context length is ${maxModelLen} tokens. However, you requested ${prompt + maxTokens} tokens (${prompt} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
      );
    }

    const full = opts.script(messages as WireMessage[], model, body);
    const stops = Array.isArray(body.stop)
      ? (body.stop as string[])
      : typeof body.stop === 'string'
        ? [body.stop]
        : [];
    let tokens = fakeTokens(full);
    let finish: 'stop' | 'length' = 'stop';
    let stopString: string | null = null;
    // Stop strings are matched on the decoded text as tokens stream out, as vLLM does.
    let text = '';
    let used = 0;
    for (const t of tokens) {
      if (used === maxTokens) {
        finish = 'length';
        break;
      }
      text += t;
      used++;
      const hit = stops
        .map((s) => ({ s, at: text.indexOf(s) }))
        .filter((x) => x.at >= 0)
        .sort((a, b) => a.at - b.at)[0];
      if (hit) {
        stopString = hit.s;
        const keep = opts.flavor === 'vllm' && body.include_stop_str_in_output === true;
        text = text.slice(0, hit.at + (keep ? hit.s.length : 0));
        break;
      }
    }
    tokens = tokens.slice(0, used);
    const ids = tokens.map(tokenId);
    const choice: Record<string, unknown> = {
      index: 0,
      message: { role: 'assistant', content: text, reasoning_content: null, tool_calls: [] },
      finish_reason: finish,
      logprobs: null,
    };
    if (opts.flavor === 'vllm') {
      choice.stop_reason = finish === 'stop' ? (stopString ?? null) : null;
      if (body.return_token_ids === true) choice.token_ids = ids;
    }
    if (opts.flavor === 'sglang') choice.matched_stop = finish === 'stop' ? (stopString ?? 151645) : null;
    if (body.logprobs === true) {
      choice.logprobs = {
        content: tokens.map((t, i) => ({
          token: body.return_tokens_as_token_ids === true ? `token_id:${ids[i]}` : t,
          logprob: -0.01 * (i + 1),
          bytes: [...Buffer.from(t)],
          top_logprobs: [],
        })),
      };
    }
    const result: Record<string, unknown> = {
      id: `chatcmpl-${createHash('sha256').update(req.body).digest('hex').slice(0, 16)}`,
      object: 'chat.completion',
      created: 1_700_000_000,
      model,
      choices: [choice],
      usage: { prompt_tokens: prompt, total_tokens: prompt + used, completion_tokens: used },
    };
    if (opts.flavor === 'vllm' && body.return_token_ids === true)
      result.prompt_token_ids = Array.from({ length: prompt }, (_, i) => i);
    return json(result);
  }, opts.port);
  return Object.assign(server, { adapters, reloads, resets });
}
