#!/usr/bin/env node
// npm run bench [-- name ...]: runs the benchmarks and prints their tables.
// Benchmarks start real processes on 127.0.0.1 and end them by PID.
import { runCleanups } from './lib.mjs';

const all = {
  'drop-to-200': () => import('./drop-to-200.mjs'),
  'emperor-scale': () => import('./emperor-scale.mjs'),
  'node-pool': () => import('./node-pool.mjs'),
  cheaper: () => import('./cheaper.mjs'),
  wsgi: () => import('./wsgi.mjs'),
};

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : Object.keys(all);
console.log(`# Emperor benchmarks (${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${(await import('node:os')).availableParallelism()} CPUs)`);
for (const name of names) {
  const load = all[name];
  if (!load) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(all).join(', ')}`);
    process.exitCode = 2;
    continue;
  }
  try {
    await (await load()).run();
  } catch (err) {
    console.error(`${name} failed: ${err.stack ?? err}`);
    process.exitCode = 1;
  } finally {
    await runCleanups();
  }
}
