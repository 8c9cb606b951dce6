export * from './scoreboard.js';
export * from './sockets.js';
export * from './users.js';
export * from './worker-spec.js';
export * from './master.js';
export * from './health.js';
export * from './cheaper.js';
export * from './stats.js';
export * from './python-interpreter.js';
export { runVassal, WORKER_ENTRIES, type RunVassalOptions } from './run-vassal.js';

/** Absolute path of the master entry the emperor spawns. */
export const MASTER_ENTRY = new URL('./bin/master.js', import.meta.url).pathname;
export { encodeUwsgiPacket, parseUwsgiPacket, uwsgiToHttpHead, type UwsgiParse, type UwsgiPacket } from './runtimes/node/uwsgi-packet.js';
