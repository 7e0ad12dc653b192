/**
 * `trainingRun`: GRPO/DAPO training as a long-lived entity (spec §6). Each step:
 *   1. sample prompts from the prepared dataset (seeded order; the cursor lives in the state);
 *   2. one `rolloutGroup` child per prompt on the current policy version, with deterministic ids
 *      (`<run>/step-<k>/gen-<g>/group-<j>`), so after any crash finished groups and finished
 *      trajectories are reused, never regenerated;
 *   3. the DAPO filter (optional): drop zero-variance groups, generate more until the batch is full;
 *   4. the batch to S3, then `update_policy` on the Python trainer (`segflow-trainer`), which turns
 *      version v into v + 1 from v's stored state: a retry reuses or redoes the step, never applies
 *      it twice;
 *   5. the new version to every policy host (weight sync on `segflow-policy@<host>`);
 *   6. metrics to S3 and to the search attributes; then continue-as-new carrying only references.
 * Pipelined (`maxStaleness` ≥ 1, the default), step k+1's prompts and rollouts (2–3) run during step
 * k's update and sync (4–5), on step k's policy; its groups are carried as `state.ready`.
 * Pause, resume and stop (after the current step) are updates; `status` is a query.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineUpdate,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { LastStepDetails } from '../core/monitor/details.js';
import { SearchAttributeKeys } from '../core/queues.js';
import type { ArtifactRef } from '../core/artifacts.js';
import { isSafeId, safeIdProblem } from '../core/contracts/ids.js';
import type { DatasetCursor } from '../activities/training/activities.js';
import {
  parseTrainingConfig,
  TrainingLimits,
  type TrainingConfig,
  type TrainingConfigInput,
} from './training-config.js';
import {
  badInput,
  enterPhase,
  runIsFull,
  runTrainingStep,
  showDetails,
  type PartialStep,
  type ReadyStep,
  type StepProgress,
  type TrainingContext,
} from './training-step.js';

export type {
  TrainerHyperparameters,
  TrainerMetrics,
  UpdatePolicyResult,
} from '../core/contracts/training.js';
export type { TrainerActivities } from './training-step.js';

/** A policy version as the run tracks it. */
export interface PolicyVersionRef {
  /** S3 prefix of the version's folder (trainer/README.md). */
  uri: string;
  version: number;
  /** The name the policy servers serve it under. */
  model: string;
  weightsSha256?: string;
}

/** One finished step, small enough to keep the last few in the state. */
export interface StepSummary {
  step: number;
  policyVersion: number;
  meanReward: number;
  keptGroups: number;
  droppedGroups: number;
  generationBatches: number;
  skipped: boolean;
  metrics: ArtifactRef;
  durationMs: number;
}

export interface TrainingState {
  /** The next step to run (0-based). */
  step: number;
  policy: PolicyVersionRef;
  cursor: DatasetCursor;
  paused: boolean;
  stopRequested: boolean;
  /** The last few steps, newest last. */
  recent: StepSummary[];
  /** Workflow runs so far (continue-as-new count + 1). */
  runs: number;
  /** The last finished step as the Web UI's current details show it (absent before the first). */
  last?: LastStepDetails;
  /**
   * The policy hosts weight syncs go to, once the `policyHosts` update changed them (absent: the
   * config's `policyHosts`).
   */
  policyHosts?: string[];
  /** A step whose generation batches go on in this run (set by a mid-step continue-as-new). */
  partial?: PartialStep;
  /** The next step's groups, generated ahead during the last update (pipelined training). */
  ready?: ReadyStep;
}

export interface TrainingRunInput {
  runId: string;
  config: TrainingConfigInput | TrainingConfig;
  /** Set by continue-as-new; absent when a run starts. */
  state?: TrainingState;
}

export type TrainingPhase =
  'sampling' | 'rollouts' | 'batch' | 'update' | 'sync' | 'metrics' | 'paused' | 'completed' | 'stopped';

export interface TrainingStatus {
  runId: string;
  step: number;
  steps: number;
  phase: TrainingPhase;
  paused: boolean;
  stopRequested: boolean;
  policy: PolicyVersionRef;
  /** The hosts the next weight sync goes to (absent from workers older than the update). */
  policyHosts?: string[];
  /** Within the current step. */
  generation: number;
  groupsDone: number;
  groupsStarted: number;
  keptGroups: number;
  runs: number;
  recent: StepSummary[];
  /**
   * Pipelined training: the next step, while its groups are generated beside this step's update
   * and sync (on policy `policyVersion`, one behind the version its own update starts from).
   */
  ahead?: {
    step: number;
    policyVersion: number;
    generation: number;
    groupsDone: number;
    groupsStarted: number;
  };
}

export interface TrainingRunResult {
  runId: string;
  status: 'completed' | 'stopped';
  steps: number;
  policy: PolicyVersionRef;
  recent: StepSummary[];
}

export const trainingStatusQuery = defineQuery<TrainingStatus>('status');
export const pauseTrainingUpdate = defineUpdate<TrainingStatus>('pause');
export const resumeTrainingUpdate = defineUpdate<TrainingStatus>('resume');
export const stopTrainingUpdate = defineUpdate<TrainingStatus>('stop');
/**
 * Replaces the set of policy hosts the run's weight syncs go to (pods replaced with other ids, hosts
 * added or removed) from the next sync on. A host that joins serves the current version after
 * loading it on its first turn (an unknown adapter is synced, then the turn retried).
 */
export const policyHostsUpdate = defineUpdate<TrainingStatus, [string[]]>('policyHosts');

/** Why a new set of policy hosts is refused, or undefined when it is accepted. */
export function policyHostsProblem(hosts: unknown): string | undefined {
  if (!Array.isArray(hosts) || hosts.length === 0) return 'policyHosts must be a non-empty list of host ids';
  if (hosts.length > TrainingLimits.policyHosts)
    return `policyHosts lists ${hosts.length} hosts, at most ${TrainingLimits.policyHosts}: every step syncs each one from the run's history (docs/limits.md)`;
  for (const h of hosts) {
    if (typeof h !== 'string' || !isSafeId('host', h))
      return safeIdProblem('host', 'policy host id', String(h));
  }
  if (new Set(hosts).size !== hosts.length) return `policyHosts lists a host twice: ${hosts.join(', ')}`;
  return undefined;
}

/**
 * Why an update is refused, or undefined when it is accepted. A refused update is rejected by its
 * validator before it reaches the history: the caller gets the message, the run is unchanged.
 */
export function controlProblem(
  name: 'pause' | 'resume' | 'stop',
  state: Pick<TrainingState, 'paused' | 'stopRequested'>,
  runId: string,
): string | undefined {
  if (state.stopRequested && name !== 'stop')
    return `run ${runId} is stopping (stop was requested): it cannot be ${name === 'pause' ? 'paused' : 'resumed'}`;
  if (name === 'resume' && !state.paused) return `run ${runId} is not paused: nothing to resume`;
  return undefined;
}

export async function trainingRun(input: TrainingRunInput): Promise<TrainingRunResult> {
  const { runId } = input;
  if (!isSafeId('run', runId)) throw badInput(safeIdProblem('run', 'run id', runId));
  const parsed = parseTrainingConfig(input.config);
  if (!parsed.ok) throw badInput(`training config of run ${runId} is invalid: ${parsed.problems}`);
  const config = parsed.config;
  const state = input.state ?? initialState(config);
  state.runs += 1;
  const progress: StepProgress = {
    phase: 'sampling',
    generation: 0,
    groupsDone: 0,
    groupsStarted: 0,
    keptGroups: 0,
  };
  const ctx: TrainingContext = { runId, config, state, progress };
  registerHandlers(ctx);
  upsertSearchAttributes([
    { key: SearchAttributeKeys.runId, value: runId },
    { key: SearchAttributeKeys.step, value: state.step },
    { key: SearchAttributeKeys.policyVersion, value: state.policy.version },
  ]);
  showDetails(ctx);

  let stepsThisRun = 0;
  while (state.step < config.steps && !state.stopRequested) {
    if (state.paused) {
      enterPhase(ctx, 'paused');
      await condition(() => !state.paused || state.stopRequested);
      continue;
    }
    await runTrainingStep(ctx);
    stepsThisRun += 1;
    const more = state.step < config.steps && !state.stopRequested;
    if (more && (stepsThisRun >= config.continueAsNewEvery || runIsFull(ctx))) {
      // Carry references only: the config, the policy version, the cursor, the last few summaries.
      await condition(allHandlersFinished);
      return continueAsNew<typeof trainingRun>({ runId, config, state });
    }
  }
  enterPhase(ctx, state.stopRequested && state.step < config.steps ? 'stopped' : 'completed');
  await condition(allHandlersFinished);
  return {
    runId,
    status: progress.phase === 'stopped' ? 'stopped' : 'completed',
    steps: state.step,
    policy: state.policy,
    recent: state.recent,
  };
}

/** The state a run starts from: step 0 on the initial policy, the dataset's first epoch. */
function initialState(config: TrainingConfig): TrainingState {
  const uri = config.initialPolicy.uri.endsWith('/')
    ? config.initialPolicy.uri
    : `${config.initialPolicy.uri}/`;
  return {
    step: 0,
    policy: { uri, version: 0, model: config.initialPolicy.model },
    cursor: { epoch: 0, position: 0 },
    paused: false,
    stopRequested: false,
    recent: [],
    runs: 0,
  };
}

/** The status query and the pause / resume / stop updates. */
function registerHandlers(ctx: TrainingContext): void {
  const { runId, config, state, progress } = ctx;
  const status = (): TrainingStatus => {
    const { ahead } = ctx;
    // once the step in front is recorded, the step generated ahead is the current one
    const current = ahead?.step === state.step ? ahead.progress : progress;
    return {
      runId,
      step: state.step,
      steps: config.steps,
      phase: progress.phase,
      paused: state.paused,
      stopRequested: state.stopRequested,
      policy: state.policy,
      policyHosts: state.policyHosts ?? config.policyHosts,
      generation: current.generation,
      groupsDone: current.groupsDone,
      groupsStarted: current.groupsStarted,
      keptGroups: current.keptGroups,
      runs: state.runs,
      recent: state.recent,
      ...(ahead && ahead.step !== state.step
        ? {
            ahead: {
              step: ahead.step,
              policyVersion: ahead.policyVersion,
              generation: ahead.progress.generation,
              groupsDone: ahead.progress.groupsDone,
              groupsStarted: ahead.progress.groupsStarted,
            },
          }
        : {}),
    };
  };
  const validator = (name: 'pause' | 'resume' | 'stop') => () => {
    const problem = controlProblem(name, state, runId);
    if (problem) throw new Error(problem);
  };
  setHandler(trainingStatusQuery, status, {
    description:
      'step k/N, phase, policy version, groups done/started in the current step, and the last 10 finished steps',
  });
  setHandler(
    pauseTrainingUpdate,
    () => {
      state.paused = true;
      showDetails(ctx);
      return status();
    },
    {
      validator: validator('pause'),
      description: 'pause after the current step (refused once stop was requested); returns the status',
    },
  );
  setHandler(
    resumeTrainingUpdate,
    () => {
      state.paused = false;
      showDetails(ctx);
      return status();
    },
    {
      validator: validator('resume'),
      description: 'resume a paused run (refused when it is not paused or is stopping); returns the status',
    },
  );
  setHandler(
    policyHostsUpdate,
    (hosts) => {
      state.policyHosts = [...hosts];
      return status();
    },
    {
      validator: (hosts) => {
        const problem = policyHostsProblem(hosts);
        if (problem) throw new Error(`run ${runId}: ${problem}`);
      },
      description: 'replace the policy hosts weight syncs go to, from the next sync on; returns the status',
    },
  );
  setHandler(
    stopTrainingUpdate,
    () => {
      state.stopRequested = true;
      showDetails(ctx);
      return status();
    },
    {
      validator: validator('stop'),
      description: 'stop after the current step: the run completes with status "stopped"; returns the status',
    },
  );
}
