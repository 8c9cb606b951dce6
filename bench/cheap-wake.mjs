// Cheap mode's first answer (`cheap` at start, and after `idle`), next to uWSGI in the
// same run: a vassal with no worker gets one request; how long until its 200? uWSGI's
// master watches its sockets in its event loop and forks from its preloaded app; ours
// watches a duplicate of each socket (cheap-watch.ts) and spawns a Node worker, or forks
// a Python one from its template.
//   - cheap: from the "cheap mode enabled" line of a fresh vassal (no worker, and for
//     Python no app imported yet under Emperor; uWSGI imports it at start) to the 200;
//   - idle: `idle = 1`; after a request, wait for "cheap mode enabled", then 1.5 s, then
//     time one request on a new connection;
//   - the idle CPU of an emperor with N `cheap` vassals that nobody uses (default 20):
//     the emperor and its masters, over 30 s, once all are in cheap mode and 20 s more
//     have passed (uWSGI: its emperor with the same vassals, Python).
// Python: a WSGI hello world; Node: a Node hello world. 2 workers each, http-socket.
//
//   npm run bench -- cheap-wake
//   BENCH_CHEAP_ROUNDS=9 BENCH_CHEAP_VASSALS=50 npm run bench -- cheap-wake
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { EMPEROR_BIN, ROOT, ensureDebianPackages, freePort, get200, median, record, runCleanups, start, table, tempDir, treeCpuMs, waitFor } from './lib.mjs';

const ROUNDS = Number(process.env.BENCH_CHEAP_ROUNDS ?? 5);
const VASSALS = Number(process.env.BENCH_CHEAP_VASSALS ?? 20);
const SETTLE_S = 20;
const MEASURE_S = 30;
const WSGI = join(ROOT, 'test', 'fixtures', 'apps', 'wsgi_app.py');
const NODE = join(ROOT, 'examples', 'node-hello', 'app.mjs');

const SYSTEMS = [
  { label: 'Emperor, Node worker', kind: 'emperor', app: `module = ${NODE}` },
  { label: 'Emperor, Python (preload)', kind: 'emperor', app: `wsgi-file = ${WSGI}` },
  { label: 'uWSGI, Python (preload)', kind: 'uwsgi', app: `plugin = python3\nwsgi-file = ${WSGI}` },
];

/** Starts `system` with `extra` options; its log goes to a file we read. */
async function launch(system, extra) {
  const dir = tempDir();
  const port = await freePort();
  const ini = join(dir, 'v.ini');
  writeFileSync(ini, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\n${system.app}\nprocesses = 2\nmaster = true\n${extra}\n`);
  const log = join(dir, 'log');
  const fd = openSync(log, 'w');
  const proc = system.kind === 'emperor'
    ? start(process.execPath, [EMPEROR_BIN, '--ini', ini], { stdio: ['ignore', fd, fd] })
    : start('uwsgi', ['--ini', ini], { stdio: ['ignore', fd, fd] });
  const lines = (re) => readFileSync(log, 'utf8').split('\n').filter((l) => re.test(l)).length;
  return { url: `http://127.0.0.1:${port}/`, proc, cheapLines: () => lines(/cheap mode enabled/) };
}

/** ms from now to a 200 on a new connection. */
async function firstAnswer(url) {
  const t = performance.now();
  if (!(await get200(url).catch(() => false))) throw new Error(`${url}: no 200`);
  return performance.now() - t;
}

/** % of one core the emperor and everything under it used over MEASURE_S, with VASSALS unused `cheap` vassals. */
async function idleCpu(system) {
  const dir = tempDir();
  const vassals = join(dir, 'vassals');
  mkdirSync(vassals);
  for (let i = 0; i < VASSALS; i++) {
    const port = await freePort();
    writeFileSync(join(vassals, `v${i}.ini`), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\n${system.app}\nprocesses = 2\nmaster = true\ncheap = true\n`);
  }
  const log = join(dir, 'log');
  const fd = openSync(log, 'w');
  const emperor = system.kind === 'emperor'
    ? start(process.execPath, [EMPEROR_BIN, '--emperor', vassals], { stdio: ['ignore', fd, fd] })
    : start('uwsgi', ['--emperor', vassals, '--die-on-term'], { stdio: ['ignore', fd, fd] });
  await waitFor(() => readFileSync(log, 'utf8').split('\n').filter((l) => /cheap mode enabled/.test(l)).length >= VASSALS, 120_000, 200);
  await delay(SETTLE_S * 1000);
  const a = treeCpuMs(emperor.pid);
  await delay(MEASURE_S * 1000);
  const used = treeCpuMs(emperor.pid) - a;
  await runCleanups();
  return (used / (MEASURE_S * 1000)) * 100;
}

export async function run() {
  ensureDebianPackages('cheap-wake', ['uwsgi', 'uwsgi-plugin-python3']);
  const rows = [];
  const data = {};
  for (const system of SYSTEMS) {
    const cheap = [];
    for (let i = 0; i < ROUNDS; i++) {
      const v = await launch(system, 'cheap = true');
      await waitFor(() => v.cheapLines() > 0, 30_000);
      await delay(500); // the watch's duplicates (ours) are had before "ready"; this only lets the start settle
      cheap.push(await firstAnswer(v.url));
      await runCleanups();
    }
    const idle = [];
    const v = await launch(system, 'idle = 1');
    await waitFor(() => get200(v.url), 30_000);
    for (let i = 0; i < ROUNDS; i++) {
      const before = v.cheapLines();
      await get200(v.url);
      await waitFor(() => v.cheapLines() > before, 30_000);
      await delay(1500);
      idle.push(await firstAnswer(v.url));
    }
    await runCleanups();
    data[system.label] = { cheap, idle };
    const f = (values) => `${median(values).toFixed(0)} ms (${Math.min(...values).toFixed(0)} to ${Math.max(...values).toFixed(0)})`;
    rows.push([system.label, f(cheap), f(idle)]);
  }
  for (const [i, system] of SYSTEMS.entries()) {
    if (system.label === 'Emperor, Node worker') continue; // the Python rows compare like with like
    const cpu = await idleCpu(system);
    data[system.label].idleCpuPercent = cpu;
    rows[i]?.push(`${cpu.toFixed(2)} %`);
  }
  rows[0]?.push('-');
  record('cheap-wake', data);
  table(`Cheap mode: first answer on a vassal with no worker, median (min to max) of ${ROUNDS}; 2 workers, http-socket; idle CPU of an emperor with ${VASSALS} unused cheap vassals (emperor and masters, % of one core over ${MEASURE_S} s)`,
    ['system', '`cheap`: first request after start', 'after `idle`: first request', `idle CPU, ${VASSALS} cheap vassals`], rows);
}
