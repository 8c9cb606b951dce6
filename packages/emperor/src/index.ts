export * from './source.js';
export * from './reconcile.js';
export * from './tyrant.js';
export * from './vassal.js';
export * from './notify.js';
export * from './emperor.js';
export * from './privileges.js';
