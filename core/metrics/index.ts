/** Segmentation metrics: DAVIS J/F (fast and naive), statistics, OK-VOS and ReasonSeg summaries. */
export * from './mask.js';
export * from './numpy.js';
export * from './davis.js';
export * from './davis-naive.js';
export * from './summary.js';
