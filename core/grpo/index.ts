/** GRPO/DAPO math: group advantages, dynamic sampling, PPO-clip loss, per-token masks (spec §6). */
export * from './advantages.js';
export * from './loss.js';
export * from './masks.js';
