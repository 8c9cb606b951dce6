export * from './source.js';
export * from './reconcile.js';
export * from './vassal.js';
export * from './emperor.js';
