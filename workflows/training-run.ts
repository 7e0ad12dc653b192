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
 * Pause, resume and stop (after the current step) are updates; `status` is a query.
 */
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineUpdate,
  executeChild,
  log,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ArtifactRef } from '../core/artifacts.js';
import { dynamicSamplingDecision, dynamicSamplingFilter } from '../core/grpo/advantages.js';
import { hostQueue, TaskQueues } from '../core/queues.js';
import type {
  DatasetCursor,
  PolicySyncActivities,
  TrainingActivities,
  TrainingSample,
} from '../activities/training/activities.js';
import { rolloutGroup, type RolloutGroupResult } from './rollout-group.js';
import {
  learningRateAt,
  parseTrainingConfig,
  policyModelName,
  runIdPattern,
  type TrainingConfig,
  type TrainingConfigInput,
  groupSeed,
} from './training-config.js';
import { rolloutMetrics, type RolloutMetrics } from './training-metrics.js';

/** A policy version as the run tracks it. */
export interface PolicyVersionRef {
  /** S3 prefix of the version's folder (trainer/README.md). */
  uri: string;
  version: number;
  /** The name the policy servers serve it under. */
  model: string;
  weightsSha256?: string;
}

/** What the Python trainer's `update_policy` takes (trainer/segflow_trainer/update.py). */
export interface TrainerHyperparameters {
  runId: string;
  step: number;
  seed: number;
  learningRate: number;
  weightDecay: number;
  clipLow: number;
  clipHigh: number;
  dualClipC: number;
  klCoef: number;
  ppoEpochs: number;
  miniBatches: number;
  microBatchSize: number;
  maxGradNorm: number;
  maxLength: number;
  /** The rollouts' sampling temperature: the trainer's log-probs are those of softmax(logits / T). */
  temperature: number;
  lora?: { rank: number; alpha: number };
}

export interface TrainerMetrics {
  loss: number;
  pgLoss: number;
  pgClipFraction: number;
  dualClipFraction: number;
  approxKl: number;
  kl: number | null;
  entropy: number;
  gradNorm: number;
  updates: number;
  trajectories: number;
  responseTokens: number;
  truncated: number;
  learningRate: number;
  logProbShift: { positive: number | null; negative: number | null };
  /** True when a retry found the version already made from the same inputs. */
  reused: boolean;
  durationMs: number;
}

export interface UpdatePolicyResult {
  policy: { uri: string; version: number; kind: 'full' | 'lora'; weightsSha256: string };
  metrics: TrainerMetrics;
}

/** The Python trainer's activities (names as registered there). */
export interface TrainerActivities {
  update_policy(
    batch: ArtifactRef,
    policy: { uri: string; version: number },
    hyperparameters: TrainerHyperparameters,
  ): Promise<UpdatePolicyResult>;
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
  /** Within the current step. */
  generation: number;
  groupsDone: number;
  groupsStarted: number;
  keptGroups: number;
  runs: number;
  recent: StepSummary[];
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

const RECENT_STEPS = 10;

// Dataset sampling, batch assembly, metrics: S3 reads/writes under deterministic keys, idempotent,
// seconds; retried freely (bad input is non-retryable and fails the run with its message).
const training = proxyActivities<TrainingActivities>({
  taskQueue: TaskQueues.orchestrator,
  startToCloseTimeout: '5 minutes',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 10,
  },
});

// The trainer: one step can take long on a big model; it heartbeats every few seconds, so a dead
// trainer is noticed after the heartbeat timeout and the step is retried (reused or redone from
// the parent version, never applied twice). Retries are unlimited: a trainer host may be down for
// a while and the run should wait for it, not fail.
function trainerFor(config: TrainingConfig) {
  return proxyActivities<TrainerActivities>({
    taskQueue: TaskQueues.trainer,
    startToCloseTimeout: `${config.trainer.timeoutMinutes} minutes`,
    heartbeatTimeout: `${config.trainer.heartbeatTimeoutSeconds} seconds`,
    retry: {
      initialInterval: '2 seconds',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      nonRetryableErrorTypes: ['BadInputError', 'PolicyVersionConflict'],
    },
  });
}

// Weight sync: a download of the version (seconds to minutes) and a load call on the host's policy
// server; heartbeats during the download. Pinned to the host queue, so every host gets it.
function syncOn(hostId: string) {
  return proxyActivities<PolicySyncActivities>({
    taskQueue: hostQueue(TaskQueues.policy, hostId),
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: '2 minutes',
    retry: {
      initialInterval: '2 seconds',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      maximumAttempts: 20,
    },
  });
}

function badInput(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'BadInputError');
}

function hyperparameters(config: TrainingConfig, runId: string, step: number): TrainerHyperparameters {
  return {
    runId,
    step,
    seed: config.seed,
    learningRate: learningRateAt(config, step),
    weightDecay: config.weightDecay,
    clipLow: config.loss.clipLow,
    clipHigh: config.loss.clipHigh,
    dualClipC: config.loss.dualClipC,
    klCoef: config.loss.klCoef,
    ppoEpochs: config.trainer.ppoEpochs,
    miniBatches: config.trainer.miniBatches,
    microBatchSize: config.trainer.microBatchSize,
    maxGradNorm: config.trainer.maxGradNorm,
    maxLength: config.trainer.maxLength,
    temperature: config.rollout.sampling.temperature,
    ...(config.trainer.loraRank > 0
      ? { lora: { rank: config.trainer.loraRank, alpha: config.trainer.loraAlpha } }
      : {}),
  };
}

export async function trainingRun(input: TrainingRunInput): Promise<TrainingRunResult> {
  const { runId } = input;
  if (!runIdPattern.test(runId)) {
    throw badInput(`run id ${JSON.stringify(runId)} must be 1-100 letters, digits, ".", "_" or "-"`);
  }
  const parsed = parseTrainingConfig(input.config);
  if (!parsed.ok) throw badInput(`training config of run ${runId} is invalid: ${parsed.problems}`);
  const config = parsed.config;
  const initialUri = config.initialPolicy.uri.endsWith('/')
    ? config.initialPolicy.uri
    : `${config.initialPolicy.uri}/`;
  const state: TrainingState = input.state ?? {
    step: 0,
    policy: { uri: initialUri, version: 0, model: config.initialPolicy.model },
    cursor: { epoch: 0, position: 0 },
    paused: false,
    stopRequested: false,
    recent: [],
    runs: 0,
  };
  state.runs += 1;
  const trainer = trainerFor(config);
  const progress = {
    phase: 'sampling' as TrainingPhase,
    generation: 0,
    groupsDone: 0,
    groupsStarted: 0,
    keptGroups: 0,
  };

  const status = (): TrainingStatus => ({
    runId,
    step: state.step,
    steps: config.steps,
    phase: progress.phase,
    paused: state.paused,
    stopRequested: state.stopRequested,
    policy: state.policy,
    generation: progress.generation,
    groupsDone: progress.groupsDone,
    groupsStarted: progress.groupsStarted,
    keptGroups: progress.keptGroups,
    runs: state.runs,
    recent: state.recent,
  });
  setHandler(trainingStatusQuery, status);
  setHandler(pauseTrainingUpdate, () => {
    state.paused = true;
    return status();
  });
  setHandler(resumeTrainingUpdate, () => {
    state.paused = false;
    return status();
  });
  setHandler(stopTrainingUpdate, () => {
    state.stopRequested = true;
    return status();
  });

  upsertSearchAttributes({
    SegflowRunId: [runId],
    SegflowStep: [state.step],
    SegflowPolicyVersion: [state.policy.version],
  });

  const runGroups = async (
    samples: TrainingSample[],
    step: number,
    generation: number,
  ): Promise<RolloutGroupResult[]> => {
    const results = new Array<RolloutGroupResult>(samples.length);
    const concurrency = Math.max(1, config.rollout.groupConcurrency ?? samples.length);
    let next = 0;
    const lane = async () => {
      while (next < samples.length) {
        const j = next++;
        const groupId = `${runId}/step-${step}/gen-${generation}/group-${j}`;
        progress.groupsStarted += 1;
        results[j] = await executeChild(rolloutGroup, {
          workflowId: groupId,
          taskQueue: TaskQueues.orchestrator,
          args: [
            {
              groupId,
              sample: samples[j]!,
              n: config.groupSize,
              concurrency: config.rollout.trajectoryConcurrency ?? config.groupSize,
              policy: {
                version: state.policy.version,
                model: state.policy.model,
                sampling: {
                  temperature: config.rollout.sampling.temperature,
                  ...(config.rollout.sampling.topP !== undefined
                    ? { topP: config.rollout.sampling.topP }
                    : {}),
                  ...(config.rollout.sampling.topK !== undefined
                    ? { topK: config.rollout.sampling.topK }
                    : {}),
                  seed: groupSeed(config.seed, step, generation, j),
                },
              },
              ...(config.rollout.search ? { search: config.rollout.search } : {}),
              ...(config.rollout.settings ? { settings: config.rollout.settings } : {}),
              reward: { preset: config.reward.preset, gate: config.reward.gate },
              artifactPrefix: `runs/${runId}/steps/${step}/groups/gen-${generation}-group-${j}`,
              runId,
            },
          ],
        });
        progress.groupsDone += 1;
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, samples.length) }, lane));
    return results;
  };

  const runStep = async (): Promise<void> => {
    const step = state.step;
    const started = Date.now();
    Object.assign(progress, { generation: 0, groupsDone: 0, groupsStarted: 0, keptGroups: 0 });
    const generated: RolloutGroupResult[] = [];
    let surviving: RolloutGroupResult[] = [];
    let dropped = 0;
    let stale = 0;
    let generation = 0;
    for (;;) {
      progress.phase = 'sampling';
      progress.generation = generation;
      const sampled = await training.trainingSamplePrompts({
        dataset: config.dataset,
        seed: config.seed,
        cursor: state.cursor,
        count: config.promptsPerStep,
      });
      state.cursor = sampled.cursor;
      progress.phase = 'rollouts';
      const groups = await runGroups(sampled.samples, step, generation);
      generated.push(...groups);
      generation += 1;
      const fresh = groups.filter((g) =>
        g.trajectories.every((t) => t.summary.policyVersion >= state.policy.version - config.maxStaleness),
      );
      stale += groups.length - fresh.length;
      if (!config.dapo.enabled) {
        surviving = fresh;
        break;
      }
      const { keptGroups } = dynamicSamplingFilter(
        fresh.flatMap((g) =>
          g.trajectories.map((t) => ({ groupId: g.groupId, reward: t.reward.total ?? 0 })),
        ),
      );
      const kept = new Set(keptGroups);
      dropped += fresh.length - keptGroups.length;
      surviving.push(...fresh.filter((g) => kept.has(g.groupId)));
      progress.keptGroups = surviving.length;
      const decision = dynamicSamplingDecision({
        survivingGroups: surviving.map((g) => g.groupId),
        promptBatchSize: config.promptsPerStep,
        generationBatches: generation,
        maxGenerationBatches: config.dapo.maxGenerationBatches,
      });
      if (decision.status === 'ready') {
        surviving = surviving.slice(0, config.promptsPerStep);
        break;
      }
      if (decision.status === 'exhausted') {
        log.warn('DAPO: generation batches exhausted; training on the groups that survived', {
          runId,
          step,
          have: decision.have,
          need: decision.need,
        });
        break;
      }
    }
    progress.keptGroups = surviving.length;
    const rolloutMs = Date.now() - started;

    let update: UpdatePolicyResult | undefined;
    let updateMs = 0;
    let syncMs = 0;
    if (surviving.length > 0) {
      progress.phase = 'batch';
      const batch = await training.trainingAssembleBatch({
        runId,
        step,
        policyVersion: state.policy.version,
        trajectories: surviving.flatMap((g) =>
          g.trajectories.map((t) => ({
            trajectoryId: t.summary.trajectoryId,
            groupId: g.groupId,
            trajectory: t.summary.trajectory,
            advantage: t.advantage,
            reward: t.reward.total ?? 0,
          })),
        ),
      });
      progress.phase = 'update';
      const t0 = Date.now();
      update = await trainer.update_policy(
        batch,
        { uri: state.policy.uri, version: state.policy.version },
        hyperparameters(config, runId, step),
      );
      updateMs = Date.now() - t0;
      progress.phase = 'sync';
      const t1 = Date.now();
      const model = policyModelName(runId, update.policy.version);
      await Promise.all(
        config.policyHosts.map((h) =>
          syncOn(h).policySyncWeights({
            policy: { uri: update!.policy.uri, version: update!.policy.version },
            name: model,
          }),
        ),
      );
      syncMs = Date.now() - t1;
      state.policy = {
        uri: update.policy.uri,
        version: update.policy.version,
        model,
        weightsSha256: update.policy.weightsSha256,
      };
    } else {
      log.warn('no group with a learning signal: step skipped, the policy is unchanged', { runId, step });
    }

    progress.phase = 'metrics';
    const rollouts: RolloutMetrics = rolloutMetrics(generated);
    const trained: RolloutMetrics = rolloutMetrics(surviving);
    const meanReward = rollouts.reward.total.mean;
    const durationMs = Date.now() - started;
    const metrics = await training.trainingWriteMetrics({
      runId,
      step,
      metrics: {
        policyVersion: state.policy.version,
        skipped: update === undefined,
        generationBatches: generation,
        keptGroups: surviving.length,
        droppedGroups: dropped,
        staleGroups: stale,
        rollouts,
        trained,
        trainer: update?.metrics ?? null,
        weightsSha256: state.policy.weightsSha256 ?? null,
        timings: { rolloutMs, updateMs, syncMs, totalMs: durationMs },
      },
      ...(update
        ? { latest: { version: state.policy.version, model: state.policy.model, uri: state.policy.uri } }
        : {}),
    });
    upsertSearchAttributes({
      SegflowStep: [step + 1],
      SegflowPolicyVersion: [state.policy.version],
      SegflowReward: [meanReward],
    });
    state.recent = [
      ...state.recent,
      {
        step,
        policyVersion: state.policy.version,
        meanReward,
        keptGroups: surviving.length,
        droppedGroups: dropped,
        generationBatches: generation,
        skipped: update === undefined,
        metrics,
        durationMs,
      },
    ].slice(-RECENT_STEPS);
    state.step = step + 1;
  };

  let stepsThisRun = 0;
  while (state.step < config.steps && !state.stopRequested) {
    if (state.paused) {
      progress.phase = 'paused';
      await condition(() => !state.paused || state.stopRequested);
      continue;
    }
    await runStep();
    stepsThisRun += 1;
    const more = state.step < config.steps && !state.stopRequested;
    if (more && (stepsThisRun >= config.continueAsNewEvery || workflowInfo().continueAsNewSuggested)) {
      // Carry references only: the config, the policy version, the cursor, the last few summaries.
      await condition(allHandlersFinished);
      return continueAsNew<typeof trainingRun>({ runId, config, state });
    }
  }
  progress.phase = state.stopRequested && state.step < config.steps ? 'stopped' : 'completed';
  await condition(allHandlersFinished);
  return {
    runId,
    status: progress.phase === 'stopped' ? 'stopped' : 'completed',
    steps: state.step,
    policy: state.policy,
    recent: state.recent,
  };
}
