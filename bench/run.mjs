#!/usr/bin/env node
// npm run bench [-- name ...]: runs the benchmarks and prints their tables.
// Benchmarks start real processes on 127.0.0.1 and end them by PID.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { results, runCleanups } from './lib.mjs';

const all = {
  'drop-to-200': () => import('./drop-to-200.mjs'),
  'emperor-pg': () => import('./emperor-pg.mjs'),
  'emperor-scale': () => import('./emperor-scale.mjs'),
  'emperor-ondemand': () => import('./emperor-ondemand.mjs'),
  handover: () => import('./handover.mjs'),
  'process-cost': () => import('./process-cost.mjs'),
  'node-pool': () => import('./node-pool.mjs'),
  'request-log': () => import('./request-log.mjs'),
  cheaper: () => import('./cheaper.mjs'),
  'cheap-wake': () => import('./cheap-wake.mjs'),
  wsgi: () => import('./wsgi.mjs'),
  fastcgi: () => import('./fastcgi.mjs'),
  asgi: () => import('./asgi.mjs'),
};

// The processes run from the one-file bundles; rebuild them from tsc's output (scripts/bundle.mjs).
await (await import('../scripts/bundle.mjs')).bundle();

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : Object.keys(all);
const started = new Date();
console.log(`# Emperor benchmarks (${started.toISOString().slice(0, 10)}, node ${process.version}, ${availableParallelism()} CPUs)`);
for (const name of names) {
  const load = all[name];
  if (!load) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(all).join(', ')}`);
    process.exitCode = 2;
    continue;
  }
  results.current = name;
  try {
    await (await load()).run();
  } catch (err) {
    console.error(`${name} failed: ${err.stack ?? err}`);
    process.exitCode = 1;
  } finally {
    await runCleanups();
  }
}

// The numbers behind the tables, for scripts/bench-report.mjs (docs/benchmarks.md and its
// charts). latest.json keeps the benchmarks this run did not repeat from the previous one.
const dir = new URL('./results/', import.meta.url);
mkdirSync(dir, { recursive: true });
let previous = { tables: [], data: {}, runs: {} };
try {
  previous = JSON.parse(readFileSync(new URL('latest.json', dir), 'utf8'));
} catch {
  // the first run
}
const run = { date: started.toISOString(), node: process.version, cpus: availableParallelism(), loadavg: loadavg().map((l) => Number(l.toFixed(2))) };
const latest = {
  tables: [...previous.tables.filter((t) => !names.includes(t.bench)), ...results.tables],
  data: { ...previous.data, ...results.data },
  runs: { ...previous.runs, ...Object.fromEntries(names.map((n) => [n, run])) },
};
writeFileSync(new URL(`${started.toISOString().replace(/[:.]/g, '-')}.json`, dir), `${JSON.stringify({ ...run, benchmarks: names, tables: results.tables, data: results.data }, null, 2)}\n`);
// A run narrowed while iterating (BENCH_SERVERS, BENCH_LOADS) would replace whole tables
// with part of them, and one against another checkout (BENCH_BASELINE) adds a row that is
// not a result to publish: they are kept in their dated file only.
const narrowed = ['BENCH_SERVERS', 'BENCH_LOADS', 'BENCH_BASELINE'].filter((v) => process.env[v] !== undefined);
if (narrowed.length > 0) {
  console.log(`\nresults: bench/results/ (dated file only: ${narrowed.join(', ')} set for this run, so latest.json is left as it was)`);
} else {
  writeFileSync(new URL('latest.json', dir), `${JSON.stringify(latest, null, 2)}\n`);
  console.log('\nresults: bench/results/latest.json; npm run bench:report renders docs/benchmarks.md from it');
}
