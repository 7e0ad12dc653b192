/**
 * Planning an evaluation: a page of the dataset's samples (each marked done when its score is
 * stored for the evaluation's current generation; a stored infrastructure failure is not done), the
 * check that a re-run reuses only results made with the same settings, a sample's prepared record
 * reduced to what its child workflow needs, and the newest checkpoint a scheduled evaluation
 * resolves.
 */
import { z } from 'zod';
import { artifactRefSchema, type ArtifactRef } from '../../core/artifacts.js';
import {
  EvalKeys,
  evaluationFingerprintSchema,
  evaluationRecordSchema,
  IdSchemas,
  INITIAL_EVAL_GENERATION,
  storedSampleSchema,
  type EvaluationFingerprint,
  type EvaluationRecord,
} from '../../core/contracts/index.js';
import { fingerprintDifferences } from '../../core/evaluation/rerun.js';
import { mapLimit } from '../../core/concurrency.js';
import { ABILITIES, type Ability } from '../../core/protocol/prompts.js';
import type { PreparedDatasetIndex, PreparedSample } from '../datasets/prepare.js';
import { BadInputError } from '../errors.js';
import { parseActivityInput } from '../edge.js';
import type { ArtifactStore } from '../storage/artifact-store.js';

const s3ish = z.string().min(1);

export const planInputs = {
  plan: z.strictObject({
    evalId: IdSchemas.eval,
    /** The prepared dataset index: an s3:// URI or a key. */
    dataset: s3ish,
    offset: z.number().int().min(0),
    pageSize: z.number().int().min(1).max(10_000),
    /** Evaluate only the first `limit` samples. */
    limit: z.number().int().min(1).optional(),
    /**
     * The settings the results are made with: checked against (or, the first time, stored as) the
     * evaluation's record. Absent (plans scheduled before fingerprints were kept): not checked.
     */
    fingerprint: evaluationFingerprintSchema.optional(),
    /**
     * Start afresh: the new generation (the same for every page and retry of one start), stored
     * with the fingerprint; results of any other generation are evaluated again.
     */
    freshGeneration: z.string().min(1).optional(),
  }),
  load: z.strictObject({ record: artifactRefSchema }),
  resolvePolicy: z.strictObject({ latestFrom: s3ish }),
};

export type EvalPlanInput = z.input<typeof planInputs.plan>;

export interface EvalPlanSample {
  id: string;
  ability: string | null;
  ref: ArtifactRef;
  /** Its score is stored for this generation (a resumed or repeated evaluation skips it). */
  done: boolean;
  /** An infrastructure failure is stored for it: it is evaluated again. */
  retry?: boolean;
}

export interface EvalPlan {
  /** The generation the results belong to (`initial` unless started afresh). */
  generation?: string;
  total: number;
  format: string;
  split: string;
  samples: EvalPlanSample[];
}

/** What the per-sample child needs from the prepared record (small: refs, not bytes). */
export interface LoadedSample {
  id: string;
  format: string;
  kind: 'image' | 'video';
  /** For the prompt: OK-VOS abilities as they are; anything else uses the search prompt. */
  promptAbility: Ability;
  question: string;
  frames: { fid: number; policy: ArtifactRef; original: ArtifactRef }[];
  /** Image samples: the original image (the segmenter's input). */
  image?: ArtifactRef;
  /** Frame-folder samples: the stored frame list. */
  frameSet?: ArtifactRef;
  /** Video-file samples: the stored video, whose frames are extracted for the segmenter. */
  video?: ArtifactRef;
  width: number;
  height: number;
}

/** The point of the pointer file a scheduled evaluation reads: the newest checkpoint. */
export const policyPointerSchema = z.looseObject({
  version: z.number().int().min(0),
  /** Model or LoRA adapter name the policy server serves this version as. */
  model: z.string().min(1).optional(),
});

/** Reads and checks a prepared dataset index. */
export async function readDatasetIndex(store: ArtifactStore, uri: string): Promise<PreparedDatasetIndex> {
  const index = await store.getInputJson<PreparedDatasetIndex>(uri, 'dataset index');
  if (index?.schema !== 'segflow.dataset/1' || !Array.isArray(index.samples)) {
    throw new BadInputError(
      `dataset ${uri} is not a prepared dataset index (schema ${JSON.stringify(index?.schema)}, expected "segflow.dataset/1"); make one with \`segr dataset prepare\` and pass the "index" it prints`,
      { uri },
    );
  }
  if (index.samples.length === 0) throw new BadInputError(`dataset ${uri} has no samples`, { uri });
  const seen = new Set<string>();
  for (const s of index.samples) {
    if (seen.has(s.id))
      throw new BadInputError(`dataset ${uri} lists sample id ${JSON.stringify(s.id)} twice`, { uri });
    seen.add(s.id);
  }
  return index;
}

/** The SHA-256 a content-addressed index key ends with (or the key itself, sanitised). */
export function datasetKeyOf(uri: string): string {
  const m = /([0-9a-f]{64})\.json$/.exec(uri);
  return m ? m[1]! : uri.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/**
 * The evaluation's record after this run's check: the stored one when the fingerprint matches, a
 * new one (stored) the first time or when starting afresh; a different fingerprint is refused with
 * every differing setting named.
 */
async function checkRecord(
  store: ArtifactStore,
  evalId: string,
  fingerprint: EvaluationFingerprint,
  freshGeneration: string | undefined,
): Promise<EvaluationRecord> {
  const key = EvalKeys.record(evalId);
  const stored = (await store.head(key))
    ? evaluationRecordSchema.safeParse(await store.getJson(key))
    : undefined;
  if (stored && !stored.success) {
    throw new BadInputError(
      `evaluation ${evalId}: its record ${store.uriOf(key)} is malformed (${stored.error.issues[0]?.message ?? ''}); start it afresh (segr eval --fresh) or use another --id`,
      { evalId },
    );
  }
  const generation = freshGeneration ?? stored?.data.generation ?? INITIAL_EVAL_GENERATION;
  if (stored && !freshGeneration) {
    const differences = fingerprintDifferences(stored.data.fingerprint, fingerprint);
    if (differences.length > 0) {
      throw new BadInputError(
        `evaluation ${evalId} already holds results made with other settings (${differences.join('; ')}); ` +
          'reusing them would mix the two in one set of metrics. Use another --id, or start it afresh with ' +
          '`segr eval --fresh` (workflow input `fresh: true`), which evaluates every sample again',
        { evalId, differences },
      );
    }
    return stored.data;
  }
  if (stored?.data.generation === generation) return stored.data;
  const record: EvaluationRecord = { schema: 'segflow.eval/1', evalId, generation, fingerprint };
  await store.putJson(key, record);
  return record;
}

/** Whether a sample's stored result is a score of `generation` (done) or a failure to retry. */
async function storedState(
  store: ArtifactStore,
  key: string,
  generation: string | undefined,
): Promise<{ done: boolean; retry: boolean }> {
  if (!(await store.head(key))) return { done: false, retry: false };
  const r = storedSampleSchema.safeParse(await store.getJson(key));
  // A malformed result is evaluated again (and rewritten) rather than trusted.
  if (!r.success) return { done: false, retry: true };
  const same = generation === undefined || (r.data.generation ?? INITIAL_EVAL_GENERATION) === generation;
  if (r.data.schema === 'segflow.eval-sample-failed/1') return { done: false, retry: same };
  return { done: same, retry: false };
}

export function createPlanActivities(store: ArtifactStore) {
  return {
    /**
     * One page of the dataset's samples, each marked done when its score is stored for the
     * evaluation's generation; checks (or records) the evaluation's fingerprint first.
     */
    async evalPlan(raw: EvalPlanInput): Promise<EvalPlan> {
      const input = parseActivityInput(planInputs.plan, raw, 'evalPlan');
      const index = await readDatasetIndex(store, input.dataset);
      const record = input.fingerprint
        ? await checkRecord(store, input.evalId, input.fingerprint, input.freshGeneration)
        : undefined;
      const total = Math.min(index.samples.length, input.limit ?? Infinity);
      const page = index.samples.slice(input.offset, Math.min(total, input.offset + input.pageSize));
      const samples = await mapLimit(page, 16, async (s): Promise<EvalPlanSample> => {
        const state = await storedState(store, EvalKeys.sampleResult(input.evalId, s.id), record?.generation);
        return {
          id: s.id,
          ability: s.ability,
          ref: s.ref,
          done: state.done,
          ...(state.retry ? { retry: true } : {}),
        };
      });
      return {
        ...(record ? { generation: record.generation } : {}),
        total,
        format: index.format,
        split: index.split,
        samples,
      };
    },

    /** The prepared record, reduced to what the child workflow needs. */
    async evalLoadSample(raw: z.input<typeof planInputs.load>): Promise<LoadedSample> {
      const input = parseActivityInput(planInputs.load, raw, 'evalLoadSample');
      const rec = await store.getInputJson<PreparedSample>(input.record.uri, 'sample record');
      if (rec?.schema !== 'segflow.sample/1') {
        throw new BadInputError(
          `sample record ${input.record.uri} is not a prepared sample (schema ${JSON.stringify(rec?.schema)})`,
        );
      }
      if (!rec.masks) {
        throw new BadInputError(
          `sample ${rec.id} (${rec.origin}) has no ground-truth masks, so it cannot be evaluated; prepare the dataset with its annotations`,
          { sample: rec.id },
        );
      }
      const promptAbility = (ABILITIES as readonly string[]).includes(rec.ability ?? '')
        ? (rec.ability as Ability)
        : 'one-hop';
      const base = {
        id: rec.id,
        format: rec.format,
        promptAbility,
        question: rec.question,
        frames: rec.frames.map((f) => ({ fid: f.fid, policy: f.policy, original: f.original })),
        width: rec.width,
        height: rec.height,
      };
      switch (rec.media.kind) {
        case 'image':
          return { ...base, kind: 'image', image: rec.media.image };
        case 'frames':
          return { ...base, kind: 'video', frameSet: rec.media.frameSet };
        case 'video':
          return { ...base, kind: 'video', video: rec.media.video };
      }
    },

    /** The newest checkpoint: the pointer JSON `{version, model?}` a training run keeps up to date. */
    async evalResolvePolicy(
      raw: z.input<typeof planInputs.resolvePolicy>,
    ): Promise<{ version: number; model: string | null }> {
      const input = parseActivityInput(planInputs.resolvePolicy, raw, 'evalResolvePolicy');
      const value = await store.getInputJson<unknown>(input.latestFrom, 'policy pointer');
      const r = policyPointerSchema.safeParse(value);
      if (!r.success) {
        throw new BadInputError(
          `policy pointer ${input.latestFrom} is not {version, model?}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
          { uri: input.latestFrom },
        );
      }
      return { version: r.data.version, model: r.data.model ?? null };
    },
  };
}
