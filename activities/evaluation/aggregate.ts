/**
 * Scoring one sample against its ground truth and aggregating many, with core/metrics: DAVIS J/F
 * per annotated frame and J&F per query (eval_okvos.py), per-ability and overall means with every
 * query weighted equally (spec §9.1, §13.1), gIoU/cIoU under each empty-union convention
 * (spec §9.2, §13.2), and the mean outcome reward (spec §5.5). Pure: no I/O, so it is unit-tested
 * directly and the activities only fetch.
 */
import { evaluateFrame } from '../../core/metrics/davis.js';
import type { BinaryMask } from '../../core/metrics/mask.js';
import { npMean } from '../../core/metrics/numpy.js';
import {
  LISA_CONVENTION,
  maskIntersectionUnion,
  queryScore,
  reasonSegScores,
  SEGZERO_CONVENTION,
  summariseByAbility,
} from '../../core/metrics/summary.js';
import {
  FAILED_SAMPLES_LISTED,
  type EvaluationSummary,
  type FailedSample,
  type OutcomeReward,
  type OutcomeRewardAggregate,
  type SampleEvaluation,
} from '../../core/contracts/index.js';

/** The abilities the report tabulates: OK-VOS's three knowledge types and `in-video`. */
export const EVAL_ABILITIES = ['one-hop', 'multi-hop', 'relational', 'in-video'] as const;

export interface FrameScores {
  frames: { index: number; J: number; F: number }[];
  J: number;
  F: number;
  JF: number;
  intersection: number;
  union: number;
  gtArea: number;
  predArea: number;
}

/**
 * J and F of every annotated frame (`gt` lists them; a frame with no prediction counts as an empty
 * mask), their means, and pixel intersection/union summed over the frames (ignore pixels left out).
 */
export function scoreFrames(
  gt: readonly { index: number; mask: BinaryMask }[],
  prediction: (index: number) => BinaryMask | undefined,
  ignore?: BinaryMask,
): FrameScores {
  if (gt.length === 0) throw new RangeError('a sample needs at least one annotated frame to be scored');
  const frames: FrameScores['frames'] = [];
  let intersection = 0;
  let union = 0;
  let gtArea = 0;
  let predArea = 0;
  for (const { index, mask } of gt) {
    const pred = prediction(index) ?? {
      width: mask.width,
      height: mask.height,
      data: new Uint8Array(mask.width * mask.height),
    };
    if (pred.width !== mask.width || pred.height !== mask.height) {
      throw new RangeError(
        `the predicted mask of frame ${index} is ${pred.width}×${pred.height} but its ground truth is ${mask.width}×${mask.height}`,
      );
    }
    const s = evaluateFrame(pred, mask);
    frames.push({ index, J: s.J, F: s.F });
    const iu = maskIntersectionUnion(pred.data, mask.data, ignore?.data);
    intersection += iu.intersection;
    union += iu.union;
    for (let i = 0; i < mask.data.length; i++) {
      if (ignore && ignore.data[i]) continue;
      if (mask.data[i]) gtArea++;
      if (pred.data[i]) predArea++;
    }
  }
  const q = queryScore('', '', frames);
  return { frames, J: q.J, F: q.F, JF: (q.J + q.F) / 2, intersection, union, gtArea, predArea };
}

function count(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of [...values].sort()) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/**
 * Mean outcome reward and its terms over the samples that have a reward, overall and per ability
 * (abilities in sorted order); null when none has one.
 */
export function aggregateOutcomeReward(samples: readonly SampleEvaluation[]): OutcomeRewardAggregate | null {
  const rewarded = samples.flatMap((s) => (s.reward ? [{ ability: s.ability, r: s.reward }] : []));
  if (rewarded.length === 0) return null;
  const mean = (k: keyof OutcomeReward, rows: typeof rewarded) => npMean(rows.map((x) => x.r[k]));
  const perAbility: OutcomeRewardAggregate['perAbility'] = {};
  for (const a of [...new Set(rewarded.map((x) => x.ability))].sort()) {
    const rows = rewarded.filter((x) => x.ability === a);
    perAbility[a] = { samples: rows.length, outcome: mean('outcome', rows) };
  }
  return {
    samples: rewarded.length,
    outcome: mean('outcome', rewarded),
    iou: mean('iou', rewarded),
    box: mean('box', rewarded),
    point: mean('point', rewarded),
    frame: mean('frame', rewarded),
    format: mean('format', rewarded),
    perAbility,
  };
}

export interface AggregateContext {
  evalId: string;
  dataset: EvaluationSummary['dataset'];
  policy: EvaluationSummary['policy'];
  /** Samples the dataset (or the evaluation's limit) holds. */
  expected: number;
  paid: { total: number; byBackend: Record<string, number> };
  /** USD per paid call, per backend; omitted: no cost. */
  prices?: Record<string, number>;
}

const bySampleId = (a: { sampleId: string }, b: { sampleId: string }) =>
  a.sampleId < b.sampleId ? -1 : a.sampleId > b.sampleId ? 1 : 0;

/**
 * The evaluation's aggregates from its per-sample results. Results are sorted by sample id first,
 * so the numbers do not depend on the order they were read in. `failed` samples (infrastructure
 * failures) enter no metric: they are counted and the first {@link FAILED_SAMPLES_LISTED} listed.
 */
export function aggregateEvaluation(
  samples: readonly SampleEvaluation[],
  ctx: AggregateContext,
  failed: readonly FailedSample[] = [],
): EvaluationSummary {
  const sorted = [...samples].sort(bySampleId);
  const failedSorted = [...failed].sort(bySampleId);
  const ids = new Set<string>();
  for (const s of [...sorted, ...failedSorted]) {
    if (ids.has(s.sampleId)) throw new RangeError(`sample ${s.sampleId} appears twice among the results`);
    ids.add(s.sampleId);
  }
  const video = sorted.filter((s) => s.kind === 'video');
  const image = sorted.filter((s) => s.kind === 'image');
  const vos =
    video.length === 0
      ? null
      : summariseByAbility(
          video.map((s) => ({ id: s.sampleId, ability: s.ability, J: s.J, F: s.F })),
          EVAL_ABILITIES,
        );
  const iu = image.map((s) => ({ intersection: s.intersection, union: s.union }));
  const reasonSeg =
    image.length === 0
      ? null
      : {
          lisa: reasonSegScores(iu, LISA_CONVENTION),
          segzero: reasonSegScores(iu, SEGZERO_CONVENTION),
          skip: reasonSegScores(iu, { emptyUnion: 'skip', iouEpsilon: 0, ciouEpsilon: 0 }),
        };
  const calls = sorted.flatMap((s) => s.searches);
  const prices = ctx.prices;
  let costUsd: number | null = null;
  if (prices) {
    costUsd = 0;
    for (const [backend, n] of Object.entries(ctx.paid.byBackend)) costUsd += n * (prices[backend] ?? 0);
  }
  const prompt = sorted.reduce((a, s) => a + s.promptTokens, 0);
  const completion = sorted.reduce((a, s) => a + s.completionTokens, 0);
  return {
    schema: 'segflow.eval-summary/1',
    evalId: ctx.evalId,
    dataset: ctx.dataset,
    policy: ctx.policy,
    samples: {
      expected: ctx.expected,
      scored: sorted.length,
      video: video.length,
      image: image.length,
      errors: sorted.filter((s) => s.error !== null).length,
      failed: failedSorted.length,
      failedSamples: failedSorted.slice(0, FAILED_SAMPLES_LISTED).map((f) => ({
        sampleId: f.sampleId,
        ability: f.ability,
        type: f.failure.type,
        message: f.failure.message.slice(0, 300),
      })),
    },
    vos,
    reasonSeg,
    search: {
      calls: calls.length,
      cached: calls.filter((c) => c.cached).length,
      distinctQueries: new Set(calls.map((c) => `${c.backend}\u0000${c.tool}\u0000${c.query}`)).size,
      byTool: count(calls.map((c) => c.tool)),
      byBackend: count(calls.map((c) => c.backend)),
      perSample: sorted.length === 0 ? 0 : npMean(sorted.map((s) => s.searches.length)),
      paidCalls: ctx.paid.total,
      paidByBackend: ctx.paid.byBackend,
      costUsd,
    },
    stopReasons: count(sorted.map((s) => s.stopReason)),
    answerStatus: count(sorted.map((s) => s.answerStatus)),
    reward: aggregateOutcomeReward(sorted),
    tokens: {
      prompt,
      completion,
      completionPerSample: sorted.length === 0 ? 0 : completion / sorted.length,
    },
  };
}

/**
 * The sentence a person reads about the samples that failed for an infrastructure reason (CLI
 * output, report); null when none failed.
 */
export function failedSamplesLine(s: Pick<EvaluationSummary, 'evalId' | 'samples'>): string | null {
  const n = s.samples.failed ?? 0;
  if (n === 0) return null;
  const listed = (s.samples.failedSamples ?? []).slice(0, 5).map((f) => `${f.sampleId} (${f.type})`);
  return (
    `${n} sample${n === 1 ? '' : 's'} failed for an infrastructure reason after ${n === 1 ? 'its' : 'their'} retries and ` +
    `${n === 1 ? 'is' : 'are'} left out of the metrics: ${listed.join(', ')}${n > listed.length ? ', …' : ''}; ` +
    `re-run the evaluation with the same id (segr eval --id ${s.evalId}, same settings) to evaluate ${n === 1 ? 'it' : 'them'} again`
  );
}
