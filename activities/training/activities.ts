/**
 * Activities of the `trainingRun` workflow that touch S3 (orchestrator role), and the weight sync
 * that runs on every policy host (policy role, `segflow-policy@<host>`).
 *
 * - `trainingSamplePrompts`: the next prompts of a prepared dataset in a seeded order (a fresh
 *   permutation per epoch), from a cursor the workflow keeps, as rolloutGroup sample inputs;
 *   `trainingSamplePromptRefs` the same order as references to the prepared records (what a step
 *   of hundreds of prompts carries), each group then loading its own with `trainingLoadSample`.
 * - `trainingSaveGroup`: a rolloutGroup's full result (`…/groups/<g>/group.json`), so the step's
 *   history holds a reference and a tally per group, not every trajectory's summary.
 * - `trainingAssembleBatch`: the step's kept trajectories (listed, or read from the stored group
 *   results) as the trainer's batch
 *   (`runs/<run>/steps/<k>/batch.json`, schema `segflow.batch/1`): per trajectory its chat messages
 *   (text with `<image>` placeholders, and per message the S3 refs of its images, in order, as the
 *   rollout sent them to the policy), advantage and reward. The trainer tokenises them with the
 *   policy's own tokenizer and derives the masks from the turns (trainer/README.md); a multimodal
 *   policy (the nano policy) reads the images from the refs.
 * - `trainingSaveState`: the run's config and state after each finished step
 *   (`runs/<run>/state.json`), from which `segr train resume` continues a run that ended.
 * - `trainingWriteMetrics`: the step's metrics (`runs/<run>/steps/<k>/metrics.json`) and the
 *   run's newest-version pointer (`policies/<run>/latest.json`, read by scheduled evaluations).
 * - `policySyncWeights`: downloads a policy version from S3 into this host's cache folder and
 *   loads it into the co-located policy server: a LoRA adapter through vLLM's
 *   `/v1/load_lora_adapter` under the version's name; full weights by an in-place reload
 *   (`policy.fullWeightSync`), after which the server serves them under its own model name. What
 *   it downloads is what the version's manifest lists, from the folder the manifest names (the
 *   update attempt that committed it; trainer/segflow_trainer/update.py "Attempts"), each file
 *   checked against its sha256: the folders of other attempts (a timed-out attempt still running)
 *   are never read.
 *
 * All keys are deterministic and the contents are functions of the inputs, so a retried activity
 * rewrites the same bytes.
 */
import { existsSync } from 'node:fs';
import {
  IdSchemas,
  POLICY_ATTEMPTS_DIR,
  POLICY_MANIFEST_FILE,
  PolicyKeys,
  RunKeys,
  policyFilesPrefix,
  policyManifestFilesSchema,
} from '../../core/contracts/index.js';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { artifactRefSchema, type ArtifactRef } from '../../core/artifacts.js';
import { ABILITIES, type Ability } from '../../core/protocol/prompts.js';
import type { SampleGroundTruth } from '../../core/rewards/terms.js';
import type { PreparedDatasetIndex, PreparedSample } from '../datasets/prepare.js';
import { BadInputError, ConfigError } from '../errors.js';
import { currentActivity, heartbeat, parseActivityInput } from '../edge.js';
import { evictOlderVersions } from './policy-cache.js';
import { mulberry32 } from '../../core/random.js';
import { ArtifactNotFoundError, type ArtifactStore } from '../storage/artifact-store.js';
import { pathUnder } from '../storage/safe-path.js';

const runId = IdSchemas.run;
const cursorSchema = z.strictObject({ epoch: z.number().int().min(0), position: z.number().int().min(0) });
export type DatasetCursor = z.infer<typeof cursorSchema>;

export const trainingInputs = {
  sample: z.strictObject({
    dataset: z.string().regex(/^s3:\/\//, 'must be an s3:// URI'),
    seed: z.number().int().min(0),
    cursor: cursorSchema,
    count: z.number().int().min(1),
  }),
  assemble: z
    .strictObject({
      runId,
      step: z.number().int().min(0),
      policyVersion: z.number().int().min(0),
      /** The trajectories, listed (steps recorded before group results were stored). */
      trajectories: z
        .array(
          z.strictObject({
            trajectoryId: z.string().min(1),
            groupId: z.string().min(1),
            trajectory: artifactRefSchema,
            advantage: z.number().finite(),
            reward: z.number().finite(),
          }),
        )
        .min(1)
        .optional(),
      /** Or the stored rolloutGroup results whose finished trajectories make the batch, in order. */
      groups: z.array(artifactRefSchema).min(1).optional(),
    })
    .refine((v) => (v.trajectories === undefined) !== (v.groups === undefined), {
      message: 'give either trajectories or groups',
    }),
  loadSample: z.strictObject({ record: artifactRefSchema }),
  saveGroup: z.strictObject({
    key: z.string().regex(/\/group\.json$/, 'must be a group result key ending in "/group.json"'),
    result: z.looseObject({
      groupId: z.string().min(1),
      trajectories: z.array(z.unknown()),
    }),
  }),
  metrics: z.strictObject({
    runId,
    step: z.number().int().min(0),
    metrics: z.record(z.string(), z.unknown()),
    /** The newest version: written to `policies/<run>/latest.json`. */
    latest: z
      .strictObject({ version: z.number().int().min(0), model: z.string().min(1), uri: z.string() })
      .optional(),
  }),
  state: z.strictObject({
    runId,
    /** The run's parsed config. */
    config: z.record(z.string(), z.unknown()),
    /** TrainingState after the last finished step. */
    state: z.looseObject({ step: z.number().int().min(0) }),
  }),
  sync: z.strictObject({
    policy: z.strictObject({
      uri: z.string().regex(/^s3:\/\/[^/]+\/.+\/$/, 'must be an s3:// prefix ending in "/"'),
      version: z.number().int().min(0),
    }),
    /** The name the server will serve this version under. */
    name: IdSchemas.servedModel,
  }),
};

export type SamplePromptsInput = z.input<typeof trainingInputs.sample>;
export type LoadSampleInput = z.input<typeof trainingInputs.loadSample>;
export type AssembleBatchInput = z.input<typeof trainingInputs.assemble>;
export type WriteMetricsInput = z.input<typeof trainingInputs.metrics>;
export type SaveStateInput = z.input<typeof trainingInputs.state>;
export type SyncWeightsInput = z.input<typeof trainingInputs.sync>;

/** A rolloutGroup's `sample` built from a prepared record. */
export interface TrainingSample {
  id: string;
  question: string;
  ability: Ability;
  frames: { fid: number; policy: ArtifactRef; original: ArtifactRef }[];
  groundTruth: SampleGroundTruth;
  steps?: string[];
}

/** A sampled prompt as a reference to its prepared record (`trainingSamplePromptRefs`). */
export interface TrainingSampleRef {
  id: string;
  ability: string | null;
  record: ArtifactRef;
}

/** The order of a dataset's samples in one epoch: a Fisher–Yates shuffle seeded by (seed, epoch). */
export function epochOrder(size: number, seed: number, epoch: number): number[] {
  const order = Array.from({ length: size }, (_, i) => i);
  const rand = mulberry32((seed * 1_000_003 + epoch * 7_919 + 1) >>> 0);
  for (let i = size - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** The next `count` positions from the cursor, crossing epochs; and the cursor after them. */
export function takeFromCursor(
  size: number,
  seed: number,
  cursor: DatasetCursor,
  count: number,
): { indices: number[]; cursor: DatasetCursor } {
  let { epoch, position } = cursor;
  if (position > size)
    throw new BadInputError(`cursor position ${position} is past the dataset's ${size} samples`);
  const indices: number[] = [];
  let order = epochOrder(size, seed, epoch);
  while (indices.length < count) {
    if (position >= size) {
      epoch += 1;
      position = 0;
      order = epochOrder(size, seed, epoch);
    }
    indices.push(order[position]!);
    position += 1;
  }
  return { indices, cursor: { epoch, position } };
}

function abilityOf(record: PreparedSample, uri: string): Ability {
  if (record.ability === null) return 'one-hop';
  if ((ABILITIES as readonly string[]).includes(record.ability)) return record.ability as Ability;
  throw new BadInputError(
    `sample ${record.id} (${uri}) has ability ${JSON.stringify(record.ability)}; expected one of ${ABILITIES.join(', ')}`,
    { uri },
  );
}

/** The rolloutGroup sample of a prepared record. */
async function loadTrainingSample(store: ArtifactStore, ref: ArtifactRef): Promise<TrainingSample> {
  const record = await store.getInputJson<PreparedSample>(ref.uri, 'sample record');
  if (record?.schema !== 'segflow.sample/1') {
    throw new BadInputError(
      `sample record ${ref.uri} has schema ${JSON.stringify(record?.schema)}, expected "segflow.sample/1"`,
      { uri: ref.uri },
    );
  }
  if (record.frames.length === 0)
    throw new BadInputError(`sample ${record.id} (${ref.uri}) has no frames`, { uri: ref.uri });
  return {
    id: record.id,
    question: record.question,
    ability: abilityOf(record, ref.uri),
    frames: record.frames.map((f) => ({ fid: f.fid, policy: f.policy, original: f.original })),
    groundTruth: record.groundTruth,
    ...(record.steps ? { steps: record.steps } : {}),
  };
}

/** Reads and checks a prepared dataset index. */
async function readIndex(store: ArtifactStore, dataset: string): Promise<PreparedDatasetIndex> {
  const index = await store.getInputJson<PreparedDatasetIndex>(dataset, 'dataset index');
  if (index?.schema !== 'segflow.dataset/1' || !Array.isArray(index.samples)) {
    throw new BadInputError(
      `dataset ${dataset} is not a prepared dataset index (schema ${JSON.stringify(index?.schema)}, expected "segflow.dataset/1"); make one with \`segr dataset prepare\` and pass the "index" it prints`,
      { uri: dataset },
    );
  }
  if (index.samples.length === 0)
    throw new BadInputError(`dataset ${dataset} has no samples`, { uri: dataset });
  return index;
}

export interface TrainingActivityDeps {
  store: ArtifactStore;
}

export function createTrainingActivities(deps: TrainingActivityDeps) {
  const { store } = deps;
  return {
    /** The next prompts of the dataset in seeded order, as rolloutGroup samples. */
    async trainingSamplePrompts(
      raw: SamplePromptsInput,
    ): Promise<{ samples: TrainingSample[]; cursor: DatasetCursor }> {
      const input = parseActivityInput(trainingInputs.sample, raw, 'trainingSamplePrompts');
      const index = await readIndex(store, input.dataset);
      const { indices, cursor } = takeFromCursor(index.samples.length, input.seed, input.cursor, input.count);
      const samples = await Promise.all(indices.map((i) => loadTrainingSample(store, index.samples[i]!.ref)));
      return { samples, cursor };
    },

    /** The next prompts of the dataset in seeded order (as `trainingSamplePrompts`), as record refs. */
    async trainingSamplePromptRefs(
      raw: SamplePromptsInput,
    ): Promise<{ samples: TrainingSampleRef[]; cursor: DatasetCursor }> {
      const input = parseActivityInput(trainingInputs.sample, raw, 'trainingSamplePromptRefs');
      const index = await readIndex(store, input.dataset);
      const { indices, cursor } = takeFromCursor(index.samples.length, input.seed, input.cursor, input.count);
      const samples = indices.map((i) => {
        const { id, ability, ref } = index.samples[i]!;
        return { id, ability, record: ref };
      });
      return { samples, cursor };
    },

    /** A prepared sample record as a rolloutGroup sample. */
    async trainingLoadSample(raw: LoadSampleInput): Promise<TrainingSample> {
      const input = parseActivityInput(trainingInputs.loadSample, raw, 'trainingLoadSample');
      return loadTrainingSample(store, input.record);
    },

    /** Stores a rolloutGroup's full result under its deterministic key (a retry rewrites the same bytes). */
    async trainingSaveGroup(raw: { key: string; result: unknown }): Promise<ArtifactRef> {
      const input = parseActivityInput(trainingInputs.saveGroup, raw, 'trainingSaveGroup');
      return store.putJson(input.key, input.result);
    },

    /** Writes the trainer's batch for one step; returns its ref (the trainer checks its sha256). */
    async trainingAssembleBatch(raw: AssembleBatchInput): Promise<ArtifactRef> {
      const input = parseActivityInput(trainingInputs.assemble, raw, 'trainingAssembleBatch');
      const listed = input.trajectories ?? (await trajectoriesOfGroups(store, input.groups!));
      if (listed.length === 0) {
        throw new BadInputError(
          `step ${input.step} of run ${input.runId}: the groups of the batch have no finished trajectory`,
        );
      }
      const trajectories = [];
      for (const [i, t] of listed.entries()) {
        const doc = await store.getInputJson<{
          messages?: {
            role: string;
            content: string;
            images?: ArtifactRef[];
            tokenIds?: number[];
            logprobs?: number[];
          }[];
        }>(t.trajectory.uri, 'trajectory');
        if (!Array.isArray(doc?.messages) || doc.messages.length === 0) {
          throw new BadInputError(`trajectory ${t.trajectoryId} (${t.trajectory.uri}) has no messages`, {
            uri: t.trajectory.uri,
          });
        }
        trajectories.push({
          trajectoryId: t.trajectoryId,
          groupId: t.groupId,
          advantage: t.advantage,
          reward: t.reward,
          messages: doc.messages.map((m) => ({
            role: m.role,
            content: m.content,
            ...(m.images?.length ? { images: m.images.map((i) => ({ uri: i.uri, sha256: i.sha256 })) } : {}),
            ...(m.tokenIds?.length ? { tokenIds: m.tokenIds } : {}),
            ...(m.tokenIds?.length && m.logprobs?.length === m.tokenIds.length
              ? { logprobs: m.logprobs }
              : {}),
          })),
        });
        if (i % 16 === 15) heartbeat({ read: i + 1 });
      }
      return await store.putJson(RunKeys.batch(input.runId, input.step), {
        schema: 'segflow.batch/1',
        runId: input.runId,
        step: input.step,
        policyVersion: input.policyVersion,
        trajectories,
      });
    },

    /** Stores a step's metrics and, after a new version, the run's newest-version pointer. */
    async trainingWriteMetrics(raw: WriteMetricsInput): Promise<ArtifactRef> {
      const input = parseActivityInput(trainingInputs.metrics, raw, 'trainingWriteMetrics');
      const ref = await store.putJson(RunKeys.metrics(input.runId, input.step), {
        schema: 'segflow.training-metrics/1',
        runId: input.runId,
        step: input.step,
        ...input.metrics,
      });
      if (input.latest) await store.putJson(PolicyKeys.latest(input.runId), input.latest);
      return ref;
    },

    /** `runs/<run>/state.json`: the config and the state after the last finished step. */
    async trainingSaveState(raw: SaveStateInput): Promise<ArtifactRef> {
      const input = parseActivityInput(trainingInputs.state, raw, 'trainingSaveState');
      return store.putJson(RunKeys.state(input.runId), {
        schema: 'segflow.training-state/1',
        runId: input.runId,
        config: input.config,
        state: input.state,
      });
    },
  };
}

export type TrainingActivities = ReturnType<typeof createTrainingActivities>;

interface StoredGroup {
  groupId: string;
  trajectories: {
    summary: { trajectoryId: string; trajectory: ArtifactRef };
    advantage: number;
    reward: { total: number | null };
  }[];
}

/** The finished trajectories of stored rolloutGroup results, in order, as the batch lists them. */
async function trajectoriesOfGroups(
  store: ArtifactStore,
  groups: readonly ArtifactRef[],
): Promise<NonNullable<z.output<typeof trainingInputs.assemble>['trajectories']>> {
  const out = [];
  for (const [i, ref] of groups.entries()) {
    const group = await store.getInputJson<StoredGroup>(ref.uri, 'rollout group result');
    if (!Array.isArray(group?.trajectories)) {
      throw new BadInputError(`rollout group result ${ref.uri} lists no trajectories`, { uri: ref.uri });
    }
    for (const t of group.trajectories) {
      out.push({
        trajectoryId: t.summary.trajectoryId,
        groupId: group.groupId,
        trajectory: t.summary.trajectory,
        advantage: t.advantage,
        reward: t.reward.total ?? 0,
      });
    }
    if (i % 16 === 15) heartbeat({ groups: i + 1 });
  }
  return out;
}

export interface PolicySyncDeps {
  store: ArtifactStore;
  /** This host's folder of downloaded policy versions (the policy server must be able to read it). */
  cacheDir: string;
  hostId: string;
  /** The policy role's adapter loader (vLLM `/v1/load_lora_adapter`). */
  policyLoadAdapter: (input: { name: string; path: string; replace?: boolean }) => Promise<{
    loaded: boolean;
    alreadyLoaded: boolean;
  }>;
  /** The policy role's full-weight reload (vLLM `/collective_rpc` `reload_weights`). */
  policyReloadWeights: (input: { path: string }) => Promise<{ reloaded: true }>;
  /** How full-weight versions reach the server (policy.fullWeightSync). */
  fullWeightSync: 'reload' | 'by-name';
  /** The model name the server serves its base weights under (policy.model). */
  servedModel: string;
  /** The policy role's adapter unloader (vLLM `/v1/unload_lora_adapter`): evicted versions go. */
  policyUnloadAdapter?: (input: { name: string }) => Promise<{ unloaded: boolean }>;
  /** Versions of a run kept after a sync (training.policyCacheKeepVersions); absent: all. */
  keepVersions?: number;
}

/** What one weight sync did on its host. */
export interface SyncWeightsResult {
  hostId: string;
  path: string;
  files: number;
  downloaded: boolean;
  /** The model name the next rollouts ask this host's server for. */
  served: string;
  how: 'adapter' | 'reload' | 'by-name';
}

/** Weight sync on one policy host. */
export function createPolicySyncActivities(deps: PolicySyncDeps) {
  /**
   * Syncs in flight in this process, by version and name: concurrent callers (the step's sync and
   * turns that found the version missing after a server restart, all at once) share one download
   * into one folder and one load, instead of racing on the same files and adapter name.
   */
  const inFlight = new Map<string, Promise<SyncWeightsResult>>();

  async function syncOnce(input: z.output<typeof trainingInputs.sync>): Promise<SyncWeightsResult> {
    const folder = resolve(
      deps.cacheDir,
      createHash('sha256').update(input.policy.uri).digest('hex').slice(0, 24),
    );
    const marker = join(folder, '.complete');
    let files = 0;
    let downloaded = false;
    if (!existsSync(marker)) {
      const tmp = `${folder}.part-${process.pid}`;
      await rm(tmp, { recursive: true, force: true });
      await mkdir(tmp, { recursive: true });
      files = await downloadPolicyVersion(deps.store, input.policy.uri, tmp);
      if (files === 0) {
        throw new BadInputError(
          `policy version ${input.policy.version} at ${input.policy.uri} has no files`,
          { uri: input.policy.uri },
        );
      }
      await writeFile(join(tmp, '.complete'), input.policy.uri);
      await rm(folder, { recursive: true, force: true });
      await rename(tmp, folder);
      downloaded = true;
    }
    const done = { hostId: deps.hostId, path: folder, files, downloaded };
    const adapter = existsSync(join(folder, 'adapter_config.json'));
    if (adapter || deps.fullWeightSync === 'by-name') {
      await deps.policyLoadAdapter({ name: input.name, path: folder, replace: true });
      await evictOlder(input, true);
      return { ...done, served: input.name, how: adapter ? 'adapter' : 'by-name' };
    }
    // A full-weight version never goes through the LoRA endpoint: the server reloads in place and
    // keeps its served name.
    await refuseTiedReload(folder, input.policy.uri);
    await deps.policyReloadWeights({ path: folder });
    await evictOlder(input, false);
    return { ...done, served: deps.servedModel, how: 'reload' };
  }

  /**
   * The run's versions older than the newest `keepVersions` leave this host once a newer one is
   * loaded: their folders, and (loaded by name) their adapters on the server. Best effort: a failed
   * unload is logged, never fails the sync.
   */
  async function evictOlder(input: z.output<typeof trainingInputs.sync>, byName: boolean): Promise<void> {
    if (!deps.keepVersions) return;
    const evicted = await evictOlderVersions(deps.cacheDir, input.policy.uri, deps.keepVersions);
    // version names are `<run>-v<k>` (policyModelName): the evicted versions' names follow
    const suffix = `-v${input.policy.version}`;
    if (!byName || !deps.policyUnloadAdapter || !input.name.endsWith(suffix)) return;
    for (const e of evicted) {
      const name = `${input.name.slice(0, -suffix.length)}-v${e.version}`;
      await deps.policyUnloadAdapter({ name }).catch((err: unknown) =>
        currentActivity()?.log.warn('could not unload an evicted policy version', {
          name,
          error: String(err),
        }),
      );
    }
  }

  return {
    /**
     * Downloads the version (once per host: a `.complete` marker; downloadVersion says which files)
     * and loads it into the host's policy server under `name`, replacing an adapter of that name
     * (retries are safe).
     */
    async policySyncWeights(raw: SyncWeightsInput): Promise<SyncWeightsResult> {
      const input = parseActivityInput(trainingInputs.sync, raw, 'policySyncWeights');
      const key = `${input.policy.uri}\n${input.name}`;
      let sync = inFlight.get(key);
      if (!sync) {
        sync = syncOnce(input).finally(() => inFlight.delete(key));
        inFlight.set(key, sync);
      }
      // A caller that waits on another's download keeps its own activity alive meanwhile.
      for (;;) {
        const tick = new Promise<'tick'>((r) => setTimeout(() => r('tick'), 5000).unref());
        const done = await Promise.race([sync, tick]);
        if (done !== 'tick') return done;
        heartbeat({ waiting: 'weight sync in progress' });
      }
    },
  };
}

export type PolicySyncActivities = ReturnType<typeof createPolicySyncActivities>;

/**
 * Downloads a policy version (an s3:// prefix) into `dest`; returns the number of files. A version with a manifest:
 * exactly the files it lists, from the folder it names (`filesDir`: the committed attempt's; the
 * version folder for versions written before attempts had folders), each checked against its
 * sha256, and the manifest beside them. A folder without one (a run's initial policy, a base
 * model): every object under it but an `attempts/` folder (what unfinished update attempts left).
 */
export async function downloadPolicyVersion(
  store: ArtifactStore,
  uri: string,
  dest: string,
): Promise<number> {
  const { key } = splitUri(uri);
  const prefixKey = key.startsWith(store.prefix) ? key.slice(store.prefix.length) : key;
  let raw: Buffer | undefined;
  try {
    raw = await store.getBytes(`${prefixKey}${POLICY_MANIFEST_FILE}`);
  } catch (err) {
    if (!(err instanceof ArtifactNotFoundError)) throw err;
  }
  let files = 0;
  if (raw) {
    let doc: unknown;
    try {
      doc = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new BadInputError(
        `the manifest of policy version ${uri} is not JSON: ${(err as Error).message}`,
        {
          uri,
        },
      );
    }
    const parsed = policyManifestFilesSchema.safeParse(doc);
    if (!parsed.success) {
      throw new BadInputError(
        `the manifest of policy version ${uri} does not list its files: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
        { uri },
      );
    }
    const from = policyFilesPrefix(prefixKey, parsed.data);
    for (const [rel, f] of Object.entries(parsed.data.files)) {
      // checked against the manifest's sha256 as it streams (a mismatch is retried, then fails)
      await store.downloadToFile(
        { uri: store.uriOf(`${from}${rel}`), sha256: f.sha256, bytes: f.bytes, contentType: '' },
        pathUnder(dest, rel, `policy file name (${uri})`),
      );
      files += 1;
      heartbeat({ files });
    }
    await writeFile(join(dest, POLICY_MANIFEST_FILE), raw);
    return files;
  }
  for await (const o of store.list(prefixKey)) {
    const rel = o.key.slice(prefixKey.length);
    if (!rel || rel.endsWith('/') || rel.startsWith(POLICY_ATTEMPTS_DIR)) continue;
    await store.downloadToFile(o.key, pathUnder(dest, rel, `policy object name (${o.key})`));
    files += 1;
    heartbeat({ files });
  }
  return files;
}

/**
 * vLLM 0.32's in-place reload (`reload_weights`) of a model whose LM head is tied to its input
 * embedding (`tie_word_embeddings`, e.g. Qwen2.5-VL-3B) loads the new embedding but leaves the head
 * at the old weights: measured on the tiny Qwen2.5-VL, the reloaded server's log-probs matched
 * "new embedding, old head" to 3e-6 and the new version only to 1.5 nats. Refused, not served wrong.
 */
async function refuseTiedReload(folder: string, uri: string): Promise<void> {
  let config: { tie_word_embeddings?: unknown; text_config?: { tie_word_embeddings?: unknown } };
  try {
    config = JSON.parse(await readFile(join(folder, 'config.json'), 'utf8')) as typeof config;
  } catch (err) {
    throw new BadInputError(`policy version ${uri} has no readable config.json: ${(err as Error).message}`, {
      uri,
    });
  }
  if (config.tie_word_embeddings === true || config.text_config?.tie_word_embeddings === true) {
    throw new ConfigError(
      `policy version ${uri} ties its LM head to its input embedding (tie_word_embeddings): vLLM's in-place ` +
        'reload would leave the head at the old weights and serve a model that is neither version. Train LoRA ' +
        'versions (trainer.loraRank > 0) or restart the policy servers on the new version',
    );
  }
}

function splitUri(uri: string): { key: string } {
  const m = /^s3:\/\/[^/]+\/(.+)$/.exec(uri);
  if (!m) throw new BadInputError(`not an s3:// URI: ${uri}`);
  return { key: m[1]! };
}
