/**
 * Questions asked of a pool, as pure functions: the master's state, what a process looks
 * like to stats and to the health checks, when the next deadline is, how often to tick.
 */
import type { VassalConfig } from '@emperor/config';
import { SlotStatus, type SlotData } from '../../shared/scoreboard.js';
import { nextHarakiriDeadline, type HealthProc } from '../health.js';
import { IDLE_TICK_MS, TICK_MS, type Pool, type ProcState, type Respawn, type WorkerProc, type WorkerSlot } from './types.js';

/** The master's lifecycle as it is reported (stats `state`, the FIFO's answers). */
export type MasterState = 'starting' | 'ready' | 'reloading' | 'stopping' | 'dead';

/** What a process looks like from outside: stats and the health checks see these three. */
export type ProcPhase = 'starting' | 'ready' | 'stopping';

/** `ready` and `reloading` are `running` with and without a reload in progress. */
export function masterState(pool: Pick<Pool, 'phase' | 'reload'>): MasterState {
  if (pool.phase === 'running') return pool.reload === undefined ? 'ready' : 'reloading';
  return pool.phase;
}

/** A killed process still looks like what it was until it exits. */
export function phaseOf(state: ProcState): ProcPhase {
  switch (state.kind) {
    case 'spawning':
    case 'starting':
      return 'starting';
    case 'ready':
      return 'ready';
    case 'stopping':
      return 'stopping';
    case 'killed':
      return state.was;
    default: {
      const never: never = state;
      return never;
    }
  }
}

/** Why the master is ending it, when it is (`stopping` or `killed`). */
export function stopReasonOf(state: ProcState): string | undefined {
  return state.kind === 'stopping' || state.kind === 'killed' ? state.reason : undefined;
}

/** What happens if it exits while its id's current process; a crash respawns with backoff. */
export function respawnOf(state: ProcState): Respawn {
  return state.kind === 'stopping' || state.kind === 'killed' ? state.respawn : 'backoff';
}

/** At least one request in flight (a Node worker serves many at once). */
export function isBusy(data: SlotData): boolean {
  return data.inFlight > 0 || data.status === SlotStatus.BUSY;
}

/** Neither its id's current process nor its replacement: it is on its way out (or its id is gone). */
export function isRetiring(pool: Pick<Pool, 'slots'>, proc: WorkerProc): boolean {
  const slot = pool.slots.get(proc.id);
  return slot === undefined || (slot.current !== proc.key && slot.next?.key !== proc.key);
}

/** Worker ids in order. */
export function slotsInOrder(pool: Pick<Pool, 'slots'>): WorkerSlot[] {
  return [...pool.slots.values()].sort((a, b) => a.id - b.id);
}

/** The current process of a worker id. */
export function currentOf(pool: Pick<Pool, 'procs'>, slot: WorkerSlot): WorkerProc | undefined {
  return slot.current === undefined ? undefined : pool.procs.get(slot.current);
}

/**
 * The processes the health checks look at: each id's current process and its retiring
 * ones (not its replacement, which is not serving yet), with the key of each.
 */
export function healthView(pool: Pick<Pool, 'slots' | 'procs'>): { readonly view: HealthProc[]; readonly keys: Map<HealthProc, number> } {
  const view: HealthProc[] = [];
  const keys = new Map<HealthProc, number>();
  for (const proc of pool.procs.values()) {
    const slot = pool.slots.get(proc.id);
    if (slot === undefined || slot.next?.key === proc.key) continue;
    const p: HealthProc = {
      id: proc.id, pid: proc.pid, sync: proc.sync, state: phaseOf(proc.state), spawnedAt: proc.spawnedAt,
      data: proc.data, heartbeatIntervalMs: proc.heartbeatIntervalMs, rss: proc.rss, vsz: proc.vsz,
      handled: proc.state.kind === 'killed' || (slot.current === proc.key && slot.next !== undefined),
    };
    view.push(p);
    keys.set(p, proc.key);
  }
  return { view, keys };
}

/** True when a limit or an algorithm needs every worker's memory on every tick. */
export function memoryWatched(c: VassalConfig): boolean {
  return c.reloadOnRssBytes > 0 || c.reloadOnAsBytes > 0 || c.evilReloadOnRssBytes > 0 || c.evilReloadOnAsBytes > 0 ||
    c.cheaperRssLimitSoftBytes > 0 || c.cheaperRssLimitHardBytes > 0;
}

/** True when an algorithm needs the accept queues on every tick (`cheaper-algo` backlog or busyness, `idle`). */
export function queuesNeededEveryTick(c: VassalConfig): boolean {
  return (c.cheaper > 0 && (c.cheaperAlgo === 'backlog' || c.cheaperAlgo === 'busyness')) || c.idleMs > 0;
}

/** True when some worker has a request in flight, or a ready worker is not accepting. */
export function anyBusy(pool: Pick<Pool, 'procs'>): boolean {
  for (const p of pool.procs.values()) if (isBusy(p.data) || (phaseOf(p.state) === 'ready' && !p.data.accepting)) return true;
  return false;
}

/**
 * True when something in the pool must be checked every {@link TICK_MS} (see
 * {@link IDLE_TICK_MS}). Cheap mode needs it only until its watch is armed: then a
 * connection wakes the master at once, no worker runs to be checked, and a vassal that
 * was never used (so never loyal) sleeps like a settled one.
 */
export function needsEverySecond(pool: Pool): boolean {
  const c = pool.config;
  if (masterState(pool) !== 'ready') return true;
  if (inCheapMode(pool)) {
    if (pool.cheapWatchedAt === 0 || pool.cheapWatchedAt < pool.cheaper.idleSince) return true; // the tick looks for the connection
  } else if (!pool.announced.loyal || c.harakiriMs > 0 || c.cheaper > 0 || c.idleMs > 0 || c.maxWorkerLifetimeMs > 0 || memoryWatched(c)) {
    return true;
  }
  if (pool.touched.size > 0) return true;
  for (const proc of pool.procs.values()) if (isRetiring(pool, proc)) return true;
  for (const slot of pool.slots.values()) {
    if (slot.next !== undefined || slot.respawnAt !== undefined) return true;
    if (slot.cheap) continue;
    const current = currentOf(pool, slot);
    if (current === undefined || phaseOf(current.state) !== 'ready' || (current.state.kind === 'ready' && current.state.recycle !== undefined)) return true;
  }
  return false;
}

/**
 * Epoch ms of the tick after one at `now`; the heartbeat to the emperor rides it. Every
 * {@link TICK_MS} while something needs watching; else on the settled grid
 * ({@link nextSettledTick}).
 */
export function nextTickAfter(pool: Pool, now: number): number {
  return needsEverySecond(pool) ? now + TICK_MS : nextSettledTick(now, idleTickInterval(pool.config));
}

/**
 * The next tick of a settled master after epoch ms `now`: the next multiple of `intervalMs`
 * since the epoch that is at least half an interval away (so ticks are 0.5 to 1.5
 * intervals apart, 1 on the grid). Every settled master of the host with the same
 * interval wakes at the same moment: the emperor reads their heartbeats in a few wake-ups
 * instead of one each, and the code the masters share is warm for all but the first
 * (measured, docs/architecture.md "Process start-up and idle cost").
 */
export function nextSettledTick(now: number, intervalMs: number): number {
  return Math.ceil((now + intervalMs / 2) / intervalMs) * intervalMs;
}

/** The tick interval of a pool with nothing to check every second, ms: {@link IDLE_TICK_MS}, or `heartbeat` when shorter. */
export function idleTickInterval(c: VassalConfig): number {
  return Math.min(IDLE_TICK_MS, c.heartbeatMs);
}

/**
 * True when the pool is settled: it ticks every {@link IDLE_TICK_MS} (see
 * {@link needsEverySecond}) and no worker is busy. While its scoreboard does not change,
 * a tick of such a pool finds what the one before found (every check it runs depends on
 * the readings, and none on the time), so the master may take `settledTick` instead.
 */
export function isSettled(pool: Pool): boolean {
  return pool.phase === 'running' && !needsEverySecond(pool) && !anyBusy(pool);
}

/**
 * True when the heartbeat to the emperor is due on the tick at epoch ms `now`, the next
 * one being at `nextTickAt`: `heartbeat` ms since the last one (half a tick early rather
 * than a tick late), or the next tick would come more than half a tick after that (a tick
 * on the settled grid may be up to 1.5 intervals away). So beats are never further apart
 * than `heartbeat` plus half a second, as long as ticks come on time.
 */
export function heartbeatDue(pool: Pick<Pool, 'config' | 'lastBeat'>, now: number, nextTickAt: number): boolean {
  const every = pool.config.heartbeatMs;
  return now - pool.lastBeat >= every - TICK_MS / 2 || nextTickAt - pool.lastBeat > every + TICK_MS / 2;
}

/**
 * The earliest epoch ms at which the pool has something to do without an event: the
 * tick, a ready timeout, a respawn, a mercy's SIGKILL, a harakiri deadline. The master
 * arms one timer for it. Undefined when there is nothing (a dead pool).
 */
export function nextDeadline(pool: Pool): number | undefined {
  if (pool.phase === 'dead') return undefined;
  let next = pool.nextTickAt ?? Infinity;
  for (const proc of pool.procs.values()) {
    if (proc.state.kind === 'starting') next = Math.min(next, proc.state.readyBy);
    else if (proc.state.kind === 'stopping') next = Math.min(next, proc.state.killAt);
  }
  for (const slot of pool.slots.values()) if (slot.respawnAt !== undefined) next = Math.min(next, slot.respawnAt);
  if ((pool.phase === 'starting' || pool.phase === 'running') && pool.config.harakiriMs > 0) {
    // uWSGI core/master_checks.c kills on the master cycle after the deadline; a wake-up at the deadline kills on time.
    next = Math.min(next, nextHarakiriDeadline(healthView(pool).view, pool.config.harakiriMs) ?? Infinity);
  }
  return Number.isFinite(next) ? next : undefined;
}

/** Status of a worker id for stats: `cheap` when the cheaper subsystem retired it. */
export function statusOf(pool: Pick<Pool, 'procs'>, slot: WorkerSlot): 'idle' | 'busy' | 'starting' | 'stopping' | 'cheap' {
  const proc = currentOf(pool, slot);
  if (slot.cheap && proc === undefined) return 'cheap';
  if (proc === undefined) return 'starting'; // waiting to be respawned
  const phase = phaseOf(proc.state);
  if (phase !== 'ready') return phase;
  return isBusy(proc.data) ? 'busy' : 'idle';
}

/** `http://127.0.0.1:8080, uwsgi:///run/app.sock`: the sockets, for log lines. */
export function summarize(config: VassalConfig): string {
  return config.sockets.map((s) => `${s.protocol}://${s.name}`).join(', ');
}

/**
 * The generations the pool still needs: the serving one, a reload's new one, and that of
 * every live process. A runtime that keeps something per generation (a preloaded
 * Python template) ends what is not in this set. Empty once the pool is dead.
 */
export function generationsInUse(pool: Pick<Pool, 'phase' | 'serving' | 'reload' | 'procs'>): ReadonlySet<number> {
  const out = new Set<number>();
  if (pool.phase === 'dead') return out;
  for (const proc of pool.procs.values()) out.add(proc.generation);
  if (pool.phase === 'stopping') return out;
  out.add(pool.serving);
  if (pool.reload?.stage.name === 'replacing') out.add(pool.reload.stage.generation);
  return out;
}

/** Cheap mode (`cheap` at start, or `idle`): no worker runs; the first waiting connection spawns them. */
export function inCheapMode(pool: Pick<Pool, 'cheaper' | 'slots'>): boolean {
  if (pool.cheaper.idleSince === 0) return false;
  for (const slot of pool.slots.values()) if (!slot.cheap) return false;
  return true;
}
