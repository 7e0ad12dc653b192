/** Python semantics the reference depends on (json.loads, str methods, round, repr). */
export * from './text.js';
export * from './pyjson.js';
export * from './pyrepr.js';
