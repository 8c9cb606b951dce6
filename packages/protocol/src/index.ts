export * from './contract.js';
export * from './errors.js';
export * from './ipc.js';
export * from './stats.js';
export * from './stats-client.js';
export * from './text.js';

/** Our version, reported as `version` in stats documents and by `emperor --version`. */
export const VERSION = '0.1.0';
export * from './control.js';
