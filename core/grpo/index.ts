/**
 * GRPO/DAPO math (spec §6): group advantages and dynamic sampling (used by the workflows), and the
 * PPO-clip loss and per-token masks (test-only: a TypeScript cross-check of the Python trainer's loss).
 */
export * from './advantages.js';
export * from './loss.js';
export * from './masks.js';
