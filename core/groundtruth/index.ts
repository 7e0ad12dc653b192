/** Ground truth from masks (spec §2): box, innermost point, areas, per-sample JSON. */
export * from './edt.js';
export * from './ground-truth.js';
