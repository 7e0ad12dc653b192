// Every workflow the orchestrator worker serves. Workflows import activity *types* only.
export { stackCheck } from './stack-check.js';
export { rollout, rolloutProgressQuery } from './rollout.js';
export { segmentQuery, segmentQueryProgress } from './segment-query.js';
export { rolloutGroup } from './rollout-group.js';
