/**
 * The vassal master: the authority on one app. It binds the sockets, drops privileges,
 * and runs a small loop around the pool (`pool/`): events in (a worker's message or exit,
 * its single timer, a reload or stop asked for), the pool's pure `step`, commands out
 * (spawn through a runtime, signal, log, emit). It keeps the I/O: the scoreboard, memory
 * and accept-queue sampling, stack capture, touch-file mtimes, the pidfile.
 *
 * Lifecycle: `starting → ready → reloading → ready … → stopping → dead`.
 * Worker processes: see `ProcState` (pool/types.ts).
 */
import { EventEmitter } from 'node:events';
import { unlinkSync, writeFileSync } from 'node:fs';
import type { VassalConfig } from '@emperor/config';
import { ExitCode } from '@emperor/protocol';
import { systemClock, type Clock, type Logger, type TimerHandle } from '@emperor/process';
import { CheapWatch } from './cheap-watch.js';
import { systemIo, type MasterIo } from './io.js';
import { ListenQueues, QUEUE_FRESH_MS, type QueueReading } from './listen-queues.js';
import { MemorySampler } from './memory.js';
import {
  anyBusy,
  createPool,
  generationsInUse,
  inCheapMode,
  isSettled,
  masterState,
  memoryWatched,
  nextDeadline,
  queuesNeededEveryTick,
  settledTick,
  step,
  summarize,
  type EmitCommand,
  type MasterState,
  type Pool,
  type PoolCommand,
  type PoolEvent,
  type StepResult,
} from './pool/index.js';
import { prepareReload } from './reload-prepare.js';
import type { Runtime, Runtimes } from './runtimes/runtime.js';
import { effectiveBacklog, type BoundSocket } from './sockets.js';
import { removeStackDir } from './stack-dump.js';
import { startUp, warnSomaxconn } from './startup.js';
import { WorkerProcesses } from './worker-processes.js';

/**
 * How long a stats read waits for the workers' `published` answers, ms: an idle worker
 * answers in well under a millisecond; a sync worker inside a long request cannot, and
 * the read then shows it busy from the slot it has. 50 ms was too short on a host at
 * load 11 on 2 cores (a Node worker's answer missed it once in 100 reads).
 */
export const PUBLISH_WAIT_MS = 200;

/** Options for {@link Master}. */
export interface MasterOptions {
  readonly config: VassalConfig;
  readonly logger: Logger;
  /** Re-reads the vassal file for a reload. @throws on an invalid file (the reload is then abandoned). */
  readonly reloadConfig: () => VassalConfig;
  /** The worker runtimes, by the config's `runtime` name (see `createRuntimes`). */
  readonly runtimes: Runtimes;
  /** With `logto`: the log file's descriptor now, the workers' stdout and stderr (default: the master's own). */
  readonly logFd?: () => number | undefined;
  /**
   * What must be judged as the vassal's user (access to the app): runs once the master
   * runs as that user and its runtime is prepared, before the first worker, and for each
   * reload that re-reads the file.
   * @throws to stop the master ({@link start} rethrows it) or abandon the reload
   */
  readonly afterDrop?: (config: VassalConfig) => void;
  /** @default systemClock */
  readonly clock?: Clock;
  /** The master's I/O; what is left out is the real one. */
  readonly io?: Partial<MasterIo>;
}

interface MasterEvents {
  /** Every worker of the first generation accepts. */
  ready: [];
  /** The first worker accepts. */
  accepting: [];
  /** The first request completed. */
  loyal: [];
  /** A reload ended: true when the new workers took over. */
  reloaded: [ok: boolean];
  /** Periodic liveness, every `heartbeat` ms. */
  heartbeat: [];
  /** `idle` with `die-on-idle`: no request for that long; the master should stop (uWSGI byte 22 to the emperor). */
  idle: [];
  /** A `touch-logreopen` file was touched (or vanished): the log files should be reopened. */
  'touch-logreopen': [file: string];
  /** The master is done; the process should exit with this code. */
  exit: [code: ExitCode];
}

/**
 * The vassal master. Call {@link start}, then {@link reload}, {@link stop} or
 * {@link destroy}; listen for `exit` to know when to end the process.
 */
export class Master extends EventEmitter<MasterEvents> {
  readonly #logger: Logger;
  readonly #options: MasterOptions;
  readonly #clock: Clock;
  readonly #io: MasterIo;
  #pool: Pool;
  #sockets: BoundSocket[] = [];
  /** The I/O side of the live processes; set once started. */
  #workers: WorkerProcesses | undefined;
  #timer: TimerHandle | undefined;
  #timerAt: number | undefined;
  #retainedKey: string | undefined;
  readonly #tickets = new Map<number, (ok: boolean) => void>();
  #nextTicket = 1;
  readonly #queues: ListenQueues;
  readonly #memory: MemorySampler;
  readonly #exited: Promise<void>;
  #onExited: () => void = () => {};
  /** Cheap mode: the queues are being read for the tick that follows. */
  #cheapReading = false;
  /** Cheap mode's watch for the first connection (cheap-watch.ts). */
  readonly #watch: CheapWatch;
  /** The watch failed once (logged); the tick's queue reading wakes the workers instead. */
  #watchFailed = false;
  /** The cheap mode (its `idleSince`) whose watch took its connection: not armed again for it. */
  #watchSpentFor = 0;
  /**
   * The pool as a full tick left it, when that pool was settled (`isSettled`): while the
   * pool is still this one (no event since) and the scoreboard unchanged, the next tick
   * is a `settledTick`.
   */
  #settled: Pool | undefined;
  readonly startedAt: number;

  constructor(options: MasterOptions) {
    super();
    this.#options = options;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#io = { ...systemIo, ...options.io };
    this.startedAt = this.#clock.now();
    this.#pool = createPool(options.config, this.startedAt);
    this.#queues = new ListenQueues(this.#logger, this.#clock, this.#io.readListenQueues);
    this.#watch = new CheapWatch({
      dup: (sockets) => this.#io.dupSockets(sockets),
      onConnection: () => {
        this.#watchSpentFor = this.#pool.cheaper.idleSince;
        this.#feed({ type: 'connection' });
      },
      logger: this.#logger,
    });
    this.#memory = new MemorySampler(this.#io, this.#clock);
    this.#exited = new Promise((resolve) => {
      this.#onExited = resolve;
    });
  }

  get state(): MasterState {
    return masterState(this.#pool);
  }

  /** The serving config (a reload's, once it completed). */
  get config(): VassalConfig {
    return this.#pool.config;
  }

  /** The pool as it is now (read it with the functions of `pool/views.ts`). */
  get pool(): Pool {
    return this.#pool;
  }

  get sockets(): readonly BoundSocket[] {
    return this.#sockets;
  }

  #runtime(config: VassalConfig): Runtime {
    return this.#options.runtimes[config.runtime];
  }

  /**
   * Prepares the runtime, binds the sockets, writes the pidfile, drops privileges,
   * creates the scoreboard and spawns the first generation.
   * @throws PythonInterpreterError, SocketBindError, PrivilegeError (the caller logs them and exits with ExitCode.UNAVAILABLE)
   */
  async start(): Promise<void> {
    const config = this.#pool.config;
    const { sockets, scoreboard } = await startUp({
      config, runtime: this.#runtime(config), io: this.#io, logger: this.#logger, writePidfile: () => this.writePidfile(), afterDrop: this.#options.afterDrop,
    });
    this.#sockets = sockets;
    if (config.cheap) {
      try {
        await this.#watch.arm(sockets, config.listen); // no worker will listen before the first connection
      } catch (err) {
        for (const s of sockets) s.close(true);
        throw err;
      }
    }
    this.#workers = new WorkerProcesses({
      logger: this.#logger,
      clock: this.#clock,
      scoreboard,
      logFd: () => this.#options.logFd?.(),
      onEvent: (event) => this.#feed(event),
    });
    this.#logger.info(
      { sockets: config.sockets.map((s) => s.name), processes: config.processes, uid: process.getuid?.(), gid: process.getgid?.() },
      `vassal master started: ${config.processes} worker(s) on ${summarize(config)}`,
    );
    warnSomaxconn(config.listen, this.#logger);
    this.#queues.maxBacklog = effectiveBacklog(config.listen);
    const files = [...config.touchReload, ...config.touchChainReload, ...config.touchLogreopen];
    this.#feed({ type: 'start', uid: process.getuid?.(), mtimes: new Map(files.map((f) => [f, this.#io.mtime(f)])) });
    if (this.#watch.watching) this.#feed({ type: 'watching' });
  }

  /**
   * Reloads every worker. `graceful` starts a whole new generation, and only when every
   * new worker is ready retires the old ones (or, if one fails, kills the new ones and
   * keeps the old: a broken deploy does not take the app down). `chain` replaces one
   * worker at a time and stops at the first failure (uWSGI `touch-chain-reload`, with the
   * replacement started before the old worker stops). A reload asked for during a reload
   * (or before the vassal is ready) runs after it (one reload, graceful and re-reading
   * the file if any of those asked for that).
   * @param reread false keeps the running config: the master FIFO's `w`, which reloads
   *   the workers only (uWSGI `uwsgi_reload_workers`, core/fifo.c)
   * @returns true when the new workers took over, or the reload was queued; false when
   *   it was abandoned, or the master is stopping
   */
  reload(kind: 'graceful' | 'chain' = 'graceful', reread = true): Promise<boolean> {
    const ticket = this.#nextTicket++;
    const outcome = new Promise<boolean>((resolve) => this.#tickets.set(ticket, resolve));
    this.#feed({ type: 'reload', kind, reread, ticket });
    return outcome;
  }

  /**
   * Stops every worker gracefully (each within `worker-reload-mercy`, the whole stop
   * within `reload-mercy` when set), closes the sockets, removes the pidfile and unix
   * sockets when `vacuum` is set, then emits `exit` with code 0. Idempotent.
   * @param mercyMs overrides the per-worker mercy (the emperor's death uses a short one).
   */
  stop(reason = 'stop', mercyMs?: number): Promise<void> {
    this.#feed({ type: 'stop', reason, mercyMs });
    return this.#exited;
  }

  /** Kills every worker now (SIGKILL) and releases everything; emits `exit` (once). */
  destroy(code: ExitCode = ExitCode.OK): void {
    this.#feed({ type: 'destroy', code });
  }

  /**
   * The master FIFO's `+` and `-` (uWSGI `uwsgi_cheaper_increase`/`decrease`): spawns one
   * cheaped worker, or cheaps one idle worker (never below `cheaper`).
   * @returns why nothing was done, or undefined when a worker was spawned or cheaped
   */
  adjustPool(delta: 1 | -1): string | undefined {
    return this.#feed({ type: 'adjust', delta }).answer;
  }

  /**
   * The master FIFO's `P` (uWSGI `uwsgi_update_pidfiles`): writes `pidfile` again.
   * @throws the write error (for example EACCES after the master dropped privileges)
   * @returns false when no pidfile is configured
   */
  writePidfile(): boolean {
    const pidfile = this.#pool.config.pidfile;
    if (pidfile === undefined) return false;
    writeFileSync(pidfile, `${process.pid}\n`);
    return true;
  }

  /**
   * Brings what a stats document shows up to date: the scoreboard now, once every serving
   * worker has written its slot on request (at most PUBLISH_WAIT_MS: every request
   * answered before the read is counted, no idle worker shows busy), memory and accept
   * queues when their reading is older than a second (a settled tick may be 10 s apart).
   * Resolves when done; never rejects.
   */
  async fresh(): Promise<void> {
    if (this.#workers === undefined || this.#pool.phase === 'dead') return;
    await this.#workers.publishNow(PUBLISH_WAIT_MS);
    this.#feed({ type: 'readings', readings: this.#workers.readings() });
    const pending: Promise<void>[] = [this.freshQueues()];
    if (this.#clock.now() - this.#memory.pssAt > QUEUE_FRESH_MS) pending.push(this.#sampleMemory(false, true));
    await Promise.all(pending.map((p) => p.catch(() => undefined)));
  }

  /** Makes sure the accept-queue reading is at most a second old (for a stats document). */
  freshQueues(): Promise<void> {
    return this.#queues.fresh(this.#sockets);
  }

  /**
   * The accept queue of each bound socket and its maximum, by socket name, from the last
   * background reading (0 for unix sockets and before the first one).
   */
  listenQueues(): Map<string, QueueReading> {
    return this.#queues.of(this.#sockets);
  }

  /** Asks every worker to reopen its `logto` file (SIGUSR2, `touch-logreopen`), once the master has reopened its own. */
  reopenLogs(): void {
    this.#workers?.broadcast({ v: 1, type: 'reopen-logs' });
  }

  /** Feeds one event through the pool, carries its commands out in order, re-arms the timer. */
  #feed(event: PoolEvent): StepResult {
    const result = step(this.#pool, event, this.#clock.now());
    this.#pool = result.pool;
    for (const command of result.commands) this.#run(command);
    this.#arm();
    this.#retain();
    this.#watchCheap();
    return result;
  }

  /** Watches the sockets while the pool is in cheap mode (and only then; see cheap-watch.ts). */
  #watchCheap(): void {
    const pool = this.#pool;
    if (!inCheapMode(pool) || pool.phase === 'stopping' || pool.phase === 'dead') {
      this.#watch.disarm();
      return;
    }
    if (this.#watchFailed || this.#watchSpentFor === pool.cheaper.idleSince || this.#watch.busy) return;
    this.#watch.arm(this.#sockets, pool.config.listen).then(() => {
      if (this.#watch.watching) this.#feed({ type: 'watching' });
    }, (err: unknown) => {
      this.#watchFailed = true;
      this.#logger.warn(`${(err as Error).message}; cheap mode wakes on the master's tick instead (up to 1 s later)`);
    });
  }

  /** Tells the runtimes which generations the pool still needs, when that changed (see `Runtime.retain`). */
  #retain(): void {
    const generations = generationsInUse(this.#pool);
    const key = [...generations].sort((a, b) => a - b).join(',');
    if (key === this.#retainedKey) return;
    this.#retainedKey = key;
    for (const runtime of Object.values(this.#options.runtimes)) runtime.retain?.(generations);
  }

  #run(c: PoolCommand): void {
    switch (c.type) {
      case 'spawn': {
        const answer = this.#workers?.spawn(c.key, c.id, c.generation, c.config, this.#runtime(c.config), this.#sockets) ?? { type: 'spawn-failed', key: c.key };
        if (answer instanceof Promise) void answer.then((event) => this.#feed(event));
        else this.#feed(answer);
        return;
      }
      case 'send':
        this.#workers?.send(c.key, c.message);
        return;
      case 'signal':
        this.#workers?.signal(c.key, c.signal);
        return;
      case 'stop':
        this.#workers?.stop(c.key);
        return;
      case 'harakiri':
        void this.#workers?.harakiri(c.key, c.msg, c.fields);
        return;
      case 'log':
        if (c.fields === undefined) this.#logger[c.level](c.msg);
        else this.#logger[c.level](c.fields, c.msg);
        return;
      case 'emit':
        this.#emit(c);
        return;
      case 'prepare-reload': {
        // Synchronous unless new sockets must be bound first.
        const answer = prepareReload({
          reread: c.reread,
          running: this.#pool.config,
          bound: this.#sockets,
          reloadConfig: this.#options.reloadConfig,
          prepareRuntime: (config) => {
            this.#runtime(config).prepare(config);
            this.#options.afterDrop?.(config);
          },
          bindSockets: this.#io.bindSockets,
          touched: this.#pool.touched,
          mtime: this.#io.mtime,
          adopt: (sockets) => this.#sockets.push(...sockets),
          logger: this.#logger,
        });
        if (answer instanceof Promise) void answer.then((event) => this.#feed(event));
        else this.#feed(answer);
        return;
      }
      case 'adopt-config':
        this.#adopt(c.config);
        return;
      case 'settle':
        this.#tickets.get(c.ticket)?.(c.ok);
        this.#tickets.delete(c.ticket);
        return;
      case 'release':
        this.#release();
        return;
      default: {
        const never: never = c;
        void never;
      }
    }
  }

  #emit(c: EmitCommand): void {
    switch (c.event) {
      case 'reloaded':
        this.emit('reloaded', c.ok);
        return;
      case 'touch-logreopen':
        this.emit('touch-logreopen', c.file);
        return;
      case 'exit':
        this.emit('exit', c.code);
        this.#onExited();
        return;
      default:
        this.emit(c.event);
    }
  }

  /** Arms the one timer at the pool's next deadline. */
  #arm(): void {
    const at = nextDeadline(this.#pool);
    if (at === this.#timerAt) return;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = at;
    if (at !== undefined) this.#timer = this.#clock.setTimeout(() => this.#wake(), Math.max(0, at - this.#clock.now()));
  }

  #wake(): void {
    this.#timer = undefined;
    this.#timerAt = undefined;
    const pool = this.#pool;
    if (pool === this.#settled && pool.nextTickAt !== undefined && this.#clock.now() >= pool.nextTickAt && this.#workers?.unchanged() === true) {
      // A settled master's tick: nothing to decode, check or sample (issue 23). No
      // #retain either: no process came or went since the full tick.
      const result = settledTick(pool, this.#clock.now());
      this.#pool = result.pool;
      this.#settled = result.pool;
      for (const command of result.commands) this.#run(command);
      this.#arm();
      return;
    }
    this.#settled = undefined;
    const readings = this.#workers?.readings() ?? new Map();
    if (pool.nextTickAt === undefined || this.#clock.now() < pool.nextTickAt) {
      this.#feed({ type: 'deadline', readings });
      return;
    }
    if (inCheapMode(pool)) {
      // Cheap mode: the queues are read before the tick, so a waiting connection wakes
      // the workers on this tick rather than the next (measured on a Node hello world: a
      // first answer in 1.0 s on average instead of 1.4 s).
      if (this.#cheapReading) return;
      this.#cheapReading = true;
      void this.#queues.sample(this.#sockets, { everyTick: true, busy: () => false, cheap: true }).then(() => {
        this.#cheapReading = false;
        const touched = new Map([...this.#pool.touched.keys()].map((f) => [f, this.#io.mtime(f)]));
        this.#feed({ type: 'tick', readings: this.#workers?.readings() ?? new Map(), mtimes: touched, backlog: this.#queues.backlog() });
      });
      return;
    }
    const mtimes = new Map([...pool.touched.keys()].map((f) => [f, this.#io.mtime(f)]));
    this.#feed({ type: 'tick', readings, mtimes, backlog: this.#queues.backlog() });
    if (isSettled(this.#pool)) this.#settled = this.#pool;
    const config = this.#pool.config;
    void this.#queues.sample(this.#sockets, { everyTick: queuesNeededEveryTick(config), busy: () => anyBusy(this.#pool), cheap: inCheapMode(this.#pool) });
    // Memory is read every tick only for a limit that needs it; stats read it on demand.
    if (memoryWatched(config)) void this.#sampleMemory(true);
  }

  /** Samples every live worker's memory (with `pss`, its PSS too); `check` runs the health checks on it. Never rejects. */
  async #sampleMemory(check: boolean, pss = false): Promise<void> {
    const samples = await this.#memory.sample(this.#pool, pss);
    if (samples !== undefined) this.#feed({ type: 'memory', samples, check });
  }

  /** A reload completed with `config`: its backlog, and the sockets it dropped close (workers still holding one close it as they exit). */
  #adopt(config: VassalConfig): void {
    this.#watch.disarm(); // re-armed on the new set of sockets if still in cheap mode
    this.#queues.maxBacklog = effectiveBacklog(config.listen);
    const keep = this.#sockets.filter((s) => config.sockets.some((spec) => spec.name === s.spec.name && spec.protocol === s.spec.protocol));
    for (const s of this.#sockets) if (!keep.includes(s)) s.close(config.vacuum);
    this.#sockets = keep;
  }

  #release(): void {
    const config = this.#pool.config;
    this.#watch.disarm();
    for (const s of this.#sockets) s.close(config.vacuum);
    this.#sockets = [];
    this.#workers?.close();
    removeStackDir();
    if (config.vacuum && config.pidfile !== undefined) {
      try {
        unlinkSync(config.pidfile);
      } catch {
        // gone, or not ours to remove after the privilege drop
      }
    }
  }
}
