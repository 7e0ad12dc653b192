/** Seg-ReSearch rewards (spec §5): terms, settings and presets, and the trajectory score. */
export * from './settings.js';
export * from './terms.js';
export * from './score.js';
