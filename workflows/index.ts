// Every workflow the orchestrator worker serves. Workflows import activity *types* only.
export { stackCheck } from './stack-check.js';
