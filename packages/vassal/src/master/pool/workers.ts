/**
 * One worker process's transitions: spawn, spawned, ready, stop, kill, exit, respawn.
 * What a replacement's readiness or death means for a reload or a recycle is decided in
 * `replace.ts`; these functions only say which role the process had.
 */
import type { VassalConfig } from '@emperor/config';
import { ExitCode } from '@emperor/protocol';
import { INITIAL_BACKOFF, describeExit, nextBackoff, type ExitInfo } from '@emperor/process';
import { EMPTY_SLOT, type SlotData } from '../../shared/scoreboard.js';
import { heartbeatIntervalMs } from '../../shared/worker-spec.js';
import type { Draft } from './draft.js';
import { WORKER_BACKOFF, type Replacement, type Respawn, type WorkerProc, type WorkerSlot } from './types.js';
import { phaseOf, respawnOf, stopReasonOf } from './views.js';

/** `{ worker, worker_pid }`: the fields every line about one process carries. */
export function who(proc: WorkerProc): { worker: number; worker_pid: number } {
  return { worker: proc.id, worker_pid: proc.pid };
}

/** A new, empty worker id. */
export function newSlot(d: Draft, id: number, cheap: boolean): WorkerSlot {
  const slot: WorkerSlot = {
    id, current: undefined, next: undefined, cheap, respawnAt: undefined, backoff: INITIAL_BACKOFF,
    recycleNotBefore: 0, respawnCount: 0, lastSpawn: 0, lastExitReason: '',
    requestsBefore: 0, exceptionsBefore: 0, txBefore: 0, runningTimeBefore: 0, harakiriBefore: 0,
  };
  d.slots.set(id, slot);
  return slot;
}

/**
 * Asks for a new process of worker `id` running `config`: as the id's current process,
 * or as its replacement. The master answers with `spawned` or `spawn-failed`.
 */
export function spawn(d: Draft, id: number, config: VassalConfig, generation: number, as: 'current' | Replacement): number {
  const key = d.nextKey;
  d.nextKey += 1;
  d.procs.set(key, {
    key, id, generation, config, pid: 0, spawnedAt: d.now, readyAt: 0, sync: false,
    heartbeatIntervalMs: heartbeatIntervalMs(config.harakiriMs), state: { kind: 'spawning' }, data: EMPTY_SLOT, rss: 0, vsz: 0, pss: 0,
  });
  d.setSlot(id, as === 'current' ? { current: key } : { next: { key, replacement: as } });
  d.run({ type: 'spawn', key, id, generation, config });
  return key;
}

/**
 * The runtime started it (the master has logged `spawned worker N`): its ready timeout
 * starts now, so the `not ready` line can never come sooner after that one. A process
 * stopped or killed while spawning gets its stop or kill now.
 */
export function spawned(d: Draft, key: number, pid: number, spawnedAt: number, sync: boolean): void {
  const proc = d.proc(key);
  if (proc === undefined) return;
  const readyBy = d.now + proc.config.workerReadyTimeoutMs;
  const after = d.setProc(key, { pid, spawnedAt, sync, state: proc.state.kind === 'spawning' ? { kind: 'starting', readyBy } : proc.state }) as WorkerProc;
  const slot = d.slot(proc.id);
  if (slot !== undefined) d.setSlot(proc.id, { respawnCount: slot.respawnCount + 1, lastSpawn: spawnedAt });
  if (after.state.kind === 'stopping') d.run({ type: 'stop', key });
  else if (after.state.kind === 'killed') d.run({ type: 'signal', key, signal: 'SIGKILL' });
}

/** It reported ready: true when it was starting (a second `ready` is ignored). */
export function ready(d: Draft, key: number): boolean {
  const proc = d.proc(key);
  if (proc === undefined || proc.state.kind !== 'starting') return false;
  const recycle = proc.state.recycle;
  const after = d.setProc(key, { state: recycle === undefined ? { kind: 'ready' } : { kind: 'ready', recycle }, readyAt: d.now }) as WorkerProc;
  d.info(`worker ${proc.id} (pid ${proc.pid}) accepting`, who(after));
  return true;
}

/** `worker-reload-mercy`, bounded by `reload-mercy` when set (it bounds a reload's retirements as it bounds a stop), ms. */
export function mercyOf(c: VassalConfig): number {
  return c.reloadMercyMs > 0 ? Math.min(c.reloadMercyMs, c.workerReloadMercyMs) : c.workerReloadMercyMs;
}

/**
 * Stops one process gracefully: it stops accepting, finishes its requests and exits;
 * SIGKILL at `killAt` (`worker-reload-mercy`, bounded by `reload-mercy` when set). A
 * process already stopping keeps its reason and deadline; a killed one is left alone.
 */
export function retire(d: Draft, key: number, reason: string, respawn: Respawn = 'none', killAt?: number): void {
  const proc = d.proc(key);
  if (proc === undefined) return;
  const state = proc.state;
  if (state.kind === 'killed') return;
  if (state.kind === 'stopping') {
    d.setProc(key, { state: { ...state, respawn } });
    return;
  }
  d.setProc(key, { state: { kind: 'stopping', reason, killAt: killAt ?? d.now + mercyOf(proc.config), respawn } });
  if (state.kind !== 'spawning') d.run({ type: 'stop', key });
}

/** SIGKILLs one process (the signal is sent later for a process still spawning). */
export function kill(d: Draft, key: number, reason: string, respawn: Respawn): void {
  const before = d.proc(key)?.state.kind;
  if (markKilled(d, key, reason, respawn) && before !== 'spawning') d.run({ type: 'signal', key, signal: 'SIGKILL' });
}

/** Puts one process in the `killed` state, for a caller that sends the SIGKILL itself; false when it is gone or already killed. */
export function markKilled(d: Draft, key: number, reason: string, respawn: Respawn): boolean {
  const proc = d.proc(key);
  if (proc === undefined || proc.state.kind === 'killed') return false;
  d.setProc(key, { state: { kind: 'killed', reason, respawn, was: phaseOf(proc.state) } });
  return true;
}

/** Respawns worker id `id` after `delayMs` (at once for 0); an earlier pending respawn stands. */
export function scheduleRespawn(d: Draft, id: number, delayMs: number): void {
  const slot = d.slot(id);
  if (slot === undefined) return;
  if (delayMs <= 0) {
    respawnNow(d, id);
    return;
  }
  d.setSlot(id, { respawnAt: Math.min(slot.respawnAt ?? Infinity, d.now + delayMs) });
}

/** Spawns a current process for `id` unless it has one, is cheap, or the master is stopping. */
export function respawnNow(d: Draft, id: number): void {
  const slot = d.setSlot(id, { respawnAt: undefined });
  if (slot === undefined || !d.live || slot.current !== undefined || slot.cheap) return;
  spawn(d, id, d.config, d.serving, 'current');
}

/** The role a process had in its worker id when it left the pool. */
export type Role =
  | { readonly role: 'current' }
  | { readonly role: 'next'; readonly replacement: Replacement }
  | { readonly role: 'other' };

/** Takes a process that never started out of the pool; a current process is retried after the longest backoff. */
export function spawnFailed(d: Draft, key: number): Role {
  const proc = d.proc(key);
  if (proc === undefined) return { role: 'other' };
  d.procs.delete(key);
  const role = unlink(d, proc);
  if (role.role === 'current' && d.live) scheduleRespawn(d, proc.id, WORKER_BACKOFF.maxMs);
  return role;
}

/** Clears the process from its id's current/next; which it was. */
function unlink(d: Draft, proc: WorkerProc): Role {
  const slot = d.slot(proc.id);
  if (slot?.next?.key === proc.key) {
    d.setSlot(proc.id, { next: undefined });
    return { role: 'next', replacement: slot.next.replacement };
  }
  if (slot?.current === proc.key) {
    d.setSlot(proc.id, { current: undefined });
    return { role: 'current' };
  }
  return { role: 'other' };
}

/**
 * A process exited: its counters join its id's, the exit is logged once, and a current
 * process that was not asked to go is respawned (with backoff after a crash, at once
 * after a harakiri or evil kill). A replacement's role is returned for `replace.ts`.
 */
export function exited(d: Draft, key: number, exit: ExitInfo, final: SlotData | undefined): Role {
  const proc = d.proc(key);
  if (proc === undefined) return { role: 'other' };
  d.procs.delete(key);
  const data = final ?? proc.data;
  const uptimeMs = d.now - proc.spawnedAt;
  // A spawn that failed is most often a working directory (`chdir`, else the vassal
  // file's directory) or program the vassal's uid may not enter or run: name it.
  const how = exit.spawnError === undefined ? describeExit(exit)
    : `${describeExit(exit)} (working directory ${proc.config.chdir ?? proc.config.baseDir}, uid ${d.uid ?? '?'})`;
  const fields = { ...who(proc), exit_code: exit.code, signal: exit.signal, uptime_ms: uptimeMs };
  const reason = stopReasonOf(proc.state);
  const asked = reason !== undefined && reason !== 'not-ready';
  const slot = d.slot(proc.id);
  if (slot !== undefined) {
    d.setSlot(proc.id, {
      requestsBefore: slot.requestsBefore + data.requests,
      exceptionsBefore: slot.exceptionsBefore + data.exceptions,
      txBefore: slot.txBefore + data.txBytes,
      runningTimeBefore: slot.runningTimeBefore + data.runningTimeUs,
      harakiriBefore: slot.harakiriBefore + data.harakiriCount,
      lastExitReason: asked ? reason : reason === 'not-ready' ? 'not-ready' : exit.code === ExitCode.APP_LOAD ? 'app-load' : 'crash',
    });
  }
  if (asked) d.info(`worker ${proc.id} (pid ${proc.pid}) stopped (${reason}): ${how}`, fields);
  const role = unlink(d, proc);
  if (!d.live) return role;
  if (role.role !== 'current') {
    // A retired process, or a replacement that failed (its reload or recycle handles it).
    if (!asked) d.error(`worker ${proc.id} (pid ${proc.pid}) died before it took over: ${how}`, fields);
    return role;
  }
  const respawn = respawnOf(proc.state);
  if (respawn === 'none') return role;
  if (respawn === 'now') {
    scheduleRespawn(d, proc.id, 0);
    return role;
  }
  const backoff = nextBackoff((d.slot(proc.id) as WorkerSlot).backoff, uptimeMs, d.now, WORKER_BACKOFF);
  d.setSlot(proc.id, { backoff });
  const delay = backoff.delayMs;
  const streak = backoff.failures > 1 ? ` (${backoff.failures} times in a row)` : '';
  d.error(
    `worker ${proc.id} (pid ${proc.pid}) died: ${how} after ${(uptimeMs / 1000).toFixed(1)} s${streak}; ` +
      (delay === 0 ? 'respawning' : `respawning in ${(delay / 1000).toFixed(1)} s`),
    { ...fields, respawn_in_ms: delay },
  );
  scheduleRespawn(d, proc.id, delay);
  return role;
}
