// Pipelined training against synchronous training, on the nano world (the SFT nano policy behind
// its vLLM-compatible server, a real worker process, the real Python trainer; nano/train-config.json).
//
// The same trainingRun (STEPS steps, the same seed) twice per round: synchronous (maxStaleness 0:
// generation, update and weight sync alternate) and pipelined (maxStaleness 1: each step's groups
// are generated during the previous step's update and sync, on the version one behind). Rounds run
// A B, then B A, … so a shared machine's drifting load weighs on both alike. Throughput:
// trajectories generated (every step's, from the stored step metrics) per second of the run's wall
// time, summed over the rounds per mode; speedup = pipelined / synchronous. Per step, the medians of
// the generation, update and sync times say where the time goes (generation and update compete for
// the same cores here; on a cluster they do not).
//
// Where the CPU goes: during each run the bench reads the machine's busy CPU time (os.cpus()) and
// that of the policy server, the worker and the trainer (/proc/<pid>/stat). Overlap can only fill
// cores the synchronous run leaves idle: if it keeps b of the machine's n cores busy on average, the
// same work cannot run faster than n / b times on this machine (`cpuCeiling`), whatever the
// schedule. On a cluster, generation and the update run on their own devices and the bound is
// (generation + update + sync) / max(generation, update + sync) per step instead (`overlapCeiling`).
// CPU seconds per trajectory (the machine's and each part's) say what a change to generation saves.
//
// Needs the dev stack (`segr dev up`), the nano world (`bash scripts/nano-setup.sh`) and the trainer
// venv (`bash trainer/setup.sh`). Run: node dist/bench/pipeline.bench.js
//   SEGFLOW_BENCH_PIPELINE_STEPS  steps per run @default 4
//   SEGFLOW_BENCH_RUNS            rounds (one run of each mode per round) @default 2
// Prints a last line `BENCH {json}`.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { testClient, testConfig, testStore, uniqueId } from '../test/support/stack.js';
import { runNanoTraining, startNanoTraining } from '../test/support/nano-training.js';

const positive = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`pipeline bench: ${name} must be a whole number ≥ 1, got ${process.env[name]}`);
    process.exit(2);
  }
  return v;
};
const STEPS = positive('SEGFLOW_BENCH_PIPELINE_STEPS', 4);
const ROUNDS = positive('SEGFLOW_BENCH_RUNS', 2);
const SEED = 0;

interface StepDoc {
  rollouts: { trajectories: number };
  staleness: number | null;
  timings: { rolloutMs: number; updateMs: number; syncMs: number; totalMs: number };
}

const config = testConfig();
const store = testStore(config);
const client = await testClient(config).catch((err: Error) => {
  console.error(`pipeline bench: no Temporal server (${err.message}); start the dev stack: segr dev up`);
  process.exit(1);
});
const TRAINER_THREADS = positive('SEGFLOW_BENCH_TRAINER_THREADS', 1);
const nano = await startNanoTraining(store, config.s3.endpoint, {
  trainerEnv: { SEGFLOW_TRAINER_THREADS: String(TRAINER_THREADS) },
});
const modes = { sync: 0, pipelined: 1 } as const;
type Mode = keyof typeof modes;

// CPU time: the machine's from os.cpus(); a child process's from /proc (what the `pidusage` package
// reads too: a few lines here rather than a dependency for one bench). Linux only; elsewhere the
// per-process figures print as NaN.
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();
const machineBusySeconds = () =>
  cpus().reduce((s, c) => s + c.times.user + c.times.nice + c.times.sys + c.times.irq, 0) / 1000;
function processCpuSeconds(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime
  } catch {
    return NaN;
  }
}
const CORES = cpus().length;
const parts = {
  'policy server': nano.server.child.pid,
  worker: nano.worker.child.pid,
  trainer: nano.trainer.child.pid,
};
type Cpu = Record<'machine' | keyof typeof parts, number>;
const cpuNow = (): Cpu => ({
  machine: machineBusySeconds(),
  ...(Object.fromEntries(Object.entries(parts).map(([k, pid]) => [k, processCpuSeconds(pid)])) as Record<
    keyof typeof parts,
    number
  >),
});

interface Totals {
  trajectories: number;
  seconds: number;
  steps: StepDoc[];
  /** CPU seconds used during the mode's runs (the machine's, each part's) */
  cpu: Cpu;
}
const noTotals = (): Totals => ({
  trajectories: 0,
  seconds: 0,
  steps: [],
  cpu: { machine: 0, 'policy server': 0, worker: 0, trainer: 0 },
});
const total: Record<Mode, Totals> = { sync: noTotals(), pipelined: noTotals() };
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order: Mode[] = round % 2 === 0 ? ['sync', 'pipelined'] : ['pipelined', 'sync'];
    for (const mode of order) {
      const runId = uniqueId(`bench-pipeline-${mode}`);
      const cpu0 = cpuNow();
      const { run, seconds } = await runNanoTraining(client, nano.world, runId, {
        steps: STEPS,
        seed: SEED,
        maxStaleness: modes[mode],
      });
      if (run.status !== 'completed' || run.policy.version !== STEPS)
        throw new Error(`run ${runId} ended ${run.status} at v${run.policy.version}`);
      const steps: StepDoc[] = [];
      for (let k = 0; k < STEPS; k++)
        steps.push(await store.getJson<StepDoc>(`runs/${runId}/steps/${k}/metrics.json`));
      const trajectories = steps.reduce((n, m) => n + m.rollouts.trajectories, 0);
      total[mode].trajectories += trajectories;
      total[mode].seconds += seconds;
      total[mode].steps.push(...steps);
      const cpu1 = cpuNow();
      for (const k of Object.keys(cpu1) as (keyof Cpu)[]) total[mode].cpu[k] += cpu1[k] - cpu0[k];
      console.log(
        `round ${round + 1} ${mode.padEnd(9)} ${STEPS} steps, ${trajectories} trajectories in ${seconds.toFixed(1)} s: ` +
          `${(trajectories / seconds).toFixed(2)} trajectories/s; staleness per step ${steps.map((m) => m.staleness).join(' ')}`,
      );
    }
  }
} finally {
  await nano.stop();
  await client.connection.close();
  store.client.destroy();
}

const rate = (m: Mode) => total[m].trajectories / total[m].seconds;
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2 : NaN;
};
for (const m of ['sync', 'pipelined'] as Mode[]) {
  const t = total[m].steps.map((s) => s.timings);
  console.log(
    `${m.padEnd(9)} ${rate(m).toFixed(2)} trajectories/s; per step median: generation ${(median(t.map((x) => x.rolloutMs)) / 1000).toFixed(1)} s, ` +
      `update ${(median(t.map((x) => x.updateMs)) / 1000).toFixed(1)} s, sync ${(median(t.map((x) => x.syncMs)) / 1000).toFixed(1)} s`,
  );
}
/** Cores busy on average during a mode's runs: the machine's and each part's. */
const busy = (m: Mode) =>
  Object.fromEntries(Object.entries(total[m].cpu).map(([k, v]) => [k, v / total[m].seconds])) as Cpu;
for (const m of ['sync', 'pipelined'] as Mode[]) {
  const b = busy(m);
  const rest = b.machine - b['policy server'] - b.worker - b.trainer;
  console.log(
    `${m.padEnd(9)} cores busy on average: ${b.machine.toFixed(2)} of ${CORES} (policy server ${b['policy server'].toFixed(2)}, ` +
      `worker ${b.worker.toFixed(2)}, trainer ${b.trainer.toFixed(2)}, Temporal + S3 + the rest ${rest.toFixed(2)})`,
  );
}
/** CPU seconds per trajectory generated (the update's share included): what a change to generation saves. */
const cpuPerTrajectory = (m: Mode) => total[m].cpu.machine / total[m].trajectories;
for (const m of ['sync', 'pipelined'] as Mode[]) {
  const c = total[m].cpu;
  const per = (v: number) => (v / total[m].trajectories).toFixed(3);
  console.log(
    `${m.padEnd(9)} CPU per trajectory: ${per(c.machine)} s (policy server ${per(c['policy server'])}, worker ${per(c.worker)}, ` +
      `trainer ${per(c.trainer)}, Temporal + S3 + the rest ${per(c.machine - c['policy server'] - c.worker - c.trainer)})`,
  );
}
const cpuCeiling = CORES / busy('sync').machine;
// with generation and the update (+ sync) each on its own hardware at this machine's speeds
const syncTimes = total.sync.steps.map((s) => s.timings);
const [g, u] = [
  median(syncTimes.map((x) => x.rolloutMs)),
  median(syncTimes.map((x) => x.updateMs + x.syncMs)),
];
const overlapCeiling = (g + u) / Math.max(g, u);
const speedup = rate('pipelined') / rate('sync');
console.log(`pipelined / synchronous: ${speedup.toFixed(2)}× trajectories per second`);
console.log(
  `the synchronous runs kept ${busy('sync').machine.toFixed(2)} of ${CORES} cores busy: on this machine the same work cannot ` +
    `run more than ${cpuCeiling.toFixed(2)}× faster, whatever overlaps; with generation and the update on hardware of their own, ` +
    `overlap could give up to ${overlapCeiling.toFixed(2)}× (per step (generation + update + sync) / max(generation, update + sync))`,
);
console.log(
  `BENCH ${JSON.stringify({
    name: 'pipeline',
    speedup: Number(speedup.toFixed(3)),
    staleness: 1,
    steps: STEPS,
    rounds: ROUNDS,
    trajPerSecSync: Number(rate('sync').toFixed(3)),
    trajPerSecPipelined: Number(rate('pipelined').toFixed(3)),
    cores: CORES,
    coresBusySync: Number(busy('sync').machine.toFixed(3)),
    coresBusyPipelined: Number(busy('pipelined').machine.toFixed(3)),
    cpuSecondsPerTrajectorySync: Number(cpuPerTrajectory('sync').toFixed(3)),
    cpuSecondsPerTrajectoryPipelined: Number(cpuPerTrajectory('pipelined').toFixed(3)),
    cpuCeiling: Number(cpuCeiling.toFixed(3)),
    overlapCeiling: Number(overlapCeiling.toFixed(3)),
  })}`,
);
