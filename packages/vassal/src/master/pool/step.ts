/**
 * The pool's transitions: `step(pool, event, now) → { pool, commands }`, a pure function
 * in the shape of the emperor's `reconcile()` and the master's `checkHealth()`. The
 * master loop feeds every event through it and carries the commands out in order.
 */
import type { VassalConfig } from '@emperor/config';
import type { ExitCode, WorkerToMaster } from '@emperor/protocol';
import { initialCheaperState } from '../cheaper.js';
import { adjustPool, checkCheaper, checkTouches, checkWorkers, harakiriDue } from './checks.js';
import { Draft } from './draft.js';
import { askReload, cancelReload, honourRecycle, reloadPrepared, reloadRefused, replacementFailed, replacementReady, runQueuedReload } from './replace.js';
import { TICK_MS, type Pool, type PoolEvent, type Readings, type StepResult } from './types.js';
import { heartbeatDue, idleTickInterval, inCheapMode, nextSettledTick, nextTickAfter, phaseOf, stopReasonOf, summarize } from './views.js';
import { exited, kill, mercyOf, newSlot, ready, respawnNow, retire, spawn, spawned, spawnFailed, type Role } from './workers.js';

/** A pool for `config`, before its first worker. */
export function createPool(config: VassalConfig, now: number): Pool {
  return {
    phase: 'starting', config, generation: 1, serving: 1, uid: undefined, slots: new Map(), procs: new Map(), nextKey: 1,
    reload: undefined, queuedReload: undefined, cheaper: initialCheaperState(config, now), touched: new Map(),
    announced: { ready: false, accepting: false, loyal: false }, nextTickAt: undefined, lastBeat: now, stopBy: undefined, cheapWatchedAt: 0,
  };
}

/** The pool after `event` at epoch ms `now`, and what the master must do, in order. Never throws; `pool` is not changed. */
export function step(pool: Pool, event: PoolEvent, now: number): StepResult {
  const d = new Draft(pool, now);
  switch (event.type) {
    case 'start':
      start(d, event.uid, event.mtimes);
      break;
    case 'spawned':
      spawned(d, event.key, event.pid, event.spawnedAt, event.sync);
      break;
    case 'spawn-failed':
      left(d, d.proc(event.key)?.id, spawnFailed(d, event.key));
      break;
    case 'message':
      message(d, event.key, event.message);
      break;
    case 'exit':
      left(d, d.proc(event.key)?.id, exited(d, event.key, event.exit, event.final));
      break;
    case 'readings':
      applyReadings(d, event.readings);
      break;
    case 'memory':
      for (const [key, s] of event.samples) d.setProc(key, s.pss === undefined ? { rss: s.rss, vsz: s.vsz } : { rss: s.rss, vsz: s.vsz, pss: s.pss });
      if (event.check) checkWorkers(d);
      break;
    case 'tick':
      applyReadings(d, event.readings);
      dueDeadlines(d);
      tick(d, event.mtimes, event.backlog);
      break;
    case 'deadline':
      applyReadings(d, event.readings);
      dueDeadlines(d);
      // The full checks, as uWSGI's master cycle would run them, when woken for a harakiri.
      if (harakiriDue(d)) checkWorkers(d);
      break;
    case 'reload':
      askReload(d, event.kind, event.reread, event.ticket);
      break;
    case 'reload-prepared':
      reloadPrepared(d, event.config, event.mtimes);
      break;
    case 'reload-refused':
      reloadRefused(d);
      break;
    case 'stop':
      stop(d, event.reason, event.mercyMs);
      break;
    case 'destroy':
      destroy(d, event.code);
      break;
    case 'adjust':
      adjustPool(d, event.delta);
      break;
    case 'connection':
      // uWSGI's master wakes on the socket's event, not on its next check. The watch is
      // spent: should the wake have to wait (a reload being prepared), the tick looks for
      // the connection every second until it can.
      if (inCheapMode(d)) {
        d.cheapWatchedAt = 0;
        checkCheaper(d, 1, 'watch');
      }
      break;
    case 'watching':
      d.cheapWatchedAt = d.now; // the next tick moves to the settled grid (needsEverySecond)
      break;
    default: {
      const never: never = event;
      void never;
    }
  }
  return d.done();
}

/**
 * Spawns the first generation; with cheaper, only `cheaper-initial` workers start and the
 * other ids wait, cheap. With `cheap` none starts: the vassal is ready (its sockets queue
 * connections) and the first waiting connection spawns them (uWSGI's cheap mode).
 */
function start(d: Draft, uid: number | undefined, mtimes: ReadonlyMap<string, number>): void {
  if (d.phase !== 'starting' || d.slots.size > 0) return;
  const config = d.config;
  d.uid = uid;
  const initial = config.cheap ? 0 : config.cheaper > 0 ? config.cheaperInitial : config.processes;
  for (let id = 1; id <= config.processes; id++) {
    newSlot(d, id, id > initial);
    if (id <= initial) spawn(d, id, config, d.generation, 'current');
  }
  if (config.cheaper > 0) d.info(`cheaper: ${config.cheaperAlgo}, ${config.cheaper} to ${config.processes} workers, starting with ${initial}`);
  d.touched = new Map(mtimes);
  d.lastBeat = d.now;
  d.nextTickAt = d.now + TICK_MS;
  if (config.cheap) {
    d.info('cheap mode enabled: waiting for socket connection...', { reason: 'cheap' });
    announce(d);
  }
}

/** A process left the pool (exit or failed spawn): a replacement's failure moves its reload or recycle on; a stop may be complete. */
function left(d: Draft, id: number | undefined, role: Role): void {
  if (id !== undefined && role.role === 'next') replacementFailed(d, id, role.replacement);
  if (d.phase === 'stopping' && d.procs.size === 0) {
    d.phase = 'dead';
    d.stopBy = undefined;
    d.run({ type: 'release' });
    d.info('vassal stopped');
    d.emit({ event: 'exit', code: 0 });
  }
}

function message(d: Draft, key: number, m: WorkerToMaster): void {
  switch (m.type) {
    case 'ready': {
      if (!ready(d, key)) return;
      announce(d);
      const proc = d.proc(key);
      if (proc !== undefined) replacementReady(d, proc);
      return;
    }
    case 'recycle': {
      const proc = d.proc(key);
      if (proc === undefined || (proc.state.kind !== 'starting' && proc.state.kind !== 'ready')) return;
      d.setProc(key, { state: { ...proc.state, recycle: m.reason } });
      honourRecycle(d, key);
      return;
    }
    case 'published':
      return; // a stats read's answer, taken by the master's WorkerProcesses before the pool
    default: {
      const never: never = m;
      void never;
    }
  }
}

/**
 * `accepting` once any worker of the first generation is, `ready` (and the vassal's state)
 * once all are. In cheap mode (`cheap` at start) both at once: its sockets queue
 * connections for the workers the first one spawns.
 */
function announce(d: Draft): void {
  const currents = [...d.slots.values()].filter((s) => !s.cheap).map((s) => d.proc(s.current));
  const isReady = (p: (typeof currents)[number]): boolean => p !== undefined && phaseOf(p.state) === 'ready';
  const cheap = currents.length === 0 && inCheapMode(d);
  if (!d.announced.accepting && (cheap || currents.some(isReady))) {
    d.announced = { ...d.announced, accepting: true };
    d.emit({ event: 'accepting' });
  }
  if (!d.announced.ready && (cheap || (currents.length > 0 && currents.every(isReady)))) {
    d.announced = { ...d.announced, ready: true };
    if (d.phase === 'starting') d.phase = 'running';
    d.info(cheap ? `vassal ready: cheap, no worker until a connection waits on ${summarize(d.config)}` : `vassal ready: ${currents.length} worker(s) accepting on ${summarize(d.config)}`);
    d.emit({ event: 'ready' });
    runQueuedReload(d);
  }
}

function applyReadings(d: Draft, readings: Readings): void {
  for (const [key, data] of readings) d.setProc(key, { data });
}

/** Ready timeouts, mercies and respawns whose time has come. */
function dueDeadlines(d: Draft): void {
  for (const proc of [...d.procs.values()]) {
    const state = proc.state;
    if (state.kind === 'starting' && state.readyBy <= d.now) {
      d.error(`worker ${proc.id} (pid ${proc.pid}) not ready after ${proc.config.workerReadyTimeoutMs / 1000} s (worker-ready-timeout); killing it`, { worker: proc.id, worker_pid: proc.pid });
      kill(d, proc.key, 'not-ready', 'backoff');
    } else if (state.kind === 'stopping' && state.killAt <= d.now) {
      kill(d, proc.key, state.reason, state.respawn);
    }
  }
  for (const slot of [...d.slots.values()]) if (slot.respawnAt !== undefined && slot.respawnAt <= d.now) respawnNow(d, slot.id);
}

/** The master's tick (uWSGI's master cycle): loyal, touch files, recycles, health, cheaper, the heartbeat. */
function tick(d: Draft, mtimes: ReadonlyMap<string, number>, backlog: number): void {
  if (!d.live) return;
  let served = false;
  for (const p of d.procs.values()) if (p.data.requests > 0) served = true;
  if (!d.announced.loyal && (served || [...d.slots.values()].some((s) => s.requestsBefore > 0))) {
    d.announced = { ...d.announced, loyal: true };
    d.emit({ event: 'loyal' });
  }
  checkTouches(d, mtimes);
  for (const slot of [...d.slots.values()]) honourRecycle(d, slot.current);
  checkWorkers(d);
  checkCheaper(d, backlog);
  // The heartbeat to the emperor rides the tick (uWSGI sends it from its master cycle too).
  const next = nextTickAfter(d, d.now);
  if (heartbeatDue(d, d.now, next)) {
    d.lastBeat = d.now;
    d.emit({ event: 'heartbeat' });
  }
  if (d.live) d.nextTickAt = next;
}

/**
 * The tick of a settled pool (`isSettled`) whose scoreboard holds the same bytes as at its
 * last full tick, at epoch ms `now`: the full tick would apply the same readings and run
 * checks that found nothing on them, so what is left is the heartbeat when due and the
 * next tick. The master takes this path only then; it costs a settled master's wake-up
 * no step, no copy of the pool's maps and no scoreboard decoding (issue 23). Never throws.
 */
export function settledTick(pool: Pool, now: number): StepResult {
  const next = nextSettledTick(now, idleTickInterval(pool.config));
  const beat = heartbeatDue(pool, now, next);
  return {
    pool: { ...pool, nextTickAt: next, lastBeat: beat ? now : pool.lastBeat },
    commands: beat ? [{ type: 'emit', event: 'heartbeat' }] : [],
  };
}

/**
 * Stops every worker gracefully (each within its mercy, `mercyMs` when given, the whole
 * stop within `reload-mercy` when set); `exit` 0 once the last one is gone. A second
 * stop only shortens the mercy.
 */
function stop(d: Draft, reason: string, mercyMs: number | undefined): void {
  if (d.phase === 'dead') return;
  const hurried = mercyMs === undefined ? Infinity : d.now + mercyMs;
  if (d.phase === 'stopping') {
    for (const proc of [...d.procs.values()]) {
      if (proc.state.kind === 'stopping') d.setProc(proc.key, { state: { ...proc.state, killAt: Math.min(proc.state.killAt, hurried) } });
    }
    return;
  }
  d.phase = 'stopping';
  d.info(`stopping vassal (${reason})`, { reason });
  cancelReload(d);
  d.nextTickAt = undefined;
  for (const slot of [...d.slots.values()]) if (slot.respawnAt !== undefined) d.setSlot(slot.id, { respawnAt: undefined });
  d.stopBy = d.config.reloadMercyMs > 0 ? d.now + d.config.reloadMercyMs : undefined;
  const bound = d.stopBy ?? Infinity;
  for (const proc of [...d.procs.values()]) {
    const state = proc.state;
    if (state.kind === 'killed') continue;
    if (state.kind === 'stopping') d.setProc(proc.key, { state: { ...state, respawn: 'none', killAt: Math.min(state.killAt, hurried, bound) } });
    else retire(d, proc.key, reason, 'none', Math.min(mercyMs === undefined ? d.now + mercyOf(proc.config) : hurried, bound));
  }
  left(d, undefined, { role: 'other' });
}

/** Kills every worker now (SIGKILL), releases everything and emits `exit` with `code`. */
function destroy(d: Draft, code: ExitCode): void {
  if (d.phase === 'dead') return;
  cancelReload(d);
  d.nextTickAt = undefined;
  for (const slot of [...d.slots.values()]) if (slot.respawnAt !== undefined) d.setSlot(slot.id, { respawnAt: undefined });
  for (const proc of [...d.procs.values()]) kill(d, proc.key, stopReasonOf(proc.state) ?? 'destroy', 'none');
  d.phase = 'dead';
  d.stopBy = undefined;
  d.run({ type: 'release' });
  d.emit({ event: 'exit', code });
}
