/**
 * The vassal master's pool of workers as plain data: worker ids (slots), their processes
 * (each in one closed state), the reload in progress and the one queued, the cheaper
 * algorithm's memory and the master's own phase. {@link step} is the only way it
 * changes; the master loop (`master.ts`) feeds it events and carries out its commands.
 *
 * Times are epoch ms, as read from the master's clock and passed in.
 */
import type { VassalConfig } from '@emperor/config';
import type { ExitCode, MasterToWorker, WorkerToMaster } from '@emperor/protocol';
import type { BackoffOptions, BackoffState, ExitInfo } from '@emperor/process';
import type { SlotData } from '../../shared/scoreboard.js';
import type { CheaperState } from '../cheaper.js';
import type { RecycleReason } from '../health.js';

/** Master tick: scoreboard read, memory sample, checks (uWSGI `check-interval`, 1 s). */
export const TICK_MS = 1000;

/**
 * The tick of a master with nothing to check every second, ms: no harakiri, no memory or
 * lifetime limit, no cheaper or idle, no touch file, every worker ready and nothing
 * pending (`heartbeat` when that is shorter). It still reads the scoreboard (only to see
 * that nothing changed, `settledTick`) and, while a worker is busy, the accept queues (for
 * the "listen queue full" line); a stats request refreshes what it shows first. A wake-up
 * of an idle Node process costs 0.2 ms of CPU on a quiet host and 1.5-2 ms on a loaded
 * one (measured, docs/architecture.md), which on a host of hundreds of vassals adds up to
 * a good part of a core for nothing. 10 s with the default `heartbeat` of 10 s is three
 * beats per `emperor-required-heartbeat` (30 s). Settled ticks fall on a grid of this
 * interval shared by every master (`nextSettledTick`).
 */
export const IDLE_TICK_MS = 10_000;

/**
 * Respawn backoff of one worker slot: a worker that dies within 10 s of its spawn is
 * respawned after 0.5 s, then 1, 2, 4 … up to 30 s; the master never spins (contrast
 * uWSGI's "worker respawning too fast !!! i have to sleep a bit", which blocks the master).
 */
export const WORKER_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, healthyMs: 10_000, curseAfter: 10 };

/** What to do when a process exits while it is still its worker id's current process. */
export type Respawn = 'backoff' | 'now' | 'none';

/**
 * The state of one worker process. The reason it is going is carried in the state.
 *
 * - `spawning`: the master asked its runtime for it; no pid yet.
 * - `starting`: running, loading the app; killed at `readyBy` (`worker-ready-timeout`).
 * - `ready`: accepting. `recycle`: it asked to be replaced (`max-requests`) and has
 *   stopped accepting; kept here, not acted on only when the message arrives, because a
 *   fresh worker can reach its limit before it is its id's current process.
 * - `stopping`: asked to stop gracefully (`reason`); SIGKILL at `killAt` (the mercy).
 * - `killed`: SIGKILL sent (`reason`: harakiri, an evil limit, not-ready, an expired
 *   mercy…); `was` is what it looked like before, for stats.
 *
 * A process that exits leaves the pool; its counters join its worker id's.
 */
export type ProcState =
  | { readonly kind: 'spawning' }
  | { readonly kind: 'starting'; readonly readyBy: number; readonly recycle?: RecycleReason }
  | { readonly kind: 'ready'; readonly recycle?: RecycleReason }
  | { readonly kind: 'stopping'; readonly reason: string; readonly killAt: number; readonly respawn: Respawn }
  | { readonly kind: 'killed'; readonly reason: string; readonly respawn: Respawn; readonly was: 'starting' | 'ready' | 'stopping' };

/** One worker process. */
export interface WorkerProc {
  /** The pool's own serial name for it; the master maps it to the child. */
  readonly key: number;
  /** Worker id, 1-based, stable across respawns. */
  readonly id: number;
  readonly generation: number;
  /** The config it was spawned with (a reload's new workers run the new one). */
  readonly config: VassalConfig;
  /** 0 until its runtime reports it spawned (and when the spawn itself failed). */
  readonly pid: number;
  /** Epoch ms it was spawned. */
  readonly spawnedAt: number;
  /** Epoch ms it reported ready; 0 before. */
  readonly readyAt: number;
  /** Its runtime serves one request at a time: harakiri times the request, not the heartbeat. */
  readonly sync: boolean;
  /** How often it writes its slot, ms (its heartbeat period). */
  readonly heartbeatIntervalMs: number;
  readonly state: ProcState;
  /** Latest scoreboard reading. */
  readonly data: SlotData;
  /** Resident and virtual memory from the last sample, bytes; 0 before the first. */
  readonly rss: number;
  readonly vsz: number;
  /** Proportional set size from the last stats sample, bytes; 0 before the first. */
  readonly pss: number;
}

/** Why a process is its worker id's replacement-to-be. */
export type Replacement =
  /** A graceful or chain reload (see {@link Pool.reload}). */
  | { readonly for: 'reload' }
  /** A recycle of process `of`: it reached a limit, or asked (`stoppedAccepting`: max-requests). */
  | { readonly for: 'recycle'; readonly reason: RecycleReason; readonly of: number; readonly stoppedAccepting: boolean };

/** A worker id and its history across respawns. */
export interface WorkerSlot {
  readonly id: number;
  /** Key of the process serving for this id (the old one during a replacement). */
  readonly current: number | undefined;
  /** The replacement being started, during a reload or recycle. */
  readonly next: { readonly key: number; readonly replacement: Replacement } | undefined;
  /** Retired (or never started) by the cheaper subsystem; spawned again when the pool grows. */
  readonly cheap: boolean;
  /** Epoch ms of the pending respawn; undefined when none. */
  readonly respawnAt: number | undefined;
  readonly backoff: BackoffState;
  /** Epoch ms before which no graceful recycle is attempted (after a replacement failed). */
  readonly recycleNotBefore: number;
  /** Spawns of this id (uWSGI `respawn_count`). */
  readonly respawnCount: number;
  /** Epoch ms of the last spawn. */
  readonly lastSpawn: number;
  readonly lastExitReason: string;
  /** Counters of this id's earlier processes. */
  readonly requestsBefore: number;
  readonly exceptionsBefore: number;
  readonly txBefore: number;
  readonly runningTimeBefore: number;
  /** Kills by the master plus requests ended by the worker's own harakiri, over the id's life. */
  readonly harakiriBefore: number;
}

/** A reload asked for while another runs (or before the vassal is ready): one, merged. */
export interface QueuedReload {
  readonly kind: 'graceful' | 'chain';
  readonly reread: boolean;
}

/** The reload in progress. */
export interface ReloadState extends QueuedReload {
  /** The caller waiting for its outcome ({@link PoolCommand} `settle`). */
  readonly ticket: number | undefined;
  /**
   * `preparing`: the master reads the file and binds new sockets. `replacing`: the new
   * generation is on its way: every id at once (graceful), or `ids[at]` (chain).
   */
  readonly stage:
    | { readonly name: 'preparing' }
    | {
        readonly name: 'replacing';
        readonly config: VassalConfig;
        readonly generation: number;
        readonly ids: readonly number[];
        readonly at: number;
        /** A new worker failed (graceful): the reload is abandoned once the rest settle. */
        readonly failed: boolean;
      };
}

/** The master's own lifecycle; `running` shows as `ready` or `reloading`. */
export type PoolPhase = 'starting' | 'running' | 'stopping' | 'dead';

/** The whole pool. Read it through the functions of `views.ts`. */
export interface Pool {
  readonly phase: PoolPhase;
  /** The serving config (a reload's config once it completed). */
  readonly config: VassalConfig;
  /** The latest generation started (a failed reload's included, as uWSGI counts). */
  readonly generation: number;
  /**
   * The generation whose code the serving workers run: 1, then each completed reload's.
   * Respawns, recycles and cheaper's new workers are of this generation, so a runtime that
   * loads the app once per generation (a preloaded Python template) forks them from the
   * app that serves, never from a reload that was abandoned.
   */
  readonly serving: number;
  /** The master's uid after the privilege drop, for spawn failure lines. */
  readonly uid: number | undefined;
  readonly slots: ReadonlyMap<number, WorkerSlot>;
  /** Every live process, by key: current ones, replacements, retiring ones. */
  readonly procs: ReadonlyMap<number, WorkerProc>;
  readonly nextKey: number;
  readonly reload: ReloadState | undefined;
  readonly queuedReload: QueuedReload | undefined;
  readonly cheaper: CheaperState;
  /** Last seen mtime (ms) of each touch file; -1 when missing. */
  readonly touched: ReadonlyMap<string, number>;
  readonly announced: { readonly ready: boolean; readonly accepting: boolean; readonly loyal: boolean };
  /** Epoch ms of the next tick; undefined once stopping. */
  readonly nextTickAt: number | undefined;
  /** Epoch ms of the last heartbeat to the emperor. */
  readonly lastBeat: number;
  /** While stopping with `reload-mercy`: the epoch ms by which every worker is SIGKILLed. */
  readonly stopBy: number | undefined;
  /**
   * Epoch ms cheap mode's watch was last armed (0: never). Cheap mode that began before
   * it (`cheaper.idleSince` ≤ this) is watched: a connection wakes the pool at once, so
   * the tick need not look for one every second.
   */
  readonly cheapWatchedAt: number;
}

/** Scoreboard readings by process key (only those whose pid matches). */
export type Readings = ReadonlyMap<number, SlotData>;

/** What happens to the pool. */
export type PoolEvent =
  /** The master is bound and dropped: spawn the first generation. */
  | { readonly type: 'start'; readonly uid: number | undefined; readonly mtimes: ReadonlyMap<string, number> }
  /**
   * A process asked for in a `spawn` command runs (`pid` 0: Node's spawn failed; its exit
   * follows). The master has logged it (`spawned worker N (pid P)`).
   */
  | { readonly type: 'spawned'; readonly key: number; readonly pid: number; readonly spawnedAt: number; readonly sync: boolean }
  /** The runtime could not start it at all (the master logged why). */
  | { readonly type: 'spawn-failed'; readonly key: number }
  | { readonly type: 'message'; readonly key: number; readonly message: WorkerToMaster }
  /** A process exited; `final` is its last slot reading (when its pid still owned the slot). */
  | { readonly type: 'exit'; readonly key: number; readonly exit: ExitInfo; readonly final: SlotData | undefined }
  /** Fresh scoreboard readings (for a stats document). */
  | { readonly type: 'readings'; readonly readings: Readings }
  /** A memory sample by key; `check` runs the health checks on it. */
  | { readonly type: 'memory'; readonly samples: ReadonlyMap<number, { readonly rss: number; readonly vsz: number; readonly pss?: number }>; readonly check: boolean }
  /** The tick is due: readings, each touch file's mtime now, the largest accept queue last read. */
  | { readonly type: 'tick'; readonly readings: Readings; readonly mtimes: ReadonlyMap<string, number>; readonly backlog: number }
  /** Some other deadline is due (ready timeout, respawn, mercy, harakiri). */
  | { readonly type: 'deadline'; readonly readings: Readings }
  | { readonly type: 'reload'; readonly kind: 'graceful' | 'chain'; readonly reread: boolean; readonly ticket?: number | undefined }
  /** The master has the reload's config (re-read or not) and its new sockets bound. */
  | { readonly type: 'reload-prepared'; readonly config: VassalConfig; readonly mtimes: ReadonlyMap<string, number> }
  /** The reload's config could not be had (the master logged why). */
  | { readonly type: 'reload-refused' }
  | { readonly type: 'stop'; readonly reason: string; readonly mercyMs?: number | undefined }
  | { readonly type: 'destroy'; readonly code: ExitCode }
  /** The master FIFO's `+` / `-`. */
  | { readonly type: 'adjust'; readonly delta: 1 | -1 }
  /** Cheap mode's watch took a connection (and relayed it to its socket): wake the workers now. */
  | { readonly type: 'connection' }
  /** Cheap mode's watch is armed: from now on a connection is seen at once (cheap-watch.ts). */
  | { readonly type: 'watching' };

/** A log line, in the master's logger. */
export interface LogCommand {
  readonly type: 'log';
  readonly level: 'info' | 'warn' | 'error';
  readonly msg: string;
  readonly fields?: Readonly<Record<string, unknown>>;
}

/** Something the master emits (see `MasterEvents`). */
export type EmitCommand =
  | { readonly type: 'emit'; readonly event: 'ready' | 'accepting' | 'loyal' | 'heartbeat' | 'idle' }
  | { readonly type: 'emit'; readonly event: 'reloaded'; readonly ok: boolean }
  | { readonly type: 'emit'; readonly event: 'touch-logreopen'; readonly file: string }
  | { readonly type: 'emit'; readonly event: 'exit'; readonly code: ExitCode };

/** What the master carries out, in order. */
export type PoolCommand =
  /** Start worker `id` through its runtime; answer with `spawned` or `spawn-failed`. */
  | { readonly type: 'spawn'; readonly key: number; readonly id: number; readonly generation: number; readonly config: VassalConfig }
  | { readonly type: 'send'; readonly key: number; readonly message: MasterToWorker }
  | { readonly type: 'signal'; readonly key: number; readonly signal: NodeJS.Signals }
  /** The polite stop: the `stop` message, SIGTERM when its channel is closed. */
  | { readonly type: 'stop'; readonly key: number }
  /** Log the harakiri line (with the stack first, under `harakiri-verbose`), then SIGKILL. */
  | { readonly type: 'harakiri'; readonly key: number; readonly msg: string; readonly fields: Readonly<Record<string, unknown>> }
  | LogCommand
  | EmitCommand
  /** Read the config for a reload (re-read the file or not) and bind its new sockets; answer with `reload-prepared` or `reload-refused`. */
  | { readonly type: 'prepare-reload'; readonly reread: boolean }
  /** A reload completed with `config`: close the sockets it dropped, take its backlog. */
  | { readonly type: 'adopt-config'; readonly config: VassalConfig }
  /** Resolve the reload caller `ticket`. */
  | { readonly type: 'settle'; readonly ticket: number; readonly ok: boolean }
  /** Close the sockets and the scoreboard, remove the pidfile (`vacuum`). */
  | { readonly type: 'release' };

/** The outcome of one {@link PoolEvent}. */
export interface StepResult {
  readonly pool: Pool;
  readonly commands: readonly PoolCommand[];
  /** `adjust` only: why nothing was done (undefined when a worker was spawned or cheaped). */
  readonly answer?: string | undefined;
}
