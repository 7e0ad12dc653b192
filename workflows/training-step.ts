/**
 * The phases of one `trainingRun` step (spec §6), each a function of the run's context:
 *   generateGroups — sample prompts, one `rolloutGroup` child per prompt, the DAPO filter, repeated
 *                    until the batch is full (or the generation batches run out);
 *   updateAndSync  — the batch to S3, `update_policy` on the Python trainer, the new version to every
 *                    policy host;
 *   recordStep     — the step's metrics to S3 (and the experiment trackers, when configured) and the
 *                    search attributes, the summary in the state.
 * training-run.ts owns the state, the handlers and the continue-as-new loop.
 */
import {
  ApplicationFailure,
  executeChild,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { ErrorTypes } from '../core/contracts/errors.js';
import { RunKeys, WorkflowIds } from '../core/contracts/keys.js';
import type { TrainerHyperparameters, UpdatePolicyResult } from '../core/contracts/training.js';
import type { ArtifactRef } from '../core/artifacts.js';
import { mapLimit } from '../core/concurrency.js';
import { dynamicSamplingDecision, dynamicSamplingFilter } from '../core/grpo/advantages.js';
import { trainingDetails, groupSummary } from '../core/monitor/details.js';
import { hostQueue, SearchAttributeKeys, TaskQueues } from '../core/queues.js';
import type {
  PolicySyncActivities,
  TrainingActivities,
  TrainingSample,
} from '../activities/training/activities.js';
import { rolloutGroup, type RolloutGroupInput, type RolloutGroupResult } from './rollout-group.js';
import { DEFAULT_HOST_AFFINITY_SECONDS, notPickedUp, rolloutFaultSettings } from './rollout.js';
import { groupSeed, learningRateAt, policyModelName, type TrainingConfig } from './training-config.js';
import { recordStepSeries } from './metrics.js';
import { rolloutMetrics } from './training-metrics.js';
import { trackMetrics } from './tracking.js';
import type { TrainingPhase, TrainingState } from './training-run.js';

/** The Python trainer's activities (names as registered there). */
export interface TrainerActivities {
  update_policy(
    batch: ArtifactRef,
    policy: { uri: string; version: number },
    hyperparameters: TrainerHyperparameters,
  ): Promise<UpdatePolicyResult>;
}

/** What the status query reports about the step in progress. */
export interface StepProgress {
  phase: TrainingPhase;
  generation: number;
  groupsDone: number;
  groupsStarted: number;
  keptGroups: number;
}

/** Everything a phase reads or updates. */
export interface TrainingContext {
  runId: string;
  config: TrainingConfig;
  state: TrainingState;
  progress: StepProgress;
}

/** The groups one step generated and those it trains on. */
export interface GeneratedGroups {
  generated: RolloutGroupResult[];
  surviving: RolloutGroupResult[];
  /** Groups DAPO dropped (zero reward variance). */
  dropped: number;
  /** Groups sampled from a version older than `maxStaleness` allows. */
  stale: number;
  generationBatches: number;
}

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
// a while and the run should wait for it, not fail. What a retry cannot fix fails the step at once:
// bad input, a version conflict, a configuration S3 refuses, an update that runs out of memory or
// disk (the trainer raises these non-retryable anyway; listed so the policy says so too).
function trainerFor(config: TrainingConfig) {
  return proxyActivities<TrainerActivities>({
    taskQueue: TaskQueues.trainer,
    startToCloseTimeout: `${config.trainer.timeoutMinutes} minutes`,
    heartbeatTimeout: `${config.trainer.heartbeatTimeoutSeconds} seconds`,
    retry: {
      initialInterval: '2 seconds',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      nonRetryableErrorTypes: [
        ErrorTypes.badInput,
        ErrorTypes.policyVersionConflict,
        ErrorTypes.config,
        ErrorTypes.resourceExhausted,
      ],
    },
  });
}

// Weight sync: a download of the version (seconds to minutes) and a load call on the host's policy
// server; heartbeats during the download. Pinned to the host queue, so every host gets it; with a
// schedule-to-start bound (the run's host affinity), after which a host that is gone (replaced by a
// pod with another id, or down) is skipped for the shared queue: some live host gets the version now,
// and the missing host loads it on its first turn (an unknown adapter means sync, then retry).
function syncOn(queue: string, scheduleToStartSeconds?: number) {
  return proxyActivities<PolicySyncActivities>({
    taskQueue: queue,
    ...(scheduleToStartSeconds !== undefined
      ? { scheduleToStartTimeout: `${scheduleToStartSeconds} seconds` }
      : {}),
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

/** Weight syncs with a schedule-to-start bound and the shared-queue fallback (histories before it have neither). */
export const SYNC_HOST_FALLBACK_PATCH = 'segflow-sync-host-fallback';

/** A policy host that did not pick up its weight sync in time, and the host that synced instead. */
export interface SyncFallback {
  host: string;
  to: string;
}

export function badInput(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, ErrorTypes.badInput);
}

/**
 * Histories recorded before the phase search attribute existed have no upsert at each phase change;
 * replaying them must not add one (a new command), so the upsert runs only where this patch is set.
 */
export const PHASE_SEARCH_ATTRIBUTE_PATCH = 'segflow-phase-search-attribute';

/** Refreshes the run page's "Current details" from the context (no command: UI metadata only). */
export function showDetails({ runId, config, state, progress }: TrainingContext): void {
  setCurrentDetails(
    trainingDetails({
      runId,
      step: state.step,
      steps: config.steps,
      phase: progress.phase,
      paused: state.paused,
      stopRequested: state.stopRequested,
      policyVersion: state.policy.version,
      generation: progress.generation,
      groupsDone: progress.groupsDone,
      groupsStarted: progress.groupsStarted,
      keptGroups: progress.keptGroups,
      last: state.last,
    }),
  );
}

/** A phase change: the status query, the current details and the `SegflowPhase` search attribute. */
export function enterPhase(ctx: TrainingContext, phase: TrainingPhase): void {
  ctx.progress.phase = phase;
  showDetails(ctx);
  if (patched(PHASE_SEARCH_ATTRIBUTE_PATCH))
    upsertSearchAttributes([{ key: SearchAttributeKeys.phase, value: phase }]);
}

/** The trainer's hyperparameters for one step, from the run's config. */
export function trainerHyperparameters(
  config: TrainingConfig,
  runId: string,
  step: number,
): TrainerHyperparameters {
  return {
    runId,
    step,
    seed: config.seed,
    learningRate: learningRateAt(config, step),
    weightDecay: config.weightDecay,
    adamEps: config.adamEps,
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
    ...(config.trainer.rolloutIsCap !== undefined ? { rolloutIsCap: config.trainer.rolloutIsCap } : {}),
    ...(config.trainer.microBatchTokens !== undefined
      ? { microBatchTokens: config.trainer.microBatchTokens }
      : {}),
    ...(config.trainer.dtype !== undefined ? { dtype: config.trainer.dtype } : {}),
    ...(config.trainer.gradientCheckpointing !== undefined
      ? { gradientCheckpointing: config.trainer.gradientCheckpointing }
      : {}),
    ...(config.trainer.loraRank > 0
      ? { lora: { rank: config.trainer.loraRank, alpha: config.trainer.loraAlpha } }
      : {}),
  };
}

/** The `rolloutGroup` input of prompt j of a generation batch. */
function groupInput(
  ctx: TrainingContext,
  sample: TrainingSample,
  step: number,
  generation: number,
  j: number,
): RolloutGroupInput {
  const { config, runId, state } = ctx;
  const { temperature, topP, topK } = config.rollout.sampling;
  return {
    groupId: WorkflowIds.rolloutGroup(runId, step, generation, j),
    sample,
    n: config.groupSize,
    concurrency: config.rollout.trajectoryConcurrency ?? config.groupSize,
    policy: {
      version: state.policy.version,
      model: state.policy.model,
      // a trained version's folder: a policy server that lost its adapter loads it again
      ...(state.policy.version > 0 ? { uri: state.policy.uri } : {}),
      sampling: {
        temperature,
        ...(topP !== undefined ? { topP } : {}),
        ...(topK !== undefined ? { topK } : {}),
        seed: groupSeed(config.seed, step, generation, j),
      },
      ...config.rollout.protocol,
    },
    ...(config.rollout.search ? { search: config.rollout.search } : {}),
    ...(config.rollout.settings ? { settings: config.rollout.settings } : {}),
    reward: { preset: config.reward.preset, gate: config.reward.gate },
    artifactPrefix: RunKeys.group(runId, step, generation, j),
    runId,
    step,
    ...rolloutFaultSettings(config.rollout),
  };
}

/**
 * Fails the step when more than `maxFailedFraction` of this generation's trajectories failed after
 * their retries (a systematic fault: a bad key, a dead backend), naming the first errors; below it
 * the step trains on the trajectories that finished.
 */
function checkFailedTrajectories(
  ctx: TrainingContext,
  groups: readonly RolloutGroupResult[],
  step: number,
): void {
  const failed = groups.flatMap((g) => g.failed ?? []);
  if (failed.length === 0) return;
  const total = failed.length + groups.reduce((n, g) => n + g.trajectories.length, 0);
  const limit = ctx.config.rollout.maxFailedFraction;
  log.warn('trajectories failed after their retries', {
    runId: ctx.runId,
    step,
    failed: failed.length,
    total,
  });
  if (failed.length / total > limit) {
    const first = failed
      .slice(0, 3)
      .map((f) => `${f.trajectoryId}: ${f.error}`)
      .join('\n');
    throw ApplicationFailure.nonRetryable(
      `step ${step}: ${failed.length} of ${total} trajectories failed after their retries, more than ` +
        `rollout.maxFailedFraction = ${limit}. First errors:\n${first}`,
      ErrorTypes.trajectoriesFailed,
    );
  }
}

/** One `rolloutGroup` child per sample, at most `groupConcurrency` at a time; results in order. */
async function runGroups(
  ctx: TrainingContext,
  samples: TrainingSample[],
  step: number,
  generation: number,
): Promise<RolloutGroupResult[]> {
  const { config, progress } = ctx;
  const concurrency = Math.max(1, config.rollout.groupConcurrency ?? samples.length);
  return mapLimit(samples, concurrency, async (sample, j) => {
    const input = groupInput(ctx, sample, step, generation, j);
    progress.groupsStarted += 1;
    showDetails(ctx);
    const result = await executeChild(rolloutGroup, {
      workflowId: input.groupId,
      taskQueue: TaskQueues.orchestrator,
      args: [input],
      staticSummary: groupSummary({
        step,
        generation,
        group: j,
        sampleId: sample.id,
        ability: sample.ability,
      }),
      staticDetails: `run \`${ctx.runId}\` · policy v${input.policy?.version ?? 0} · ${input.n} trajectories · seed ${input.policy?.sampling?.seed ?? '–'}\n\n**question:** ${sample.question}`,
      typedSearchAttributes: [
        { key: SearchAttributeKeys.runId, value: ctx.runId },
        { key: SearchAttributeKeys.step, value: step },
      ],
    });
    progress.groupsDone += 1;
    showDetails(ctx);
    return result;
  });
}

/** Sampling, rollouts and the DAPO filter: generation batches until the step's batch is full. */
export async function generateGroups(ctx: TrainingContext): Promise<GeneratedGroups> {
  const { config, state, progress, runId } = ctx;
  const step = state.step;
  const generated: RolloutGroupResult[] = [];
  let surviving: RolloutGroupResult[] = [];
  let dropped = 0;
  let stale = 0;
  let generation = 0;
  for (;;) {
    progress.generation = generation;
    enterPhase(ctx, 'sampling');
    const sampled = await training.trainingSamplePrompts.executeWithOptions(
      { summary: `sample ${config.promptsPerStep} prompts · step ${step} · gen ${generation}` },
      [
        {
          dataset: config.dataset,
          seed: config.seed,
          cursor: state.cursor,
          count: config.promptsPerStep,
        },
      ],
    );
    state.cursor = sampled.cursor;
    enterPhase(ctx, 'rollouts');
    const groups = await runGroups(ctx, sampled.samples, step, generation);
    checkFailedTrajectories(ctx, groups, step);
    generated.push(...groups);
    generation += 1;
    const fresh = groups.filter(
      (g) =>
        g.trajectories.length > 0 &&
        g.trajectories.every((t) => t.summary.policyVersion >= state.policy.version - config.maxStaleness),
    );
    stale += groups.length - fresh.length;
    if (!config.dapo.enabled) {
      surviving = fresh;
      break;
    }
    const { keptGroups } = dynamicSamplingFilter(
      fresh.flatMap((g) => g.trajectories.map((t) => ({ groupId: g.groupId, reward: t.reward.total ?? 0 }))),
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
  return { generated, surviving, dropped, stale, generationBatches: generation };
}

/** The batch, the update on the trainer and the weight sync; the new version goes into the state. */
export async function updateAndSync(
  ctx: TrainingContext,
  surviving: RolloutGroupResult[],
): Promise<{ update: UpdatePolicyResult; updateMs: number; syncMs: number; syncFallbacks?: SyncFallback[] }> {
  const { config, state, runId } = ctx;
  const step = state.step;
  enterPhase(ctx, 'batch');
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
  enterPhase(ctx, 'update');
  const t0 = Date.now();
  const update = await trainerFor(config).update_policy.executeWithOptions(
    { summary: `update v${state.policy.version} → v${state.policy.version + 1} · step ${step}` },
    [
      batch,
      { uri: state.policy.uri, version: state.policy.version },
      trainerHyperparameters(config, runId, step),
    ],
  );
  const updateMs = Date.now() - t0;
  enterPhase(ctx, 'sync');
  const t1 = Date.now();
  const name = policyModelName(runId, update.policy.version);
  const policy = { uri: update.policy.uri, version: update.policy.version };
  const hosts = state.policyHosts ?? config.policyHosts;
  const bounded = patched(SYNC_HOST_FALLBACK_PATCH);
  const affinity = config.rollout.hostAffinitySeconds ?? DEFAULT_HOST_AFFINITY_SECONDS;
  const fallbacks: SyncFallback[] = [];
  const input = [{ policy, name }] as const;
  const synced = await Promise.all(
    hosts.map(async (h) => {
      try {
        return await syncOn(
          hostQueue(TaskQueues.policy, h),
          bounded ? affinity : undefined,
        ).policySyncWeights.executeWithOptions({ summary: `sync v${policy.version} → host ${h}` }, [
          ...input,
        ]);
      } catch (err) {
        if (!bounded || !notPickedUp(err)) throw err;
        const out = await syncOn(TaskQueues.policy).policySyncWeights.executeWithOptions(
          { summary: `sync v${policy.version} → any host (host ${h} did not pick it up in ${affinity} s)` },
          [...input],
        );
        fallbacks.push({ host: h, to: out.hostId });
        log.warn(
          'a policy host did not pick up its weight sync; another host synced, it loads on first use',
          {
            runId,
            version: policy.version,
            host: h,
            to: out.hostId,
          },
        );
        return out;
      }
    }),
  );
  // A LoRA version is served under its own name; a full-weight version reloaded in place under the
  // server's (histories from before `served` existed: the version's name).
  const served = new Set(synced.map((s) => s.served ?? name));
  if (served.size > 1) {
    throw badInput(
      `policy hosts serve v${policy.version} under different names (${[...served].join(', ')}): ` +
        'give every policy host the same policy.model and policy.fullWeightSync',
    );
  }
  const model = [...served][0] ?? name;
  const syncMs = Date.now() - t1;
  state.policy = { ...policy, model, weightsSha256: update.policy.weightsSha256 };
  return { update, updateMs, syncMs, ...(fallbacks.length > 0 ? { syncFallbacks: fallbacks } : {}) };
}

/** The step's metrics (S3 + search attributes) and its summary in the state; advances the step. */
export async function recordStep(
  ctx: TrainingContext,
  groups: GeneratedGroups,
  trained:
    | { update: UpdatePolicyResult; updateMs: number; syncMs: number; syncFallbacks?: SyncFallback[] }
    | undefined,
  timings: { started: number; rolloutMs: number },
): Promise<void> {
  const { state, runId, config } = ctx;
  const step = state.step;
  enterPhase(ctx, 'metrics');
  const rollouts = rolloutMetrics(groups.generated);
  const meanReward = rollouts.reward.total.mean;
  const durationMs = Date.now() - timings.started;
  const stepMetrics = {
    policyVersion: state.policy.version,
    skipped: trained === undefined,
    generationBatches: groups.generationBatches,
    keptGroups: groups.surviving.length,
    droppedGroups: groups.dropped,
    staleGroups: groups.stale,
    rollouts,
    trained: rolloutMetrics(groups.surviving),
    trainer: trained?.update.metrics ?? null,
    weightsSha256: state.policy.weightsSha256 ?? null,
    ...(trained?.syncFallbacks ? { syncFallbacks: trained.syncFallbacks } : {}),
    timings: {
      rolloutMs: timings.rolloutMs,
      updateMs: trained?.updateMs ?? 0,
      syncMs: trained?.syncMs ?? 0,
      totalMs: durationMs,
    },
  };
  const metrics = await training.trainingWriteMetrics({
    runId,
    step,
    metrics: stepMetrics,
    ...(trained
      ? { latest: { version: state.policy.version, model: state.policy.model, uri: state.policy.uri } }
      : {}),
  });
  recordStepSeries({
    runId,
    step,
    rollouts,
    keptGroups: groups.surviving.length,
    droppedGroups: groups.dropped,
    timings: {
      rolloutMs: timings.rolloutMs,
      updateMs: trained?.updateMs ?? 0,
      syncMs: trained?.syncMs ?? 0,
      totalMs: durationMs,
    },
  });
  await trackMetrics(config.tracker, { runId, step, kind: 'training', metrics: stepMetrics });
  upsertSearchAttributes([
    { key: SearchAttributeKeys.step, value: step + 1 },
    { key: SearchAttributeKeys.policyVersion, value: state.policy.version },
    { key: SearchAttributeKeys.reward, value: meanReward },
  ]);
  const trainer = trained?.update.metrics;
  state.last = {
    step,
    policyVersion: state.policy.version,
    reward: {
      total: meanReward,
      outcome: rollouts.reward.outcome,
      format: rollouts.reward.format,
      process: rollouts.reward.process,
      igr: rollouts.reward.igr,
    },
    keptGroups: groups.surviving.length,
    droppedGroups: groups.dropped,
    skipped: trained === undefined,
    trainer: trainer
      ? { loss: trainer.loss, pgClipFraction: trainer.pgClipFraction, gradNorm: trainer.gradNorm }
      : null,
    metricsUri: metrics.uri,
  };
  state.recent = [
    ...state.recent,
    {
      step,
      policyVersion: state.policy.version,
      meanReward,
      keptGroups: groups.surviving.length,
      droppedGroups: groups.dropped,
      generationBatches: groups.generationBatches,
      skipped: trained === undefined,
      metrics,
      durationMs,
    },
  ].slice(-RECENT_STEPS);
  state.step = step + 1;
  showDetails(ctx);
  // Runs recorded before this existed have no state write at the end of a step.
  if (patched(SAVE_STATE_PATCH)) {
    await training.trainingSaveState.executeWithOptions(
      { summary: `save the run's state after step ${step}` },
      [{ runId, config: config as unknown as Record<string, unknown>, state: { ...state } }],
    );
  }
}

/** The end-of-step state write (`runs/<run>/state.json`, what `segr train resume` continues from). */
export const SAVE_STATE_PATCH = 'segflow-training-save-state';

/** One step: generate → (update → sync, when any group has a learning signal) → record. */
export async function runTrainingStep(ctx: TrainingContext): Promise<void> {
  const started = Date.now();
  Object.assign(ctx.progress, { generation: 0, groupsDone: 0, groupsStarted: 0, keptGroups: 0 });
  const groups = await generateGroups(ctx);
  const rolloutMs = Date.now() - started;
  let trained: Awaited<ReturnType<typeof updateAndSync>> | undefined;
  if (groups.surviving.length > 0) {
    trained = await updateAndSync(ctx, groups.surviving);
  } else {
    log.warn('no group with a learning signal: step skipped, the policy is unchanged', {
      runId: ctx.runId,
      step: ctx.state.step,
    });
  }
  await recordStep(ctx, groups, trained, { started, rolloutMs });
}
