/**
 * The phases of one `trainingRun` step (spec §6), each a function of the run's context:
 *   generateGroups — sample prompts, one `rolloutGroup` child per prompt, the DAPO filter, repeated
 *                    until the batch is full (or the generation batches run out);
 *   updateAndSync  — the batch to S3, `update_policy` on the Python trainer, the new version to every
 *                    policy host;
 *   recordStep     — the step's metrics to S3 (and the experiment trackers, when configured) and the
 *                    search attributes, the summary in the state.
 * Pipelined (`maxStaleness` ≥ 1, {@link PIPELINE_PATCH}), the next step's generateGroups runs beside
 * updateAndSync and recordStep, on the policy of the step in front (runTrainingStep).
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
  DatasetCursor,
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
export interface StepProgress extends GenerationProgress {
  phase: TrainingPhase;
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
  /** The next step, while its groups are generated ahead (pipelined training). */
  ahead?: AheadProgress;
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
  /** The oldest policy version the surviving groups sampled from (absent in older histories). */
  oldestVersion?: number;
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
  /** The oldest policy version the surviving groups sampled from. */
  oldestVersion?: number;
}

/** What the status query reports about a step's generation. */
export interface GenerationProgress {
  generation: number;
  groupsDone: number;
  groupsStarted: number;
  keptGroups: number;
}

/**
 * How one step's groups are generated: in front (the step being trained next, synchronous) or ahead
 * (the next step's, while the trainer updates the policy: pipelined training, `maxStaleness` ≥ 1).
 */
export interface GenerationPlan {
  step: number;
  /** The policy every group of the step samples from (fixed when its generation starts). */
  policy: { uri: string; version: number; model: string };
  /** The version the step's update starts from: the staleness filter's reference. */
  parentVersion: number;
  /** Where the step's prompts come from; advanced as they are drawn. */
  cursor: { value: DatasetCursor };
  progress: GenerationProgress;
  /** Whether phase changes are shown (the step in front; not a step generated ahead). */
  announce: boolean;
  /** Whether the step may go on in a new workflow run between generation batches now. */
  mayContinueAsNew: () => boolean;
  /** When the step's generation started (workflow time). */
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

/**
 * The truncated importance-sampling cap of pipelined runs when the config sets none: 2, the cap of
 * the TIS correction for off-policy rollouts (Yao et al. 2025, "Your efficient RL framework secretly
 * brings you off-policy RL training"; veRL's `tis_imp_ratio_cap` default).
 */
export const PIPELINED_IS_CAP = 2;

function rolloutIsCap(config: TrainingConfig): { rolloutIsCap?: number } {
  const cap = config.trainer.rolloutIsCap ?? (config.maxStaleness > 0 ? PIPELINED_IS_CAP : undefined);
  return cap !== undefined ? { rolloutIsCap: cap } : {};
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
    ...rolloutIsCap(config),
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
  plan: GenerationPlan,
  prompt: SampledPrompt,
  generation: number,
  j: number,
): RolloutGroupInput {
  const { config, runId } = ctx;
  const { step, policy } = plan;
  const { temperature, topP, topK } = config.rollout.sampling;
  return {
    groupId: WorkflowIds.rolloutGroup(runId, step, generation, j),
    ...('whole' in prompt
      ? { sample: prompt.whole }
      : { sampleRecord: prompt.ref.record, storeResult: true }),
    n: config.groupSize,
    concurrency: config.rollout.trajectoryConcurrency ?? config.groupSize,
    policy: {
      version: policy.version,
      model: policy.model,
      // a trained version's folder: a policy server that lost its adapter loads it again
      ...(policy.version > 0 ? { uri: policy.uri } : {}),
      sampling: {
        temperature,
        ...(topP !== undefined ? { topP } : {}),
        ...(topK !== undefined ? { topK } : {}),
        seed: groupSeed(config.seed, step, generation, j),
        // off-policy steps weigh each token by the sampling policy's log-prob (truncated IS)
        ...(config.maxStaleness > 0 ? { logprobs: true } : {}),
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
  plan: GenerationPlan,
  prompts: SampledPrompt[],
  generation: number,
): Promise<GroupView[]> {
  const { config } = ctx;
  const { step, progress } = plan;
  const shown = () => plan.announce && showDetails(ctx);
  const concurrency = Math.max(1, config.rollout.groupConcurrency ?? prompts.length);
  return mapLimit(prompts, concurrency, async (prompt, j) => {
    const sample = 'whole' in prompt ? prompt.whole : prompt.ref;
    const input = groupInput(ctx, plan, prompt, generation, j);
    progress.groupsStarted += 1;
    shown();
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
    shown();
    return viewOf(result);
  });
}

/** The next `promptsPerStep` prompts from the plan's cursor (whole, or as record references). */
async function samplePrompts(
  ctx: TrainingContext,
  plan: GenerationPlan,
  generation: number,
  byReference: boolean,
): Promise<SampledPrompt[]> {
  const { config } = ctx;
  const { step, cursor } = plan;
  const options = { summary: `sample ${config.promptsPerStep} prompts · step ${step} · gen ${generation}` };
  const args = [
    { dataset: config.dataset, seed: config.seed, cursor: cursor.value, count: config.promptsPerStep },
  ] as const;
  if (byReference) {
    const sampled = await training.trainingSamplePromptRefs.executeWithOptions(options, [...args]);
    cursor.value = sampled.cursor;
    return sampled.samples.map((ref) => ({ ref }));
  }
  const sampled = await training.trainingSamplePrompts.executeWithOptions(options, [...args]);
  cursor.value = sampled.cursor;
  return sampled.samples.map((whole) => ({ whole }));
}

/** The plan of the step in front: the run's policy, cursor and progress. */
export function planInFront(ctx: TrainingContext): GenerationPlan {
  const { state } = ctx;
  return {
    step: state.step,
    policy: state.policy,
    parentVersion: state.policy.version,
    cursor: {
      get value() {
        return state.cursor;
      },
      set value(c: DatasetCursor) {
        state.cursor = c;
      },
    },
    progress: ctx.progress,
    announce: true,
    mayContinueAsNew: () => true,
    startedAt: ctx.stepStartedAt ?? Date.now(),
  };
}

/**
 * Sampling, rollouts and the DAPO filter: generation batches until the step's batch is full. When
 * the server suggests it between two batches (a long DAPO search), the step goes on in a new
 * workflow run with its partial state (`state.partial`).
 */
export async function generateGroups(
  ctx: TrainingContext,
  plan: GenerationPlan = planInFront(ctx),
): Promise<GeneratedGroups> {
  const { config, state, runId } = ctx;
  const { step, progress } = plan;
  const phase = (p: TrainingPhase) => plan.announce && enterPhase(ctx, p);
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
  const oldest = (views: readonly GroupView[]): number | undefined => {
    const versions = views.flatMap((g) => (g.oldestPolicyVersion === null ? [] : [g.oldestPolicyVersion]));
    if (resumed?.oldestVersion !== undefined) versions.push(resumed.oldestVersion);
    return versions.length > 0 ? Math.min(...versions) : undefined;
  };
  for (;;) {
    progress.generation = generation;
    phase('sampling');
    const prompts = await samplePrompts(ctx, plan, generation, byReference);
    phase('rollouts');
    const groups = await runGroups(ctx, plan, prompts, generation);
    checkFailedTrajectories(ctx, groups, step);
    generated = tallyOf(groups, generated);
    generation += 1;
    ctx.generationsThisRun = (ctx.generationsThisRun ?? 0) + 1;
    const fresh = groups.filter(
      (g) =>
        g.rewards.length > 0 &&
        g.oldestPolicyVersion !== null &&
        g.oldestPolicyVersion >= plan.parentVersion - config.maxStaleness,
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
    if (byReference && plan.mayContinueAsNew() && runIsFull(ctx)) {
      const oldestVersion = oldest(surviving);
      state.partial = {
        step,
        generation,
        surviving: [...carried, ...surviving.map((g) => g.batch)],
        trained: tallyOf(surviving, carriedTally),
        generated,
        dropped,
        stale,
        startedAt: resumed?.startedAt ?? plan.startedAt,
        ...(oldestVersion !== undefined ? { oldestVersion } : {}),
      };
      // a step generated ahead goes on in front: its prompts are drawn, its update is the next
      state.cursor = plan.cursor.value;
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
  const oldestVersion = oldest(surviving);
  return {
    generated,
    surviving: [...carried, ...surviving.map((g) => g.batch)],
    trained: tallyOf(surviving, carriedTally),
    dropped,
    stale,
    generationBatches: generation,
    ...(oldestVersion !== undefined ? { oldestVersion } : {}),
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

/**
 * How far off-policy a step trained: the version its update started from minus the oldest version
 * its groups sampled (0 on synchronous steps, at most `maxStaleness`).
 */
function offPolicy(
  version: number,
  groups: GeneratedGroups,
  updated: boolean,
  pipelined: boolean,
): { pipelined: boolean; staleness: number | null; sampledFrom: number | null } {
  const parent = updated ? version - 1 : version;
  const sampledFrom = groups.oldestVersion ?? null;
  return { pipelined, staleness: sampledFrom === null ? null : parent - sampledFrom, sampledFrom };
}

/** The step's metrics (S3 + search attributes) and its summary in the state; advances the step. */
export async function recordStep(
  ctx: TrainingContext,
  groups: GeneratedGroups,
  trained:
    | { update: UpdatePolicyResult; updateMs: number; syncMs: number; syncFallbacks?: SyncFallback[] }
    | undefined,
  timings: { started: number; rolloutMs: number; pipelined?: boolean },
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
    ...(timings.pipelined !== undefined
      ? offPolicy(state.policy.version, groups, trained !== undefined, timings.pipelined)
      : {}),
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

/**
 * Pipelined training (`maxStaleness` ≥ 1): the next step's groups are generated while the trainer
 * updates the policy and the hosts sync it; histories recorded before it train synchronously.
 */
export const PIPELINE_PATCH = 'segflow-pipelined-training';

/** A step whose groups were generated ahead, during the previous step's update (carried in the state). */
export interface ReadyStep {
  step: number;
  groups: GeneratedGroups;
  /** When its generation started (workflow time). */
  startedAt: number;
  rolloutMs: number;
  /** The policy version its groups sampled from. */
  policyVersion: number;
  progress: GenerationProgress;
}

/** The step generated ahead while the current one trains, as the status query shows it. */
export interface AheadProgress {
  step: number;
  policyVersion: number;
  progress: GenerationProgress;
}

/** Whether the next step's generation may start now, beside this step's update. */
function mayGenerateAhead(ctx: TrainingContext): boolean {
  const { state, config } = ctx;
  return state.step + 1 < config.steps && !state.stopRequested && !state.paused;
}

/**
 * The next step's generation, on the policy the current step trains from (one version behind the
 * one its own update starts from: staleness 1), from the run's cursor; the cursor and the result go
 * into the state once this step is recorded. It may continue-as-new (a long DAPO search) only after
 * the update in flight is recorded.
 */
function generateAhead(
  ctx: TrainingContext,
  updating: () => boolean,
): { plan: GenerationPlan; done: Promise<{ ok: ReadyStep } | { error: unknown }> } {
  const { state } = ctx;
  const progress: GenerationProgress = { generation: 0, groupsDone: 0, groupsStarted: 0, keptGroups: 0 };
  const plan: GenerationPlan = {
    step: state.step + 1,
    policy: { uri: state.policy.uri, version: state.policy.version, model: state.policy.model },
    parentVersion: state.policy.version + 1,
    cursor: { value: state.cursor },
    progress,
    announce: false,
    mayContinueAsNew: () => !updating(),
    startedAt: Date.now(),
  };
  ctx.ahead = { step: plan.step, policyVersion: plan.policy.version, progress };
  // held as a value, so a failure waits for the update in flight instead of being unhandled
  const done = generateGroups(ctx, plan).then(
    (groups) => ({
      ok: {
        step: plan.step,
        groups,
        startedAt: plan.startedAt,
        rolloutMs: Date.now() - plan.startedAt,
        policyVersion: plan.policy.version,
        progress: { ...progress },
      },
    }),
    (error: unknown) => ({ error }),
  );
  return { plan, done };
}

/**
 * One step: generate (or take the groups generated ahead) → (update → sync, when any group has a
 * learning signal; pipelined, the next step's generation beside them) → record.
 */
export async function runTrainingStep(ctx: TrainingContext): Promise<void> {
  const { state, config, progress } = ctx;
  const pipelined = config.maxStaleness > 0 && patched(PIPELINE_PATCH);
  const ready = state.ready?.step === state.step ? state.ready : undefined;
  delete state.ready;
  const started =
    ready?.startedAt ?? (state.partial?.step === state.step ? state.partial.startedAt : Date.now());
  ctx.stepStartedAt = started;
  Object.assign(progress, { generation: 0, groupsDone: 0, groupsStarted: 0, keptGroups: 0 });
  let groups: GeneratedGroups;
  let rolloutMs: number;
  if (ready) {
    groups = ready.groups;
    rolloutMs = ready.rolloutMs;
    Object.assign(progress, ready.progress);
  } else {
    groups = await generateGroups(ctx);
    rolloutMs = Date.now() - started;
  }
  let trained: Awaited<ReturnType<typeof updateAndSync>> | undefined;
  let ahead: ReturnType<typeof generateAhead> | undefined;
  if (groups.surviving.length > 0) {
    let updating = true;
    if (pipelined && mayGenerateAhead(ctx)) ahead = generateAhead(ctx, () => updating);
    trained = await updateAndSync(ctx, groups.surviving);
    await recordStep(ctx, groups, trained, { started, rolloutMs, pipelined });
    updating = false;
  } else {
    log.warn('no group with a learning signal: step skipped, the policy is unchanged', {
      runId: ctx.runId,
      step: ctx.state.step,
    });
    await recordStep(ctx, groups, undefined, { started, rolloutMs, pipelined });
  }
  if (!ahead) return;
  enterPhase(ctx, 'rollouts');
  const out = await ahead.done;
  delete ctx.ahead;
  if ('error' in out) throw out.error;
  state.cursor = ahead.plan.cursor.value;
  state.ready = out.ok;
}
