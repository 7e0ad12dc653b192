/**
 * Client for any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp server,
 * hosted APIs) as the policy of the turn protocol (spec §3.3):
 * - multimodal messages (images as http(s) URLs or data URLs);
 * - stop strings `</search>` and `</keyframe>` kept in the output: vLLM keeps them when asked
 *   (`include_stop_str_in_output`); for servers that drop them, the matched stop string is put
 *   back, known from `stop_reason` (vLLM) or `matched_stop` (SGLang), else inferred from an
 *   unclosed `<search>` / `<keyframe>`;
 * - per-turn max tokens from the context budget (see budget.ts);
 * - text, finish reason, token counts, token ids and log-probabilities when the server gives them;
 * - cancellation by AbortSignal; errors classified (net/http.ts);
 * - vLLM's runtime LoRA loading (`/v1/load_lora_adapter`, `/v1/unload_lora_adapter`) for weight sync.
 */
import { BadInputError, ConfigError, SegflowError, TransientError } from '../errors.js';
import { httpCall, httpError } from '../net/http.js';
import { turnMaxTokens, type BudgetSettings } from './budget.js';

export type ContentPart = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } };

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string | ContentPart[];
}

export interface SamplingSettings {
  temperature: number;
  topP: number;
  /** -1 disables top-k. */
  topK: number;
  seed?: number;
  /** Ask for each sampled token's log-prob (a request asks on top of the client's `logprobs`). */
  logprobs?: boolean;
}

export interface PolicyClientOptions extends BudgetSettings {
  /** OpenAI-compatible base URL, usually ending in `/v1`. */
  baseUrl: string;
  model: string;
  apiKey?: string | undefined;
  timeoutMs: number;
  stop: readonly string[];
  vllmExtensions: boolean;
  logprobs: boolean;
  sampling: SamplingSettings;
}

export interface GenerateRequest {
  messages: ChatMessage[];
  /** Model (or loaded LoRA adapter) name. @default options.model */
  model?: string;
  /** Tokens already in the context, prompt included; else asked from vLLM's /tokenize when available. */
  contextTokens?: number;
  sampling?: Partial<SamplingSettings>;
  signal?: AbortSignal;
}

export interface PolicyTurn {
  text: string;
  /** The server's finish reason (`stop`, `length`, …), or `max_model_len_exceeded` when no budget was left. */
  finishReason: string;
  /** The stop string that ended the turn, when one did. */
  matchedStop?: string;
  /** True when the server dropped the stop string and the client put it back. */
  stopReappended: boolean;
  promptTokens: number;
  completionTokens: number;
  /** max_tokens sent for this turn. */
  maxTokens: number;
  /** Context size the budget was computed from, when known. */
  contextTokens?: number;
  /** Generated token ids (vLLM `return_token_ids` or `token_id:N` logprob tokens). */
  tokenIds?: number[];
  /** Log-probability of each generated token, when asked for and given. */
  logprobs?: number[];
  model: string;
}

const OPEN_TAG_OF: Record<string, string> = { '</search>': '<search>', '</keyframe>': '<keyframe>' };

/**
 * The stop string a server ended on when it reports none: the one whose opening tag is left
 * unclosed at the end of the text (the model wrote `<search> {…}` and stopped at `</search>`).
 */
export function inferDroppedStop(text: string, stops: readonly string[]): string | undefined {
  let best: { stop: string; at: number } | undefined;
  for (const stop of stops) {
    const open = OPEN_TAG_OF[stop];
    if (!open) continue;
    const at = text.lastIndexOf(open);
    if (at < 0 || text.indexOf(stop, at) >= 0) continue;
    if (!best || at > best.at) best = { stop, at };
  }
  return best?.stop;
}

interface ChatCompletion {
  model?: string;
  choices?: {
    message?: { content?: string | null };
    finish_reason?: string | null;
    stop_reason?: string | number | null;
    matched_stop?: string | number | null;
    token_ids?: number[] | null;
    logprobs?: { content?: { token: string; logprob: number }[] | null } | null;
  }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number };
}

export class PolicyClient {
  /** Per model, the context length the server reported (vLLM's /tokenize answers `max_model_len`). */
  private readonly serverMaxModelLen = new Map<string, number>();

  constructor(private readonly options: PolicyClientOptions) {}

  /** The context length the turn budget uses: policy.maxModelLen when set, else the server's own. */
  maxModelLenOf(model: string): number | undefined {
    return this.options.maxModelLen ?? this.serverMaxModelLen.get(model);
  }

  private get v1(): string {
    return this.options.baseUrl.replace(/\/+$/, '');
  }

  /** The server root (vLLM serves /tokenize and /health beside /v1). */
  private get root(): string {
    return this.v1.replace(/\/v1$/, '');
  }

  private headers(): Record<string, string> {
    return this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {};
  }

  /** Context tokens by vLLM's /tokenize (chat template applied); undefined when the server has none. */
  async countTokens(
    messages: ChatMessage[],
    model: string,
    signal?: AbortSignal,
  ): Promise<number | undefined> {
    if (!this.options.vllmExtensions) return undefined;
    try {
      const res = await httpCall(`${this.root}/tokenize`, {
        method: 'POST',
        headers: this.headers(),
        json: { model, messages, add_generation_prompt: true },
        timeoutMs: Math.min(this.options.timeoutMs, 30_000),
        signal,
        what: 'policy server /tokenize',
        authHint: 'check SEGFLOW_POLICY_API_KEY',
      });
      const body = JSON.parse(res.text) as { count?: unknown; max_model_len?: unknown };
      if (typeof body.max_model_len === 'number' && body.max_model_len > 0)
        this.serverMaxModelLen.set(model, body.max_model_len);
      return typeof body.count === 'number' ? body.count : undefined;
    } catch (err) {
      if (err instanceof BadInputError && /HTTP 404/.test(err.message)) return undefined;
      throw err;
    }
  }

  async generate(req: GenerateRequest): Promise<PolicyTurn> {
    const o = this.options;
    const model = req.model ?? o.model;
    validateMessages(req.messages);
    const contextTokens = req.contextTokens ?? (await this.countTokens(req.messages, model, req.signal));
    let maxTokens = turnMaxTokens({ ...o, maxModelLen: this.maxModelLenOf(model) }, contextTokens);
    if (maxTokens > 0 && contextTokens !== undefined && this.maxModelLenOf(model) === undefined) {
      // A later turn on a worker that has not asked this server yet: learn its context length once
      // (a server started with --max-model-len 2048 refuses max_tokens=4096 with HTTP 400)
      await this.countTokens(req.messages, model, req.signal);
      maxTokens = turnMaxTokens({ ...o, maxModelLen: this.maxModelLenOf(model) }, contextTokens);
    }
    if (maxTokens <= 0) {
      return {
        text: '',
        finishReason: 'max_model_len_exceeded',
        stopReappended: false,
        promptTokens: contextTokens ?? 0,
        completionTokens: 0,
        maxTokens: 0,
        ...(contextTokens !== undefined ? { contextTokens } : {}),
        model,
      };
    }
    const s = { ...o.sampling, ...(req.sampling ?? {}) };
    const body: Record<string, unknown> = {
      model,
      messages: req.messages,
      max_tokens: maxTokens,
      temperature: s.temperature,
      top_p: s.topP,
      n: 1,
      stop: [...o.stop],
      ...(s.seed !== undefined ? { seed: s.seed } : {}),
      ...(o.logprobs || s.logprobs ? { logprobs: true, top_logprobs: 0 } : {}),
      ...(o.vllmExtensions
        ? {
            include_stop_str_in_output: true,
            top_k: s.topK,
            return_token_ids: true,
            skip_special_tokens: true,
          }
        : {}),
    };
    const url = `${this.v1}/chat/completions`;
    const res = await httpCall(url, {
      method: 'POST',
      headers: this.headers(),
      json: body,
      timeoutMs: o.timeoutMs,
      signal: req.signal,
      what: `policy chat completion (model ${model})`,
      authHint: 'check SEGFLOW_POLICY_API_KEY',
    }).catch((err: unknown) => {
      // A context overflow is the request's fault, not the server's: do not retry it.
      if (
        err instanceof SegflowError &&
        /maximum context length|context length|too long/i.test(err.message) &&
        !err.retryable
      ) {
        throw new BadInputError(
          `policy request of ${contextTokens ?? 'unknown'} context tokens + ${maxTokens} new tokens exceeds the server's context: ${err.message}`,
          { contextTokens, maxTokens },
        );
      }
      throw err;
    });
    let completion: ChatCompletion;
    try {
      completion = JSON.parse(res.text) as ChatCompletion;
    } catch {
      throw new TransientError(`policy server ${url} answered with invalid JSON: ${res.text.slice(0, 200)}`);
    }
    const choice = completion.choices?.[0];
    if (!choice)
      throw new TransientError(`policy server ${url} answered without choices: ${res.text.slice(0, 200)}`);

    let text = choice.message?.content ?? '';
    const finishReason = choice.finish_reason ?? 'unknown';
    let matchedStop: string | undefined;
    let stopReappended = false;
    if (finishReason === 'stop') {
      const reported =
        typeof choice.stop_reason === 'string'
          ? choice.stop_reason
          : typeof choice.matched_stop === 'string'
            ? choice.matched_stop
            : undefined;
      const reportsEos = typeof choice.stop_reason === 'number' || typeof choice.matched_stop === 'number';
      if (reported !== undefined && o.stop.includes(reported)) matchedStop = reported;
      else if (reported === undefined && !reportsEos) {
        matchedStop = o.stop.find((st) => text.endsWith(st)) ?? inferDroppedStop(text, o.stop);
      }
      if (matchedStop && !text.endsWith(matchedStop)) {
        text += matchedStop;
        stopReappended = true;
      }
    }

    const turn: PolicyTurn = {
      text,
      finishReason,
      stopReappended,
      promptTokens: completion.usage?.prompt_tokens ?? contextTokens ?? 0,
      completionTokens: completion.usage?.completion_tokens ?? 0,
      maxTokens,
      model: completion.model ?? model,
      ...(matchedStop ? { matchedStop } : {}),
      ...(contextTokens !== undefined ? { contextTokens } : {}),
    };
    const lp = choice.logprobs?.content ?? undefined;
    if (Array.isArray(choice.token_ids)) turn.tokenIds = choice.token_ids;
    else if (lp && lp.length > 0 && lp.every((t) => /^token_id:\d+$/.test(t.token))) {
      turn.tokenIds = lp.map((t) => Number(t.token.slice('token_id:'.length)));
    }
    if (lp && lp.length > 0) turn.logprobs = lp.map((t) => t.logprob);
    return turn;
  }

  /**
   * Loads a LoRA adapter into a vLLM server (needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=True there).
   * Idempotent: an adapter already loaded under this name is reloaded when `replace` is set, else
   * left as it is.
   */
  async loadLoraAdapter(
    name: string,
    path: string,
    opts: { replace?: boolean; signal?: AbortSignal } = {},
  ): Promise<{ loaded: boolean; alreadyLoaded: boolean }> {
    const load = () =>
      this.adapterCall('load_lora_adapter', { lora_name: name, lora_path: path }, opts.signal);
    const first = await load();
    if (first.ok) return { loaded: true, alreadyLoaded: false };
    if (/already been loaded|already loaded/i.test(first.text)) {
      if (!opts.replace) return { loaded: false, alreadyLoaded: true };
      await this.unloadLoraAdapter(name, opts.signal ? { signal: opts.signal } : {});
      const again = await load();
      if (again.ok) return { loaded: true, alreadyLoaded: true };
      // Another caller loaded the name between our unload and load (concurrent syncs of one
      // version: names are per version, so it loaded the same folder): it is loaded.
      if (/already been loaded|already loaded/i.test(again.text))
        return { loaded: false, alreadyLoaded: true };
      throw this.adapterError('load', name, again);
    }
    throw this.adapterError('load', name, first);
  }

  /**
   * Full-weight sync: vLLM reloads its model's weights in place from `path` (a Hugging Face folder
   * the server can read) through `/collective_rpc` `reload_weights`, then drops what it computed
   * with the old weights: the encoder cache (image embeddings; vLLM 0.32's reload clears the
   * worker's copy but not the scheduler's, and the next image it has seen kills the engine) and
   * the prefix cache (KV). All three endpoints exist only with VLLM_SERVER_DEV_MODE=1. The server
   * keeps its served model name. Never through the LoRA endpoint.
   */
  async reloadWeights(path: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const rpc = `${this.root}/collective_rpc`;
    const reloaded = await this.rawPost(
      rpc,
      { method: 'reload_weights', kwargs: { weights_path: path } },
      opts.signal,
    );
    if (reloaded.status === 404) {
      throw new ConfigError(
        `policy server ${rpc} cannot reload full weights (HTTP 404): start vLLM with VLLM_SERVER_DEV_MODE=1, ` +
          `or train LoRA versions (trainer.loraRank > 0); a server that loads whole models by name through ` +
          `its LoRA endpoint (the nano policy server) takes policy.fullWeightSync=by-name`,
      );
    }
    if (!reloaded.ok) this.throwHttp('full-weight reload', reloaded);
    const encoder = await this.rawPost(`${this.root}/reset_encoder_cache`, {}, opts.signal);
    if (!encoder.ok) this.throwHttp('encoder-cache reset after a reload', encoder);
    const prefix = await this.rawPost(`${this.root}/reset_prefix_cache`, {}, opts.signal);
    if (!prefix.ok) this.throwHttp('prefix-cache reset after a reload', prefix);
    if (/"success"\s*:\s*false/.test(prefix.text)) {
      throw new TransientError(
        `policy server ${prefix.url} still holds KV blocks computed with the old weights (requests in flight); retrying`,
      );
    }
  }

  private throwHttp(
    what: string,
    res: { status: number; headers: Headers; text: string; url: string },
  ): never {
    throw httpError(what, res.url, res.status, res.headers, res.text, 'check SEGFLOW_POLICY_API_KEY');
  }

  /** Unloads a LoRA adapter; unloading one that is not loaded is not an error. */
  async unloadLoraAdapter(name: string, opts: { signal?: AbortSignal } = {}): Promise<{ unloaded: boolean }> {
    const res = await this.adapterCall('unload_lora_adapter', { lora_name: name }, opts.signal);
    if (res.ok) return { unloaded: true };
    if (/cannot be found|not found|does not exist/i.test(res.text)) return { unloaded: false };
    throw this.adapterError('unload', name, res);
  }

  private async adapterCall(path: string, json: unknown, signal?: AbortSignal) {
    return this.rawPost(`${this.v1}/${path}`, json, signal);
  }

  private async rawPost(url: string, json: unknown, signal?: AbortSignal) {
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...this.headers() },
        body: JSON.stringify(json),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      return { ok: res.ok, status: res.status, headers: res.headers, text: await res.text(), url };
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      throw new TransientError(
        `policy server ${url} could not be reached: ${(err as Error).message}`,
        { url },
        err,
      );
    }
  }

  private adapterError(
    what: string,
    name: string,
    res: { status: number; headers: Headers; text: string; url: string },
  ) {
    if (res.status === 404 && !/lora/i.test(res.text)) {
      return new ConfigError(
        `policy server ${res.url} has no ${what} endpoint (HTTP 404): start vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`,
      );
    }
    return httpError(
      `${what} of LoRA adapter "${name}"`,
      res.url,
      res.status,
      res.headers,
      res.text,
      'check SEGFLOW_POLICY_API_KEY',
    );
  }
}

function validateMessages(messages: ChatMessage[]): void {
  if (messages.length === 0) throw new BadInputError('policy request has no messages');
  messages.forEach((m, i) => {
    if (typeof m.content === 'string') return;
    m.content.forEach((part, j) => {
      if (part.type !== 'image_url') return;
      const url = part.image_url.url;
      if (!/^(https?:\/\/|data:image\/[a-z0-9.+-]+;base64,)/i.test(url)) {
        throw new BadInputError(
          `message ${i} part ${j}: image URL ${JSON.stringify(url.slice(0, 60))} is neither http(s) nor a base64 data:image/… URL`,
        );
      }
    });
  });
}
