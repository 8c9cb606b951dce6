/**
 * Test helpers shared by every layer. Rules they enforce: wait on events or poll with a
 * deadline (never a bare sleep); everything a test creates (temp dirs, processes) is
 * registered for cleanup; processes are ended by PID, never by name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { readStats } from '@emperor/protocol';

/** Repository root (test/dist/helpers → ../../..). */
export const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
/** The built `emperor` bin. */
export const EMPEROR_BIN = join(ROOT, 'packages', 'cli', 'dist', 'bundle', 'emperor.js');
/** Fixture apps and files (not compiled). */
export const FIXTURES = join(ROOT, 'test', 'fixtures');

/** Options for {@link waitFor}. */
export interface WaitOptions {
  /** Give up after this many ms. @default 10000 */
  readonly timeoutMs?: number;
  /** Poll interval, ms. @default 50 */
  readonly intervalMs?: number;
  /** What is awaited, for the failure message (a function: computed at the timeout, to show the state then). */
  readonly message?: string | (() => string);
}

/**
 * Polls `probe` until it returns a value other than `undefined`/`false`, and returns it.
 * On timeout, fails with `message` and the last value or error the probe produced.
 */
export async function waitFor<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, options: WaitOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? `${last.name}: ${last.message}` : JSON.stringify(last);
      const what = typeof options.message === 'function' ? options.message() : (options.message ?? 'a condition');
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${seen}`);
    }
    await delay(options.intervalMs ?? 50);
  }
}

/** A fresh temp dir, removed after the test. */
export function tempDir(t: TestContext, prefix = 'emperor-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a file atomically (write a dotfile, rename), as editors and deploy tools do. */
export function writeAtomic(path: string, content: string): void {
  const dir = path.slice(0, path.lastIndexOf('/'));
  const tmp = join(dir, `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/** True when `pid` exists and is not a zombie (a zombie has already died). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Parent pid of `pid`, or 0. */
export function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/** Every live descendant of `pid` (children, grandchildren, …). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = Number(name);
    if (!isAlive(p)) continue;
    const parent = parentOf(p);
    const list = children.get(parent) ?? [];
    list.push(p);
    children.set(parent, list);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = children.get(queue.shift() as number) ?? [];
    out.push(...next);
    queue.push(...next);
  }
  return out;
}

/** Reads a field of /proc/PID/status (e.g. `Uid`, `Cpus_allowed_list`). */
export function procStatus(pid: number, field: string): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${field}:`));
    return line?.slice(field.length + 1).trim();
  } catch {
    return undefined;
  }
}

/** One parsed log line (pino JSON), or the raw text when it is not JSON. */
export interface LogLine {
  readonly level?: number;
  readonly msg?: string;
  readonly vassal?: string;
  readonly worker?: number;
  readonly raw: string;
  readonly [key: string]: unknown;
}

/** Collects a process's stderr lines as parsed logs. */
export class LogCollector {
  readonly lines: LogLine[] = [];
  #partial = '';

  attach(stream: NodeJS.ReadableStream): void {
    stream.setEncoding?.('utf8');
    stream.on('data', (chunk: string) => {
      const text = this.#partial + chunk;
      const parts = text.split('\n');
      this.#partial = parts.pop() ?? '';
      for (const raw of parts) {
        if (raw.trim() === '') continue;
        try {
          this.lines.push({ ...(JSON.parse(raw) as object), raw });
        } catch {
          this.lines.push({ raw });
        }
      }
    });
  }

  /** Lines matching `predicate`. */
  find(predicate: (line: LogLine) => boolean): LogLine[] {
    return this.lines.filter(predicate);
  }

  /** Waits for a line matching `predicate` and returns it. */
  waitFor(predicate: (line: LogLine) => boolean, options: WaitOptions = {}): Promise<LogLine> {
    return waitFor(() => this.lines.find(predicate), {
      ...options,
      // The last lines at the timeout, not at the call.
      message: () => `${typeof options.message === 'function' ? options.message() : (options.message ?? 'a log line')} (last lines: ${this.lines.slice(-5).map((l) => l.msg ?? l.raw).join(' | ')})`,
    });
  }

  /** The last `n` lines as text, for failure messages. */
  tail(n = 20): string {
    return this.lines.slice(-n).map((l) => l.raw).join('\n');
  }
}

/** A process started by a test, ended by PID after the test with all its descendants. */
export interface Spawned {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logs: LogCollector;
  readonly stdout: () => string;
  /** Resolves with the exit code (or signal) once it exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Spawns `node <script> args` with JSON logs on stderr, and registers cleanup: SIGTERM,
 * then SIGKILL after 5 s, then SIGKILL to any descendant still alive (by PID).
 */
export function spawnNode(t: TestContext, script: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {}): Spawned {
  return spawnProcess(t, process.execPath, [script, ...args], options);
}

/** Spawns any program with the same logging and cleanup as {@link spawnNode}. */
export function spawnProcess(t: TestContext, file: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {}): Spawned {
  const child = spawn(file, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, EMPEROR_LOG_STYLE: 'json', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
    ...(options.gid !== undefined ? { gid: options.gid } : {}),
  });
  const logs = new LogCollector();
  if (child.stderr) logs.attach(child.stderr);
  let out = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (c: string) => {
    out += c;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
  });
  const pid = child.pid ?? 0;
  t.after(async () => {
    const tree = descendants(pid);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    for (const p of [...tree, ...descendants(pid)]) {
      if (isAlive(p)) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  });
  return { child, pid, logs, stdout: () => out, exited };
}

/** Spawns the built `emperor` CLI with `args`. */
export function spawnEmperor(t: TestContext, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {}): Spawned {
  return spawnNode(t, EMPEROR_BIN, args, options);
}

/** Reads a stats document, polling until it is reachable. */
export function statsOf<T = Record<string, unknown>>(address: string, options: WaitOptions = {}): Promise<T> {
  return waitFor(async () => (await readStats(address, { timeoutMs: 2000 })) as T, { message: `stats on ${address}`, ...options });
}

/** Minimal HTTP GET with a fresh connection; resolves with status and body. */
export async function httpGet(url: string, init: RequestInit = {}): Promise<{ status: number; body: string; headers: Headers }> {
  const res = await fetch(url, { ...init, headers: { connection: 'close', ...(init.headers as Record<string, string> | undefined) }, signal: init.signal ?? AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

/** Shape of the bits of vassal stats tests read. */
export interface VassalStatsDoc {
  pid: number;
  state: string;
  listen_queue: number;
  sockets: { name: string; proto: string; queue: number; max_queue: number }[];
  workers: { id: number; pid: number; requests: number; delta_requests: number; status: string; accepting: number; rss: number; vsz: number; pss: number; respawn_count: number; harakiri_count: number; last_exit_reason: string; exceptions: number; tx: number; avg_rt: number }[];
}

/** Shape of the bits of emperor stats tests read. */
export interface EmperorStatsDoc {
  pid: number;
  emperor: string[];
  vassals: { id: string; pid: number; last_mod: number; ready: number; accepting: number; loyal: number; last_heartbeat: number; respawns: number; state: string; last_error: string; cursed: number; throttle_ms: number; uid: number; gid: number }[];
  blacklist: { id: string; throttle_level: number; attempt: number }[];
}

/** A vassal run standalone by a test (`emperor --ini FILE`). */
export interface TestVassal {
  readonly dir: string;
  readonly port: number;
  readonly file: string;
  readonly url: string;
  /** The stats unix socket every test vassal gets. */
  readonly stats: string;
  readonly proc: Spawned;
}

/**
 * Writes `[uwsgi]` + `body(port, dir)` + a `stats` line to a fresh temp dir and runs it
 * with `emperor --ini`. `port` is a free TCP port for the body to use.
 */
export async function startVassal(
  t: TestContext,
  body: (port: number, dir: string) => string,
  options: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<TestVassal> {
  const dir = tempDir(t);
  const port = await freePort();
  const file = join(dir, 'v.ini');
  const stats = join(dir, 'stats.sock');
  writeFileSync(file, `[uwsgi]\n${body(port, dir)}\nstats = ${stats}\n`);
  if (options.uid !== undefined) chmodSync(dir, 0o755);
  const proc = spawnEmperor(t, ['--ini', file], options);
  return { dir, port, file, url: `http://127.0.0.1:${port}`, stats, proc };
}

/** Polls `url` until it answers 200; returns the body. */
export function serving(url: string, options: WaitOptions = {}): Promise<string> {
  return waitFor(async () => {
    const r = await httpGet(url);
    return r.status === 200 ? r.body : undefined;
  }, { message: `200 from ${url}`, timeoutMs: 15_000, ...options });
}

/** Polls the vassal's stats until `ready(doc)` is true; returns that document. */
export function statsUntil(stats: string, ready: (doc: VassalStatsDoc) => boolean, options: WaitOptions = {}): Promise<VassalStatsDoc> {
  return waitFor(async () => {
    const doc = await statsOf<VassalStatsDoc>(stats);
    return ready(doc) ? doc : undefined;
  }, { message: `stats of ${stats}`, ...options });
}

/** The pid in a basic.mjs answer (`pid 123`, `slept 10 in 123`, ...). */
export function pidIn(body: string): number {
  return Number(/(\d+)\s*$/.exec(body.trim())?.[1] ?? NaN);
}

/** Polls the vassal's stats until `count` workers accept; returns that document. */
export function workersAccepting(v: TestVassal, count: number, options: WaitOptions = {}): Promise<VassalStatsDoc> {
  return statsUntil(v.stats, (doc) => doc.workers.length === count && doc.workers.every((w) => w.accepting === 1 && w.pid > 0), {
    timeoutMs: 20_000,
    message: `${count} worker(s) accepting`,
    ...options,
  });
}
