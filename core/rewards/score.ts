/**
 * The trajectory reward of Seg-ReSearch (spec §5): R = R_iou + R_box + R_point + R_frame + P.
 *
 * Pure and synchronous: the only model-dependent input, the sentence-embedding similarity behind
 * IGR, is passed in as numbers. {@link scoreTrajectoryWith} fetches them from a
 * {@link SimilarityProvider} (the embedding model lives in activities/) and then calls
 * {@link scoreTrajectory}. A reward call never throws, whatever the text.
 */
import {
  allTextSearchQueries,
  firstTextSearchQuery,
  formatTerm,
  initialGuidanceReward,
  numSearch,
  outcomeTerms,
  parseGroundTruth,
  searchStepCount,
  taperingProcessReward,
  type SampleGroundTruth,
} from './terms.js';
import { DEFAULT_REWARD_SETTINGS, type RewardSettings } from './settings.js';

/** Cosine similarities between a query and reference strings (sentence-transformers all-MiniLM-L6-v2 in the reference). */
export interface SimilarityProvider {
  /** One similarity per reference string, in order. */
  similarities(query: string, refs: readonly string[]): Promise<number[]>;
}

/** Everything the reward of one trajectory depends on. */
export interface RewardInput {
  /**
   * The decoded response, observations included, special tokens removed (what
   * `decode(skip_special_tokens=True)` gives; see `stripSpecialTokens`).
   */
  response: string;
  /** The sample's ground truth: the JSON string of `reward_model.ground_truth`, or its parsed form. */
  groundTruth: string | SampleGroundTruth;
  /** Reference search steps (`reward_model.steps`). Non-empty marks a search sample. */
  steps?: readonly string[] | null;
  /** Similarities from a {@link SimilarityProvider}; see {@link similarityRequests}. */
  similarity?: {
    /** Similarity of the first `text_search` query to every reference step (IGR). */
    firstQuery?: readonly number[] | null;
    /** Stepwise mode: similarity of the j-th `text_search` query to the j-th step (null: no such query). */
    perStep?: readonly (number | null)[] | null;
  } | null;
}

/** Components, totals and reasons of one reward call. */
export interface RewardBreakdown {
  /** R; null only when P needs similarities that were not supplied. */
  total: number | null;
  /** weighted R_iou + R_box + R_point + R_frame. */
  outcome: number;
  /** P; null when it needs similarities that were not supplied. */
  process: number | null;
  format: number;
  /** IGR; null when not applicable (no steps, other mode) or not computable (no similarities). */
  igr: number | null;
  tpr: number;
  /** k of the TPR. */
  k: number;
  /** `<thinking>…</thinking><search>…</search>` steps found (before the budget cap). */
  searchSteps: number;
  /** `<search>` occurrences, the logged `num_search`. */
  numSearch: number;
  iou: number;
  box: number;
  point: number;
  frame: number;
  /** Keyframe id string the outcome used. */
  keyframe: string | null;
  /** The first `text_search` query as IGR reads it. */
  firstQuery: string | null;
  /** Stepwise mode: fraction of reference steps matched; else null. */
  stepMatch: number | null;
  /** Whether the sample has reference steps (search sample). */
  hasSteps: boolean;
  /** One line per term, saying why it has its value. */
  reasons: string[];
}

/** The similarity computations a trajectory needs before it can be scored under these settings. */
export interface SimilarityRequest {
  purpose: 'igr' | 'step';
  /** For `step`: the index j of the query and the step. */
  index: number;
  query: string;
  refs: string[];
}

function stepsOf(input: RewardInput): string[] {
  return Array.isArray(input.steps) ? input.steps.map(String) : [];
}

/** What to ask a {@link SimilarityProvider} for this input. */
export function similarityRequests(
  input: RewardInput,
  settings: RewardSettings = DEFAULT_REWARD_SETTINGS,
): SimilarityRequest[] {
  try {
    const steps = stepsOf(input);
    if (steps.length === 0) return [];
    const response = String(input.response);
    if (settings.processMode === 'hierarchical') {
      const q = firstTextSearchQuery(response);
      return q === null ? [] : [{ purpose: 'igr', index: 0, query: q, refs: steps }];
    }
    if (settings.processMode === 'stepwise') {
      const qs = allTextSearchQueries(response).slice(0, steps.length);
      return qs.map((q, j) => ({ purpose: 'step', index: j, query: q, refs: [steps[j] ?? ''] }));
    }
    return [];
  } catch {
    return [];
  }
}

function failSafe(reason: string): RewardBreakdown {
  return {
    total: 0,
    outcome: 0,
    process: 0,
    format: 0,
    igr: null,
    tpr: 0,
    k: 0,
    searchSteps: 0,
    numSearch: 0,
    iou: 0,
    box: 0,
    point: 0,
    frame: 0,
    keyframe: null,
    firstQuery: null,
    stepMatch: null,
    hasSteps: false,
    reasons: [reason],
  };
}

/** Score one trajectory (spec §5). Never throws. */
export function scoreTrajectory(
  input: RewardInput,
  settings: RewardSettings = DEFAULT_REWARD_SETTINGS,
): RewardBreakdown {
  try {
    return score(input, settings);
  } catch (e) {
    return failSafe(`reward 0: internal error while scoring (${e instanceof Error ? e.message : String(e)})`);
  }
}

function score(input: RewardInput, s: RewardSettings): RewardBreakdown {
  const response = typeof input.response === 'string' ? input.response : String(input.response);
  const reasons: string[] = [];
  const steps = stepsOf(input);
  const hasSteps = steps.length > 0;

  const f = formatTerm(response);
  const searchSteps = searchStepCount(response);
  const tpr = taperingProcessReward(searchSteps, f.value, s.tprP, s.searchBudget);
  const firstQuery = firstTextSearchQuery(response);
  reasons.push(f.reason, tpr.reason);

  let igr: number | null = null;
  let process: number | null;
  let stepMatch: number | null = null;
  if (s.processMode === 'none') {
    process = 0;
    reasons.push('P 0: outcome-only reward (no process term)');
  } else if (!hasSteps) {
    process = f.value;
    reasons.push(`P = F = ${f.value}: the sample has no reference search steps`);
  } else if (s.processMode === 'hierarchical') {
    const sims = input.similarity?.firstQuery;
    if (firstQuery === null) {
      igr = 0;
      reasons.push('IGR 0: no text_search call');
    } else if (sims === undefined || sims === null) {
      reasons.push(
        'IGR unknown: no similarities supplied for the first text_search query (needs a SimilarityProvider)',
      );
    } else {
      const t = initialGuidanceReward(firstQuery, sims, s.igrThreshold);
      igr = t.value;
      reasons.push(t.reason);
    }
    process =
      igr === null
        ? null
        : s.igrWeight === s.tprWeight
          ? s.igrWeight * (igr + tpr.value)
          : s.igrWeight * igr + s.tprWeight * tpr.value;
    if (process !== null) reasons.push(`P ${process}: ${s.igrWeight}·IGR + ${s.tprWeight}·TPR`);
  } else {
    const queries = allTextSearchQueries(response);
    const per = input.similarity?.perStep;
    const needed = Math.min(queries.length, steps.length);
    if (needed > 0 && (per === undefined || per === null || per.length < needed)) {
      process = null;
      reasons.push('stepwise P unknown: per-step similarities not supplied (needs a SimilarityProvider)');
    } else {
      let matched = 0;
      for (let j = 0; j < needed; j++) {
        const sim = per?.[j];
        if (typeof sim === 'number' && sim > s.igrThreshold) matched++;
      }
      stepMatch = matched / steps.length;
      process = s.stepwiseMatchWeight * stepMatch + s.stepwiseFormatWeight * f.value;
      reasons.push(
        `P ${process}: ${matched}/${steps.length} reference steps matched by the query in the same position, plus F`,
      );
    }
  }

  const gt = parseGroundTruth(input.groundTruth);
  let iou = 0;
  let box = 0;
  let point = 0;
  let frame = 0;
  let keyframe: string | null = null;
  if (gt === null) {
    reasons.push('outcome 0: the ground truth is not a JSON object of frames');
  } else {
    const o = outcomeTerms(response, gt, s);
    iou = o.iou.value;
    box = o.box.value;
    point = o.point.value;
    frame = o.frame.value;
    keyframe = o.keyframe;
    reasons.push(o.iou.reason, o.box.reason, o.point.reason, o.frame.reason);
  }
  const w = s.weights;
  // Summed in the reference's order, so the logged score is reproduced to the last bit.
  const outcome = w.iou * iou + w.box * box + w.point * point + w.frame * frame;
  const total =
    process === null
      ? null
      : w.iou * iou + w.box * box + w.point * point + w.frame * frame + w.process * process;
  return {
    total,
    outcome,
    process,
    format: f.value,
    igr,
    tpr: tpr.value,
    k: tpr.k,
    searchSteps,
    numSearch: numSearch(response),
    iou,
    box,
    point,
    frame,
    keyframe,
    firstQuery,
    stepMatch,
    hasSteps,
    reasons,
  };
}

/**
 * Score one trajectory, fetching the similarities it needs from `provider` first. Text never makes
 * it throw; a failing provider does (that is an infrastructure error the caller should retry).
 */
export async function scoreTrajectoryWith(
  input: RewardInput,
  provider: SimilarityProvider,
  settings: RewardSettings = DEFAULT_REWARD_SETTINGS,
): Promise<RewardBreakdown> {
  const requests = similarityRequests(input, settings);
  let firstQuery: number[] | null = null;
  const perStep: (number | null)[] = [];
  for (const r of requests) {
    const sims = await provider.similarities(r.query, r.refs);
    if (r.purpose === 'igr') firstQuery = sims;
    else perStep[r.index] = sims[0] ?? null;
  }
  return scoreTrajectory({ ...input, similarity: { firstQuery, perStep } }, settings);
}
