// The memory table of `npm run bench wsgi`: a fresh Django project (Debian's
// python3-django, `django-admin startproject` plus one plain view) with 4 workers under
// Emperor (preload, the default, and lazy-apps), uWSGI (preload is its default too, and
// --lazy-apps) and gunicorn (lazy by default, and --preload), one server at a time:
// - total PSS of the server's process tree after a warm-up (every worker has served
//   requests), from /proc/PID/smaps_rollup; Emperor's also without its Node master;
// - time from the server's start to its first 200;
// - time to replace a worker: from its SIGKILL (after 10 s of uptime, so no crash backoff
//   applies) until its replacement answers (bursts of 4 concurrent requests to a view
//   that waits 50 ms: a burst can only all be answered at once, and by a new pid, when 4
//   workers accept again).
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { EMPEROR_BIN, descendants, freePort, isAlive, mib, record, start, table, waitFor } from './lib.mjs';
import { wrk } from './wrk.mjs';

const PYTHON = '/usr/bin/python3';
const WORKERS = 4;

/** PSS of `pid`, bytes; 0 when it is gone. */
function pss(pid) {
  try {
    return Number(/^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** `django-admin startproject` with DEBUG off, any host, and two views: /hello/ and /slow/ (waits 50 ms, answers its pid). */
function djangoProject(dir) {
  const project = join(dir, 'django');
  mkdirSync(project);
  execFileSync(PYTHON, ['-m', 'django', 'startproject', 'mysite', project], { stdio: 'ignore' });
  appendFileSync(join(project, 'mysite', 'settings.py'), "\nDEBUG = False\nALLOWED_HOSTS = ['*']\n");
  appendFileSync(join(project, 'mysite', 'urls.py'), `
import os, time
from django.http import HttpResponse

def hello(request):
    return HttpResponse('Hello, World!')

def slow(request):
    time.sleep(0.05)
    return HttpResponse(str(os.getpid()))

urlpatterns += [path('hello/', hello), path('slow/', slow)]
`);
  return project;
}

async function get(url) {
  const r = await fetch(url, { headers: { connection: 'close' }, signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: await r.text() };
}

/** The pids answering a burst of `n` concurrent /slow/ requests. */
async function burst(base, n) {
  const answers = await Promise.all(Array.from({ length: n }, () => get(`${base}/slow/`).catch(() => ({ status: 0, body: '' }))));
  return answers.filter((a) => a.status === 200).map((a) => Number(a.body));
}

/** The server's workers: the `WORKERS` processes of its tree that answered requests (any template or master excluded). */
async function workerPids(base, root) {
  const seen = new Set();
  await waitFor(async () => {
    for (const pid of await burst(base, WORKERS)) seen.add(pid);
    return seen.size >= WORKERS;
  }, 30_000, 10);
  const tree = new Set([root, ...descendants(root)]);
  return [...seen].filter((p) => tree.has(p));
}

async function measure(name, cmd, args, opts, port) {
  const base = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  const server = start(cmd, args, opts);
  await waitFor(async () => (await get(`${base}/hello/`)).status === 200, 60_000, 10);
  const firstMs = performance.now() - t0;
  // Warm-up: every worker serves requests (wrk on 8 connections for 2 s), then the tree settles.
  await workerPids(base, server.pid);
  await wrk(`${base}/hello/`, { threads: 1, connections: 8, seconds: 2, headers: [] });
  await delay(500);
  const tree = [server.pid, ...descendants(server.pid)];
  const total = tree.reduce((sum, pid) => sum + pss(pid), 0);
  const rootPss = pss(server.pid);
  const workers = await workerPids(base, server.pid);
  // Replace one worker: SIGKILL, then bursts until all WORKERS answer at once, one of them
  // new. Killed once it has lived 10 s: Emperor respawns a worker that dies younger after a
  // backoff (0.5 s, 1 s, ...), which is policy, not the cost of a replacement.
  await delay(Math.max(0, 10_500 - (performance.now() - t0 - firstMs)));
  const victim = workers[0];
  const t1 = performance.now();
  process.kill(victim, 'SIGKILL');
  await waitFor(async () => {
    const pids = await burst(base, WORKERS);
    return pids.length === WORKERS && new Set(pids).size === WORKERS && pids.some((p) => !workers.includes(p));
  }, 60_000, 0);
  const replaceMs = performance.now() - t1;
  server.child.kill('SIGTERM');
  const killer = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
  await server.exited;
  clearTimeout(killer);
  for (const pid of tree) if (isAlive(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  return { name, total, rootPss, processes: tree.length, firstMs, replaceMs };
}

/** Runs the six servers one after another and prints the memory table. */
export async function memoryTable(dir) {
  const project = djangoProject(dir);
  const quiet = { env: { ...process.env, EMPEROR_LOG_LEVEL: 'warn', EMPEROR_LOG_PRETTY: '0' } };
  const emperorIni = async (file, lazy) => {
    const port = await freePort();
    writeFileSync(join(dir, file), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nchdir = ${project}\nmodule = mysite.wsgi:application\nprocesses = ${WORKERS}\nenv = PATH=/usr/bin:/bin\ndisable-logging = true\n${lazy ? 'lazy-apps = true\n' : ''}`);
    return port;
  };
  const uwsgiArgs = (port, lazy) => ['--plugin', 'python3', '--master', '--processes', String(WORKERS), '--disable-logging', '--die-on-term',
    '--http-socket', `127.0.0.1:${port}`, '--chdir', project, '--module', 'mysite.wsgi:application', ...(lazy ? ['--lazy-apps'] : [])];
  const gunicornArgs = (port, preload) => ['--workers', String(WORKERS), '--worker-class', 'sync', '--bind', `127.0.0.1:${port}`, '--chdir', project,
    ...(preload ? ['--preload'] : []), 'mysite.wsgi:application'];
  const servers = [
    ['Emperor (preload, the default)', async () => [process.execPath, [EMPEROR_BIN, '--ini', join(dir, 'mem-preload.ini')], quiet, await emperorIni('mem-preload.ini', false)]],
    ['Emperor lazy-apps', async () => [process.execPath, [EMPEROR_BIN, '--ini', join(dir, 'mem-lazy.ini')], quiet, await emperorIni('mem-lazy.ini', true)]],
    ['uWSGI (preload, its default)', async () => { const p = await freePort(); return ['uwsgi', uwsgiArgs(p, false), { cwd: dir }, p]; }],
    ['uWSGI --lazy-apps', async () => { const p = await freePort(); return ['uwsgi', uwsgiArgs(p, true), { cwd: dir }, p]; }],
    ['gunicorn sync (lazy, its default)', async () => { const p = await freePort(); return ['gunicorn', gunicornArgs(p, false), { cwd: dir }, p]; }],
    ['gunicorn sync --preload', async () => { const p = await freePort(); return ['gunicorn', gunicornArgs(p, true), { cwd: dir }, p]; }],
  ];
  const rows = [];
  const data = {};
  for (const [name, make] of servers) {
    const [cmd, args, opts, port] = await make();
    const r = await measure(name, cmd, args, opts, port);
    rows.push(r);
    data[name] = { totalPssBytes: r.total, rootPssBytes: r.rootPss, processes: r.processes, firstMs: Math.round(r.firstMs), replaceMs: Math.round(r.replaceMs) };
  }
  record('wsgi-memory', data);
  table(
    `Django (startproject), ${WORKERS} workers: memory and start-up, one server at a time (${execFileSync(PYTHON, ['-c', 'import django, sys; print("Django", django.get_version(), "on Python", sys.version.split()[0])'], { encoding: 'utf8' }).trim()})`,
    ['server', 'total PSS of the process tree', 'of which the root process', 'processes', 'start → first 200', 'SIGKILLed worker → replacement answers'],
    rows.map((r) => [r.name, mib(r.total), mib(r.rootPss), r.processes, `${Math.round(r.firstMs)} ms`, `${Math.round(r.replaceMs)} ms`]),
  );
  return rows;
}
