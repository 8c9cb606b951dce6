/**
 * Worker health checks as pure functions of the worker table, the config and `now`
 * (uWSGI core/master_checks.c, core/master_utils.c). The master carries the actions out;
 * nothing here does I/O or reads the clock.
 */
import type { VassalConfig } from '@emperor/config';
import { SlotStatus, type SlotData } from '../shared/scoreboard.js';

/** What the checks need to know about one worker process. Times are epoch ms. */
export interface HealthProc {
  readonly id: number;
  readonly pid: number;
  /**
   * Its runtime serves one request at a time (Python WSGI): the start of the request in
   * the slot is the harakiri clock. Event-loop runtimes (Node) end an overdue request
   * themselves and are judged by their heartbeat. A property of the runtime
   * (`Runtime.sync`), overridden by a slot that says it is an event loop (a Python ASGI
   * worker: `SlotData.eventLoop`).
   */
  readonly sync: boolean;
  readonly state: 'starting' | 'ready' | 'stopping' | 'dead';
  readonly spawnedAt: number;
  /** Latest scoreboard reading. */
  readonly data: SlotData;
  /** How often this process writes its slot, ms (its heartbeat period). */
  readonly heartbeatIntervalMs: number;
  /** Resident and virtual memory from the last sample, bytes; 0 before the first. */
  readonly rss: number;
  readonly vsz: number;
  /** A replacement is already being started, or the master is already killing it. */
  readonly handled: boolean;
}

/** The health options, converted (`VassalConfig` fields). */
export type HealthConfig = Pick<
  VassalConfig,
  | 'harakiriMs'
  | 'minWorkerLifetimeMs'
  | 'maxWorkerLifetimeMs'
  | 'maxWorkerLifetimeDeltaMs'
  | 'reloadOnRssBytes'
  | 'reloadOnAsBytes'
  | 'evilReloadOnRssBytes'
  | 'evilReloadOnAsBytes'
>;

/** Why a worker is recycled gracefully (its replacement starts first). */
export type RecycleReason = 'reload-on-rss' | 'reload-on-as' | 'max-worker-lifetime' | 'max-requests';

/** What the master should do with a worker. */
export type HealthAction =
  /**
   * Kill it now (after a stack dump with `harakiri-verbose`) and respawn it.
   * `request`: a sync worker's request ran past `harakiri`. `heartbeat`: an event-loop
   * worker stopped writing its slot (a blocked loop) for longer than `harakiri`.
   */
  | { readonly kind: 'harakiri'; readonly proc: HealthProc; readonly cause: 'request' | 'heartbeat'; readonly ranMs: number }
  /** Start a replacement, then stop this one gracefully. */
  | { readonly kind: 'recycle'; readonly proc: HealthProc; readonly reason: RecycleReason; readonly detail: string }
  /** `evil-reload-on-*`: kill at once (SIGKILL) and respawn. */
  | { readonly kind: 'evil-kill'; readonly proc: HealthProc; readonly reason: 'evil-reload-on-rss' | 'evil-reload-on-as'; readonly detail: string };

/**
 * When `proc` becomes overdue for harakiri if nothing changes, epoch ms; undefined when
 * harakiri does not apply to it now.
 */
export function harakiriDeadline(proc: HealthProc, harakiriMs: number): number | undefined {
  if (harakiriMs <= 0 || proc.handled) return undefined;
  if (proc.state !== 'ready' && proc.state !== 'stopping') return undefined;
  if (proc.data.pid !== proc.pid) return undefined;
  if (isSync(proc)) {
    if (proc.data.status !== SlotStatus.BUSY || proc.data.requestStartMs <= 0) return undefined;
    return proc.data.requestStartMs + harakiriMs;
  }
  // A heartbeat is due every interval; allow one missed beat on top of harakiri so a
  // loop blocked for less than `harakiri` is never killed.
  if (proc.data.heartbeatMs <= 0) return undefined;
  return proc.data.heartbeatMs + harakiriMs + proc.heartbeatIntervalMs;
}

/** Whether harakiri times `proc`'s request start (a sync worker) rather than its heartbeat (an event loop). */
function isSync(proc: HealthProc): boolean {
  return proc.sync && proc.data.eventLoop !== true;
}

/** The earliest harakiri deadline over `procs`, or undefined. */
export function nextHarakiriDeadline(procs: Iterable<HealthProc>, harakiriMs: number): number | undefined {
  let next: number | undefined;
  for (const p of procs) {
    const d = harakiriDeadline(p, harakiriMs);
    if (d !== undefined && (next === undefined || d < next)) next = d;
  }
  return next;
}

const mb = (bytes: number): string => `${Math.round(bytes / 1024 / 1024)} MB`;

/**
 * Every action due at `now`, at most one per process (harakiri first, then the evil
 * limits, then graceful recycling). `min-worker-lifetime` gates the graceful memory
 * limits, as in uWSGI; the evil ones and harakiri are not gated.
 */
export function checkHealth(procs: Iterable<HealthProc>, config: HealthConfig, now: number): HealthAction[] {
  const actions: HealthAction[] = [];
  for (const proc of procs) {
    if (proc.handled || proc.state === 'dead') continue;
    const deadline = harakiriDeadline(proc, config.harakiriMs);
    if (deadline !== undefined && now >= deadline) {
      const sync = isSync(proc);
      actions.push({
        kind: 'harakiri',
        proc,
        cause: sync ? 'request' : 'heartbeat',
        ranMs: sync ? now - proc.data.requestStartMs : now - proc.data.heartbeatMs,
      });
      continue;
    }
    if (proc.state !== 'ready') continue;
    if (config.evilReloadOnRssBytes > 0 && proc.rss > config.evilReloadOnRssBytes) {
      actions.push({ kind: 'evil-kill', proc, reason: 'evil-reload-on-rss', detail: `rss ${mb(proc.rss)} > ${mb(config.evilReloadOnRssBytes)}` });
      continue;
    }
    if (config.evilReloadOnAsBytes > 0 && proc.vsz > config.evilReloadOnAsBytes) {
      actions.push({ kind: 'evil-kill', proc, reason: 'evil-reload-on-as', detail: `address space ${mb(proc.vsz)} > ${mb(config.evilReloadOnAsBytes)}` });
      continue;
    }
    const lifetime = now - proc.spawnedAt;
    const maxLifetime = config.maxWorkerLifetimeMs > 0 ? config.maxWorkerLifetimeMs + (proc.id - 1) * config.maxWorkerLifetimeDeltaMs : 0;
    if (maxLifetime > 0 && lifetime > maxLifetime) {
      actions.push({ kind: 'recycle', proc, reason: 'max-worker-lifetime', detail: `running for ${Math.floor(lifetime / 1000)} s` });
      continue;
    }
    if (lifetime < config.minWorkerLifetimeMs) continue;
    if (config.reloadOnRssBytes > 0 && proc.rss > config.reloadOnRssBytes) {
      actions.push({ kind: 'recycle', proc, reason: 'reload-on-rss', detail: `rss ${mb(proc.rss)} > ${mb(config.reloadOnRssBytes)}` });
      continue;
    }
    if (config.reloadOnAsBytes > 0 && proc.vsz > config.reloadOnAsBytes) {
      actions.push({ kind: 'recycle', proc, reason: 'reload-on-as', detail: `address space ${mb(proc.vsz)} > ${mb(config.reloadOnAsBytes)}` });
    }
  }
  return actions;
}

/**
 * CPUs for worker `id` under `cpu-affinity = perWorker` on a machine with `cpuCount`
 * CPUs: worker N starts at `(N-1) * perWorker` modulo the CPU count and takes
 * `perWorker` consecutive CPUs, wrapping (uWSGI core/utils.c `uwsgi_set_cpu_affinity`).
 */
export function cpusForWorker(id: number, perWorker: number, cpuCount: number): number[] {
  if (perWorker <= 0 || cpuCount <= 0) return [];
  const base = ((id - 1) * perWorker) % cpuCount;
  const out: number[] = [];
  for (let i = 0; i < Math.min(perWorker, cpuCount); i++) out.push((base + i) % cpuCount);
  return out;
}
