/**
 * Activities of the `trainingRun` workflow that touch S3 (orchestrator role), and the weight sync
 * that runs on every policy host (policy role, `segflow-policy@<host>`).
 *
 * - `trainingSamplePrompts`: the next prompts of a prepared dataset in a seeded order (a fresh
 *   permutation per epoch), from a cursor the workflow keeps, as rolloutGroup sample inputs.
 * - `trainingAssembleBatch`: the step's kept trajectories as the trainer's batch
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
 *   (`policy.fullWeightSync`), after which the server serves them under its own model name.
 *
 * All keys are deterministic and the contents are functions of the inputs, so a retried activity
 * rewrites the same bytes.
 */
import { existsSync } from 'node:fs';
import { IdSchemas, PolicyKeys, RunKeys } from '../../core/contracts/index.js';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { artifactRefSchema, type ArtifactRef } from '../../core/artifacts.js';
import { ABILITIES, type Ability } from '../../core/protocol/prompts.js';
import type { SampleGroundTruth } from '../../core/rewards/terms.js';
import type { PreparedDatasetIndex, PreparedSample } from '../datasets/prepare.js';
import { BadInputError, ConfigError } from '../errors.js';
import { heartbeat, parseActivityInput } from '../edge.js';
import { mulberry32 } from '../../core/random.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
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
  assemble: z.strictObject({
    runId,
    step: z.number().int().min(0),
    policyVersion: z.number().int().min(0),
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
      .min(1),
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
      const index = await store.getInputJson<PreparedDatasetIndex>(input.dataset, 'dataset index');
      if (index?.schema !== 'segflow.dataset/1' || !Array.isArray(index.samples)) {
        throw new BadInputError(
          `dataset ${input.dataset} is not a prepared dataset index (schema ${JSON.stringify(index?.schema)}, expected "segflow.dataset/1"); make one with \`segr dataset prepare\` and pass the "index" it prints`,
          { uri: input.dataset },
        );
      }
      if (index.samples.length === 0)
        throw new BadInputError(`dataset ${input.dataset} has no samples`, { uri: input.dataset });
      const { indices, cursor } = takeFromCursor(index.samples.length, input.seed, input.cursor, input.count);
      const samples = await Promise.all(
        indices.map(async (i) => {
          const entry = index.samples[i]!;
          const record = await store.getInputJson<PreparedSample>(entry.ref.uri, 'sample record');
          if (record?.schema !== 'segflow.sample/1') {
            throw new BadInputError(
              `sample record ${entry.ref.uri} has schema ${JSON.stringify(record?.schema)}, expected "segflow.sample/1"`,
              { uri: entry.ref.uri },
            );
          }
          if (record.frames.length === 0)
            throw new BadInputError(`sample ${record.id} (${entry.ref.uri}) has no frames`, {
              uri: entry.ref.uri,
            });
          const sample: TrainingSample = {
            id: record.id,
            question: record.question,
            ability: abilityOf(record, entry.ref.uri),
            frames: record.frames.map((f) => ({ fid: f.fid, policy: f.policy, original: f.original })),
            groundTruth: record.groundTruth,
            ...(record.steps ? { steps: record.steps } : {}),
          };
          return sample;
        }),
      );
      return { samples, cursor };
    },

    /** Writes the trainer's batch for one step; returns its ref (the trainer checks its sha256). */
    async trainingAssembleBatch(raw: AssembleBatchInput): Promise<ArtifactRef> {
      const input = parseActivityInput(trainingInputs.assemble, raw, 'trainingAssembleBatch');
      const trajectories = [];
      for (const [i, t] of input.trajectories.entries()) {
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
}

/** Weight sync on one policy host. */
export function createPolicySyncActivities(deps: PolicySyncDeps) {
  return {
    /**
     * Downloads the version's folder (once per host: a `.complete` marker) and loads it into the
     * host's policy server under `name`, replacing an adapter of that name (retries are safe).
     */
    async policySyncWeights(raw: SyncWeightsInput): Promise<{
      hostId: string;
      path: string;
      files: number;
      downloaded: boolean;
      /** The model name the next rollouts ask this host's server for. */
      served: string;
      how: 'adapter' | 'reload' | 'by-name';
    }> {
      const input = parseActivityInput(trainingInputs.sync, raw, 'policySyncWeights');
      const { key } = splitUri(input.policy.uri);
      const prefixKey = key.startsWith(deps.store.prefix) ? key.slice(deps.store.prefix.length) : key;
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
        for await (const o of deps.store.list(prefixKey)) {
          const rel = o.key.slice(prefixKey.length);
          if (!rel || rel.endsWith('/')) continue;
          await deps.store.downloadToFile(o.key, pathUnder(tmp, rel, `policy object name (${o.key})`));
          files += 1;
          heartbeat({ files });
        }
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
        return { ...done, served: input.name, how: adapter ? 'adapter' : 'by-name' };
      }
      // A full-weight version never goes through the LoRA endpoint: the server reloads in place and
      // keeps its served name.
      await refuseTiedReload(folder, input.policy.uri);
      await deps.policyReloadWeights({ path: folder });
      return { ...done, served: deps.servedModel, how: 'reload' };
    },
  };
}

export type PolicySyncActivities = ReturnType<typeof createPolicySyncActivities>;

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
