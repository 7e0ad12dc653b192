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
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  executeChild,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  upsertSearchAttributes,
  workflowInfo,
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
  TrainingSampleRef,
} from '../activities/training/activities.js';
import {
  groupOutline,
  isStoredGroupResult,
  rolloutGroup,
  type FailedTrajectory,
  type RolloutGroupInput,
  type RolloutGroupResult,
  type StoredGroupResult,
} from './rollout-group.js';
import { DEFAULT_HOST_AFFINITY_SECONDS, notPickedUp, rolloutFaultSettings } from './rollout.js';
import { groupSeed, learningRateAt, policyModelName, type TrainingConfig } from './training-config.js';
import { recordStepSeries } from './metrics.js';
import {
  emptyTally,
  mergeTallies,
  metricsFromTally,
  tallyGroup,
  type RolloutTally,
} from './training-metrics.js';
import { trackMetrics } from './tracking.js';
import type { TrainingPhase, TrainingRunInput, TrainingState } from './training-run.js';

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
  /** When the step in progress started (workflow time; carried across a mid-step continue-as-new). */
  stepStartedAt?: number;
  /** Generation batches this workflow run has rolled out (all steps). */
  generationsThisRun?: number;
  /** The step in progress passes prompts and group results by reference ({@link GROUPS_BY_REFERENCE_PATCH}). */
  byReference?: boolean;
}

/**
 * Whether this workflow run has held enough generation batches (`generationBatchesPerRun`) or the
 * server suggests continuing as new. Only steps that pass groups by reference count batches, so a
 * recorded history replays its own continue-as-new points.
 */
export function runIsFull(ctx: TrainingContext): boolean {
  if (workflowInfo().continueAsNewSuggested) return true;
  return ctx.byReference === true && (ctx.generationsThisRun ?? 0) >= ctx.config.generationBatchesPerRun;
}

/**
 * A group the step trains on: its stored result (a reference), or, in histories recorded before
 * group results were stored, the whole result.
 */
export type BatchGroup =
  { groupId: string; stored: ArtifactRef } | { groupId: string; full: RolloutGroupResult };

/** The groups one step generated and those it trains on. */
export interface GeneratedGroups {
  /** The metrics tally of every group generated. */
  generated: RolloutTally;
  /** The groups trained on, in order. */
  surviving: BatchGroup[];
  /** The metrics tally of the surviving groups. */
  trained: RolloutTally;
  /** Groups DAPO dropped (zero reward variance). */
  dropped: number;
  /** Groups sampled from a version older than `maxStaleness` allows. */
  stale: number;
  generationBatches: number;
}

/**
 * A step whose DAPO generation batches went on in a new workflow run (continue-as-new when the
 * server suggested it): where the generations stand. Its size grows with promptsPerStep only (one
 * reference per surviving group), never with the number of generations or trajectories.
 */
export interface PartialStep {
  step: number;
  /** The next generation batch. */
  generation: number;
  surviving: BatchGroup[];
  trained: RolloutTally;
  generated: RolloutTally;
  dropped: number;
  stale: number;
  /** When the step started (ms since the epoch, workflow time). */
  startedAt: number;
}

/** What the step keeps of one group's result. */
interface GroupView {
  groupId: string;
  /** Each finished trajectory's total reward. */
  rewards: number[];
  oldestPolicyVersion: number | null;
  failedCount: number;
  /** The first failures (all of them, in histories from before group results were stored). */
  failed: FailedTrajectory[];
  tally: RolloutTally;
  batch: BatchGroup;
}

/**
 * Steps recorded before group results were stored in S3 sampled whole prompts and got every
 * trajectory's summary back from each group; replaying them must take that path, so the prompts
 * travel as record references, and the groups' results as stored references, only where this
 * patch is set. The same patch lets the DAPO loop continue-as-new between generation batches.
 */
export const GROUPS_BY_REFERENCE_PATCH = 'segflow-training-groups-by-reference';

function viewOf(result: RolloutGroupResult | StoredGroupResult): GroupView {
  if (isStoredGroupResult(result)) {
    return {
      groupId: result.groupId,
      rewards: result.rewards,
      oldestPolicyVersion: result.oldestPolicyVersion,
      failedCount: result.failedCount,
      failed: result.failed,
      tally: result.tally,
      batch: { groupId: result.groupId, stored: result.stored },
    };
  }
  const failed = result.failed ?? [];
  return {
    groupId: result.groupId,
    ...groupOutline(result),
    failedCount: failed.length,
    failed,
    tally: tallyGroup(result),
    batch: { groupId: result.groupId, full: result },
  };
}

const tallyOf = (views: readonly GroupView[], start = emptyTally()): RolloutTally =>
  views.reduce((t, v) => mergeTallies(t, v.tally), start);

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

/** A sampled prompt: whole (histories from before group results were stored) or its record. */
type SampledPrompt = { whole: TrainingSample } | { ref: TrainingSampleRef };

/** The `rolloutGroup` input of prompt j of a generation batch. */
function groupInput(
  ctx: TrainingContext,
  prompt: SampledPrompt,
  step: number,
  generation: number,
  j: number,
): RolloutGroupInput {
  const { config, runId, state } = ctx;
  const { temperature, topP, topK } = config.rollout.sampling;
  return {
    groupId: WorkflowIds.rolloutGroup(runId, step, generation, j),
    ...('whole' in prompt
      ? { sample: prompt.whole }
      : { sampleRecord: prompt.ref.record, storeResult: true }),
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
function checkFailedTrajectories(ctx: TrainingContext, groups: readonly GroupView[], step: number): void {
  const failedCount = groups.reduce((n, g) => n + g.failedCount, 0);
  if (failedCount === 0) return;
  const failed = groups.flatMap((g) => g.failed);
  const total = failedCount + groups.reduce((n, g) => n + g.rewards.length, 0);
  const limit = ctx.config.rollout.maxFailedFraction;
  log.warn('trajectories failed after their retries', {
    runId: ctx.runId,
    step,
    failed: failedCount,
    total,
  });
  if (failedCount / total > limit) {
    const first = failed
      .slice(0, 3)
      .map((f) => `${f.trajectoryId}: ${f.error}`)
      .join('\n');
    throw ApplicationFailure.nonRetryable(
      `step ${step}: ${failedCount} of ${total} trajectories failed after their retries, more than ` +
        `rollout.maxFailedFraction = ${limit}. First errors:\n${first}`,
      ErrorTypes.trajectoriesFailed,
    );
  }
}

/** One `rolloutGroup` child per sample, at most `groupConcurrency` at a time; results in order. */
async function runGroups(
  ctx: TrainingContext,
  prompts: SampledPrompt[],
  step: number,
  generation: number,
): Promise<GroupView[]> {
  const { config, progress } = ctx;
  const concurrency = Math.max(1, config.rollout.groupConcurrency ?? prompts.length);
  return mapLimit(prompts, concurrency, async (prompt, j) => {
    const sample = 'whole' in prompt ? prompt.whole : prompt.ref;
    const input = groupInput(ctx, prompt, step, generation, j);
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
        ability: sample.ability ?? 'one-hop',
      }),
      staticDetails:
        `run \`${ctx.runId}\` · policy v${input.policy?.version ?? 0} · ${input.n} trajectories · seed ${input.policy?.sampling?.seed ?? '–'}` +
        ('whole' in prompt
          ? `\n\n**question:** ${prompt.whole.question}`
          : `\n\n**sample:** ${prompt.ref.record.uri}`),
      typedSearchAttributes: [
        { key: SearchAttributeKeys.runId, value: ctx.runId },
        { key: SearchAttributeKeys.step, value: step },
      ],
    });
    progress.groupsDone += 1;
    showDetails(ctx);
    return viewOf(result);
  });
}

/** The next `promptsPerStep` prompts from the run's cursor (whole, or as record references). */
async function samplePrompts(
  ctx: TrainingContext,
  step: number,
  generation: number,
  byReference: boolean,
): Promise<SampledPrompt[]> {
  const { config, state } = ctx;
  const options = { summary: `sample ${config.promptsPerStep} prompts · step ${step} · gen ${generation}` };
  const args = [
    { dataset: config.dataset, seed: config.seed, cursor: state.cursor, count: config.promptsPerStep },
  ] as const;
  if (byReference) {
    const sampled = await training.trainingSamplePromptRefs.executeWithOptions(options, [...args]);
    state.cursor = sampled.cursor;
    return sampled.samples.map((ref) => ({ ref }));
  }
  const sampled = await training.trainingSamplePrompts.executeWithOptions(options, [...args]);
  state.cursor = sampled.cursor;
  return sampled.samples.map((whole) => ({ whole }));
}

/**
 * Sampling, rollouts and the DAPO filter: generation batches until the step's batch is full. When
 * the server suggests it between two batches (a long DAPO search), the step goes on in a new
 * workflow run with its partial state (`state.partial`).
 */
export async function generateGroups(ctx: TrainingContext): Promise<GeneratedGroups> {
  const { config, state, progress, runId } = ctx;
  const step = state.step;
  const byReference = patched(GROUPS_BY_REFERENCE_PATCH);
  ctx.byReference = byReference;
  const resumed = state.partial?.step === step ? state.partial : undefined;
  // Surviving groups of the runs before this one (fewer than promptsPerStep, or the step would
  // have been ready) and their tally; the slicing below only ever cuts this run's groups.
  const carried = resumed?.surviving ?? [];
  const carriedTally = resumed?.trained ?? emptyTally();
  let generated = resumed?.generated ?? emptyTally();
  let surviving: GroupView[] = [];
  let dropped = resumed?.dropped ?? 0;
  let stale = resumed?.stale ?? 0;
  let generation = resumed?.generation ?? 0;
  for (;;) {
    progress.generation = generation;
    enterPhase(ctx, 'sampling');
    const prompts = await samplePrompts(ctx, step, generation, byReference);
    enterPhase(ctx, 'rollouts');
    const groups = await runGroups(ctx, prompts, step, generation);
    checkFailedTrajectories(ctx, groups, step);
    generated = tallyOf(groups, generated);
    generation += 1;
    ctx.generationsThisRun = (ctx.generationsThisRun ?? 0) + 1;
    const fresh = groups.filter(
      (g) =>
        g.rewards.length > 0 &&
        g.oldestPolicyVersion !== null &&
        g.oldestPolicyVersion >= state.policy.version - config.maxStaleness,
    );
    stale += groups.length - fresh.length;
    if (!config.dapo.enabled) {
      surviving = fresh;
      break;
    }
    const { keptGroups } = dynamicSamplingFilter(
      fresh.flatMap((g) => g.rewards.map((reward) => ({ groupId: g.groupId, reward }))),
    );
    const kept = new Set(keptGroups);
    dropped += fresh.length - keptGroups.length;
    surviving.push(...fresh.filter((g) => kept.has(g.groupId)));
    progress.keptGroups = carried.length + surviving.length;
    const decision = dynamicSamplingDecision({
      survivingGroups: [...carried, ...surviving].map((g) => g.groupId),
      promptBatchSize: config.promptsPerStep,
      generationBatches: generation,
      maxGenerationBatches: config.dapo.maxGenerationBatches,
    });
    if (decision.status === 'ready') {
      surviving = surviving.slice(0, config.promptsPerStep - carried.length);
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
    if (byReference && runIsFull(ctx)) {
      state.partial = {
        step,
        generation,
        surviving: [...carried, ...surviving.map((g) => g.batch)],
        trained: tallyOf(surviving, carriedTally),
        generated,
        dropped,
        stale,
        startedAt: resumed?.startedAt ?? ctx.stepStartedAt ?? Date.now(),
      };
      log.info('this workflow run holds enough generation batches: the step goes on in a new run', {
        runId,
        step,
        generation,
      });
      await condition(allHandlersFinished);
      await continueAsNew<(input: TrainingRunInput) => Promise<unknown>>({ runId, config, state });
    }
  }
  delete state.partial;
  progress.keptGroups = carried.length + surviving.length;
  return {
    generated,
    surviving: [...carried, ...surviving.map((g) => g.batch)],
    trained: tallyOf(surviving, carriedTally),
    dropped,
    stale,
    generationBatches: generation,
  };
}

/** The trainer's batch in S3: from the stored group results, or (older histories) listed. */
async function assembleBatch(ctx: TrainingContext, surviving: readonly BatchGroup[]): Promise<ArtifactRef> {
  const { state, runId } = ctx;
  const base = { runId, step: state.step, policyVersion: state.policy.version };
  const stored = surviving.flatMap((g) => ('stored' in g ? [g.stored] : []));
  if (stored.length === surviving.length) return training.trainingAssembleBatch({ ...base, groups: stored });
  return training.trainingAssembleBatch({
    ...base,
    trajectories: surviving.flatMap((g) =>
      'full' in g
        ? g.full.trajectories.map((t) => ({
            trajectoryId: t.summary.trajectoryId,
            groupId: g.groupId,
            trajectory: t.summary.trajectory,
            advantage: t.advantage,
            reward: t.reward.total ?? 0,
          }))
        : [],
    ),
  });
}

/** The batch, the update on the trainer and the weight sync; the new version goes into the state. */
export async function updateAndSync(
  ctx: TrainingContext,
  surviving: BatchGroup[],
): Promise<{ update: UpdatePolicyResult; updateMs: number; syncMs: number; syncFallbacks?: SyncFallback[] }> {
  const { config, state, runId } = ctx;
  const step = state.step;
  enterPhase(ctx, 'batch');
  const batch = await assembleBatch(ctx, surviving);
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
  const rollouts = metricsFromTally(groups.generated);
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
    trained: metricsFromTally(groups.trained),
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
  const started = ctx.state.partial?.step === ctx.state.step ? ctx.state.partial.startedAt : Date.now();
  ctx.stepStartedAt = started;
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
