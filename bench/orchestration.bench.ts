// The price of durability, beside Temporal's own floor, and the orchestrator's capacity.
//
// A rollout of 7 model calls and 6 searches (13 durable steps) against zero-latency local backends
// (a local OpenAI-compatible server, the embedded corpus), run as the `rollout` workflow on the dev
// stack (real Temporal server, in-process workers) and as the very same agent loop
// (core/rollout/agent-loop.ts) calling the same activity functions directly, in one process. In the
// same run, the floor: a workflow that only awaits a chain of 13 no-op activities
// (bench/workflows/floor.ts) on another task queue than its own (what the rollout does: orchestrator
// queue → policy/search queues), on its own queue (eager dispatch), and as local activities. The
// latency runs are interleaved (one of each variant per round) so a shared machine's load drifts
// over all of them alike.
//
// msPerStep1 = (rollout workflow p50 − in-process loop p50) / 13, one at a time;
// floorMsPerStep = no-op chain across queues p50 / 13; ratioToFloor = msPerStep1 / floorMsPerStep.
//
// Capacity: steps per second with 64 runs always in flight (a closed loop), counted over windows
// that open once the first run has finished and as long again has passed (steps: the policy
// server's requests, 7 of every 13, scaled to 13; the floor's no-op activities). The rollout's load runs without a break through
// windows with one orchestrator worker (this process), then with a second orchestrator worker
// process (`segr worker --roles orchestrator`, a real separate process), then one again: A B B A,
// each change followed by a settling time as long as the warm-up (workflows stay on the worker that
// started them), so the machine's drifting load weighs on both alike. The in-process loop and the
// no-op chain are measured before and after it.
//
// Needs the dev stack (`segr dev up`). Run: node dist/bench/orchestration.bench.js
//   SEGFLOW_BENCH_RUNS     latency rounds (one of each variant per round) @default 8
//   SEGFLOW_BENCH_WINDOW_S one capacity window in seconds @default 10
// Prints a last line `BENCH {json}`.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { availableParallelism, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
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
import { connectClient, connectNative } from '../workers/temporal-connection.js';
import { startFakePolicyServer, type WireMessage } from '../test/servers/openai-server.js';
import { sharedData } from '../test/support/paths.js';
import type { NoopChainInput, FloorMode } from './workflows/floor.js';

const SEARCHES = 6;
/** Durable steps of one rollout: 7 policy calls and 6 searches (its trajectory save is not counted). */
const STEPS = 2 * SEARCHES + 1;
const CONCURRENCY = 64;
const ROUNDS = positive('SEGFLOW_BENCH_RUNS', 8);
const WINDOW_S = positive('SEGFLOW_BENCH_WINDOW_S', 10);
const FLOOR_QUEUE = 'segflow-bench-floor';
const FLOOR_ACTIVITY_QUEUE = 'segflow-bench-floor-activities';
const segrBin = fileURLToPath(new URL('../../bin/segr.js', import.meta.url));
const floorWorkflows = fileURLToPath(new URL('./workflows/floor.js', import.meta.url));

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${raw} must be a positive number`);
  return n;
}

/** Requests the policy server answered: 7 of each rollout's 13 steps, for the capacity counts. */
let policyCalls = 0;
/** No-op activities run: the floor's steps. */
let noopCalls = 0;

/** 6 searches, then the answer: 7 generations, 6 tool calls. */
function script(messages: WireMessage[]): string {
  policyCalls++;
  const turn = messages.filter((m) => m.role === 'assistant').length;
  if (turn < SEARCHES) {
    return `<thinking>step ${turn}</thinking>\n<search> {"name": "text_search", "query": "Qatar Grand Prix winner ${turn}"} </search>`;
  }
  return '<thinking>done</thinking>\n<answer> {"bbox_2d": [100, 100, 400, 400], "point_2d": [250, 250]} </answer>';
}

function quantile(ms: number[], q: number): number {
  const s = [...ms].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));

type Run = (i: number) => Promise<void>;

/** One-at-a-time latency of each variant, interleaved round by round after one warm-up each. */
async function latencies(variants: Record<string, Run>): Promise<Record<string, number>> {
  const names = Object.keys(variants);
  for (const name of names) await variants[name]!(-1); // warm-up: corpus index, sessions, caches
  const ms: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of names) {
      const t = performance.now();
      await variants[name]!(r);
      ms[name]!.push(performance.now() - t);
    }
  }
  const p50: Record<string, number> = {};
  for (const name of names) {
    p50[name] = quantile(ms[name]!, 0.5);
    console.log(
      `${name.padEnd(32)} ${ROUNDS} runs one at a time: p50 ${p50[name]!.toFixed(1)} ms, p90 ${quantile(ms[name]!, 0.9).toFixed(1)} ms`,
    );
  }
  return p50;
}

interface Sample {
  steps: number;
  runs: number;
  seconds: number;
  /** CPU seconds this process used (both workers' pollers, the backends and the client live here). */
  cpuSeconds: number;
}

interface Load {
  /** Seconds until the first run finished. */
  warmS: number;
  /** Counts what finishes in the next `seconds`. */
  window(seconds: number): Promise<Sample>;
  /** Stops the loops and cancels (`cancel`: terminated workflows) or drains the runs in flight. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `CONCURRENCY` runs always in flight (each finished run is replaced at once), returned once the
 * first run has finished (every stage of a run, start, steps, save and completion, is then in the
 * mix) and as long again has passed (the first wave, started at once, has spread out). A failed run
 * fails whichever call is waiting.
 */
async function startLoad(run: Run, stepsDone: () => number, cancel?: () => Promise<void>): Promise<Load> {
  let next = 0;
  let done = 0;
  let stopped = false;
  let warm!: () => void;
  const warmed = new Promise<void>((resolve) => (warm = resolve));
  const t0 = performance.now();
  const loops = Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (!stopped) {
        try {
          await run(next++);
        } catch (err) {
          if (stopped) return; // cancelled on purpose
          throw err;
        }
        done++;
        warm();
      }
    }),
  );
  await Promise.race([warmed, loops]);
  const warmS = (performance.now() - t0) / 1000;
  // the first runs all started together and finish together: let that wave spread out first
  await Promise.race([loops, sleep(warmS * 1000)]);
  return {
    warmS,
    async window(seconds) {
      const [steps0, runs0, cpu0, from] = [stepsDone(), done, process.cpuUsage(), performance.now()];
      await Promise.race([loops, sleep(seconds * 1000)]);
      const cpu = process.cpuUsage(cpu0);
      return {
        steps: stepsDone() - steps0,
        runs: done - runs0,
        seconds: (performance.now() - from) / 1000,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
      };
    },
    async stop() {
      stopped = true;
      await cancel?.();
      await loops;
    },
  };
}

/** Steps per second over windows, with a line saying what was counted. */
function rate(name: string, samples: Sample[], warmS: number): { rate: number; cores: number } {
  const sum = (f: (s: Sample) => number) => samples.reduce((a, s) => a + f(s), 0);
  const [steps, runs, seconds, cpu] = [
    sum((s) => s.steps),
    sum((s) => s.runs),
    sum((s) => s.seconds),
    sum((s) => s.cpuSeconds),
  ];
  const r = { rate: steps / seconds, cores: cpu / seconds };
  console.log(
    `${name.padEnd(32)} ${CONCURRENCY} in flight: ${r.rate.toFixed(1)} steps/s (${steps.toFixed(0)} steps, ` +
      `${runs} runs finished in ${samples.length} windows of ${seconds.toFixed(1)} s in all; first run done after ${warmS.toFixed(1)} s; ` +
      `this process busy ${r.cores.toFixed(2)} cores)`,
  );
  return r;
}

/** A closed loop measured over one window after its warm-up, then stopped. */
async function sustained(
  name: string,
  run: Run,
  stepsDone: () => number,
  cancel?: () => Promise<void>,
): Promise<Sample & { warmS: number }> {
  const load = await startLoad(run, stepsDone, cancel);
  const sample = await load.window(WINDOW_S);
  await load.stop();
  rate(name, [sample], load.warmS);
  return { ...sample, warmS: load.warmS };
}

/** A second orchestrator worker: a real `segr worker` process on the same dev stack and queues. */
async function startSecondWorker(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [segrBin, 'worker', '--roles', 'orchestrator'], {
    env: { ...process.env, SEGFLOW_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  const lines = createInterface({ input: child.stderr! });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('the second worker did not start polling in 60 s')),
      60_000,
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the second worker (segr worker) exited with ${code} before polling`));
    });
    lines.on('line', (line) => {
      if (line.startsWith('segr worker: polling')) {
        clearTimeout(timer);
        resolve();
      } else {
        console.error(`[second worker] ${line}`);
      }
    });
  });
  await ready;
  return child;
}

async function stopSecondWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

async function main(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const loadAtStart = loadavg()[0]!;
  console.log(
    `${availableParallelism()} cores, load average ${loadAtStart.toFixed(2)} at start; ${ROUNDS} latency rounds, ${WINDOW_S} s capacity windows`,
  );
  const server = await startFakePolicyServer({ flavor: 'vllm', script });
  const { config } = loadConfig({
    overrides: {
      'policy.baseUrl': `${server.url}/v1`,
      'search.cache.enabled': 'false',
      'search.local.textCorpus': sharedData('local_kb', 'text_corpus.jsonl'),
      'log.level': 'warn',
      // enough slots for 64 rollouts in flight: the orchestrator, not a slot count, is measured
      'worker.concurrency.policy': CONCURRENCY,
      'worker.concurrency.search': CONCURRENCY,
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
  const direct: Run = async (i) => {
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
  /** Workflows started and not yet finished: what a capacity measurement terminates when it stops. */
  const inFlight = new Set<string>();
  const tracked = async <T>(id: string, run: () => Promise<T>): Promise<T> => {
    inFlight.add(id);
    try {
      return await run();
    } finally {
      inFlight.delete(id);
    }
  };
  const terminateInFlight = async () => {
    await Promise.all(
      [...inFlight].map(
        (id) =>
          client.workflow
            .getHandle(id)
            .terminate('benchmark window over')
            .catch(() => undefined), // it finished meanwhile
      ),
    );
  };
  const durable: Run = async (i) => {
    const id = `bench-${randomUUID()}`;
    const r = (await tracked(id, () =>
      client.workflow.execute('rollout', {
        taskQueue: TaskQueues.orchestrator,
        workflowId: id,
        args: [{ trajectoryId: id, sample, artifactPrefix: `bench/durable/${i}` }],
      }),
    )) as { turns: number; numSearch: number };
    if (r.turns !== SEARCHES + 1 || r.numSearch !== SEARCHES)
      throw new Error(`durable rollout: ${JSON.stringify(r)}`);
  };

  // The floor: no-op chains on a worker of their own queues, in this same process.
  const floorConnection = await connectNative(config);
  const noopActivities = {
    noop: async (n: number) => {
      noopCalls++;
      return n + 1;
    },
  };
  const floorWorkers = [
    await Worker.create({
      connection: floorConnection,
      namespace: config.temporal.namespace,
      taskQueue: FLOOR_QUEUE,
      workflowsPath: floorWorkflows,
      activities: noopActivities,
    }),
    await Worker.create({
      connection: floorConnection,
      namespace: config.temporal.namespace,
      taskQueue: FLOOR_ACTIVITY_QUEUE,
      activities: noopActivities,
    }),
  ];
  const floorRunning = Promise.all(floorWorkers.map((w) => w.run()));
  const chain =
    (mode: FloorMode, steps = STEPS): Run =>
    async () => {
      const input: NoopChainInput = { steps, mode, activityQueue: FLOOR_ACTIVITY_QUEUE };
      const id = `bench-floor-${randomUUID()}`;
      const n = await tracked(id, () =>
        client.workflow.execute('noopChain', { taskQueue: FLOOR_QUEUE, workflowId: id, args: [input] }),
      );
      if (n !== steps) throw new Error(`the no-op chain ran ${String(n)} of ${steps} steps`);
    };

  let second: ChildProcess | undefined;
  let result: Record<string, unknown>;
  try {
    console.log(`\n-- one at a time (${STEPS} steps a run) --`);
    const p50 = await latencies({
      'in-process loop': direct,
      'rollout workflow': durable,
      'floor: no-op chain across queues': chain('remote'),
      'floor: no-op chain, own queue': chain('eager'),
      'floor: local activities': chain('local'),
      'floor: empty workflow': chain('remote', 0),
    });
    const msPerStep1 = (p50['rollout workflow']! - p50['in-process loop']!) / STEPS;
    const floorMsPerStep = p50['floor: no-op chain across queues']! / STEPS;
    const eagerFloorMsPerStep = p50['floor: no-op chain, own queue']! / STEPS;
    const localFloorMsPerStep = p50['floor: local activities']! / STEPS;
    const ratioToFloor = msPerStep1 / floorMsPerStep;
    console.log(
      `  segflow: ${msPerStep1.toFixed(1)} ms per step over the in-process loop; Temporal's floor ` +
        `${floorMsPerStep.toFixed(1)} ms across queues (${eagerFloorMsPerStep.toFixed(1)} on the own queue, ` +
        `${localFloorMsPerStep.toFixed(1)} local): ${ratioToFloor.toFixed(2)}× the floor`,
    );

    console.log(`\n-- capacity, ${CONCURRENCY} in flight --`);
    const rolloutSteps = () => (policyCalls * STEPS) / (SEARCHES + 1);
    const floorSteps = () => noopCalls;
    const before = {
      inProcess: await sustained('in-process loop (before)', direct, rolloutSteps),
      floor: await sustained('floor: chain (before)', chain('remote'), floorSteps, terminateInFlight),
    };
    // A B B A: one worker, two workers (twice as long), one worker, under one unbroken load.
    const load = await startLoad(durable, rolloutSteps, terminateInFlight);
    const settleS = load.warmS;
    const shown = (what: string, sample: Sample) => {
      console.log(
        `  rollout workflow window, ${what}: ${(sample.steps / sample.seconds).toFixed(1)} steps/s`,
      );
      return sample;
    };
    const oneWorker = [shown('1 worker', await load.window(WINDOW_S))];
    second = await startSecondWorker();
    await load.window(settleS);
    const twoWorkers = [shown('2 workers', await load.window(2 * WINDOW_S))];
    await stopSecondWorker(second);
    await load.window(settleS);
    oneWorker.push(shown('1 worker again', await load.window(WINDOW_S)));
    await load.stop();
    const after = {
      floor: await sustained('floor: chain (after)', chain('remote'), floorSteps, terminateInFlight),
      inProcess: await sustained('in-process loop (after)', direct, rolloutSteps),
    };
    const inProcess64 = rate('in-process loop', [before.inProcess, after.inProcess], before.inProcess.warmS);
    const floor64 = rate('floor: no-op chain across queues', [before.floor, after.floor], before.floor.warmS);
    const one64 = rate('rollout workflow, 1 worker', oneWorker, load.warmS);
    const two64 = rate('rollout workflow, 2 workers', twoWorkers, load.warmS);
    // At capacity a step's cost is machine time: the rollout's ms per step over the in-process
    // loop's, against the floor's, as ratioToFloor does for latency.
    const capacityRatioToFloor = (1000 / one64.rate - 1000 / inProcess64.rate) / (1000 / floor64.rate);
    console.log(
      `  at capacity: ${(1000 / one64.rate - 1000 / inProcess64.rate).toFixed(1)} ms per step over the ` +
        `in-process loop, the floor ${(1000 / floor64.rate).toFixed(1)} ms: ${capacityRatioToFloor.toFixed(2)}× the floor`,
    );
    console.log(
      `  a second orchestrator worker process: ${(two64.rate / one64.rate).toFixed(2)}× the steps/s of one ` +
        `(${availableParallelism()} cores shared by the Temporal server, S3, both workers and the backends)`,
    );

    result = {
      name: 'orchestration',
      steps: STEPS,
      msPerStep1: round(msPerStep1),
      floorMsPerStep: round(floorMsPerStep),
      ratioToFloor: round(ratioToFloor, 3),
      eagerFloorMsPerStep: round(eagerFloorMsPerStep),
      localFloorMsPerStep: round(localFloorMsPerStep),
      emptyWorkflowMs: round(p50['floor: empty workflow']!),
      inProcessMsPerRollout: round(p50['in-process loop']!),
      durableMsPerRollout: round(p50['rollout workflow']!),
      stepsPerSecond64: round(one64.rate, 1),
      stepsPerSecond64TwoWorkers: round(two64.rate, 1),
      twoWorkerScaling: round(two64.rate / one64.rate, 3),
      floorStepsPerSecond64: round(floor64.rate, 1),
      inProcessStepsPerSecond64: round(inProcess64.rate, 1),
      capacityRatioToFloor: round(capacityRatioToFloor, 3),
      workerProcessCores64: round(one64.cores),
      rounds: ROUNDS,
      windowS: WINDOW_S,
      cores: availableParallelism(),
      loadAverage: round(loadAtStart),
    };
  } finally {
    if (second) await stopSecondWorker(second);
    await client.connection.close();
    for (const w of floorWorkers) if (w.getState() === 'RUNNING') w.shutdown();
    await floorRunning;
    await floorConnection.close();
    await workers.shutdown();
    await server.close();
    store.client.destroy();
  }
  console.log(`BENCH ${JSON.stringify(result)}`);
}

await main();
