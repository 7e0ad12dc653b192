/** Kept for the search, policy and embedding activities: see `activityFailure` in errors.ts. */
export { activityFailure } from '../errors.js';
