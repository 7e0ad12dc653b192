/**
 * Planning an evaluation: a page of the dataset's samples (each marked done when its result is
 * stored), a sample's prepared record reduced to what its child workflow needs, and the newest
 * checkpoint a scheduled evaluation resolves.
 */
import { z } from 'zod';
import { artifactRefSchema, type ArtifactRef } from '../../core/artifacts.js';
import { EvalKeys, IdSchemas } from '../../core/contracts/index.js';
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
  }),
  load: z.strictObject({ record: artifactRefSchema }),
  resolvePolicy: z.strictObject({ latestFrom: s3ish }),
};

export type EvalPlanInput = z.input<typeof planInputs.plan>;

export interface EvalPlanSample {
  id: string;
  ability: string | null;
  ref: ArtifactRef;
  /** Its result is already stored (a resumed or repeated evaluation skips it). */
  done: boolean;
}

export interface EvalPlan {
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

export function createPlanActivities(store: ArtifactStore) {
  return {
    /** One page of the dataset's samples, each marked done when its result is already stored. */
    async evalPlan(raw: EvalPlanInput): Promise<EvalPlan> {
      const input = parseActivityInput(planInputs.plan, raw, 'evalPlan');
      const index = await readDatasetIndex(store, input.dataset);
      const total = Math.min(index.samples.length, input.limit ?? Infinity);
      const page = index.samples.slice(input.offset, Math.min(total, input.offset + input.pageSize));
      const samples = await mapLimit(page, 16, async (s) => ({
        id: s.id,
        ability: s.ability,
        ref: s.ref,
        done: (await store.head(EvalKeys.sampleResult(input.evalId, s.id))) !== undefined,
      }));
      return { total, format: index.format, split: index.split, samples };
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
