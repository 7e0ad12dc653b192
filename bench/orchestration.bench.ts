// The price of durability: a rollout of 7 model calls and 6 searches against zero-latency local
// backends (a local OpenAI-compatible server, the embedded corpus), run as the `rollout` workflow
// on the dev stack (real Temporal server, in-process workers) and as the very same agent loop
// (core/rollout/agent-loop.ts) calling the same activity functions directly, in one process.
// Needs the dev stack (`segr dev up`). Run: node dist/bench/orchestration.bench.js [rollouts]
import { randomUUID } from 'node:crypto';
import sharp from 'sharp';
import { TaskQueues } from '../core/queues.js';
import { DEFAULT_ROLLOUT_SETTINGS } from '../core/rollout/turn-rules.js';
import { runAgentLoop, toPolicyMessages, type RolloutSample } from '../core/rollout/agent-loop.js';
import { loadConfig } from '../activities/runtime/config-loader.js';
import { createLogger } from '../activities/runtime/logger.js';
import { ArtifactStore } from '../activities/storage/artifact-store.js';
import { createPolicyActivities } from '../activities/policy/activities.js';
import { createSearchActivities } from '../activities/search/activities.js';
import { startWorkers } from '../workers/run.js';
import { connectClient } from '../workers/temporal-connection.js';
import { startFakePolicyServer, type WireMessage } from '../test/servers/openai-server.js';
import { sharedData } from '../test/support/paths.js';

const SEARCHES = 6;
const perLevel = Number(process.argv[2] ?? 8);

/** 6 searches, then the answer: 7 generations, 6 tool calls. */
function script(messages: WireMessage[]): string {
  const turn = messages.filter((m) => m.role === 'assistant').length;
  if (turn < SEARCHES) {
    return `<thinking>step ${turn}</thinking>\n<search> {"name": "text_search", "query": "Qatar Grand Prix winner ${turn}"} </search>`;
  }
  return '<thinking>done</thinking>\n<answer> {"bbox_2d": [100, 100, 400, 400], "point_2d": [250, 250]} </answer>';
}

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const p = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return `p50 ${p(0.5).toFixed(1)} ms, p90 ${p(0.9).toFixed(1)} ms`;
}

async function main(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const server = await startFakePolicyServer({ flavor: 'vllm', script });
  const { config } = loadConfig({
    overrides: {
      'policy.baseUrl': `${server.url}/v1`,
      'search.cache.enabled': 'false',
      'search.local.textCorpus': sharedData('local_kb', 'text_corpus.jsonl'),
      'log.level': 'warn',
      'worker.concurrency.policy': 16,
      'worker.concurrency.search': 16,
    },
  });
  const logger = createLogger('warn');
  const store = ArtifactStore.fromConfig(config.s3);
  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#336699' } })
    .png()
    .toBuffer();
  const frame = await store.putContentAddressed('bench', png, 'image/png', 'png');
  const sample: RolloutSample = {
    id: 'bench',
    question: "Please find 'the car that won the 2025 Qatar Grand Prix' in the provided video.",
    ability: 'one-hop',
    frames: [{ fid: 0, policy: frame, original: frame }],
  };

  // Baseline: the same loop, the same activity functions, no Temporal.
  const policy = createPolicyActivities({ config, store });
  const search = createSearchActivities({ config, store, logger });
  const direct = async (i: number) => {
    const loop = await runAgentLoop(sample, DEFAULT_ROLLOUT_SETTINGS, {
      async generate({ messages, contextTokens }) {
        const t = Date.now();
        const out = await policy.policyGenerate({
          messages: toPolicyMessages(messages),
          ...(contextTokens !== undefined ? { contextTokens } : {}),
        });
        return { ...out, hostId: 'local', latencyMs: Date.now() - t };
      },
      async search({ tool, query }) {
        const r = await search.searchTool({ tool, query });
        return { observation: r.observation, images: [], backend: r.backend, cached: r.cached };
      },
      keyframe: async (f) => f,
    });
    if (loop.turns.length !== SEARCHES + 1)
      throw new Error(`direct rollout made ${loop.turns.length} generations`);
    await store.putJson(`bench/direct/${i}/trajectory.json`, loop);
  };

  // Durable: the rollout workflow on the dev stack.
  const workers = await startWorkers(config, logger, {
    roles: ['orchestrator', 'policy', 'search', 'media'],
  });
  const client = await connectClient(config);
  const durable = async (i: number) => {
    const id = `bench-${randomUUID()}`;
    const r = (await client.workflow.execute('rollout', {
      taskQueue: TaskQueues.orchestrator,
      workflowId: id,
      args: [{ trajectoryId: id, sample, artifactPrefix: `bench/durable/${i}` }],
    })) as { turns: number; numSearch: number };
    if (r.turns !== SEARCHES + 1 || r.numSearch !== SEARCHES)
      throw new Error(`durable rollout: ${JSON.stringify(r)}`);
  };

  async function measure(name: string, run: (i: number) => Promise<void>, concurrency: number) {
    await run(-1); // warm-up (corpus index, sessions, workflow cache)
    const lat: number[] = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < perLevel * concurrency) {
          const i = next++;
          const t = performance.now();
          await run(i);
          lat.push(performance.now() - t);
        }
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    const rate = lat.length / wall;
    console.log(
      `${name.padEnd(22)} concurrency ${concurrency}: ${lat.length} rollouts, ${rate.toFixed(2)} rollouts/s, ${stats(lat)}`,
    );
    return { rate, p50: [...lat].sort((a, b) => a - b)[Math.floor(lat.length / 2)]! };
  }

  try {
    for (const c of [1, 8]) {
      const base = await measure('in-process loop', direct, c);
      const dur = await measure('rollout workflow', durable, c);
      console.log(
        `  price of durability at ${c}: ${(dur.p50 / base.p50).toFixed(2)}× time per rollout, ` +
          `${(base.rate / dur.rate).toFixed(2)}× fewer rollouts/s (${(dur.p50 - base.p50).toFixed(0)} ms more per rollout of 13 steps)`,
      );
    }
  } finally {
    await client.connection.close();
    await workers.shutdown();
    await server.close();
    store.client.destroy();
  }
}

await main();
