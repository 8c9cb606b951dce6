// Shared helpers for the benchmarks: process handling (by PID only), timing, tables.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
export const EMPEROR_BIN = join(ROOT, 'packages', 'cli', 'dist', 'bundle', 'emperor.js');

const cleanups = [];
/** Registers a cleanup run at exit (and on SIGINT). */
export function onExit(fn) { cleanups.push(fn); }
export async function runCleanups() {
  while (cleanups.length > 0) {
    try { await cleanups.pop()(); } catch { /* keep going */ }
  }
}
process.once('SIGINT', async () => { await runCleanups(); process.exit(130); });

export function tempDir(prefix = 'emperor-bench-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onExit(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

export function isAlive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch { return false; }
}

export function descendants(pid) {
  const kids = new Map();
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n) || !isAlive(Number(n))) continue;
    try {
      const st = readFileSync(`/proc/${n}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      (kids.get(ppid) ?? kids.set(ppid, []).get(ppid)).push(Number(n));
    } catch { /* gone */ }
  }
  const out = [];
  const q = [pid];
  while (q.length) { const c = kids.get(q.shift()) ?? []; out.push(...c); q.push(...c); }
  return out;
}

/** CPU time (user + system) of `pid` and all its descendants, ms (from /proc/PID/stat). */
export function treeCpuMs(pid, ticksPerSecond = 100) {
  let ticks = 0;
  for (const p of [pid, ...descendants(pid)]) {
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime
    } catch { /* gone */ }
  }
  return (ticks * 1000) / ticksPerSecond;
}

/** Spawns a process and registers its end: SIGTERM, SIGKILL after 5 s, then every descendant by PID. */
export function start(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', opts.stderr ?? 'ignore'], ...opts });
  const exited = new Promise((r) => child.once('exit', r));
  onExit(async () => {
    const tree = descendants(child.pid);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    for (const p of [...tree, ...descendants(child.pid)]) if (isAlive(p)) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
  });
  return { child, pid: child.pid, exited };
}

export async function waitFor(probe, timeoutMs = 30_000, intervalMs = 5) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try { const v = await probe(); if (v) return v; } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error('timed out');
    await delay(intervalMs);
  }
}

export async function get200(url) {
  const r = await fetch(url, { headers: { connection: 'close' }, signal: AbortSignal.timeout(2000) });
  await r.arrayBuffer();
  return r.status === 200;
}

export function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i];
}
export const median = (v) => percentile(v, 50);

/**
 * What a run measured, written by run.mjs to bench/results/ as JSON: every printed table,
 * and per benchmark the numbers behind it (`record`), from which
 * scripts/bench-report.mjs renders docs/benchmarks.md and its charts.
 */
export const results = { tables: [], data: {}, current: '' };

/** Keeps `value` under `key` in the results JSON (the numbers a chart is drawn from). */
export function record(key, value) {
  results.data[key] = value;
}

/** Prints a Markdown table (also readable in a terminal) and keeps it for the results JSON. */
export function table(title, headers, rows) {
  results.tables.push({ bench: results.current, title, headers, rows: rows.map((r) => r.map(String)) });
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  console.log(`\n### ${title}\n`);
  console.log(line(headers));
  console.log(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
  for (const r of rows) console.log(line(r));
}

/** The wrk settings of each load, the same for every Node benchmark. */
export const LOADS = {
  'keep-alive': { connections: 50 },
  'new connection per request': { connections: 16, headers: ['Connection: close'] },
};

/**
 * Starts a server with `startServer(port)` (resolving to its root pid), waits for a 200,
 * warms it up for 2 s, then runs wrk for `seconds` under `mode` (a LOADS key) and ends
 * every process it started. Returns wrk's figures and the CPU time per request of the
 * server's whole process tree.
 */
export async function measureWrk(name, startServer, mode, seconds) {
  const { wrk } = await import('./wrk.mjs');
  const port = await freePort();
  process.stderr.write(`  ${mode}: ${name} ...\n`);
  const root = (await startServer(port)).pid;
  const url = `http://127.0.0.1:${port}/`;
  try {
    await waitFor(() => get200(url), 30_000, 20);
  } catch {
    throw new Error(`${name} did not answer on ${url} within 30 s`);
  }
  const opts = LOADS[mode];
  await wrk(url, { ...opts, seconds: 2 }); // warm-up
  const cpu0 = treeCpuMs(root);
  const r = await wrk(url, { ...opts, seconds });
  const cpuMs = treeCpuMs(root) - cpu0;
  await runCleanups();
  return { ...r, cpuUsPerRequest: (cpuMs * 1000) / r.requests };
}

/** The mean of `f` over `items`. */
export const mean = (items, f) => items.reduce((a, x) => a + f(x), 0) / items.length;

export const ms = (n) => `${n.toFixed(0)} ms`;
export const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** Whether the Debian package `pkg` is installed (dpkg-query). */
function installed(pkg) {
  try {
    return execFileSync('dpkg-query', ['-W', '-f', '${Status}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).includes('install ok installed');
  } catch {
    return false;
  }
}

/**
 * Installs the Debian `packages` a benchmark needs when some are missing (as root; else
 * throws naming the apt-get command to run).
 */
export function ensureDebianPackages(bench, packages) {
  const missing = packages.filter((p) => !installed(p));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`missing Debian packages: run apt-get install ${missing.join(' ')}`);
  console.log(`installing ${missing.join(' ')} (Debian packages) for the ${bench} benchmark...`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

/** First line a tool prints about its version (nginx -v writes to stderr). */
export function version(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] || '?';
}

/** Starts a private nginx (one worker, no access log) in `prefix` with these `http` blocks (server, upstream). */
export function startNginx(prefix, blocks) {
  mkdirSync(prefix);
  const temp = (n) => `${n}_temp_path ${join(prefix, n)};`;
  writeFileSync(join(prefix, 'nginx.conf'), `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
error_log ${join(prefix, 'error.log')} error;
events { worker_connections 4096; }
http {
  access_log off;
  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}
  ${blocks.join('\n  ')}
}
`);
  return start('/usr/sbin/nginx', ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf'), '-g', `daemon off; pid ${join(prefix, 'nginx.pid')};`]);
}
