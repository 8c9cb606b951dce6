export * from './logger.js';
export * from './child.js';
export * from './backoff.js';
export * from './clock.js';
export * from './resources.js';
export * from './stats-server.js';
export * from './metrics.js';
export * from './log-file.js';
