/**
 * The cheaper subsystem: how many workers a vassal runs, between `cheaper` (the
 * minimum) and `processes` (the maximum). Pure functions of the pool, the state they
 * return and `now` (epoch ms); the master carries out their decisions. Semantics are
 * uWSGI 2.0's (core/master_utils.c `uwsgi_cheaper_algo_spare`/`_backlog`,
 * plugins/cheaper_busyness), with `idle` from core/master_checks.c.
 *
 * Worker "busy" means at least one request in flight; a Node worker serves many at
 * once, so for Node vassals `busyness` (time spent serving) is usually the better signal.
 */
import type { VassalConfig } from '@emperor/config';

/** The options the cheaper algorithms read (`VassalConfig` fields). */
export type CheaperConfig = Pick<
  VassalConfig,
  | 'processes'
  | 'cheaper'
  | 'cheaperInitial'
  | 'cheaperStep'
  | 'cheaperAlgo'
  | 'cheaperOverload'
  | 'cheaperBusyness'
  | 'cheaperRssLimitSoftBytes'
  | 'cheaperRssLimitHardBytes'
  | 'idleMs'
  | 'dieOnIdle'
  | 'cheap'
>;

/** One running (not cheap) worker as the algorithms see it. */
export interface CheaperWorker {
  readonly id: number;
  /** Its process; a new pid means its counters started over. */
  readonly pid: number;
  /** At least one request in flight. */
  readonly busy: boolean;
  /** Sum of request times of the current process, µs. */
  readonly runningTimeUs: number;
  /** Resident memory, bytes. */
  readonly rss: number;
}

/** The pool at one check. */
export interface CheaperPool {
  /** Workers that run (starting or ready) and are not cheap. */
  readonly active: readonly CheaperWorker[];
  /** Worker ids that are cheap and could be spawned. */
  readonly cheaped: number;
  /** Connections waiting in the accept queues now (largest over the sockets). */
  readonly backlog: number;
  /** End of the last request any worker completed, epoch ms; 0 if none yet. */
  readonly lastRequestEndMs: number;
}

/** What the algorithms remember between checks. */
export interface CheaperState {
  /** Epoch ms the vassal started: the idle clock before the first request. */
  readonly startedAt: number;
  /** spare: consecutive checks with every worker busy (decremented when one is idle). */
  readonly overloadCount: number;
  /** spare: checks with an idle surplus. */
  readonly idleCount: number;
  /** Cheap mode (no worker runs: `cheap` at start, or stopped by `idle`) since this epoch ms; 0 when not. */
  readonly idleSince: number;
  readonly busyness: BusynessState;
}

/** State of the busyness algorithm (plugins/cheaper_busyness). */
export interface BusynessState {
  /** Epoch ms of the last busyness evaluation; 0 before the first check. */
  readonly tcheck: number;
  /** running_time (µs) of each worker at the last evaluation, by pid. */
  readonly lastValues: ReadonlyMap<number, number>;
  /** Checks each worker (by pid) was seen busy since the last evaluation. */
  readonly wasBusy: ReadonlyMap<number, number>;
  /** Epoch ms before which no worker is cheaped. */
  readonly nextCheap: number;
  /** Epoch ms of the last cheap; 0 when none. */
  readonly lastCheaped: number;
  /** The current multiplier (grows by `penalty` when workers come back too fast). */
  readonly multiplier: number;
  readonly lastAction: 'none' | 'spawn' | 'cheap';
  /** Consecutive evaluations with min <= busyness <= max. */
  readonly tolerance: number;
  /** Workers spawned because of the listen queue, not yet cheaped. */
  readonly emergency: number;
  /** Epoch ms since which the listen queue has been non-empty; 0 when it is empty. */
  readonly backlogSince: number;
}

/** What to do now: spawn `delta` workers (> 0), cheap `-delta` idle workers (< 0), or nothing. */
export interface CheaperDecision {
  readonly delta: number;
  /** Short cause for logs and stats (`spare`, `backlog`, `busyness`, `idle`, `idle-wake`, `die-on-idle`, `rss-limit-hard`). */
  readonly reason: string;
  /** A log line when the decision deserves one (uWSGI's wording where it has one). */
  readonly message: string;
  /**
   * The busyness evaluation's figures when it led to nothing (for
   * `cheaper-busyness-verbose`, which logs it); absent otherwise.
   */
  readonly note?: string;
}

const NOTHING: CheaperDecision = { delta: 0, reason: '', message: '' };

/** The state at start: with `cheap`, in cheap mode from `now` (epoch ms). */
export function initialCheaperState(config: CheaperConfig, now: number): CheaperState {
  return {
    startedAt: now,
    overloadCount: 0,
    idleCount: 0,
    idleSince: config.cheap ? now : 0,
    busyness: {
      tcheck: 0, lastValues: new Map(), wasBusy: new Map(), nextCheap: 0, lastCheaped: 0,
      multiplier: config.cheaperBusyness.multiplier, lastAction: 'none', tolerance: 0, emergency: 0, backlogSince: 0,
    },
  };
}

/** `cheaper-step` of 0 behaves as 1 in uWSGI (`decheaped >= step`). */
function stepOf(config: CheaperConfig): number {
  return Math.max(1, config.cheaperStep);
}

/**
 * One check (once per master tick, never during a reload). Cheap mode comes first
 * (uWSGI core/master_checks.c `uwsgi_master_check_idle`): in it (from `cheap` at start,
 * or from `idle`) the first waiting connection spawns `cheaper-initial` workers (or
 * `processes` without cheaper). Then `idle`: after `idle` without a completed request and
 * with no worker busy, every worker stops (cheap mode; with `die-on-idle` the decision
 * has reason `die-on-idle` and the master exits instead). Then the RSS limits, then the
 * algorithm.
 */
export function cheaperCheck(state: CheaperState, pool: CheaperPool, config: CheaperConfig, now: number): [CheaperState, CheaperDecision] {
  const active = pool.active.length;
  const anyBusy = pool.active.some((w) => w.busy);

  if (state.idleSince > 0) {
    if (anyBusy || pool.backlog > 0 || pool.lastRequestEndMs > state.idleSince) {
      const target = config.cheaper > 0 ? config.cheaperInitial : config.processes;
      const delta = Math.min(Math.max(0, target - active), pool.cheaped);
      return [
        { ...state, idleSince: 0, overloadCount: 0, idleCount: 0 },
        { delta, reason: 'idle-wake', message: `cheap mode disabled: a connection is waiting; spawning ${delta} worker(s)` },
      ];
    }
    return [state, NOTHING];
  }
  if (config.idleMs > 0) {
    const since = Math.max(pool.lastRequestEndMs, state.startedAt);
    if (!anyBusy && pool.backlog === 0 && now - since >= config.idleMs && active > 0) {
      // uWSGI's line: `workers have been inactive for more than N seconds (now-last)`.
      const message = `workers have been inactive for more than ${config.idleMs / 1000} seconds (${Math.floor(now / 1000)}-${Math.floor(since / 1000)})`;
      if (config.dieOnIdle) return [{ ...state, idleSince: now }, { delta: 0, reason: 'die-on-idle', message }];
      return [{ ...state, idleSince: now }, { delta: -active, reason: 'idle', message }];
    }
  }
  if (config.cheaper <= 0) return [state, NOTHING];

  let canSpawn = pool.cheaped > 0;
  const rss = pool.active.reduce((sum, w) => sum + w.rss, 0);
  if (config.cheaperRssLimitHardBytes > 0 && rss > config.cheaperRssLimitHardBytes && active > 1) {
    return [state, { delta: -1, reason: 'rss-limit-hard', message: `cheaper hard rss memory limit exceeded (${mbOf(rss)} > ${mbOf(config.cheaperRssLimitHardBytes)}), cheap one of ${active} workers` }];
  }
  if (config.cheaperRssLimitSoftBytes > 0 && rss > config.cheaperRssLimitSoftBytes) canSpawn = false;

  let next: CheaperState;
  let decision: CheaperDecision;
  switch (config.cheaperAlgo) {
    case 'spare':
      [next, decision] = spare(state, pool, config, canSpawn);
      break;
    case 'backlog':
      [next, decision] = [state, backlog(pool, config, canSpawn)];
      break;
    case 'busyness': {
      const [b, d] = busyness(state.busyness, pool, config, canSpawn, now);
      [next, decision] = [{ ...state, busyness: b }, d];
      break;
    }
    default: {
      const never: never = config.cheaperAlgo;
      return never;
    }
  }
  // Never below the minimum nor above what is cheap.
  if (decision.delta < 0 && active <= config.cheaper) decision = NOTHING;
  if (decision.delta > 0) decision = { ...decision, delta: Math.min(decision.delta, pool.cheaped) };
  return [next, decision];
}

const mbOf = (bytes: number): string => `${Math.round(bytes / 1024 / 1024)} MB`;

/** uWSGI core/master_utils.c `uwsgi_cheaper_algo_spare`: keep exactly one idle worker. */
function spare(state: CheaperState, pool: CheaperPool, config: CheaperConfig, canSpawn: boolean): [CheaperState, CheaperDecision] {
  const idle = pool.active.filter((w) => !w.busy).length;
  let overloadCount = state.overloadCount;
  let idleCount = state.idleCount;
  if (idle > 0) overloadCount = Math.max(0, overloadCount - 1);
  else {
    overloadCount += 1;
    idleCount = 0;
  }
  if (canSpawn && overloadCount > config.cheaperOverload) {
    const delta = Math.min(stepOf(config), pool.cheaped);
    return [
      { ...state, overloadCount: 0, idleCount },
      { delta, reason: 'spare', message: `every worker busy for ${config.cheaperOverload + 1} checks: spawning ${delta} worker(s)` },
    ];
  }
  if (overloadCount === 0 && idle !== 1) {
    // One idle worker is the stable state; more is a surplus, cheaped one every `cheaper-overload` checks.
    idleCount += 1;
    const every = Math.max(1, config.cheaperOverload);
    if (pool.active.length > config.cheaper && idleCount % every === 0) {
      return [{ ...state, overloadCount, idleCount }, { delta: -1, reason: 'spare', message: `${idle} idle workers: cheaping one` }];
    }
  }
  return [{ ...state, overloadCount, idleCount }, NOTHING];
}

/** uWSGI core/master_utils.c `uwsgi_cheaper_algo_backlog`: follow the listen queue. */
function backlog(pool: CheaperPool, config: CheaperConfig, canSpawn: boolean): CheaperDecision {
  if (canSpawn && pool.backlog > config.cheaperOverload) {
    const delta = Math.min(stepOf(config), pool.cheaped);
    return { delta, reason: 'backlog', message: `${pool.backlog} connections in the listen queue: spawning ${delta} worker(s)` };
  }
  if (pool.backlog < config.cheaperOverload && pool.active.length > config.cheaper) {
    return { delta: -1, reason: 'backlog', message: `listen queue at ${pool.backlog}: cheaping one worker` };
  }
  return NOTHING;
}

/** plugins/cheaper_busyness: the share of time workers spend serving, averaged over `cheaper-overload` seconds. */
function busyness(s: BusynessState, pool: CheaperPool, config: CheaperConfig, canSpawn: boolean, now: number): [BusynessState, CheaperDecision] {
  const b = config.cheaperBusyness;
  const intervalMs = Math.max(1, config.cheaperOverload) * 1000;
  const cheapDelay = (multiplier: number, emergency: number): number =>
    Math.max(1, config.cheaperOverload) * 1000 * (emergency > 0 ? b.backlogMultiplier : multiplier);
  let state: BusynessState = s.tcheck === 0 ? { ...s, tcheck: now, nextCheap: now + cheapDelay(s.multiplier, s.emergency) } : s;
  const wasBusy = new Map<number, number>();
  for (const w of pool.active) wasBusy.set(w.pid, (state.wasBusy.get(w.pid) ?? 0) + (w.busy ? 1 : 0));
  state = { ...state, wasBusy, backlogSince: pool.backlog > 0 ? state.backlogSince || now : 0 };

  const emergency = (): [BusynessState, CheaperDecision] => {
    const delta = Math.min(Math.max(1, b.backlogStep), pool.cheaped);
    const count = state.emergency + delta;
    return [
      { ...state, multiplier: b.multiplier, lastAction: 'spawn', emergency: count, nextCheap: now + cheapDelay(b.multiplier, count) },
      { delta, reason: 'busyness', message: `[busyness] ${pool.backlog} requests in listen queue, spawning ${delta} emergency worker(s) (${count})` },
    ];
  };
  const backlogAlert = canSpawn && pool.active.length < config.processes &&
    (pool.backlog > b.backlogAlert || (state.backlogSince > 0 && now - state.backlogSince >= b.backlogNonzeroMs));

  if (now - state.tcheck < intervalMs) {
    // Between evaluations only the listen queue is watched (every check, as uWSGI does).
    return backlogAlert ? emergency() : [state, NOTHING];
  }

  let total = 0;
  const lastValues = new Map<number, number>();
  for (const w of pool.active) {
    const before = state.lastValues.get(w.pid) ?? w.runningTimeUs;
    const served = Math.max(0, w.runningTimeUs - before);
    let percent = Math.min(100, Math.floor((served * 100) / (intervalMs * 1000)));
    if (served === 0 && (wasBusy.get(w.pid) ?? 0) > 0) percent = 100; // busy all along, nothing finished
    total += percent;
    lastValues.set(w.pid, w.runningTimeUs);
  }
  const active = pool.active.length;
  const avg = active > 0 ? Math.floor(total / active) : 0;
  state = { ...state, tcheck: now, lastValues, wasBusy: new Map() };
  const secs = Math.max(1, config.cheaperOverload);
  const quiet: CheaperDecision = { ...NOTHING, note: `[busyness] ${secs}s average busyness is at ${avg}% (${active} running, ${pool.cheaped} cheap; cheap below ${b.min}%, spawn above ${b.max}%)` };

  if (avg > b.max) {
    const delta = canSpawn ? Math.min(stepOf(config), pool.cheaped) : 0;
    if (delta === 0) return [{ ...state, tolerance: 0 }, quiet];
    // Cheaped and needed again within multiplier × overload seconds: wait longer before the next cheap.
    const tooFast = state.lastCheaped > 0 && (now - state.lastCheaped) / 1000 / secs <= state.multiplier;
    const multiplier = tooFast ? state.multiplier + b.penalty : Math.max(b.multiplier, state.multiplier - 1);
    return [
      { ...state, tolerance: 0, lastAction: 'spawn', multiplier, nextCheap: now + cheapDelay(multiplier, state.emergency) },
      { delta, reason: 'busyness', message: `[busyness] ${secs}s average busyness is at ${avg}%, will spawn ${delta} new worker(s)` },
    ];
  }
  if (backlogAlert) return emergency();
  if (avg < b.min) {
    if (active <= 1) return [state, quiet];
    if (active > config.cheaper && now >= state.nextCheap) {
      const multiplier = state.lastAction === 'cheap' ? Math.max(b.multiplier, state.multiplier - 1) : state.multiplier;
      const emergencyLeft = Math.max(0, state.emergency - 1);
      return [
        { ...state, tolerance: 0, multiplier, lastAction: 'cheap', lastCheaped: now, emergency: emergencyLeft, nextCheap: now + cheapDelay(multiplier, emergencyLeft) },
        { delta: -1, reason: 'busyness', message: `[busyness] ${secs}s average busyness is at ${avg}%, cheap one of ${active} running workers` },
      ];
    }
    return [{ ...state, tolerance: 0 }, quiet];
  }
  // min <= avg <= max: after 3 such evaluations in a row the cheap timer restarts.
  if (active <= 1) return [state, quiet];
  const tolerance = state.tolerance + 1;
  const emergencyLeft = Math.max(0, state.emergency - 1);
  return [
    { ...state, tolerance, emergency: emergencyLeft, nextCheap: tolerance >= 3 ? now + cheapDelay(state.multiplier, emergencyLeft) : state.nextCheap + intervalMs },
    quiet,
  ];
}
