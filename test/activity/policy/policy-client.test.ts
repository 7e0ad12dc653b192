// The policy client and activities against a local server speaking the OpenAI chat-completions
// protocol as vLLM, SGLang and a plain (llama.cpp-like) server do.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CancelledFailure } from '@temporalio/common';
import sharp from 'sharp';
import { createPolicyActivities, type PolicyGenerateInput } from '../../../activities/policy/activities.js';
import { turnMaxTokens } from '../../../activities/policy/budget.js';
import {
  inferDroppedStop,
  PolicyClient,
  type PolicyClientOptions,
  type PolicyTurn,
} from '../../../activities/policy/client.js';
import { BadInputError, ConfigError, TransientError } from '../../../activities/errors.js';
import { loadConfig } from '../../../activities/runtime/config-loader.js';
import type { Reply } from '../../servers/http-server.js';
import { activityEnvironment } from '../../support/activity-env.js';
import { testStore } from '../../support/stack.js';
import {
  fakeTokens,
  startFakePolicyServer,
  type FakePolicyServer,
  type Flavor,
  type WireMessage,
} from '../../servers/openai-server.js';

const SEARCH_TURN =
  '<thinking>The query names a car I cannot see in the frames; I should look it up.</thinking>\n' +
  '<search> {"name": "text_search", "query": "Bugatti Bolide"} </search>\n<information>hallucinated</information>';
const KEYFRAME_TURN = '<thinking>Frame 4 shows it best.</thinking>\n<keyframe> 4 </keyframe> and more text';
const ANSWER_TURN =
  '<thinking>It is the blue car.</thinking>\n<answer> {"bbox_2d": [1,2,3,4], "point_2d": [2,3]} </answer>';

/** The scripted model: answers according to the last user message. */
function script(messages: WireMessage[]): string {
  const last = messages[messages.length - 1]!;
  const text =
    typeof last.content === 'string' ? last.content : last.content.map((p) => p.text ?? '').join(' ');
  if (/high-res/.test(text)) return ANSWER_TURN;
  if (/<information>/.test(text)) return KEYFRAME_TURN;
  return SEARCH_TURN;
}

function options(url: string, extra: Partial<PolicyClientOptions> = {}): PolicyClientOptions {
  return {
    baseUrl: `${url}/v1`,
    model: 'policy',
    timeoutMs: 5000,
    stop: ['</search>', '</keyframe>'],
    vllmExtensions: true,
    logprobs: false,
    sampling: { temperature: 1, topP: 1, topK: -1 },
    maxTokensPerTurn: 4096,
    maxResponseLength: 8192,
    ...extra,
  };
}

const question: PolicyGenerateInput['messages'] = [
  { role: 'system', content: 'You are a video target-identification assistant.' },
  { role: 'user', content: "frame 0 <image>\n\nPlease find 'the Bugatti Bolide' in the provided video." },
];

void describe('turn budget (spec §3.3)', () => {
  void it('caps the whole context, prompt included, at max_response_length', () => {
    const s = { maxTokensPerTurn: 4096, maxResponseLength: 8192 };
    assert.equal(turnMaxTokens(s, 1000), 4096);
    assert.equal(turnMaxTokens(s, 6000), 2192);
    assert.equal(turnMaxTokens(s, 8192), 0);
    assert.equal(turnMaxTokens(s, 9000), 0);
    assert.equal(turnMaxTokens({ ...s, maxModelLen: 7000 }, 6000), 1000);
    assert.equal(turnMaxTokens(s, undefined), 4096);
  });
});

for (const flavor of ['vllm', 'sglang', 'plain'] as Flavor[]) {
  void describe(`policy client against a ${flavor} server`, () => {
    let server: FakePolicyServer;
    before(async () => {
      server = await startFakePolicyServer({ flavor, script });
    });
    after(() => server.close());

    const vllmExtensions = flavor === 'vllm';

    void it('stops at </search> and keeps the stop string in the output', async () => {
      const client = new PolicyClient(options(server.url, { vllmExtensions }));
      const turn = await client.generate({
        messages: [{ role: 'user', content: 'find the car' }],
        contextTokens: 100,
      });
      assert.equal(turn.text, SEARCH_TURN.slice(0, SEARCH_TURN.indexOf('</search>') + '</search>'.length));
      assert.equal(turn.finishReason, 'stop');
      assert.equal(turn.matchedStop, '</search>');
      assert.equal(turn.stopReappended, flavor !== 'vllm');
      const sent = JSON.parse(server.requests.at(-1)!.body) as Record<string, unknown>;
      assert.deepEqual(sent.stop, ['</search>', '</keyframe>']);
      assert.equal(sent.include_stop_str_in_output, vllmExtensions ? true : undefined);
      assert.equal(sent.max_tokens, 4096);
    });

    void it('stops at </keyframe> the same way', async () => {
      const client = new PolicyClient(options(server.url, { vllmExtensions }));
      const turn = await client.generate({
        messages: [{ role: 'user', content: '<information>x</information>' }],
        contextTokens: 10,
      });
      assert.equal(turn.text, '<thinking>Frame 4 shows it best.</thinking>\n<keyframe> 4 </keyframe>');
      assert.equal(turn.matchedStop, '</keyframe>');
    });

    void it('an answer that ends at EOS gets no stop string appended', async () => {
      const client = new PolicyClient(options(server.url, { vllmExtensions }));
      const turn = await client.generate({
        messages: [{ role: 'user', content: 'Here is the high-res version' }],
        contextTokens: 10,
      });
      assert.equal(turn.text, ANSWER_TURN);
      assert.equal(turn.finishReason, 'stop');
      assert.equal(turn.matchedStop, undefined);
      assert.equal(turn.stopReappended, false);
    });

    void it('reports token counts; max_tokens cuts a turn with finish reason "length"', async () => {
      const client = new PolicyClient(options(server.url, { vllmExtensions, maxTokensPerTurn: 5 }));
      const turn = await client.generate({
        messages: [{ role: 'user', content: 'find the car' }],
        contextTokens: 10,
      });
      assert.equal(turn.finishReason, 'length');
      assert.equal(turn.completionTokens, 5);
      assert.equal(turn.text, fakeTokens(SEARCH_TURN).slice(0, 5).join(''));
      assert.ok(turn.promptTokens > 0);
    });
  });
}

void describe('policy client: vLLM specifics', () => {
  let server: FakePolicyServer;
  const faults: Reply[] = [];
  before(async () => {
    server = await startFakePolicyServer({
      flavor: 'vllm',
      script,
      maxModelLen: 300,
      faults,
      apiKey: 'sk-test',
    });
  });
  after(() => server.close());

  void it('returns token ids and log-probabilities when asked', async () => {
    const client = new PolicyClient(
      options(server.url, { logprobs: true, apiKey: 'sk-test', maxModelLen: 300 }),
    );
    const turn = await client.generate({
      messages: [{ role: 'user', content: 'find the car' }],
      contextTokens: 10,
    });
    assert.equal(turn.tokenIds?.length, turn.completionTokens);
    assert.equal(turn.logprobs?.length, turn.completionTokens);
    assert.ok(turn.logprobs!.every((l) => l < 0));
  });

  void it('without a context size, asks /tokenize and budgets the turn against max_model_len', async () => {
    const client = new PolicyClient(options(server.url, { apiKey: 'sk-test', maxModelLen: 300 }));
    const turn = await client.generate({ messages: [{ role: 'user', content: 'find the car' }] });
    assert.equal(server.requests.at(-2)!.path, '/tokenize');
    assert.equal(turn.contextTokens, turn.promptTokens);
    assert.equal(turn.maxTokens, 300 - turn.contextTokens!);
  });

  void it('does not call the server when the context budget is spent', async () => {
    const client = new PolicyClient(options(server.url, { apiKey: 'sk-test' }));
    const before = server.requests.length;
    const turn = await client.generate({ messages: [{ role: 'user', content: 'x' }], contextTokens: 8192 });
    assert.equal(turn.finishReason, 'max_model_len_exceeded');
    assert.equal(server.requests.length, before);
  });

  void it('learns max_model_len from the server when the config does not set it (vLLM /tokenize reports it)', async () => {
    // the first turn asks /tokenize anyway; a later turn on a fresh client (another worker) asks it
    // once, then budgets from what it learnt: no max_tokens the server would refuse
    const first = new PolicyClient(options(server.url, { apiKey: 'sk-test' }));
    const t1 = await first.generate({ messages: [{ role: 'user', content: 'find the car' }] });
    assert.equal(first.maxModelLenOf('policy'), 300);
    assert.equal(t1.maxTokens, 300 - t1.contextTokens!);
    const later = new PolicyClient(options(server.url, { apiKey: 'sk-test' }));
    const n0 = server.requests.length;
    const t2 = await later.generate({
      messages: [{ role: 'user', content: 'find the car' }],
      contextTokens: 100,
    });
    assert.deepEqual(
      server.requests.slice(n0).map((r) => r.path),
      ['/tokenize', '/v1/chat/completions'],
    );
    assert.equal(t2.maxTokens, 200);
    const n1 = server.requests.length;
    await later.generate({ messages: [{ role: 'user', content: 'find' }], contextTokens: 120 });
    assert.deepEqual(
      server.requests.slice(n1).map((r) => r.path),
      ['/v1/chat/completions'],
    );
    // a configured policy.maxModelLen wins over the server's
    assert.equal(new PolicyClient(options(server.url, { maxModelLen: 256 })).maxModelLenOf('policy'), 256);
  });

  void it('a context overflow from the server is a non-retryable BadInputError', async () => {
    // (without vLLM's extensions the client cannot learn the context length, so the server refuses)
    const client = new PolicyClient(options(server.url, { apiKey: 'sk-test', vllmExtensions: false }));
    await assert.rejects(
      client.generate({ messages: [{ role: 'user', content: 'find the car' }], contextTokens: 100 }),
      (err: unknown) => {
        assert.ok(err instanceof BadInputError);
        assert.match(err.message, /maximum context length is 300/);
        return true;
      },
    );
  });

  void it('classifies errors: 429 with Retry-After, 5xx and refused connections retry; 401 and unknown models do not', async () => {
    const client = new PolicyClient(options(server.url, { apiKey: 'sk-test' }));
    const msg = { messages: [{ role: 'user' as const, content: 'x' }], contextTokens: 10 };
    faults.push({ status: 429, headers: { 'retry-after': '4' }, body: '{"error":"busy"}' });
    await assert.rejects(
      client.generate(msg),
      (e: unknown) => e instanceof TransientError && e.retryAfterMs === 4000,
    );
    faults.push({ status: 503, body: 'overloaded' });
    await assert.rejects(client.generate(msg), TransientError);
    await assert.rejects(new PolicyClient(options('http://127.0.0.1:1')).generate(msg), TransientError);
    await assert.rejects(
      new PolicyClient(options(server.url, { apiKey: 'wrong' })).generate(msg),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /HTTP 401.*SEGFLOW_POLICY_API_KEY/);
        return true;
      },
    );
    await assert.rejects(client.generate({ ...msg, model: 'no-such-model' }), (e: unknown) => {
      assert.ok(e instanceof BadInputError);
      assert.match(e.message, /no-such-model/);
      return true;
    });
  });

  void it('loads, reloads and unloads LoRA adapters idempotently, then serves the adapter by name', async () => {
    const client = new PolicyClient(options(server.url, { apiKey: 'sk-test', maxModelLen: 300 }));
    assert.deepEqual(await client.loadLoraAdapter('policy-v1', '/ckpt/v1'), {
      loaded: true,
      alreadyLoaded: false,
    });
    assert.deepEqual(await client.loadLoraAdapter('policy-v1', '/ckpt/v1'), {
      loaded: false,
      alreadyLoaded: true,
    });
    assert.deepEqual(await client.loadLoraAdapter('policy-v1', '/ckpt/v1b', { replace: true }), {
      loaded: true,
      alreadyLoaded: true,
    });
    assert.equal(server.adapters.get('policy-v1'), '/ckpt/v1b');
    const turn = await client.generate({
      model: 'policy-v1',
      messages: [{ role: 'user', content: 'find' }],
      contextTokens: 10,
    });
    assert.equal(turn.model, 'policy-v1');
    assert.deepEqual(await client.unloadLoraAdapter('policy-v1'), { unloaded: true });
    assert.deepEqual(await client.unloadLoraAdapter('policy-v1'), { unloaded: false });
  });

  void it('infers a dropped stop string from an unclosed tag', () => {
    assert.equal(
      inferDroppedStop('<thinking>x</thinking><search> {"q": 1} ', ['</search>', '</keyframe>']),
      '</search>',
    );
    assert.equal(
      inferDroppedStop('<search>a</search><keyframe> 3 ', ['</search>', '</keyframe>']),
      '</keyframe>',
    );
    assert.equal(inferDroppedStop('<answer>{}</answer>', ['</search>', '</keyframe>']), undefined);
  });
});

void describe('policy activities', () => {
  // The dev stack's S3 (its port may be moved by SEGFLOW_DEV_S3_PORT); the policy settings come from no env.
  const store = testStore();
  let server: FakePolicyServer;
  let slow: FakePolicyServer;
  before(async () => {
    await store.ensureBucket();
    server = await startFakePolicyServer({ flavor: 'vllm', script });
    slow = await startFakePolicyServer({
      flavor: 'vllm',
      script,
      faults: [{ status: 200, body: '{}', delayMs: 3000 }],
    });
  });
  after(async () => {
    await server.close();
    await slow.close();
  });

  function acts(url: string) {
    return createPolicyActivities({
      config: loadConfig({ env: {}, file: '/dev/null', overrides: { 'policy.baseUrl': `${url}/v1` } }).config,
      store,
      heartbeatMs: 50,
    });
  }

  void it('sends S3 images as data URLs in multimodal messages', async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#0a0' } })
      .png()
      .toBuffer();
    const image = await store.putContentAddressed('test-policy-images', png, 'image/png', 'png');
    const env = activityEnvironment();
    const input: PolicyGenerateInput = {
      messages: [
        question[0]!,
        {
          role: 'user',
          content: [
            { type: 'text', text: 'frame 0 ' },
            { type: 'image', image },
            { type: 'text', text: "\n\nPlease find 'the Bugatti Bolide' in the provided video." },
          ],
        },
      ],
      contextTokens: 500,
    };
    const turn = (await env.run(acts(server.url).policyGenerate, input)) as PolicyTurn;
    assert.match(turn.text, /<\/search>$/);
    const sent = JSON.parse(server.requests.at(-1)!.body) as { messages: WireMessage[] };
    const parts = sent.messages[1]!.content as { type: string; image_url?: { url: string } }[];
    assert.equal(parts[1]!.type, 'image_url');
    assert.equal(parts[1]!.image_url!.url, `data:image/png;base64,${png.toString('base64')}`);
  });

  void it('rejects a bad image URL and a bad message by name, without retry', async () => {
    const env = activityEnvironment();
    await assert.rejects(
      env.run(acts(server.url).policyGenerate, {
        messages: [{ role: 'user', content: [{ type: 'image_url', url: 'file:///etc/passwd' }] }],
      } as PolicyGenerateInput),
      (e: unknown) => {
        const f = e as { type: string; nonRetryable: boolean; message: string };
        assert.equal(f.type, 'BadInputError');
        assert.equal(f.nonRetryable, true);
        assert.match(f.message, /message 0 part 0: image URL "file:\/\/\/etc\/passwd"/);
        return true;
      },
    );
    await assert.rejects(
      env.run(acts(server.url).policyGenerate, { messages: [{ role: 'robot', content: 'x' }] } as never),
      /messages\.0\.role/,
    );
  });

  void it('cancellation aborts the in-flight request', async () => {
    const env = activityEnvironment();
    const p = env.run(acts(slow.url).policyGenerate, { messages: question, contextTokens: 10 });
    setTimeout(() => env.cancel(), 100);
    const started = Date.now();
    await assert.rejects(p, (e: unknown) => e instanceof CancelledFailure);
    assert.ok(Date.now() - started < 2000);
  });

  void it('weight sync activities load and unload an adapter', async () => {
    const env = activityEnvironment();
    const a = acts(server.url);
    assert.deepEqual(await env.run(a.policyLoadAdapter, { name: 'step-3', path: '/ckpt/step-3' }), {
      loaded: true,
      alreadyLoaded: false,
    });
    assert.deepEqual(await env.run(a.policyUnloadAdapter, { name: 'step-3' }), { unloaded: true });
    await assert.rejects(
      env.run(a.policyLoadAdapter, { name: 'bad name!', path: '/x' }),
      /name: letters, digits/,
    );
  });

  void it('a missing policy URL is a ConfigError naming the setting', async () => {
    const a = createPolicyActivities({ config: loadConfig({ env: {}, file: '/dev/null' }).config, store });
    await assert.rejects(
      activityEnvironment().run(a.policyGenerate, { messages: question }),
      /SEGFLOW_POLICY_URL/,
    );
  });
});
