/** The records that cross a boundary, their ids and keys: one definition each (see each module). */
export * from './ids.js';
export * from './keys.js';
export * from './errors.js';
export * from './training.js';
export * from './rollout.js';
export * from './evaluation.js';
export * from './protocol.js';
