/**
 * The evaluation's activities (orchestrator role, queue `segflow`), in three modules by phase:
 *   plan.ts   — plan a page of samples, load a prepared sample for its child, resolve the newest
 *               checkpoint for scheduled evaluations;
 *   score.ts  — score a prediction against the sample's ground-truth masks (and its trajectory with
 *               the reward's outcome terms) and store the result under its deterministic key;
 *   report.ts — aggregate the stored results, render the report.
 * Inputs are validated with zod at this edge; bad input (not a dataset index, a sample without
 * masks, a malformed pointer) fails non-retryably with the input named; S3 errors retry by class.
 */
import type { PinoLogger } from '../runtime/logger.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { createPlanActivities, planInputs } from './plan.js';
import { createReportActivities, reportInputs } from './report.js';
import { createScoreActivities, scoreInput } from './score.js';

export {
  datasetKeyOf,
  policyPointerSchema,
  readDatasetIndex,
  type EvalPlan,
  type EvalPlanInput,
  type EvalPlanSample,
  type LoadedSample,
} from './plan.js';
export { sampleOutcomeReward, type EvalScoreInput } from './score.js';
export type { EvalAggregateInput } from './report.js';

export const evalInputs = { ...planInputs, score: scoreInput, ...reportInputs };

export interface EvaluationActivityDeps {
  store: ArtifactStore;
  logger?: PinoLogger;
  /** Clock for report timestamps (tests pin it). @default Date.now */
  now?: () => Date;
}

export function createEvaluationActivities(deps: EvaluationActivityDeps) {
  const now = deps.now ?? (() => new Date());
  return {
    ...createPlanActivities(deps.store),
    ...createScoreActivities(deps.store),
    ...createReportActivities(deps.store, now),
  };
}

export type EvaluationActivities = ReturnType<typeof createEvaluationActivities>;
