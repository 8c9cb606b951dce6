/**
 * Replacing workers without dropping a connection: reloads (graceful: a whole new
 * generation, then the old one retires; chain: one id at a time, uWSGI
 * `touch-chain-reload`) and recycles (one worker that reached a limit). In every case
 * the replacement starts first and the old process stops only once it is ready; a
 * replacement that fails leaves the old process serving.
 */
import type { VassalConfig } from '@emperor/config';
import { nextBackoff } from '@emperor/process';
import { initialCheaperState } from '../cheaper.js';
import type { RecycleReason } from '../health.js';
import type { Draft } from './draft.js';
import { TICK_MS, WORKER_BACKOFF, type Replacement, type ReloadState, type WorkerProc } from './types.js';
import { inCheapMode } from './views.js';
import { newSlot, retire, kill, scheduleRespawn, spawn, who } from './workers.js';

type Replacing = Extract<ReloadState['stage'], { name: 'replacing' }>;

/**
 * A reload is asked for. While stopping: refused. While starting or reloading: queued,
 * merged with one already queued (graceful wins over chain, re-reading over not), and
 * run once the vassal is ready. Otherwise the master is asked to prepare it.
 */
export function askReload(d: Draft, kind: 'graceful' | 'chain', reread: boolean, ticket: number | undefined): void {
  if (d.phase === 'stopping' || d.phase === 'dead') {
    settle(d, ticket, false);
    return;
  }
  if (d.reload !== undefined || d.phase === 'starting') {
    const queued = d.queuedReload;
    d.queuedReload = { kind: queued?.kind === 'graceful' ? 'graceful' : kind, reread: reread || queued?.reread === true };
    settle(d, ticket, true);
    return;
  }
  d.reload = { kind, reread, ticket, stage: { name: 'preparing' } };
  d.nextTickAt = d.now + TICK_MS; // a reload (and the config it may bring) is watched every second
  d.run({ type: 'prepare-reload', reread });
}

/** Starts the queued reload, if any, once the vassal is ready and no reload runs. */
export function runQueuedReload(d: Draft): void {
  const queued = d.queuedReload;
  if (queued === undefined || d.phase !== 'running' || d.reload !== undefined) return;
  d.queuedReload = undefined;
  askReload(d, queued.kind, queued.reread, undefined);
}

/**
 * The master has the reload's config: start generation N+1. The ids that run now are
 * replaced (cheap ones stay cheap); without cheaper, all of them; ids the new config
 * adds start too (up to `cheaper-initial` with cheaper). A vassal in cheap mode whose new
 * config has `cheap` stays cheap: no worker starts until a connection waits.
 */
export function reloadPrepared(d: Draft, config: VassalConfig, mtimes: ReadonlyMap<string, number>): void {
  const r = d.reload;
  if (r === undefined || r.stage.name !== 'preparing') return;
  const touched = new Map(d.touched);
  for (const [file, mtime] of mtimes) if (!touched.has(file)) touched.set(file, mtime);
  d.touched = touched;
  const generation = d.generation + 1;
  d.generation = generation;
  d.info(`${r.kind === 'chain' ? 'chain' : 'graceful'} reload: starting generation ${generation} (${config.processes} worker(s)${r.reread ? '' : ', the running config: the file is not re-read'})`, { generation });
  const stayCheap = config.cheap && inCheapMode(d);
  const ids = stayCheap ? [] : Array.from({ length: config.processes }, (_, i) => i + 1).filter((id) => {
    const slot = d.slot(id);
    return config.cheaper <= 0 || slot === undefined ? id <= (config.cheaper > 0 ? config.cheaperInitial : config.processes) : !slot.cheap;
  });
  for (let id = 1; id <= config.processes; id++) {
    if (d.slot(id) === undefined) newSlot(d, id, !ids.includes(id));
    else if (config.cheaper <= 0 && !stayCheap) d.setSlot(id, { cheap: false });
  }
  const stage: Replacing = { name: 'replacing', config, generation, ids, at: 0, failed: false };
  d.reload = { ...r, stage };
  if (r.kind === 'chain') {
    chainNext(d, stage);
    return;
  }
  for (const id of ids) replaceFor(d, id, stage);
  if (ids.length === 0) finishGraceful(d, stage, true);
}

/** The reload's config could not be had (the master logged why): it ends, the running workers keep serving. */
export function reloadRefused(d: Draft): void {
  if (d.reload?.stage.name === 'preparing') endReload(d, false);
}

/** A stop or destroy ends the reload in progress (and drops the queued one). */
export function cancelReload(d: Draft): void {
  const r = d.reload;
  d.reload = undefined;
  d.queuedReload = undefined;
  if (r === undefined) return;
  d.emit({ event: 'reloaded', ok: false });
  settle(d, r.ticket, false);
}

/** Spawns the reload's replacement for `id`; a recycle's replacement on its way is retired first. */
function replaceFor(d: Draft, id: number, stage: Replacing): void {
  const pending = d.slot(id)?.next;
  if (pending !== undefined) {
    d.setSlot(id, { next: undefined });
    retire(d, pending.key, 'reload');
  }
  spawn(d, id, stage.config, stage.generation, { for: 'reload' });
}

function chainNext(d: Draft, stage: Replacing): void {
  const id = stage.ids[stage.at];
  if (id === undefined) complete(d, stage);
  else replaceFor(d, id, stage);
}

/** Every graceful replacement is ready, or gone (failed). */
function settled(d: Draft, stage: Replacing): boolean {
  return stage.ids.every((id) => {
    const next = d.slot(id)?.next;
    return next === undefined || next.replacement.for !== 'reload' || d.proc(next.key)?.state.kind === 'ready';
  });
}

/**
 * Graceful end: all ready → the new generation takes over and the old retires. Otherwise
 * the new ones are killed and the old generation keeps serving (a broken deploy does not
 * take the app down); ids the reload meant to start get a process of the old one.
 */
function finishGraceful(d: Draft, stage: Replacing, ok: boolean): void {
  if (ok) {
    for (const id of stage.ids) {
      const slot = d.slot(id);
      if (slot?.next === undefined) continue;
      d.setSlot(id, { current: slot.next.key, next: undefined });
      if (slot.current !== undefined) retire(d, slot.current, 'reload');
    }
    for (const id of stage.ids) honourRecycle(d, d.slot(id)?.current);
    complete(d, stage);
    return;
  }
  for (const id of stage.ids) {
    const next = d.slot(id)?.next;
    if (next === undefined || next.replacement.for !== 'reload') continue;
    d.setSlot(id, { next: undefined });
    kill(d, next.key, 'reload-abandoned', 'none');
  }
  d.error(`reload abandoned: a new worker died or timed out before it was ready; generation ${d.serving} keeps serving`);
  for (const id of stage.ids) {
    const slot = d.slot(id);
    if (slot !== undefined && slot.current === undefined && !slot.cheap) scheduleRespawn(d, id, 0);
  }
  endReload(d, false);
}

/** The reload took over: its config is the vassal's; ids it no longer has retire. */
function complete(d: Draft, stage: Replacing): void {
  const config = stage.config;
  d.config = config;
  d.serving = stage.generation;
  // Still cheap mode when no worker runs (it stayed cheap, or every id is cheap): the
  // first waiting connection must still wake them.
  const allCheap = [...d.slots.values()].every((s) => s.cheap || s.id > config.processes);
  d.cheaper = { ...initialCheaperState(config, d.now), idleSince: allCheap ? d.now : 0 };
  for (const slot of [...d.slots.values()]) {
    if (slot.id <= config.processes) continue;
    if (slot.current !== undefined) retire(d, slot.current, 'reload');
    if (slot.next !== undefined) retire(d, slot.next.key, 'reload');
    d.slots.delete(slot.id);
  }
  d.run({ type: 'adopt-config', config });
  d.info(`reload complete: generation ${stage.generation} serving`, { generation: stage.generation });
  endReload(d, true);
}

function endReload(d: Draft, ok: boolean): void {
  const r = d.reload;
  d.reload = undefined;
  d.emit({ event: 'reloaded', ok });
  settle(d, r?.ticket, ok);
  runQueuedReload(d);
}

function settle(d: Draft, ticket: number | undefined, ok: boolean): void {
  if (ticket !== undefined) d.run({ type: 'settle', ticket, ok });
}

/** The replacement takes over worker `id`; the process it replaces retires for `reason`. */
function swap(d: Draft, id: number, reason: string): void {
  const slot = d.slot(id);
  if (slot?.next === undefined) return;
  // Stats show why the previous process is going from the switch on.
  d.setSlot(id, { current: slot.next.key, next: undefined, lastExitReason: reason });
  if (slot.current !== undefined) retire(d, slot.current, reason);
}

/** A process became ready: if it is a replacement, the reload or recycle moves on. */
export function replacementReady(d: Draft, proc: WorkerProc): void {
  const next = d.slot(proc.id)?.next;
  if (next === undefined || next.key !== proc.key) return;
  if (next.replacement.for === 'recycle') {
    swap(d, proc.id, next.replacement.reason);
    honourRecycle(d, proc.key);
    return;
  }
  const r = d.reload;
  if (r === undefined || r.stage.name !== 'replacing') return;
  const stage = r.stage;
  if (r.kind === 'chain') {
    swap(d, proc.id, 'chain-reload');
    honourRecycle(d, proc.key);
    const after: Replacing = { ...stage, at: stage.at + 1 };
    d.reload = { ...r, stage: after };
    chainNext(d, after);
    return;
  }
  if (settled(d, stage)) finishGraceful(d, stage, !stage.failed);
}

/** A replacement died before it took over, or could not be spawned. */
export function replacementFailed(d: Draft, id: number, replacement: Replacement): void {
  if (!d.live) return;
  if (replacement.for === 'recycle') {
    recycleFailed(d, id, replacement);
    return;
  }
  const r = d.reload;
  if (r === undefined || r.stage.name !== 'replacing') return;
  if (r.kind === 'chain') {
    d.error(`chain reload stopped at worker ${id}: its replacement never became ready; the remaining workers keep serving`, { worker: id });
    endReload(d, false);
    return;
  }
  const stage: Replacing = { ...r.stage, failed: true };
  d.reload = { ...r, stage };
  if (settled(d, stage)) finishGraceful(d, stage, false);
}

/** While a reload reads its config, no recycle starts: the reload is about to replace every worker. */
export function recyclesWait(d: Draft): boolean {
  return d.reload?.stage.name === 'preparing';
}

/**
 * Replaces a worker that reached a limit: its replacement starts first and takes over
 * once ready, then the old one finishes its requests and exits.
 */
export function startRecycle(d: Draft, id: number, of: number, reason: RecycleReason, stoppedAccepting: boolean): void {
  spawn(d, id, d.config, d.serving, { for: 'recycle', reason, of, stoppedAccepting });
}

/**
 * The replacement of a recycle failed: the old worker keeps serving and no recycle is
 * tried before the backoff, unless it has stopped accepting on its own (`max-requests`):
 * then it is stopped and its id respawns with backoff.
 */
function recycleFailed(d: Draft, id: number, r: Extract<Replacement, { for: 'recycle' }>): void {
  const slot = d.slot(id);
  const old = d.proc(r.of);
  if (slot === undefined || old === undefined || slot.current !== r.of) return;
  const backoff = nextBackoff(slot.backoff, 0, d.now, WORKER_BACKOFF);
  d.setSlot(id, { backoff, recycleNotBefore: d.now + backoff.delayMs });
  d.error(`worker ${id}: its replacement failed; ${r.stoppedAccepting ? 'stopping it anyway' : 'it keeps serving'}`, { ...who(old), reason: r.reason });
  if (r.stoppedAccepting) retire(d, r.of, r.reason, 'backoff');
}

/** Starts the replacement a worker asked for, once it is its id's current process and none is on its way. */
export function honourRecycle(d: Draft, key: number | undefined): void {
  const proc = d.proc(key);
  if (proc === undefined || proc.state.kind !== 'ready' || proc.state.recycle === undefined || !d.live || recyclesWait(d)) return;
  const slot = d.slot(proc.id);
  if (slot === undefined || slot.current !== proc.key || slot.next !== undefined) return;
  const reason = proc.state.recycle;
  d.info(`worker ${proc.id} (pid ${proc.pid}) reached ${reason}; replacing it`, { ...who(proc), reason, requests: proc.data.requests });
  startRecycle(d, proc.id, proc.key, reason, true);
}
