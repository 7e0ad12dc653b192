/** The Seg-ReSearch turn protocol (spec §2–§4, §7.1) and the Seg-Zero variant (§11). */
export * from './tags.js';
export * from './prompts.js';
export * from './actions.js';
export * from './observations.js';
export * from './web-pages.js';
export * from './coordinates.js';
export * as segZero from './segzero.js';
export * from './sam2-prompt.js';
