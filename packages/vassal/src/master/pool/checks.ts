/**
 * What the master checks on its tick: touch files, the health checks (harakiri, memory
 * and lifetime limits; health.ts decides, this carries the decisions out) and the
 * cheaper algorithm (cheaper.ts decides); plus the master FIFO's `+` and `-`.
 */
import { INITIAL_BACKOFF } from '@emperor/process';
import { cheaperCheck, type CheaperDecision } from '../cheaper.js';
import { checkHealth, nextHarakiriDeadline, type HealthAction } from '../health.js';
import type { Draft } from './draft.js';
import { askReload, recyclesWait, startRecycle } from './replace.js';
import { healthView, isBusy, masterState } from './views.js';
import { kill, markKilled, retire, spawn, who } from './workers.js';

/**
 * `touch-reload` / `touch-chain-reload`: a file whose mtime changed (or that vanished)
 * triggers a reload; a `touch-logreopen` file emits `touch-logreopen`. Checked every tick
 * (uWSGI's master cycle).
 */
export function checkTouches(d: Draft, mtimes: ReadonlyMap<string, number>): void {
  let kind: 'graceful' | 'chain' | undefined;
  let touched: Map<string, number> | undefined;
  for (const [file, before] of d.touched) {
    const now = mtimes.get(file);
    if (now === undefined || now === before) continue;
    touched ??= new Map(d.touched);
    touched.set(file, now);
    if (d.config.touchLogreopen.includes(file)) d.emit({ event: 'touch-logreopen', file });
    const graceful = d.config.touchReload.includes(file);
    const chain = !graceful && d.config.touchChainReload.includes(file);
    if (!graceful && !chain) continue;
    d.info(`*** ${file} has been touched... ${chain ? 'chain reload' : 'grace them all'} !!! ***`, { file });
    kind = kind === 'graceful' || !chain ? 'graceful' : 'chain';
  }
  if (touched !== undefined) d.touched = touched;
  if (kind !== undefined) askReload(d, kind, true, undefined);
}

/** Runs the health checks and carries out what is due (never while stopping). */
export function checkWorkers(d: Draft): void {
  if (!d.live) return;
  const { view, keys } = healthView(d);
  for (const action of checkHealth(view, d.config, d.now)) act(d, action, keys.get(action.proc) as number);
}

/** True when a harakiri deadline has come (the master woke up for it). */
export function harakiriDue(d: Draft): boolean {
  if (!d.live || d.config.harakiriMs <= 0) return false;
  const next = nextHarakiriDeadline(healthView(d).view, d.config.harakiriMs);
  return next !== undefined && next <= d.now;
}

function act(d: Draft, action: HealthAction, key: number): void {
  const proc = d.proc(key);
  const slot = d.slot(action.proc.id);
  if (proc === undefined || slot === undefined) return;
  const current = slot.current === key;
  switch (action.kind) {
    case 'harakiri': {
      // uWSGI `trigger_harakiri`: log the request, kill, respawn at once.
      markKilled(d, key, 'harakiri', current ? 'now' : 'none'); // the harakiri command sends the SIGKILL, after the stack
      d.setSlot(slot.id, { harakiriBefore: slot.harakiriBefore + 1 });
      const data = proc.data;
      const what = data.method !== '' ? `${data.method} ${data.uri}` : 'no request';
      const harakiriMs = d.config.harakiriMs;
      const limit = harakiriMs / 1000;
      const ran = (action.ranMs / 1000).toFixed(1);
      d.run({
        type: 'harakiri',
        key,
        fields: { ...who(proc), method: data.method, uri: data.uri, ran_ms: action.ranMs, harakiri_ms: harakiriMs, cause: action.cause },
        msg: action.cause === 'request'
          ? `HARAKIRI ON WORKER ${proc.id} (pid ${proc.pid}): ${what} ran for ${ran} s (harakiri ${limit} s)`
          : `HARAKIRI ON WORKER ${proc.id} (pid ${proc.pid}): event loop blocked for ${ran} s (harakiri ${limit} s); oldest request in flight: ${what}`,
      });
      return;
    }
    case 'evil-kill':
      d.error(`*** EVIL RELOAD ON WORKER ${proc.id} (pid ${proc.pid}): ${action.detail} (${action.reason}) ***`, { ...who(proc), reason: action.reason, rss: proc.rss, vsz: proc.vsz });
      kill(d, key, action.reason, current ? 'now' : 'none');
      return;
    case 'recycle':
      if (!current || d.now < slot.recycleNotBefore || recyclesWait(d)) return;
      d.info(`worker ${proc.id} (pid ${proc.pid}): ${action.detail} (${action.reason}); replacing it gracefully`, { ...who(proc), reason: action.reason, rss: proc.rss, vsz: proc.vsz });
      startRecycle(d, slot.id, key, action.reason, false);
      return;
    default: {
      const never: never = action;
      void never;
    }
  }
}

/**
 * Runs the cheaper algorithm (never while starting, reloading or stopping) and carries
 * out its decision. `via` says what saw the connection that ends cheap mode: the
 * master's tick reading the listen queues, or cheap mode's watch (logged as `via`).
 */
export function checkCheaper(d: Draft, backlog: number, via: 'tick' | 'watch' = 'tick'): void {
  const config = d.config;
  if ((config.cheaper <= 0 && config.idleMs <= 0 && d.cheaper.idleSince === 0) || masterState(d) !== 'ready') return;
  const active = [];
  let cheaped = 0;
  for (const slot of d.slots.values()) {
    if (slot.cheap) cheaped += 1;
    const p = d.proc(slot.current);
    if (slot.cheap || p === undefined || p.state.kind === 'killed') continue;
    active.push({ id: slot.id, pid: p.pid, busy: isBusy(p.data), runningTimeUs: p.data.runningTimeUs, rss: p.rss });
  }
  let lastRequestEndMs = 0;
  for (const p of d.procs.values()) lastRequestEndMs = Math.max(lastRequestEndMs, p.data.lastRequestEndMs);
  const [next, decision] = cheaperCheck(d.cheaper, { active, cheaped, backlog, lastRequestEndMs }, config, d.now);
  d.cheaper = next;
  if (decision.note !== undefined && config.cheaperBusyness.verbose) d.info(decision.note, { reason: 'busyness' });
  if (decision.reason === 'die-on-idle') {
    // The master exits (under the emperor, after telling it: uWSGI byte 22).
    d.info(decision.message, { reason: decision.reason });
    d.emit({ event: 'idle' });
    return;
  }
  if (decision.delta > 0) growPool(d, decision, via);
  else if (decision.delta < 0 && shrinkPool(d, decision) > 0 && decision.reason === 'idle' && active.length + decision.delta <= 0) {
    d.info('cheap mode enabled: waiting for socket connection...', { reason: 'idle' });
  }
}

/** Spawns the lowest cheap ids. */
function growPool(d: Draft, decision: CheaperDecision, via?: 'tick' | 'watch'): void {
  const cheap = [...d.slots.values()].filter((s) => s.cheap).sort((a, b) => a.id - b.id).slice(0, decision.delta);
  d.info(decision.message, { reason: decision.reason, workers: cheap.map((s) => s.id), ...(decision.reason === 'idle-wake' ? { via } : {}) });
  for (const slot of cheap) {
    d.setSlot(slot.id, { cheap: false, backoff: INITIAL_BACKOFF });
    spawn(d, slot.id, d.config, d.serving, 'current');
  }
}

/**
 * Cheaps workers with no request in flight, the oldest first (uWSGI cheaps the idle
 * worker with the oldest spawn). A busy worker is never chosen (uWSGI issue #1702:
 * cheaping a busy worker gives 502s); if all are busy, nothing happens this time. A
 * worker that picked up a request since the last reading still finishes it: the stop
 * is graceful.
 * @returns how many workers were cheaped
 */
function shrinkPool(d: Draft, decision: CheaperDecision): number {
  const candidates = [...d.slots.values()]
    .filter((s) => {
      const p = d.proc(s.current);
      return !s.cheap && s.next === undefined && p?.state.kind === 'ready' && !isBusy(p.data);
    })
    .sort((a, b) => a.lastSpawn - b.lastSpawn)
    .slice(0, -decision.delta);
  if (candidates.length === 0) return 0;
  d.info(decision.message, { reason: decision.reason, workers: candidates.map((s) => s.id) });
  for (const slot of candidates) {
    const proc = d.proc(slot.current);
    if (proc === undefined) continue;
    d.setSlot(slot.id, { cheap: true, current: undefined });
    d.info(`worker ${slot.id} (pid ${proc.pid}) cheaped`, { ...who(proc), reason: decision.reason });
    retire(d, proc.key, 'cheap');
  }
  return candidates.length;
}

/**
 * The master FIFO's `+` and `-` (uWSGI `uwsgi_cheaper_increase`/`decrease`): spawns one
 * cheaped worker, or cheaps one idle worker (never below `cheaper`). The cheaper
 * algorithm keeps running and may undo it at a later check, as in uWSGI. Sets
 * `d.answer` to why nothing was done.
 */
export function adjustPool(d: Draft, delta: 1 | -1): void {
  const config = d.config;
  const state = masterState(d);
  if (config.cheaper <= 0) d.answer = 'not in cheaper mode (set cheaper below processes)';
  else if (state !== 'ready') d.answer = `the vassal is ${state}`;
  else if (delta > 0) {
    if (![...d.slots.values()].some((s) => s.cheap)) d.answer = `all ${config.processes} workers already run (processes)`;
    else growPool(d, { delta: 1, reason: 'master-fifo', message: 'master FIFO +: spawning 1 worker' });
  } else {
    const active = [...d.slots.values()].filter((s) => !s.cheap && s.current !== undefined).length;
    if (active <= config.cheaper) d.answer = `only ${active} worker(s) run, the fewest cheaper allows`;
    else if (shrinkPool(d, { delta: -1, reason: 'master-fifo', message: 'master FIFO -: cheaping one worker' }) === 0) d.answer = 'every worker is busy or starting';
  }
}
