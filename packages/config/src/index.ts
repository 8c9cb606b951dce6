export type * from './types.js';
export * from './errors.js';
export * from './read.js';
export * from './file-name.js';
export { EMPEROR_VERSION } from './version.js';
