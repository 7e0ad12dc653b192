// Every workflow the orchestrator worker serves. Workflows import activity *types* only.
export { stackCheck } from './stack-check.js';
export { rollout, rolloutProgressQuery } from './rollout.js';
export { segmentQuery, segmentQueryProgress } from './segment-query.js';
export { rolloutGroup } from './rollout-group.js';
export { trainingRun, trainingStatusQuery } from './training-run.js';
export { evaluation, evaluateSample, evaluationProgressQuery } from './evaluation.js';
