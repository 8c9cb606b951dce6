// Shared helpers for the benchmarks: process handling (by PID only), timing, tables.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
export const EMPEROR_BIN = join(ROOT, 'packages', 'cli', 'dist', 'bin', 'emperor.js');

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

/** Prints a Markdown table (also readable in a terminal). */
export function table(title, headers, rows) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  console.log(`\n### ${title}\n`);
  console.log(line(headers));
  console.log(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
  for (const r of rows) console.log(line(r));
}

export const ms = (n) => `${n.toFixed(0)} ms`;
export const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
