/**
 * Policy activities, registered on the `policy` role (queues `segflow-policy` and
 * `segflow-policy@<host>`): one generation turn, and the weight sync that loads or unloads a LoRA
 * adapter on this host's policy server.
 *
 * Images travel as ArtifactRefs in workflow history and become data URLs (or presigned S3 URLs,
 * `policy.imageTransport`) only here, at the edge. Generation heartbeats so a cancelled workflow
 * reaches the in-flight HTTP request through the activity's cancellation signal.
 */
import { IdSchemas } from '../../core/contracts/ids.js';
import { z } from 'zod';
import { artifactRefSchema } from '../../core/artifacts.js';
import type { SegflowConfig } from '../../core/config/schema.js';
import { ConfigError } from '../errors.js';
import { PolicyImages } from '../media/policy-images.js';
import { cancellationSignal, heartbeatEvery, parseActivityInput } from '../edge.js';
import { recordPolicyTurn } from '../runtime/metrics.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { PolicyClient, type ChatMessage, type ContentPart, type PolicyTurn } from './client.js';

const contentPart = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('text'), text: z.string() }),
  /** An image stored in S3 (frames, keyframes, search images). */
  z.strictObject({ type: z.literal('image'), image: artifactRefSchema }),
  /** An image the server fetches itself, or an inline data URL. */
  z.strictObject({ type: z.literal('image_url'), url: z.string().min(1) }),
]);

export const policyGenerateInput = z.strictObject({
  messages: z
    .array(
      z.strictObject({
        role: z.enum(['system', 'user', 'assistant']),
        content: z.union([z.string(), z.array(contentPart).min(1)]),
      }),
    )
    .min(1),
  /** Model or LoRA adapter name. @default config.policy.model */
  model: z.string().min(1).optional(),
  /** Context tokens so far (prompt included), for the turn budget. */
  contextTokens: z.number().int().min(0).optional(),
  sampling: z
    .strictObject({
      temperature: z.number().min(0).optional(),
      topP: z.number().gt(0).max(1).optional(),
      topK: z.number().int().min(-1).optional(),
      seed: z.number().int().optional(),
      /** Ask the server for each sampled token's log-prob (on top of `policy.logprobs`). */
      logprobs: z.boolean().optional(),
    })
    .optional(),
});
export type PolicyGenerateInput = z.input<typeof policyGenerateInput>;

const adapterName = IdSchemas.servedModel;
export const loadAdapterInput = z.strictObject({
  name: adapterName,
  /** Path of the adapter as the policy server sees it (local folder or a hub id). */
  path: z.string().min(1),
  /** Reload when an adapter of this name is already loaded. @default false */
  replace: z.boolean().optional(),
});
export const unloadAdapterInput = z.strictObject({ name: adapterName });
export const reloadWeightsInput = z.strictObject({
  /** A full Hugging Face model folder as the policy server sees it. */
  path: z.string().min(1),
});

export function policyClientFromConfig(policy: SegflowConfig['policy']): PolicyClient {
  if (!policy.baseUrl) {
    throw new ConfigError(
      'no policy server configured: set policy.baseUrl (SEGFLOW_POLICY_URL), e.g. http://127.0.0.1:8000/v1',
    );
  }
  return new PolicyClient({
    baseUrl: policy.baseUrl,
    model: policy.model,
    apiKey: policy.apiKey,
    timeoutMs: policy.timeoutMs,
    stop: policy.stop,
    vllmExtensions: policy.vllmExtensions,
    logprobs: policy.logprobs,
    sampling: { temperature: policy.temperature, topP: policy.topP, topK: policy.topK },
    maxTokensPerTurn: policy.maxTokensPerTurn,
    maxResponseLength: policy.maxResponseLength,
    maxModelLen: policy.maxModelLen,
  });
}

export interface PolicyActivityDeps {
  config: SegflowConfig;
  store: ArtifactStore;
  /** @default built from config.policy on first use */
  client?: PolicyClient;
  /** @default 5000 */
  heartbeatMs?: number;
}

export function createPolicyActivities(deps: PolicyActivityDeps) {
  let client = deps.client;
  const getClient = () => (client ??= policyClientFromConfig(deps.config.policy));
  // one per worker process: every turn resends the history's images (policy-images.ts)
  const images = new PolicyImages(deps.store, { mode: deps.config.policy.imageTransport });

  async function toServerMessages(
    messages: z.infer<typeof policyGenerateInput>['messages'],
  ): Promise<ChatMessage[]> {
    return Promise.all(
      messages.map(async (m) => {
        if (typeof m.content === 'string') return { role: m.role, content: m.content };
        const parts: ContentPart[] = await Promise.all(
          m.content.map(async (p): Promise<ContentPart> => {
            if (p.type === 'text') return { type: 'text', text: p.text };
            if (p.type === 'image_url') return { type: 'image_url', image_url: { url: p.url } };
            return { type: 'image_url', image_url: { url: await images.url(p.image) } };
          }),
        );
        return { role: m.role, content: parts };
      }),
    );
  }

  return {
    /** One turn of the policy: generate until a stop string, EOS or the turn's token budget. */
    async policyGenerate(input: PolicyGenerateInput): Promise<PolicyTurn> {
      const signal = cancellationSignal();
      const stopBeating = heartbeatEvery(deps.heartbeatMs ?? 5000);
      try {
        const req = parseActivityInput(policyGenerateInput, input, 'policyGenerate');
        const messages = await toServerMessages(req.messages);
        const sampling = Object.fromEntries(
          Object.entries(req.sampling ?? {}).filter(([, v]) => v !== undefined),
        );
        const t0 = performance.now();
        const turn = await getClient().generate({
          messages,
          ...(req.model ? { model: req.model } : {}),
          ...(req.contextTokens !== undefined ? { contextTokens: req.contextTokens } : {}),
          sampling,
          ...(signal ? { signal } : {}),
        });
        recordPolicyTurn(performance.now() - t0, turn.completionTokens);
        return turn;
      } finally {
        stopBeating();
      }
    },

    /** Weight sync: loads a LoRA adapter into this host's policy server (vLLM). */
    async policyLoadAdapter(
      input: z.input<typeof loadAdapterInput>,
    ): Promise<{ loaded: boolean; alreadyLoaded: boolean }> {
      const req = parseActivityInput(loadAdapterInput, input, 'policyLoadAdapter');
      const signal = cancellationSignal();
      return await getClient().loadLoraAdapter(req.name, req.path, {
        ...(req.replace !== undefined ? { replace: req.replace } : {}),
        ...(signal ? { signal } : {}),
      });
    },

    /** Weight sync of a full-weight version: the server reloads its weights from `path`. */
    async policyReloadWeights(input: z.input<typeof reloadWeightsInput>): Promise<{ reloaded: true }> {
      const req = parseActivityInput(reloadWeightsInput, input, 'policyReloadWeights');
      const signal = cancellationSignal();
      await getClient().reloadWeights(req.path, signal ? { signal } : {});
      return { reloaded: true };
    },

    /** Unloads a LoRA adapter from this host's policy server. */
    async policyUnloadAdapter(input: z.input<typeof unloadAdapterInput>): Promise<{ unloaded: boolean }> {
      const req = parseActivityInput(unloadAdapterInput, input, 'policyUnloadAdapter');
      const signal = cancellationSignal();
      return await getClient().unloadLoraAdapter(req.name, signal ? { signal } : {});
    },
  };
}
