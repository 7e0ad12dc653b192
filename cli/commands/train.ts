// `segr train start|status|pause|resume|stop`: the client side of the trainingRun workflow. Workers
// run elsewhere: `segr worker` (orchestrator, search, media, policy roles) and the Python trainer
// (`python -m segflow_trainer.worker`, trainer/README.md).
import { PolicyKeys, RunKeys, isSafeId, safeIdProblem } from '../../core/contracts/index.js';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { SegflowConfig } from '../../core/config/schema.js';
import { priorityFor, SearchAttributeKeys, TaskQueues } from '../../core/queues.js';
import type { ArtifactStore } from '../../activities/storage/artifact-store.js';
import {
  parseTrainingConfig,
  type TrainingConfig,
  type TrainingConfigInput,
} from '../../workflows/training-config.js';
import {
  pauseTrainingUpdate,
  resumeTrainingUpdate,
  stopTrainingUpdate,
  policyHostsProblem,
  policyHostsUpdate,
  trainingRun,
  trainingStatusQuery,
  type TrainingRunInput,
  type TrainingRunResult,
  type TrainingState,
  type TrainingStatus,
} from '../../workflows/training-run.js';
import { cliContext, withClient, type ClientSession } from '../context.js';
import {
  closedWorkflowError,
  failureChain,
  formatWorkflowNotCompleted,
  type WorkflowNotCompletedError,
} from '../failure.js';
import { nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from '../option-parsers.js';
import { watchDecision } from '../watch.js';
import { emit, jsonDocument, outputFormat } from '../output.js';
import { policyProtocolFrom } from '../policy-protocol.js';
import type { PolicyProtocol } from '../../core/contracts/protocol.js';

interface StartOptions {
  dataset: string;
  initialPolicy: string;
  model?: string;
  steps: number;
  groupSize?: number;
  promptsPerStep?: number;
  seed?: number;
  rewardPreset?: string;
  clipLow?: number;
  clipHigh?: number;
  lr?: number;
  kl?: number;
  dapo?: boolean;
  maxStaleness?: number;
  loraRank?: number;
  hosts?: string;
  configJson?: string;
  id?: string;
  watch?: boolean;
  promptFile?: string;
}

/**
 * The run's config from the flags (over an optional JSON file), validated before anything starts.
 * `protocol` (the config's `policy.promptFile` / `policy.coordinates`) becomes `rollout.protocol`.
 */
export async function trainingConfigFromOptions(
  opts: StartOptions,
  initialPolicyUri: string,
  protocol: PolicyProtocol = {},
): Promise<TrainingConfigInput> {
  let base: Record<string, unknown> = {};
  if (opts.configJson) {
    try {
      base = JSON.parse(await readFile(opts.configJson, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new Error(
        `--config-json ${opts.configJson} is not a readable JSON file: ${(err as Error).message}`,
      );
    }
  }
  const sub = (k: string) => ({ ...((base[k] as Record<string, unknown> | undefined) ?? {}) });
  const loss = sub('loss');
  if (opts.clipLow !== undefined) loss.clipLow = opts.clipLow;
  if (opts.clipHigh !== undefined) loss.clipHigh = opts.clipHigh;
  if (opts.kl !== undefined) loss.klCoef = opts.kl;
  const dapo = sub('dapo');
  if (opts.dapo !== undefined) dapo.enabled = opts.dapo;
  const trainer = sub('trainer');
  if (opts.loraRank !== undefined) trainer.loraRank = opts.loraRank;
  const reward = sub('reward');
  if (opts.rewardPreset !== undefined) reward.preset = opts.rewardPreset;
  const rollout = sub('rollout');
  if (Object.keys(protocol).length > 0)
    rollout.protocol = { ...((rollout.protocol as object | undefined) ?? {}), ...protocol };
  const cfg: Record<string, unknown> = {
    ...base,
    dataset: opts.dataset,
    initialPolicy: { uri: initialPolicyUri, ...(opts.model ? { model: opts.model } : {}) },
    steps: opts.steps,
    loss,
    dapo,
    trainer,
    reward,
    ...(Object.keys(rollout).length > 0 ? { rollout } : {}),
    ...(opts.groupSize !== undefined ? { groupSize: opts.groupSize } : {}),
    ...(opts.promptsPerStep !== undefined ? { promptsPerStep: opts.promptsPerStep } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    ...(opts.lr !== undefined ? { learningRate: opts.lr } : {}),
    ...(opts.maxStaleness !== undefined ? { maxStaleness: opts.maxStaleness } : {}),
    ...(opts.hosts ? { policyHosts: opts.hosts.split(',').map((h) => h.trim()) } : {}),
  };
  const parsed = parseTrainingConfig(cfg);
  if (!parsed.ok) throw new Error(`training config is invalid: ${parsed.problems}`);
  return cfg as TrainingConfigInput;
}

/** The input the run's latest execution started with (its config; its state after a continue-as-new). */
async function latestExecutionInput(client: Client, runId: string): Promise<TrainingRunInput | undefined> {
  const history = await client.workflow.getHandle(runId).fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  return payload ? defaultPayloadConverter.fromPayload<TrainingRunInput>(payload) : undefined;
}

/** The config of the run with this id when it is running (from its current run's input), else undefined. */
async function runningConfig(client: Client, runId: string): Promise<TrainingConfig | undefined> {
  const handle = client.workflow.getHandle<typeof trainingRun>(runId);
  try {
    if ((await handle.describe()).status.name !== 'RUNNING') return undefined;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
  const input = await latestExecutionInput(client, runId);
  const parsed = input ? parseTrainingConfig(input.config) : undefined;
  if (!parsed?.ok) throw new Error(`training run ${runId} is running but its input has no readable config`);
  return parsed.config;
}

/** The first differing config keys of two runs ("steps: 3 ≠ 5"), or undefined when they are equal. */
export function configDifference(running: TrainingConfig, wanted: TrainingConfigInput): string | undefined {
  const parsed = parseTrainingConfig(wanted);
  if (!parsed.ok) return `the new config is invalid: ${parsed.problems}`;
  const flat = (o: unknown, prefix = ''): Map<string, string> => {
    const out = new Map<string, string>();
    if (o !== null && typeof o === 'object' && !Array.isArray(o)) {
      for (const [k, v] of Object.entries(o))
        for (const e of flat(v, prefix ? `${prefix}.${k}` : k)) out.set(...e);
    } else out.set(prefix, JSON.stringify(o));
    return out;
  };
  const a = flat(running);
  const b = flat(parsed.config);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  const diffs = keys
    .filter((k) => a.get(k) !== b.get(k))
    .map((k) => `${k}: ${a.get(k) ?? '–'} ≠ ${b.get(k) ?? '–'}`);
  return diffs.length
    ? diffs.slice(0, 3).join('; ') + (diffs.length > 3 ? ` (+${diffs.length - 3} more)` : '')
    : undefined;
}

/**
 * What the Web UI shows for a training run's start (its list row and a hyperparameter table), its
 * search attributes and its task-queue priority (`priority.training`, fairness by run id).
 */
export function trainingMetadata(
  runId: string,
  input: TrainingConfigInput,
  priority: SegflowConfig['priority'],
) {
  const parsed = parseTrainingConfig(input);
  const c = parsed.ok ? parsed.config : undefined;
  const rows: [string, unknown][] = c
    ? [
        ['dataset', c.dataset],
        ['initial policy', `${c.initialPolicy.uri} (${c.initialPolicy.model})`],
        ['steps', c.steps],
        ['prompts per step × group size', `${c.promptsPerStep} × ${c.groupSize}`],
        ['learning rate', c.learningRate],
        ['clip low / high', `${c.loss.clipLow} / ${c.loss.clipHigh}`],
        ['KL coefficient', c.loss.klCoef],
        ['DAPO', c.dapo.enabled],
        ['reward preset', c.reward.preset],
        ['temperature', c.rollout.sampling.temperature],
        ['LoRA rank', c.trainer.loraRank],
        ['seed', c.seed],
        ['policy hosts', c.policyHosts.join(', ')],
      ]
    : [];
  return {
    staticSummary: `train · ${c?.steps ?? '?'} steps · ${String(c?.dataset ?? '')
      .split('/')
      .slice(-2)
      .join('/')}`,
    staticDetails: [
      '| hyperparameter | value |',
      '| --- | --- |',
      ...rows.map(([k, v]) => `| ${k} | ${String(v)} |`),
    ].join('\n'),
    typedSearchAttributes: [{ key: SearchAttributeKeys.runId, value: runId }],
    priority: priorityFor(priority, 'training', runId),
  };
}

/** A local save_pretrained folder becomes policy version 0 of the run in S3. */
async function uploadInitialPolicy(store: ArtifactStore, dir: string, runId: string): Promise<string> {
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error('not a folder');
    names = await readdir(dir);
  } catch (err) {
    throw new Error(
      `--initial-policy ${dir} is neither an s3:// prefix nor a readable folder: ${(err as Error).message}`,
    );
  }
  if (!names.includes('config.json') && !names.includes('adapter_config.json')) {
    throw new Error(
      `--initial-policy ${dir} has no config.json: expected a Hugging Face save_pretrained folder`,
    );
  }
  const key = PolicyKeys.version(runId, 0).replace(/\/$/, '');
  for (const name of names) {
    const path = join(dir, name);
    if (!(await stat(path)).isFile()) continue;
    await store.putFile(
      `${key}/${name}`,
      path,
      name.endsWith('.json') ? 'application/json' : 'application/octet-stream',
    );
  }
  return store.uriOf(`${key}/`);
}

interface StepMetricsView {
  rollouts?: {
    reward?: {
      total?: { mean: number };
      outcome?: number;
      format?: number;
      process?: number | null;
      igr?: number | null;
    };
    searchesPerTrajectory?: { mean: number };
    responseTokens?: { mean: number };
    stopReasons?: Record<string, number>;
  };
  trainer?: { loss?: number; pgClipFraction?: number; gradNorm?: number } | null;
}

const f = (x: number | null | undefined, d = 3) => (typeof x === 'number' ? x.toFixed(d) : '–');

/**
 * One status block: step, phase, policy version, the last step's reward components. `ended` names
 * how a run that did not complete ended (FAILED, TERMINATED, …): its phase is then only the last one
 * it reached, not what it is doing.
 */
export function formatStatus(s: TrainingStatus, last?: StepMetricsView, ended?: string): string {
  const state = ended
    ? `${ended} (last phase: ${s.phase})`
    : `${s.phase}${s.paused && s.phase !== 'paused' ? ' (pausing after this step)' : ''}${s.stopRequested ? ' (stopping after this step)' : ''}`;
  const lines = [
    `run ${s.runId}: step ${s.step}/${s.steps} · ${state}`,
    `  policy v${s.policy.version} (${s.policy.model})${s.policy.weightsSha256 ? ` weights ${s.policy.weightsSha256.slice(0, 12)}` : ''}`,
  ];
  if (s.phase === 'rollouts' || s.phase === 'sampling')
    lines.push(
      `  groups ${s.groupsDone}/${s.groupsStarted} done · generation ${s.generation} · kept ${s.keptGroups}`,
    );
  if (s.ahead)
    lines.push(
      `  step ${s.ahead.step} generated ahead on v${s.ahead.policyVersion}: groups ${s.ahead.groupsDone}/${s.ahead.groupsStarted} done · generation ${s.ahead.generation}`,
    );
  const prev = s.recent.at(-1);
  if (prev) {
    lines.push(
      `  last step ${prev.step}: reward ${f(prev.meanReward)} · kept ${prev.keptGroups} groups, dropped ${prev.droppedGroups} · ${(prev.durationMs / 1000).toFixed(1)} s`,
    );
  }
  const r = last?.rollouts;
  if (r?.reward) {
    lines.push(
      `  reward components: outcome ${f(r.reward.outcome)} · format ${f(r.reward.format)} · process ${f(r.reward.process)} · igr ${f(r.reward.igr)}`,
    );
    lines.push(
      `  searches/trajectory ${f(r.searchesPerTrajectory?.mean, 2)} · response tokens ${f(r.responseTokens?.mean, 1)} · stops ${JSON.stringify(r.stopReasons ?? {})}`,
    );
  }
  if (last?.trainer)
    lines.push(
      `  trainer: loss ${f(last.trainer.loss, 4)} · clip fraction ${f(last.trainer.pgClipFraction)} · grad norm ${f(last.trainer.gradNorm)}`,
    );
  return lines.join('\n');
}

/**
 * Prints the run's status; with `watch`, again every 2 s until the run closes. Each poll describes
 * the workflow first, so a run that failed, was terminated, cancelled or timed out is reported as
 * such, with its cause chain and Web UI link, and ends a watch with exit code 1. In json a single
 * poll prints one document; a watch shows the text on stderr and returns the last document (the
 * caller prints it, so stdout carries one JSON document).
 */
async function showStatus(
  { client, store, ui }: ClientSession,
  runId: string,
  opts: { watch?: boolean; json?: boolean },
): Promise<unknown> {
  const handle = client.workflow.getHandle<typeof trainingRun>(runId);
  let lastText = '';
  for (;;) {
    const status = (await handle.describe()).status.name;
    const decision = watchDecision(status);
    const notCompleted: WorkflowNotCompletedError | undefined =
      decision.done && !decision.ok
        ? await closedWorkflowError(handle, 'trainingRun', decision.end, ui(runId))
        : undefined;
    let s: TrainingStatus | undefined;
    try {
      s = await handle.query(trainingStatusQuery);
    } catch (err) {
      // A run that did not complete may not answer (no worker, or it failed replaying): its close
      // event still says why it ended.
      if (!notCompleted) throw err;
    }
    const prev = s?.recent.at(-1);
    const metrics = prev
      ? await store.getJson<StepMetricsView>(prev.metrics.uri).catch(() => undefined)
      : undefined;
    const doc = statusDocument(s, metrics, status, notCompleted);
    if (opts.json && !opts.watch) process.stdout.write(jsonDocument(doc));
    else {
      const text = [
        ...(s ? [formatStatus(s, metrics, notCompleted?.end)] : []),
        ...(notCompleted ? [formatWorkflowNotCompleted(notCompleted)] : []),
      ].join('\n');
      const line = `${opts.watch ? `[${new Date().toISOString().slice(11, 19)}] ` : ''}${text}`;
      if (text !== lastText) {
        if (opts.json) console.error(line);
        else console.log(line);
      }
      lastText = text;
    }
    if (decision.done && !decision.ok && opts.watch) process.exitCode = 1;
    if (!opts.watch || decision.done) return doc;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** What `segr train status --output json` prints: the status, the last step's metrics, how the run ended. */
export function statusDocument(
  s: TrainingStatus | undefined,
  lastStep: unknown,
  status: string,
  notCompleted?: WorkflowNotCompletedError,
) {
  const execution = notCompleted
    ? { status: notCompleted.end, failure: failureChain(notCompleted.cause), ui: notCompleted.uiLink }
    : { status };
  return { status: s ?? null, lastStep: lastStep ?? null, execution };
}

/** The input of a closed run's latest execution (its config, and its state when it continued-as-new). */
async function closedRunInput(client: Client, runId: string): Promise<TrainingRunInput> {
  const input = await latestExecutionInput(client, runId);
  if (!input?.config)
    throw new Error(`training run ${runId}: its last execution's input has no readable config`);
  return input;
}

/**
 * `segr train resume` of a run that ended without completing (failed, terminated, timed out, or
 * stopped): a new execution under the same id that continues from the state saved after the last
 * finished step (`runs/<run>/state.json`: policy version, dataset cursor; the trainer keeps that
 * version's optimizer and RNG state), or from the last execution's own input when no step finished
 * since it started. The step that was in flight starts again.
 */
export async function resumeEndedRun(
  { client, store }: Pick<ClientSession, 'client' | 'store'>,
  runId: string,
  status: string,
  priority: SegflowConfig['priority'],
): Promise<TrainingRunInput> {
  const handle = client.workflow.getHandle<typeof trainingRun>(runId);
  if (status === 'COMPLETED') {
    const result = (await handle.result()) as TrainingRunResult;
    if (result.status === 'completed')
      throw new Error(`training run ${runId} completed all its ${result.steps} steps: nothing to resume`);
  }
  const last = await closedRunInput(client, runId);
  const saved = (await store.head(RunKeys.state(runId)))
    ? await store.getJson<{ config: TrainingConfigInput; state: TrainingState }>(RunKeys.state(runId))
    : undefined;
  const from = saved && saved.state.step >= (last.state?.step ?? 0) ? saved : last;
  const state = from.state ? { ...from.state, paused: false, stopRequested: false } : undefined;
  const input: TrainingRunInput = { runId, config: from.config, ...(state ? { state } : {}) };
  await client.workflow.start(trainingRun, {
    taskQueue: TaskQueues.orchestrator,
    workflowId: runId,
    args: [input],
    ...trainingMetadata(runId, from.config, priority),
  });
  return input;
}

/** The updates `segr train pause|resume|stop` send. */
const controlUpdates = {
  pause: pauseTrainingUpdate,
  resume: resumeTrainingUpdate,
  stop: stopTrainingUpdate,
} as const;

export function register(program: Command): void {
  const train = program.command('train').description('GRPO/DAPO training runs (trainingRun workflow)');

  train
    .command('start')
    .description('start a training run; needs `segr worker` and the Python trainer worker running')
    .requiredOption('--dataset <uri>', 'prepared dataset index (the "index" `segr dataset prepare` prints)')
    .requiredOption(
      '--initial-policy <uri|dir>',
      'policy version 0: an s3:// prefix or a local save_pretrained folder',
    )
    .requiredOption('--steps <n>', 'training steps', positiveInt('--steps'))
    .option('--model <name>', 'name the policy servers serve version 0 under (default "policy")')
    .option('--group-size <n>', 'trajectories per prompt (default 8)', positiveInt('--group-size'))
    .option(
      '--prompts-per-step <n>',
      'prompt groups per step (default 16)',
      positiveInt('--prompts-per-step'),
    )
    .option('--seed <n>', 'seed of prompt order, sampling and trainer (default 0)', nonNegativeInt('--seed'))
    .option('--reward-preset <name>', 'hierarchical | outcomeOnly | stepwise (default hierarchical)')
    .option('--clip-low <eps>', 'PPO ε_low (default 0.2)', nonNegativeNumber('--clip-low'))
    .option(
      '--clip-high <eps>',
      'PPO ε_high; 0.3 = clip-higher (default 0.2)',
      nonNegativeNumber('--clip-high'),
    )
    .option('--lr <rate>', 'AdamW learning rate (default 1e-6)', positiveNumber('--lr'))
    .option('--kl <coef>', 'KL-loss coefficient to the initial policy (default 0)', nonNegativeNumber('--kl'))
    .option('--dapo', 'DAPO dynamic sampling: drop zero-variance groups and resample')
    .option(
      '--max-staleness <n>',
      'pipelined training: 1 (default) generates the next step during the update, one version behind; 0: synchronous',
      nonNegativeInt('--max-staleness'),
    )
    .option(
      '--lora-rank <r>',
      'train a LoRA adapter of this rank (default 0: full update)',
      nonNegativeInt('--lora-rank'),
    )
    .option('--hosts <ids>', 'policy hosts that receive every version, comma-separated (default local)')
    .option('--config-json <file>', 'the full trainingRun config as JSON (flags override it)')
    .option(
      '--prompt-file <path>',
      'YAML/JSON {search, nonSearch} system prompts the rollouts use verbatim (default: policy.promptFile, else the shipped paraphrase)',
    )
    .option(
      '--id <runId>',
      'run id (default train-<timestamp>); if that run is running with the same config, attach to it',
    )
    .option('--watch', 'stay and show live progress until the run ends; exits 1 unless it completes')
    .action(async (opts: StartOptions, cmd: Command) => {
      const runId = opts.id ?? `train-${new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '')}`;
      if (!isSafeId('run', runId)) throw new Error(safeIdProblem('run', '--id', runId));
      const { config: cliConfig } = cliContext(cmd, { 'policy.promptFile': opts.promptFile });
      const protocol = policyProtocolFrom(cliConfig.policy);
      await withClient(cliConfig, async (session) => {
        const { client, store, ui } = session;
        // Validate everything before uploading or starting anything.
        await trainingConfigFromOptions(
          opts,
          /^s3:\/\//.test(opts.initialPolicy) ? opts.initialPolicy : 's3://placeholder/validated-later/',
          protocol,
        );
        const local = !/^s3:\/\//.test(opts.initialPolicy);
        // A local folder goes to a deterministic key: the same flags give the same config.
        const initialUri = local ? store.uriOf(PolicyKeys.version(runId, 0)) : opts.initialPolicy;
        const config = await trainingConfigFromOptions(opts, initialUri, protocol);
        // Idempotent start: a run with this id that is still running is attached to when its config
        // is the same, and refused with the difference otherwise.
        const existing = await runningConfig(client, runId);
        if (existing) {
          const problem = configDifference(existing, config);
          if (problem)
            throw new Error(
              `training run ${runId} is already running with a different config (${problem}): ${ui(runId)}; pick another --id, or stop it first (segr train stop ${runId})`,
            );
          console.error(`trainingRun ${runId} is already running with this config: attached (${ui(runId)})`);
        } else {
          if (local) await uploadInitialPolicy(store, resolve(opts.initialPolicy), runId);
          await client.workflow.start(trainingRun, {
            taskQueue: TaskQueues.orchestrator,
            workflowId: runId,
            args: [{ runId, config }],
            ...trainingMetadata(runId, config, cliConfig.priority),
          });
          console.error(`trainingRun ${runId} started: ${ui(runId)}`);
          console.error(
            '  workers: `segr worker` (all roles) and `.venv/trainer/bin/python -m segflow_trainer.worker` (in trainer/)',
          );
        }
        const json = outputFormat(cmd) === 'json';
        const started = { runId, ui: ui(runId), ...(existing ? { attached: true } : {}) };
        if (!json) console.log(runId);
        const final = opts.watch ? await showStatus(session, runId, { watch: true, json }) : undefined;
        if (json) process.stdout.write(jsonDocument(opts.watch ? { ...started, final } : started));
      });
    });

  train
    .command('status <runId>')
    .description('step, phase, policy version and the last step’s reward components')
    .option('--watch', 'refresh until the run ends; exits 1 unless it completes')
    .option('--json', 'same as --output json: the status, the last step’s metrics and how the run ended')
    .action(async (runId: string, opts: { watch?: boolean }, cmd: Command) => {
      const json = outputFormat(cmd) === 'json';
      await withClient(cliContext(cmd).config, async (session) => {
        const doc = await showStatus(session, runId, { ...opts, json });
        if (json && opts.watch) process.stdout.write(jsonDocument(doc));
      });
    });

  for (const [name, what] of [
    ['pause', 'pause after the current step'],
    [
      'resume',
      'resume a paused run, or continue a run that ended (failed, terminated, stopped) from its last finished step',
    ],
    ['stop', 'stop after the current step (the run completes with status "stopped")'],
  ] as const) {
    train
      .command(`${name} <runId>`)
      .description(what)
      .action(async (runId: string, _opts: unknown, cmd: Command) => {
        const { config } = cliContext(cmd);
        await withClient(config, async (session) => {
          const handle = session.client.workflow.getHandle(runId);
          const status = (await handle.describe()).status.name;
          if (name === 'resume' && status !== 'RUNNING') {
            const input = await resumeEndedRun(session, runId, status, config.priority);
            const from = input.state
              ? `step ${input.state.step} on policy v${input.state.policy.version}`
              : 'step 0 (no step had finished)';
            emit(
              cmd,
              { action: 'resume', runId, ended: status, from: input.state ?? null, ui: session.ui(runId) },
              `trainingRun ${runId} had ended (${status}); continuing from ${from}: ${session.ui(runId)}`,
            );
            return;
          }
          const s = await handle.executeUpdate(controlUpdates[name]);
          emit(cmd, { action: name, runId, status: s }, formatStatus(s));
        });
      });
  }

  train
    .command('hosts <runId> <hosts>')
    .description(
      'replace the policy hosts a running run syncs weights to (comma-separated host ids), from the next sync on',
    )
    .action(async (runId: string, hosts: string, _opts: unknown, cmd: Command) => {
      const { config } = cliContext(cmd);
      const list = hosts
        .split(',')
        .map((h) => h.trim())
        .filter(Boolean);
      const problem = policyHostsProblem(list);
      if (problem) throw new Error(`<hosts> ${JSON.stringify(hosts)}: ${problem}`);
      await withClient(config, async (session) => {
        const s = await session.client.workflow
          .getHandle(runId)
          .executeUpdate(policyHostsUpdate, { args: [list] });
        emit(
          cmd,
          { action: 'hosts', runId, status: s },
          `policy hosts of ${runId}: ${(s.policyHosts ?? list).join(', ')}\n${formatStatus(s)}`,
        );
      });
    });
}
