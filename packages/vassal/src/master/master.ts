/**
 * The vassal master: the authority on one app. It binds the sockets, drops privileges,
 * preforks the workers, reads their scoreboard slots on every tick, replaces the ones
 * that die, reloads them without dropping a connection, and serves the stats.
 *
 * Lifecycle: `starting → ready → reloading → ready … → stopping → dead`.
 * Worker processes: `starting → ready → stopping → dead`.
 */
import { EventEmitter } from 'node:events';
import { readFileSync, writeFileSync, unlinkSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Writable } from 'node:stream';
import type { VassalConfig } from '@emperor/config';
import { ExitCode, parseWorkerToMaster, type MasterToWorker } from '@emperor/protocol';
import {
  type BackoffOptions,
  type BackoffState,
  type Child,
  type ExitInfo,
  type Logger,
  INITIAL_BACKOFF,
  describeExit,
  nextBackoff,
  sampleMemory,
  spawnChild,
} from '@emperor/process';
import { EMPTY_SLOT, Scoreboard, SlotStatus, type SlotData } from '../shared/scoreboard.js';
import { checkHealth, cpusForWorker, nextHarakiriDeadline, type HealthAction, type HealthProc } from './health.js';
import { cheaperCheck, initialCheaperState, type CheaperDecision, type CheaperState } from './cheaper.js';
import { captureStack, removeStackDir, stackFileFor, type StackRequest } from './stack-dump.js';
import { bindSockets, effectiveBacklog, readTcpListenQueues, type BoundSocket } from './sockets.js';
import { dropPrivileges, PrivilegeError, resolveCredentials, type Credentials } from './users.js';
import { requestLogSpec } from '../shared/request-log.js';
import { WORKER_SPEC_ENV, WORKER_SPEC_VERSION, fastcgiValues, type WorkerSpec } from '../shared/worker-spec.js';
import { findUnreadable, workerCode, type WorkerEntries } from './worker-code.js';

/** Master lifecycle states. */
export type MasterState = 'starting' | 'ready' | 'reloading' | 'stopping' | 'dead';

/** Worker process lifecycle states. */
export type WorkerProcState = 'starting' | 'ready' | 'stopping' | 'dead';

/** Master tick: scoreboard read, memory sample, checks (uWSGI `check-interval`, 1 s). */
export const TICK_MS = 1000;

/**
 * The tick of a master with nothing to check every second, ms: no harakiri, no memory or
 * lifetime limit, no cheaper or idle, no touch file, every worker ready and nothing
 * pending. It still reads the scoreboard and the accept queues (for the "listen queue
 * full" line), and a stats request refreshes what it shows first. A wake-up of an idle
 * Node process costs a few hundred µs of CPU (measured), which on a host of hundreds of
 * vassals adds up to a good part of a core for nothing.
 */
export const IDLE_TICK_MS = 5000;

/**
 * Respawn backoff of one worker slot: a worker that dies within 10 s of its spawn is
 * respawned after 0.5 s, then 1, 2, 4 … up to 30 s; the master never spins (contrast
 * uWSGI's "worker respawning too fast !!! i have to sleep a bit", which blocks the master).
 */
export const WORKER_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, healthyMs: 10_000, curseAfter: 10 };

/** A full listen queue is logged at most this often, ms (uWSGI logs it every cycle). */
export const LISTEN_FULL_LOG_MS = 10_000;

/**
 * How often the kernel's accept queues are read when no algorithm needs them every tick
 * (only for the "listen queue full" line), ms. /proc/net/tcp lists every socket of the
 * host; only its head, the listening sockets, is read (see readTcpListenQueues: 0.08 ms,
 * against 4-8 ms for the whole file on a quiet host and 14 ms with 24,000 TIME_WAIT
 * connections), but each reading is still a wake-up and kernel time, and 200 masters
 * reading the whole file every second cost most of a core (measured): so this is slow
 * unless `cheaper-algo` is `backlog` or `busyness` or `idle` is set. It is not read at
 * all while every worker is idle and accepting: an idle worker takes a connection at
 * once, so the queue cannot be full. A stats request refreshes a reading older than
 * {@link QUEUE_FRESH_MS} first.
 */
export const QUEUE_SAMPLE_IDLE_MS = 30_000;
/** A queue reading younger than this is fresh enough for a stats document, ms. */
export const QUEUE_FRESH_MS = 1000;

/** Scoreboard capacity: two processes per worker id (old and new during a reload). */
const SCOREBOARD_SLOTS = 2 * 1024 + 4;

/** One worker process. */
export interface WorkerProc {
  readonly id: number;
  readonly generation: number;
  readonly child: Child;
  readonly sbIndex: number;
  readonly config: VassalConfig;
  state: WorkerProcState;
  /** Epoch ms when it reported ready; 0 before. */
  readyAt: number;
  /** Why the master stopped it (`reload`, `max-requests`, `harakiri`, ...); '' when it was not asked to. */
  stopReason: string;
  /**
   * What to do if it exits while still the slot's current process: `backoff` (a crash,
   * the default), `now` (killed by harakiri or an evil limit: respawn at once), `none`.
   */
  respawn: 'backoff' | 'now' | 'none';
  /** The master is killing it (harakiri, evil limit): no other check applies. */
  killing: boolean;
  /**
   * It asked to be replaced (`max-requests`) and has stopped accepting. Kept on the
   * process, not acted on only when the message arrives: a fresh worker can reach its
   * limit before the master has made it the slot's current process.
   */
  recycleRequested: string;
  /** How often it writes its slot, ms. */
  readonly heartbeatIntervalMs: number;
  /** With harakiri-verbose: how to ask it for its stack. */
  readonly stack: StackRequest | undefined;
  /** Latest scoreboard reading. */
  data: SlotData;
  rss: number;
  vsz: number;
}

/** A worker id and its history across respawns. */
export interface WorkerSlot {
  readonly id: number;
  /** The process serving for this id (the old one during a replacement). */
  current: WorkerProc | undefined;
  /** The replacement being started, during a reload or recycle. */
  next: WorkerProc | undefined;
  /** Counters of this id's earlier processes. */
  requestsBefore: number;
  exceptionsBefore: number;
  txBefore: number;
  runningTimeBefore: number;
  /** Kills by the master plus requests ended by the worker's own harakiri, over the id's life. */
  harakiriBefore: number;
  respawnCount: number;
  /** Epoch ms of the last spawn. */
  lastSpawn: number;
  lastExitReason: string;
  backoff: BackoffState;
  respawnTimer: NodeJS.Timeout | undefined;
  /** Epoch ms before which no graceful recycle is attempted (after a replacement failed). */
  recycleNotBefore: number;
  /** Retired (or never started) by the cheaper subsystem; spawned again when the pool grows. */
  cheap: boolean;
}

/** Options for {@link Master}. */
export interface MasterOptions {
  readonly config: VassalConfig;
  readonly logger: Logger;
  /** Re-reads the vassal file for a reload. @throws on an invalid file (the reload is then abandoned). */
  readonly reloadConfig: () => VassalConfig;
  /** Absolute paths of the worker entry programs, per runtime. */
  readonly workerEntries: WorkerEntries;
  /** Python interpreter for python workers; resolved by the caller. */
  readonly pythonInterpreter?: (config: VassalConfig) => string;
  /** With `logto`: the log file's descriptor now, the workers' stdout and stderr (default: the master's own). */
  readonly logFd?: () => number | undefined;
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
  /** A `touch-logreopen` file was touched (or vanished): the log files should be reopened. */
  'touch-logreopen': [file: string];
  /** The master is done; the process should exit with this code. */
  exit: [code: number];
}

function summarize(config: VassalConfig): string {
  return config.sockets.map((s) => `${s.protocol}://${s.name}`).join(', ');
}

/**
 * The vassal master. Call {@link start}, then {@link reload}, {@link stop} or
 * {@link destroy}; listen for `exit` to know when to end the process.
 */
export class Master extends EventEmitter<MasterEvents> {
  readonly #logger: Logger;
  readonly #options: MasterOptions;
  #config: VassalConfig;
  #state: MasterState = 'starting';
  #sockets: BoundSocket[] = [];
  #scoreboard: Scoreboard | undefined;
  #credentials: Credentials = { uid: undefined, gid: undefined, user: undefined };
  readonly #slots = new Map<number, WorkerSlot>();
  readonly #retiring = new Set<WorkerProc>();
  #generation = 1;
  #tick: NodeJS.Timeout | undefined;
  /** When the last heartbeat went to the emperor, epoch ms. */
  #lastBeat = 0;
  /** One-shot timer at the next harakiri deadline, between ticks. */
  #deadline: NodeJS.Timeout | undefined;
  /** Last seen mtime (ms) of each `touch-reload` / `touch-chain-reload` file; -1 when missing. */
  readonly #touched = new Map<string, number>();
  #cheaper: CheaperState;
  /** Latest accept-queue reading per socket name, and when the next one is due. */
  #queues = new Map<string, { queue: number; max: number }>();
  #nextQueueRead = 0;
  #readingQueues: Promise<void> | undefined;
  #queuesReadAt = 0;
  /** The backlog the kernel uses (listen capped by somaxconn), computed when the config is set. */
  #maxBacklog = 0;
  #lastFullLog = 0;
  #fullSince = 0;
  #sampling = false;
  /** When memory was last sampled, epoch ms. */
  #memoryAt = 0;
  #announced = { ready: false, accepting: false, loyal: false };
  #reloadQueued: { kind: 'graceful' | 'chain'; reread: boolean } | undefined;
  #stopping: Promise<void> | undefined;
  readonly startedAt = Date.now();

  constructor(options: MasterOptions) {
    super();
    this.#options = options;
    this.#config = options.config;
    this.#logger = options.logger;
    this.#cheaper = initialCheaperState(options.config, Date.now());
  }

  get state(): MasterState {
    return this.#state;
  }

  get config(): VassalConfig {
    return this.#config;
  }

  /** Worker ids in order. */
  get slots(): readonly WorkerSlot[] {
    return [...this.#slots.values()].sort((a, b) => a.id - b.id);
  }

  get sockets(): readonly BoundSocket[] {
    return this.#sockets;
  }

  /**
   * Binds the sockets, writes the pidfile, drops privileges, creates the scoreboard and
   * spawns the first generation.
   * @throws SocketBindError, PrivilegeError (the caller logs them and exits with ExitCode.UNAVAILABLE)
   */
  async start(): Promise<void> {
    const config = this.#config;
    this.#credentials = resolveCredentials(config.uid, config.gid);
    const chown = config.chownSocket;
    const owner = chown === undefined ? undefined : resolveCredentials(chown.user, chown.group);
    this.#sockets = await bindSockets(config.sockets, { mode: config.chmodSocket, uid: owner?.uid, gid: owner?.gid });
    try {
      this.writePidfile();
      // pino loads with the first log line: make that happen while Emperor's own files are
      // surely readable, then check the vassal's user can read the worker code it execs.
      void this.#logger.level;
      dropPrivileges(this.#credentials);
      this.#checkCodeReadable();
      this.#scoreboard = Scoreboard.create(SCOREBOARD_SLOTS);
    } catch (err) {
      for (const s of this.#sockets) s.close(true);
      throw err;
    }
    this.#logger.info(
      { sockets: config.sockets.map((s) => s.name), processes: config.processes, uid: process.getuid?.(), gid: process.getgid?.() },
      `vassal master started: ${config.processes} worker(s) on ${summarize(config)}`,
    );
    this.#warnSomaxconn(config.listen);
    this.#maxBacklog = effectiveBacklog(config.listen);
    // With cheaper, only `cheaper-initial` workers start; the other ids wait, cheap.
    const initial = config.cheaper > 0 ? config.cheaperInitial : config.processes;
    for (let id = 1; id <= config.processes; id++) {
      const slot = this.#newSlot(id);
      if (id <= initial) slot.current = this.#spawn(slot, config, this.#generation);
      else slot.cheap = true;
    }
    if (config.cheaper > 0) {
      this.#logger.info(`cheaper: ${config.cheaperAlgo}, ${config.cheaper} to ${config.processes} workers, starting with ${initial}`);
    }
    for (const file of [...config.touchReload, ...config.touchChainReload, ...config.touchLogreopen]) this.#touched.set(file, mtimeOf(file));
    this.#lastBeat = Date.now();
    this.#armTick(TICK_MS);
  }

  #newSlot(id: number): WorkerSlot {
    const slot: WorkerSlot = {
      id, current: undefined, next: undefined, requestsBefore: 0, exceptionsBefore: 0, txBefore: 0, runningTimeBefore: 0,
      harakiriBefore: 0, respawnCount: 0, lastSpawn: 0, lastExitReason: '', backoff: INITIAL_BACKOFF, respawnTimer: undefined,
      recycleNotBefore: 0, cheap: false,
    };
    this.#slots.set(id, slot);
    return slot;
  }

  /** Every live worker process: current, replacements, and retiring ones. */
  *processes(): Generator<WorkerProc> {
    for (const slot of this.#slots.values()) {
      if (slot.current) yield slot.current;
      if (slot.next) yield slot.next;
    }
    yield* this.#retiring;
  }

  #spawn(slot: WorkerSlot, config: VassalConfig, generation: number): WorkerProc | undefined {
    const scoreboard = this.#scoreboard;
    if (scoreboard === undefined) return undefined;
    const sbIndex = scoreboard.allocate();
    if (sbIndex === undefined) {
      this.#logger.error({ worker: slot.id }, `cannot spawn worker ${slot.id}: scoreboard full`);
      return undefined;
    }
    const sockets = this.#socketsFor(config);
    let stackFile: string | undefined;
    if (config.harakiriVerbose) {
      try {
        stackFile = stackFileFor(process.pid, sbIndex);
      } catch (err) {
        this.#logger.warn({ worker: slot.id }, `harakiri-verbose: cannot make a private directory for stack files (${(err as Error).message}); harakiri lines will carry no stack`);
      }
    }
    const spec: WorkerSpec = {
      v: WORKER_SPEC_VERSION,
      vassal: config.name,
      id: slot.id,
      generation,
      scoreboard: { fd: 3 + sockets.length, index: sbIndex },
      sockets: sockets.map((s, i) => ({ fd: 3 + i, name: s.spec.name, protocol: s.spec.protocol })),
      backlog: config.listen,
      bufferSize: config.bufferSize,
      threads: config.threads,
      socketTimeoutMs: config.socketTimeoutMs,
      harakiriMs: config.harakiriMs,
      harakiriVerbose: config.harakiriVerbose,
      heartbeatIntervalMs: config.harakiriMs > 0 ? Math.min(250, Math.max(50, config.harakiriMs / 8)) : 1000,
      maxRequests: config.maxRequests > 0 ? config.maxRequests + (slot.id - 1) * config.maxRequestsDelta : 0,
      minWorkerLifetimeMs: config.minWorkerLifetimeMs,
      stackFile,
      stackPipeFd: stackFile !== undefined && config.runtime === 'node' ? 3 + sockets.length + 1 : undefined,
      requestLog: requestLogSpec(config),
      logto: config.logto,
      app:
        config.runtime === 'node'
          ? { runtime: 'node', module: config.module ?? '' }
          : { runtime: 'python', module: config.module, wsgiFile: config.wsgiFile, callable: config.callable, pythonpath: config.pythonpath, home: config.home },
      mount: { mountpoint: config.mountpoint, manageScriptName: config.manageScriptName },
      fastcgi: fastcgiValues(config),
    };
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [k, v] of config.env) env[k] = v;
    env[WORKER_SPEC_ENV] = JSON.stringify(spec);
    env.LISTEN_FDS = String(sockets.length);
    env.LISTEN_FDNAMES = sockets.map((s) => s.spec.name.replaceAll(':', '_')).join(':');
    // A Node worker with harakiri-verbose gets a pipe on which the master asks its
    // watchdog thread for the main thread's stack (signals cannot reach that thread).
    const stackPipe = spec.stackPipeFd !== undefined;
    const cpus = this.#cpusFor(slot.id, config);
    const log = this.#options.logFd?.() ?? 'inherit';
    let child: Child;
    try {
      // Python: -u, so what the app prints reaches the log at once, as under uWSGI. The
      // vassal and worker id follow on the command line, unread, so `ps` tells a Python
      // worker's app (a Node worker sets its title instead; the app sees neither).
      const [command, args] =
        config.runtime === 'node'
          ? [process.execPath, [this.#options.workerEntries.node]]
          : [this.#options.pythonInterpreter?.(config) ?? 'python3', ['-u', this.#options.workerEntries.python, `vassal=${config.name}`, `worker=${slot.id}`]];
      child = spawnChild(
        command,
        args,
        {
          cwd: config.chdir ?? config.baseDir,
          env,
          // Own process group: a terminal's Ctrl-C reaches the master, which stops workers in order.
          detached: true,
          stdio: ['ignore', log, log, ...sockets.map((s) => s.fd), scoreboard.fd, ...(stackPipe ? ['pipe' as const] : []), 'ipc'],
          serialization: 'json',
        },
        { pdeathsig: true, limitAsBytes: config.limitAsBytes, cpus },
      );
    } catch (err) {
      scoreboard.release(sbIndex);
      this.#logger.error({ worker: slot.id, err }, `cannot spawn worker ${slot.id}: ${(err as Error).message}`);
      return undefined;
    }
    const pipe = spec.stackPipeFd === undefined ? undefined : ((child.process.stdio[spec.stackPipeFd] as Writable | null) ?? undefined);
    // The master's end of the pipe sees ECONNRESET when the worker dies: never let that throw.
    pipe?.on('error', () => {});
    const proc: WorkerProc = {
      id: slot.id, generation, child, sbIndex, config, state: 'starting', readyAt: 0, stopReason: '', respawn: 'backoff', killing: false, recycleRequested: '',
      heartbeatIntervalMs: spec.heartbeatIntervalMs,
      stack: spec.stackFile === undefined ? undefined
        : { runtime: config.runtime, file: spec.stackFile, pipe },
      data: EMPTY_SLOT, rss: 0, vsz: 0,
    };
    slot.respawnCount += 1;
    slot.lastSpawn = Date.now();
    child.on('message', (raw) => this.#onWorkerMessage(proc, raw));
    child.once('exit', (exit) => this.#onWorkerExit(slot, proc, exit));
    this.#logger.info(
      { worker: slot.id, worker_pid: child.pid, generation, ...(cpus ? { cpus } : {}) },
      `spawned worker ${slot.id} (pid ${child.pid})${cpus ? `, pinned to CPUs ${cpus.join(' ')}` : ''}`,
    );
    const readyTimeoutMs = config.workerReadyTimeoutMs;
    const timer = setTimeout(() => {
      if (proc.state === 'starting') {
        this.#logger.error({ worker: slot.id, worker_pid: child.pid }, `worker ${slot.id} (pid ${child.pid}) not ready after ${readyTimeoutMs / 1000} s (worker-ready-timeout); killing it`);
        proc.stopReason = 'not-ready';
        child.kill('SIGKILL');
      }
    }, readyTimeoutMs);
    timer.unref();
    child.once('exit', () => clearTimeout(timer));
    return proc;
  }

  /** The bound sockets a config uses, in its order. */
  #socketsFor(config: VassalConfig): BoundSocket[] {
    return config.sockets.map((spec) => {
      const found = this.#sockets.find((s) => s.spec.name === spec.name && s.spec.protocol === spec.protocol);
      if (found === undefined) throw new Error(`socket ${spec.name} is not bound`);
      return found;
    });
  }

  /**
   * CPUs for worker `id` under `cpu-affinity` (see {@link cpusForWorker}).
   */
  #cpusFor(id: number, config: VassalConfig): number[] | undefined {
    if (config.cpuAffinity <= 0) return undefined;
    return cpusForWorker(id, config.cpuAffinity, availableParallelism());
  }

  #onWorkerMessage(proc: WorkerProc, raw: unknown): void {
    let message;
    try {
      message = parseWorkerToMaster(raw);
    } catch (err) {
      this.#logger.warn({ worker: proc.id, worker_pid: proc.child.pid }, (err as Error).message);
      return;
    }
    switch (message.type) {
      case 'ready':
        if (proc.state !== 'starting') return;
        proc.state = 'ready';
        proc.readyAt = Date.now();
        this.#logger.info({ worker: proc.id, worker_pid: proc.child.pid }, `worker ${proc.id} (pid ${proc.child.pid}) accepting`);
        this.#announce();
        return;
      case 'recycle':
        proc.recycleRequested = message.reason;
        this.#honourRecycleRequest(proc);
        return;
      default: {
        const never: never = message;
        void never;
      }
    }
  }

  /** Starts the replacement a worker asked for, once it is its slot's current process and none is on its way. */
  #honourRecycleRequest(proc: WorkerProc): void {
    const slot = this.#slots.get(proc.id);
    if (proc.recycleRequested === '' || slot === undefined || slot.current !== proc || slot.next !== undefined) return;
    if (this.#state === 'stopping' || this.#state === 'dead' || proc.state !== 'ready') return;
    this.#logger.info(
      { worker: proc.id, worker_pid: proc.child.pid, reason: proc.recycleRequested, requests: proc.data.requests },
      `worker ${proc.id} (pid ${proc.child.pid}) reached ${proc.recycleRequested}; replacing it`,
    );
    void this.#recycle(slot, proc, proc.recycleRequested, true);
  }

  #announce(): void {
    const procs = [...this.#slots.values()].filter((s) => !s.cheap).map((s) => s.current);
    if (!this.#announced.accepting && procs.some((p) => p?.state === 'ready')) {
      this.#announced.accepting = true;
      this.emit('accepting');
    }
    if (!this.#announced.ready && procs.length > 0 && procs.every((p) => p?.state === 'ready')) {
      this.#announced.ready = true;
      if (this.#state === 'starting') this.#state = 'ready';
      this.#logger.info(`vassal ready: ${procs.length} worker(s) accepting on ${summarize(this.#config)}`);
      this.emit('ready');
    }
  }

  #onWorkerExit(slot: WorkerSlot, proc: WorkerProc, exit: ExitInfo): void {
    proc.state = 'dead';
    // Final counters: the last reading of the slot, then the slot goes back to the pool.
    const last = this.#scoreboard?.read(proc.sbIndex);
    if (last !== undefined && last.pid === proc.child.pid) proc.data = last;
    this.#scoreboard?.release(proc.sbIndex);
    if (proc.stack !== undefined) {
      try {
        unlinkSync(proc.stack.file);
      } catch {
        // never written
      }
    }
    slot.requestsBefore += proc.data.requests;
    slot.exceptionsBefore += proc.data.exceptions;
    slot.txBefore += proc.data.txBytes;
    slot.runningTimeBefore += proc.data.runningTimeUs;
    slot.harakiriBefore += proc.data.harakiriCount;
    this.#retiring.delete(proc);
    const uptimeMs = Date.now() - proc.child.spawnedAt;
    // A spawn that failed is most often a working directory (`chdir`, else the vassal
    // file's directory) or program the vassal's uid may not enter or run: name it.
    const how = exit.spawnError === undefined ? describeExit(exit)
      : `${describeExit(exit)} (working directory ${proc.config.chdir ?? proc.config.baseDir}, uid ${process.getuid?.() ?? '?'})`;
    const fields = { worker: proc.id, worker_pid: proc.child.pid, exit_code: exit.code, signal: exit.signal, uptime_ms: uptimeMs };
    if (slot.next === proc) slot.next = undefined;
    const wasCurrent = slot.current === proc;
    if (wasCurrent) slot.current = undefined;
    const asked = proc.stopReason !== '' && proc.stopReason !== 'not-ready';
    slot.lastExitReason = asked ? proc.stopReason : proc.stopReason === 'not-ready' ? 'not-ready' : exit.code === ExitCode.APP_LOAD ? 'app-load' : 'crash';
    if (asked) this.#logger.info(fields, `worker ${proc.id} (pid ${proc.child.pid}) stopped (${proc.stopReason}): ${how}`);
    if (this.#state === 'stopping' || this.#state === 'dead') return;
    if (!wasCurrent) {
      // A retired process, or a replacement that failed (its reload or recycle handles it).
      if (!asked) this.#logger.error(fields, `worker ${proc.id} (pid ${proc.child.pid}) died before it took over: ${how}`);
      return;
    }
    if (proc.respawn === 'none') return;
    if (proc.respawn === 'now') {
      this.#scheduleRespawn(slot, 0);
      return;
    }
    slot.backoff = nextBackoff(slot.backoff, uptimeMs, Date.now(), WORKER_BACKOFF);
    const delay = slot.backoff.delayMs;
    const streak = slot.backoff.failures > 1 ? ` (${slot.backoff.failures} times in a row)` : '';
    this.#logger.error(
      { ...fields, respawn_in_ms: delay },
      `worker ${proc.id} (pid ${proc.child.pid}) died: ${how} after ${(uptimeMs / 1000).toFixed(1)} s${streak}; ` +
        (delay === 0 ? 'respawning' : `respawning in ${(delay / 1000).toFixed(1)} s`),
    );
    this.#scheduleRespawn(slot, delay);
  }

  #scheduleRespawn(slot: WorkerSlot, delayMs: number): void {
    if (slot.respawnTimer !== undefined) return;
    const respawn = (): void => {
      slot.respawnTimer = undefined;
      if (this.#state === 'stopping' || this.#state === 'dead' || slot.current !== undefined || slot.cheap) return;
      if (this.#slots.get(slot.id) !== slot) return; // the id was removed by a reload
      slot.current = this.#spawn(slot, this.#config, this.#generation);
      if (slot.current === undefined) this.#scheduleRespawn(slot, WORKER_BACKOFF.maxMs);
    };
    if (delayMs <= 0) respawn();
    else slot.respawnTimer = setTimeout(respawn, delayMs);
  }

  /** Resolves true when `proc` reports ready, false when it dies first. */
  #whenReady(proc: WorkerProc): Promise<boolean> {
    if (proc.state === 'ready') return Promise.resolve(true);
    if (proc.state === 'dead') return Promise.resolve(false);
    return new Promise((resolve) => {
      const onMessage = (): void => {
        if (proc.state === 'ready') done(true);
      };
      const onExit = (): void => done(false);
      const done = (ok: boolean): void => {
        proc.child.off('message', onMessage);
        proc.child.off('exit', onExit);
        // The message handler above runs after the master's own handler, so state is set.
        resolve(ok);
      };
      proc.child.on('message', onMessage);
      proc.child.once('exit', onExit);
    });
  }

  /**
   * Stops one worker process gracefully: it stops accepting, finishes its requests,
   * exits; SIGKILL after `worker-reload-mercy`.
   */
  #retire(proc: WorkerProc, reason: string, respawn: WorkerProc['respawn'] = 'none'): Promise<unknown> {
    if (proc.state === 'dead') return Promise.resolve();
    if (proc.stopReason === '') proc.stopReason = reason;
    proc.respawn = respawn;
    proc.state = 'stopping';
    this.#retiring.add(proc);
    const stop: MasterToWorker = { v: 1, type: 'stop' };
    // `reload-mercy`, when set, bounds a reload's retirements as it bounds a stop.
    const bound = proc.config.reloadMercyMs > 0 ? Math.min(proc.config.reloadMercyMs, proc.config.workerReloadMercyMs) : proc.config.workerReloadMercyMs;
    return proc.child.stop({ message: stop, signal: 'SIGTERM', mercyMs: bound });
  }

  /**
   * Starts a replacement for `slot` and, once it is ready, retires the current process.
   * Resolves false (leaving the current process serving) if the replacement dies first.
   */
  async #replace(slot: WorkerSlot, config: VassalConfig, generation: number, reason: string): Promise<boolean> {
    const fresh = this.#spawn(slot, config, generation);
    if (fresh === undefined) return false;
    slot.next = fresh;
    const ok = await this.#whenReady(fresh);
    if (!ok || slot.next !== fresh) return false;
    slot.next = undefined;
    const old = slot.current;
    slot.current = fresh;
    slot.lastExitReason = reason; // stats show why the previous process is going, from the switch on
    if (old !== undefined) void this.#retire(old, reason);
    this.#honourRecycleRequest(fresh);
    return true;
  }

  /**
   * Reloads every worker with the vassal file re-read. `graceful` starts a whole new
   * generation, and only when every new worker is ready retires the old ones (or, if one
   * fails, kills the new ones and keeps the old: a broken deploy does not take the app
   * down). `chain` replaces one worker at a time and stops at the first failure (uWSGI
   * `touch-chain-reload`, with the replacement started before the old worker stops).
   * A reload asked for during a reload runs after it (one reload, graceful and re-reading
   * the file if any of those asked for that).
   * @param reread false keeps the running config: the master FIFO's `w`, which reloads
   *   the workers only (uWSGI `uwsgi_reload_workers`, core/fifo.c)
   */
  async reload(kind: 'graceful' | 'chain' = 'graceful', reread = true): Promise<boolean> {
    if (this.#state === 'stopping' || this.#state === 'dead') return false;
    if (this.#state === 'reloading' || this.#state === 'starting') {
      const queued = this.#reloadQueued;
      this.#reloadQueued = { kind: queued?.kind === 'graceful' ? 'graceful' : kind, reread: reread || queued?.reread === true };
      if (this.#state === 'starting' && !this.#announced.ready) {
        // Not up yet: a reload now would race the first spawn. Run it once ready.
        this.once('ready', () => void this.#runQueuedReload());
      }
      return true;
    }
    this.#state = 'reloading';
    this.#armTick(TICK_MS); // a reload (and the config it may bring) is watched every second
    let ok = false;
    try {
      ok = await this.#doReload(kind, reread);
    } finally {
      if (this.#state === 'reloading') this.#state = 'ready';
    }
    this.emit('reloaded', ok);
    await this.#runQueuedReload();
    return ok;
  }

  async #runQueuedReload(): Promise<void> {
    const queued = this.#reloadQueued;
    if (queued === undefined || this.#state !== 'ready') return;
    this.#reloadQueued = undefined;
    await this.reload(queued.kind, queued.reread);
  }

  async #doReload(kind: 'graceful' | 'chain', reread: boolean): Promise<boolean> {
    let config: VassalConfig;
    try {
      config = reread ? this.#options.reloadConfig() : this.#config;
    } catch (err) {
      this.#logger.error({ err_code: (err as { code?: string }).code }, `reload abandoned: ${(err as Error).message}; the running workers keep serving`);
      return false;
    }
    const old = this.#config;
    if (String(config.uid) !== String(old.uid) || String(config.gid) !== String(old.gid)) {
      this.#logger.error(`reload abandoned: uid/gid changed (${old.uid ?? '-'}:${old.gid ?? '-'} → ${config.uid ?? '-'}:${config.gid ?? '-'}); that needs a restart of the vassal`);
      return false;
    }
    // Bind sockets the new config adds; keep the ones it shares with the old.
    const missing = config.sockets.filter((spec) => !this.#sockets.some((s) => s.spec.name === spec.name && s.spec.protocol === spec.protocol));
    if (missing.length > 0) {
      try {
        const owner = config.chownSocket === undefined ? undefined : resolveCredentials(config.chownSocket.user, config.chownSocket.group);
        this.#sockets.push(...(await bindSockets(missing, { mode: config.chmodSocket, uid: owner?.uid, gid: owner?.gid })));
      } catch (err) {
        this.#logger.error(`reload abandoned: ${(err as Error).message}; the running workers keep serving`);
        return false;
      }
    }
    for (const file of [...config.touchReload, ...config.touchChainReload, ...config.touchLogreopen]) if (!this.#touched.has(file)) this.#touched.set(file, mtimeOf(file));
    const generation = ++this.#generation;
    this.#logger.info({ generation }, `${kind === 'chain' ? 'chain' : 'graceful'} reload: starting generation ${generation} (${config.processes} worker(s)${reread ? '' : ', the running config: the file is not re-read'})`);
    // The ids that run now are replaced (cheap ones stay cheap); without cheaper, all of them.
    const ids = Array.from({ length: config.processes }, (_, i) => i + 1).filter((id) => {
      const slot = this.#slots.get(id);
      return config.cheaper <= 0 || slot === undefined ? id <= (config.cheaper > 0 ? config.cheaperInitial : config.processes) : !slot.cheap;
    });
    for (let id = 1; id <= config.processes; id++) {
      if (!this.#slots.has(id)) this.#newSlot(id).cheap = !ids.includes(id);
      else if (config.cheaper <= 0) (this.#slots.get(id) as WorkerSlot).cheap = false;
    }
    const slots = ids.map((id) => this.#slots.get(id) as WorkerSlot);
    let ok: boolean;
    if (kind === 'chain') {
      ok = true;
      for (const slot of slots) {
        if (!(await this.#replace(slot, config, generation, 'chain-reload'))) {
          this.#logger.error({ worker: slot.id }, `chain reload stopped at worker ${slot.id}: its replacement never became ready; the remaining workers keep serving`);
          ok = false;
          break;
        }
      }
    } else {
      const fresh = slots.map((slot) => {
        const p = this.#spawn(slot, config, generation);
        slot.next = p;
        return p;
      });
      const results = await Promise.all(fresh.map((p) => (p === undefined ? Promise.resolve(false) : this.#whenReady(p))));
      ok = results.every(Boolean) && this.#state === 'reloading';
      if (ok) {
        for (const slot of slots) {
          const prev = slot.current;
          slot.current = slot.next;
          slot.next = undefined;
          if (prev !== undefined) void this.#retire(prev, 'reload');
        }
        for (const slot of slots) if (slot.current !== undefined) this.#honourRecycleRequest(slot.current);
      } else {
        for (const slot of slots) {
          const p = slot.next;
          slot.next = undefined;
          if (p !== undefined) {
            p.stopReason = 'reload-abandoned';
            p.child.kill('SIGKILL');
          }
        }
        this.#logger.error(`reload abandoned: a new worker died or timed out before it was ready; generation ${generation - 1} keeps serving`);
        // Ids the reload meant to start (the pool grew) have no process of the old generation: start one.
        for (const slot of slots) if (slot.current === undefined && !slot.cheap) this.#scheduleRespawn(slot, 0);
      }
    }
    if (!ok) return false;
    this.#config = config;
    this.#maxBacklog = effectiveBacklog(config.listen);
    this.#cheaper = { ...initialCheaperState(config, Date.now()), idleSince: 0 };
    // Worker ids the new config no longer has.
    for (const slot of [...this.#slots.values()]) {
      if (slot.id > config.processes) {
        if (slot.respawnTimer !== undefined) clearTimeout(slot.respawnTimer);
        if (slot.current) void this.#retire(slot.current, 'reload');
        this.#slots.delete(slot.id);
      }
    }
    // Sockets the new config dropped: the master's copy closes now; workers still holding one close it as they exit.
    const keep = this.#sockets.filter((s) => config.sockets.some((spec) => spec.name === s.spec.name && spec.protocol === s.spec.protocol));
    for (const s of this.#sockets) if (!keep.includes(s)) s.close(this.#config.vacuum);
    this.#sockets = keep;
    this.#logger.info({ generation }, `reload complete: generation ${generation} serving`);
    return true;
  }

  /**
   * Stops every worker gracefully (each within `worker-reload-mercy`, the whole stop
   * within `reload-mercy` when set), closes the sockets, removes the pidfile and unix
   * sockets when `vacuum` is set, then emits `exit` with code 0. Idempotent.
   * @param mercyMs overrides the per-worker mercy (the emperor's death uses a short one).
   */
  stop(reason = 'stop', mercyMs?: number): Promise<void> {
    if (this.#stopping !== undefined) {
      if (mercyMs !== undefined) for (const p of this.processes()) p.child.hurry(mercyMs);
      return this.#stopping;
    }
    this.#state = 'stopping';
    this.#logger.info({ reason }, `stopping vassal (${reason})`);
    this.#stopping = (async () => {
      this.#clearTimers();
      const procs = [...this.processes()];
      const bound = this.#config.reloadMercyMs > 0 ? setTimeout(() => procs.forEach((p) => p.child.kill('SIGKILL')), this.#config.reloadMercyMs) : undefined;
      await Promise.all(
        procs.map((p) => {
          const done = this.#retire(p, reason);
          if (mercyMs !== undefined) p.child.hurry(mercyMs);
          return done;
        }),
      );
      if (bound !== undefined) clearTimeout(bound);
      this.#release();
      this.#logger.info('vassal stopped');
      this.emit('exit', ExitCode.OK);
    })();
    return this.#stopping;
  }

  /** Kills every worker now (SIGKILL) and releases everything; emits `exit`. */
  destroy(code: number = ExitCode.OK): void {
    this.#state = 'stopping';
    this.#clearTimers();
    for (const p of this.processes()) {
      p.stopReason ||= 'destroy';
      p.child.kill('SIGKILL');
    }
    this.#release();
    this.emit('exit', code);
  }

  #clearTimers(): void {
    if (this.#tick !== undefined) clearTimeout(this.#tick);
    this.#tick = undefined;
    if (this.#deadline !== undefined) clearTimeout(this.#deadline);
    for (const slot of this.#slots.values()) if (slot.respawnTimer !== undefined) clearTimeout(slot.respawnTimer);
  }

  #release(): void {
    if (this.#state === 'dead') return;
    this.#state = 'dead';
    for (const s of this.#sockets) s.close(this.#config.vacuum);
    this.#sockets = [];
    this.#scoreboard?.close();
    removeStackDir();
    if (this.#config.vacuum && this.#config.pidfile !== undefined) {
      try {
        unlinkSync(this.#config.pidfile);
      } catch {
        // gone, or not ours to remove after the privilege drop
      }
    }
  }

  /**
   * After the privilege drop: the worker code of this vassal's runtime must be readable
   * by the vassal's user, or every worker would die with a confusing "Cannot find
   * module". Emperor installed in a home directory (mode 0700 on Debian 12 and later)
   * is the usual cause.
   * @throws PrivilegeError naming the file, the uid and the fix
   */
  #checkCodeReadable(): void {
    const unreadable = findUnreadable(workerCode(this.#config.runtime, this.#options.workerEntries));
    if (unreadable !== undefined) {
      throw new PrivilegeError(
        `uid ${process.getuid?.()} cannot read Emperor's worker code ${unreadable.path} (${unreadable.code}); ` +
          'install Emperor where every vassal user can read it (for example /opt/emperor, not a home directory of mode 0700)',
        { cause: unreadable.error },
      );
    }
  }

  /** (Re)schedules the next tick in `ms`. */
  #armTick(ms: number): void {
    if (this.#tick !== undefined) clearTimeout(this.#tick);
    this.#tick = setTimeout(() => {
      this.#tick = undefined;
      this.#onTick();
      if (this.#state !== 'stopping' && this.#state !== 'dead') {
        this.#armTick(this.#needsEverySecond() ? TICK_MS : Math.min(IDLE_TICK_MS, this.#config.heartbeatMs));
      }
    }, ms);
  }

  /** True when something in the pool must be checked every {@link TICK_MS} (see {@link IDLE_TICK_MS}). */
  #needsEverySecond(): boolean {
    const c = this.#config;
    if (this.#state !== 'ready' || !this.#announced.loyal) return true;
    if (c.harakiriMs > 0 || c.cheaper > 0 || c.idleMs > 0 || c.maxWorkerLifetimeMs > 0) return true;
    if (this.#memoryWatched()) return true;
    if (this.#touched.size > 0 || this.#retiring.size > 0) return true;
    for (const slot of this.#slots.values()) {
      if (slot.next !== undefined || slot.respawnTimer !== undefined) return true;
      if (!slot.cheap && (slot.current === undefined || slot.current.state !== 'ready' || slot.current.recycleRequested !== '')) return true;
    }
    return false;
  }

  /** True when a limit or an algorithm needs every worker's memory on every tick. */
  #memoryWatched(): boolean {
    const c = this.#config;
    return c.reloadOnRssBytes > 0 || c.reloadOnAsBytes > 0 || c.evilReloadOnRssBytes > 0 || c.evilReloadOnAsBytes > 0 ||
      c.cheaperRssLimitSoftBytes > 0 || c.cheaperRssLimitHardBytes > 0;
  }

  /**
   * Brings what a stats document shows up to date: the scoreboard now, memory and accept
   * queues when their reading is older than a second (the tick may be
   * {@link IDLE_TICK_MS} apart). Resolves when done; never rejects.
   */
  async fresh(): Promise<void> {
    if (this.#scoreboard === undefined || this.#state === 'dead') return;
    this.#readScoreboard();
    const pending: Promise<void>[] = [this.freshQueues()];
    if (Date.now() - this.#memoryAt > QUEUE_FRESH_MS) pending.push(this.#sampleMemory());
    await Promise.all(pending.map((p) => p.catch(() => undefined)));
  }

  #onTick(): void {
    if (this.#scoreboard === undefined || this.#state === 'dead') return;
    const served = this.#readScoreboard();
    if (!this.#announced.loyal && (served || [...this.#slots.values()].some((s) => s.requestsBefore > 0))) {
      this.#announced.loyal = true;
      this.emit('loyal');
    }
    this.#checkTouches();
    for (const slot of this.#slots.values()) if (slot.current !== undefined) this.#honourRecycleRequest(slot.current);
    this.#checkHealth();
    void this.#sampleQueues();
    this.#checkCheaper();
    // Memory is read every tick only for a limit that needs it; stats read it on demand.
    if (this.#memoryWatched()) void this.#sampleMemory().then(() => this.#checkHealth());
    // The heartbeat to the emperor rides the tick (uWSGI sends it from its master cycle too).
    const now = Date.now();
    if (now - this.#lastBeat >= this.#config.heartbeatMs - TICK_MS / 2) {
      this.#lastBeat = now;
      this.emit('heartbeat');
    }
  }

  /** True when some worker has a request in flight (or a worker is not accepting). */
  #anyBusy(): boolean {
    for (const p of this.processes()) if (p.data.inFlight > 0 || p.data.status === SlotStatus.BUSY || (p.state === 'ready' && !p.data.accepting)) return true;
    return false;
  }

  /** True when an algorithm needs the accept queues on every tick. */
  #queuesNeededEveryTick(): boolean {
    const c = this.#config;
    return (c.cheaper > 0 && (c.cheaperAlgo === 'backlog' || c.cheaperAlgo === 'busyness')) || c.idleMs > 0;
  }

  /**
   * Reads the accept queues (TCP sockets, /proc/net/tcp*) in the background: every tick
   * when an algorithm needs them, otherwise every {@link QUEUE_SAMPLE_IDLE_MS}. A slow
   * read (a host with very many sockets) pushes the next one back, so reading never
   * takes more than ~2% of the time. Resolves when the reading is in.
   */
  #sampleQueues(force = false): Promise<void> {
    const now = Date.now();
    if (this.#readingQueues !== undefined) return this.#readingQueues;
    if (!this.#sockets.some((s) => s.tcp)) return Promise.resolve();
    if (!force && (now < this.#nextQueueRead || (!this.#queuesNeededEveryTick() && (now - this.#queuesReadAt < QUEUE_SAMPLE_IDLE_MS || !this.#anyBusy())))) {
      return Promise.resolve();
    }
    const t0 = performance.now();
    const sockets = this.#sockets;
    this.#readingQueues = readTcpListenQueues(new Set(sockets.filter((s) => s.tcp).map((s) => s.inode)))
      .then((byInode) => {
        const queues = new Map<string, { queue: number; max: number }>();
        for (const s of sockets) queues.set(s.spec.name, { queue: byInode.get(s.inode) ?? 0, max: this.#maxBacklog });
        this.#queues = queues;
        this.#queuesReadAt = Date.now();
        this.#nextQueueRead = this.#queuesReadAt + Math.max(0, (performance.now() - t0) * 50 - TICK_MS);
        this.#logFullQueues(this.#queuesReadAt);
      })
      .finally(() => {
        this.#readingQueues = undefined;
      });
    return this.#readingQueues;
  }

  /** Makes sure the queue reading is at most {@link QUEUE_FRESH_MS} old (for a stats document). */
  async freshQueues(): Promise<void> {
    if (Date.now() - this.#queuesReadAt > QUEUE_FRESH_MS) await this.#sampleQueues(true);
  }

  #logFullQueues(now: number): void {
    for (const s of this.#sockets) {
      const q = this.#queues.get(s.spec.name);
      if (q === undefined || q.max === 0 || q.queue < q.max) continue;
      if (this.#fullSince === 0) this.#fullSince = now;
      if (now - this.#lastFullLog >= LISTEN_FULL_LOG_MS) {
        this.#lastFullLog = now;
        this.#logger.error(
          { socket: s.spec.name, queue: q.queue, max: q.max },
          `*** listen queue of socket "${s.spec.name}" full !!! (${q.queue}/${q.max}) *** (full since ${Math.round((now - this.#fullSince) / 1000)} s; raise processes, cheaper limits or listen)`,
        );
      }
      return;
    }
    this.#fullSince = 0;
  }

  /** The largest accept queue over the sockets, from the last reading. */
  #backlog(): number {
    let max = 0;
    for (const q of this.#queues.values()) max = Math.max(max, q.queue);
    return max;
  }

  /** Runs the cheaper algorithm (never while starting, reloading or stopping) and carries out its decision. */
  #checkCheaper(): void {
    const config = this.#config;
    if ((config.cheaper <= 0 && config.idleMs <= 0) || this.#state !== 'ready') return;
    const active = [...this.#slots.values()].filter((s) => !s.cheap && s.current !== undefined && !s.current.killing);
    let lastRequestEndMs = 0;
    for (const p of this.processes()) lastRequestEndMs = Math.max(lastRequestEndMs, p.data.lastRequestEndMs);
    const pool = {
      active: active.map((s) => {
        const p = s.current as WorkerProc;
        return { id: s.id, pid: p.child.pid, busy: p.data.inFlight > 0 || p.data.status === SlotStatus.BUSY, runningTimeUs: p.data.runningTimeUs, rss: p.rss };
      }),
      cheaped: [...this.#slots.values()].filter((s) => s.cheap).length,
      backlog: this.#backlog(),
      lastRequestEndMs,
    };
    const [next, decision] = cheaperCheck(this.#cheaper, pool, config, Date.now());
    this.#cheaper = next;
    if (decision.note !== undefined && config.cheaperBusyness.verbose) this.#logger.info({ reason: 'busyness' }, decision.note);
    if (decision.delta > 0) this.#growPool(decision);
    else if (decision.delta < 0) this.#shrinkPool(decision);
  }

  #growPool(decision: CheaperDecision): void {
    const cheap = [...this.#slots.values()].filter((s) => s.cheap).sort((a, b) => a.id - b.id).slice(0, decision.delta);
    this.#logger.info({ reason: decision.reason, workers: cheap.map((s) => s.id) }, decision.message);
    for (const slot of cheap) {
      slot.cheap = false;
      slot.backoff = INITIAL_BACKOFF;
      slot.current = this.#spawn(slot, this.#config, this.#generation);
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
  #shrinkPool(decision: CheaperDecision): number {
    const candidates = [...this.#slots.values()]
      .filter((s) => !s.cheap && s.current?.state === 'ready' && !s.current.killing && s.next === undefined)
      .filter((s) => (s.current as WorkerProc).data.inFlight === 0 && (s.current as WorkerProc).data.status !== SlotStatus.BUSY)
      .sort((a, b) => a.lastSpawn - b.lastSpawn)
      .slice(0, -decision.delta);
    if (candidates.length === 0) return 0;
    this.#logger.info({ reason: decision.reason, workers: candidates.map((s) => s.id) }, decision.message);
    for (const slot of candidates) {
      const proc = slot.current as WorkerProc;
      slot.cheap = true;
      slot.current = undefined;
      this.#logger.info({ worker: slot.id, worker_pid: proc.child.pid, reason: decision.reason }, `worker ${slot.id} (pid ${proc.child.pid}) cheaped`);
      void this.#retire(proc, 'cheap');
    }
    return candidates.length;
  }

  /**
   * The master FIFO's `+` and `-` (uWSGI `uwsgi_cheaper_increase`/`decrease`): spawns one
   * cheaped worker, or cheaps one idle worker (never below `cheaper`). The cheaper
   * algorithm keeps running and may undo it at a later check, as in uWSGI.
   * @returns why nothing was done, or undefined when a worker was spawned or cheaped
   */
  adjustPool(delta: 1 | -1): string | undefined {
    const config = this.#config;
    if (config.cheaper <= 0) return 'not in cheaper mode (set cheaper below processes)';
    if (this.#state !== 'ready') return `the vassal is ${this.#state}`;
    const slots = [...this.#slots.values()];
    if (delta > 0) {
      if (!slots.some((s) => s.cheap)) return `all ${config.processes} workers already run (processes)`;
      this.#growPool({ delta: 1, reason: 'master-fifo', message: 'master FIFO +: spawning 1 worker' });
      return undefined;
    }
    const active = slots.filter((s) => !s.cheap && s.current !== undefined).length;
    if (active <= config.cheaper) return `only ${active} worker(s) run, the fewest cheaper allows`;
    const cheaped = this.#shrinkPool({ delta: -1, reason: 'master-fifo', message: 'master FIFO -: cheaping one worker' });
    return cheaped > 0 ? undefined : 'every worker is busy or starting';
  }

  /**
   * The master FIFO's `P` (uWSGI `uwsgi_update_pidfiles`): writes `pidfile` again.
   * @throws the write error (for example EACCES after the master dropped privileges)
   * @returns false when no pidfile is configured
   */
  writePidfile(): boolean {
    if (this.#config.pidfile === undefined) return false;
    writeFileSync(this.#config.pidfile, `${process.pid}\n`);
    return true;
  }

  /** Linux caps the backlog at net.core.somaxconn silently; uWSGI refuses to start instead. We warn. */
  #warnSomaxconn(listen: number): void {
    try {
      const max = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
      if (listen > max) this.#logger.warn(`listen ${listen} is above net.core.somaxconn (${max}); the kernel uses ${max}`);
    } catch {
      // not Linux, or no /proc
    }
  }

  /** Reads every slot; returns whether any live process has served a request. */
  #readScoreboard(): boolean {
    const slots = this.#scoreboard?.readAll() ?? [];
    let served = false;
    for (const proc of this.processes()) {
      const data = slots[proc.sbIndex];
      if (data !== undefined && data.pid === proc.child.pid) proc.data = data;
      if (proc.data.requests > 0) served = true;
    }
    return served;
  }

  #healthView(): HealthProc[] {
    const view: HealthProc[] = [];
    for (const slot of this.#slots.values()) {
      for (const proc of [slot.current, ...this.#retiring].filter((p): p is WorkerProc => p !== undefined && p.id === slot.id)) {
        view.push({
          id: proc.id, pid: proc.child.pid, runtime: proc.config.runtime, state: proc.state, spawnedAt: proc.child.spawnedAt,
          data: proc.data, heartbeatIntervalMs: proc.heartbeatIntervalMs, rss: proc.rss, vsz: proc.vsz,
          handled: proc.killing || (slot.current === proc && slot.next !== undefined),
        });
      }
    }
    return view;
  }

  #procOf(view: HealthProc): WorkerProc | undefined {
    for (const p of this.processes()) if (p.child.pid === view.pid) return p;
    return undefined;
  }

  /** Runs the health checks, carries out what is due, and arms a timer for the next harakiri deadline. */
  #checkHealth(): void {
    if (this.#state === 'stopping' || this.#state === 'dead') return;
    const now = Date.now();
    const view = this.#healthView();
    for (const action of checkHealth(view, this.#config, now)) this.#act(action, now);
    if (this.#deadline !== undefined) clearTimeout(this.#deadline);
    this.#deadline = undefined;
    const next = nextHarakiriDeadline(this.#healthView(), this.#config.harakiriMs);
    if (next !== undefined && next - now < TICK_MS) {
      // uWSGI checks once per master cycle; a timer at the deadline kills on time instead.
      this.#deadline = setTimeout(() => {
        this.#deadline = undefined;
        this.#readScoreboard();
        this.#checkHealth();
      }, Math.max(0, next - now) + 5);
    }
  }

  #act(action: HealthAction, now: number): void {
    const proc = this.#procOf(action.proc);
    const slot = this.#slots.get(action.proc.id);
    if (proc === undefined || slot === undefined) return;
    switch (action.kind) {
      case 'harakiri':
        void this.#harakiri(slot, proc, action.cause, action.ranMs);
        return;
      case 'evil-kill':
        proc.killing = true;
        proc.stopReason = action.reason;
        proc.respawn = slot.current === proc ? 'now' : 'none';
        this.#logger.error(
          { worker: proc.id, worker_pid: proc.child.pid, reason: action.reason, rss: proc.rss, vsz: proc.vsz },
          `*** EVIL RELOAD ON WORKER ${proc.id} (pid ${proc.child.pid}): ${action.detail} (${action.reason}) ***`,
        );
        proc.child.kill('SIGKILL');
        return;
      case 'recycle':
        if (slot.current !== proc || now < slot.recycleNotBefore) return;
        this.#logger.info(
          { worker: proc.id, worker_pid: proc.child.pid, reason: action.reason, rss: proc.rss, vsz: proc.vsz },
          `worker ${proc.id} (pid ${proc.child.pid}): ${action.detail} (${action.reason}); replacing it gracefully`,
        );
        void this.#recycle(slot, proc, action.reason, false);
        return;
      default: {
        const never: never = action;
        void never;
      }
    }
  }

  /**
   * Replaces a worker that reached a limit: its replacement starts first and takes over
   * once ready, then the old one finishes its requests and exits. If the replacement
   * fails, the old worker keeps serving and no recycle is tried for a while, unless it
   * has stopped accepting on its own (`max-requests`): then it is stopped and the slot
   * respawns with backoff.
   */
  async #recycle(slot: WorkerSlot, proc: WorkerProc, reason: string, stoppedAccepting: boolean): Promise<void> {
    if (await this.#replace(slot, this.#config, this.#generation, reason)) return;
    if (this.#state === 'stopping' || this.#state === 'dead' || slot.current !== proc) return;
    slot.backoff = nextBackoff(slot.backoff, 0, Date.now(), WORKER_BACKOFF);
    slot.recycleNotBefore = Date.now() + slot.backoff.delayMs;
    this.#logger.error({ worker: proc.id, worker_pid: proc.child.pid, reason }, `worker ${proc.id}: its replacement failed; ${stoppedAccepting ? 'stopping it anyway' : 'it keeps serving'}`);
    if (stoppedAccepting) void this.#retire(proc, reason, 'backoff');
  }

  /**
   * Harakiri: logs the request (and with `harakiri-verbose` the worker's stack), kills
   * the worker with SIGKILL and respawns it at once (uWSGI `trigger_harakiri`).
   */
  async #harakiri(slot: WorkerSlot, proc: WorkerProc, cause: 'request' | 'heartbeat', ranMs: number): Promise<void> {
    proc.killing = true;
    proc.stopReason = 'harakiri';
    proc.respawn = slot.current === proc ? 'now' : 'none';
    slot.harakiriBefore += 1;
    const d = proc.data;
    const what = d.method !== '' ? `${d.method} ${d.uri}` : 'no request';
    const limit = this.#config.harakiriMs / 1000;
    const fields = { worker: proc.id, worker_pid: proc.child.pid, method: d.method, uri: d.uri, ran_ms: ranMs, harakiri_ms: this.#config.harakiriMs, cause };
    const message =
      cause === 'request'
        ? `HARAKIRI ON WORKER ${proc.id} (pid ${proc.child.pid}): ${what} ran for ${(ranMs / 1000).toFixed(1)} s (harakiri ${limit} s)`
        : `HARAKIRI ON WORKER ${proc.id} (pid ${proc.child.pid}): event loop blocked for ${(ranMs / 1000).toFixed(1)} s (harakiri ${limit} s); oldest request in flight: ${what}`;
    if (proc.stack !== undefined) {
      const stack = await captureStack(proc.child.pid, proc.stack);
      this.#logger.error({ ...fields, stack }, `${message}; stack:\n${stack}`);
    } else {
      this.#logger.error(fields, message);
    }
    proc.child.kill('SIGKILL');
  }

  /**
   * `touch-reload` / `touch-chain-reload`: a file whose mtime changed (or that vanished)
   * triggers a reload; a `touch-logreopen` file emits `touch-logreopen`. Checked every tick
   * (uWSGI's master cycle).
   */
  #checkTouches(): void {
    let kind: 'graceful' | 'chain' | undefined;
    for (const [file, before] of this.#touched) {
      const now = mtimeOf(file);
      if (now === before) continue;
      this.#touched.set(file, now);
      if (this.#config.touchLogreopen.includes(file)) this.emit('touch-logreopen', file);
      const graceful = this.#config.touchReload.includes(file);
      const chain = !graceful && this.#config.touchChainReload.includes(file);
      if (!graceful && !chain) continue;
      this.#logger.info({ file }, `*** ${file} has been touched... ${chain ? 'chain reload' : 'grace them all'} !!! ***`);
      kind = kind === 'graceful' || !chain ? 'graceful' : 'chain';
    }
    if (kind !== undefined) void this.reload(kind);
  }

  async #sampleMemory(): Promise<void> {
    if (this.#sampling) return;
    this.#sampling = true;
    try {
      const procs = [...this.processes()].filter((p) => p.state !== 'dead');
      const samples = await sampleMemory(procs.map((p) => p.child.pid));
      this.#memoryAt = Date.now();
      for (const p of procs) {
        const s = samples.get(p.child.pid);
        if (s !== undefined) {
          p.rss = s.rss;
          p.vsz = s.vsz;
        }
      }
    } finally {
      this.#sampling = false;
    }
  }

  /**
   * The accept queue of each bound socket and its maximum, by socket name, from the last
   * background reading (at most a tick old; 0 for unix sockets and before the first one).
   */
  listenQueues(): Map<string, { queue: number; max: number }> {
    const max = this.#maxBacklog;
    const out = new Map<string, { queue: number; max: number }>();
    for (const s of this.#sockets) out.set(s.spec.name, this.#queues.get(s.spec.name) ?? { queue: 0, max });
    return out;
  }

  /** Asks every worker to reopen its `logto` file (SIGUSR2, `touch-logreopen`), once the master has reopened its own. */
  reopenLogs(): void {
    for (const p of this.processes()) p.child.send({ v: 1, type: 'reopen-logs' } satisfies MasterToWorker);
  }

  /** Status string of a worker id for stats: `cheap` when the cheaper subsystem retired it. */
  static statusOf(slot: WorkerSlot): 'idle' | 'busy' | 'starting' | 'stopping' | 'cheap' {
    const proc = slot.current;
    if (slot.cheap && proc === undefined) return 'cheap';
    if (proc === undefined) return 'starting'; // waiting to be respawned
    if (proc.state === 'starting') return 'starting';
    if (proc.state === 'stopping') return 'stopping';
    return proc.data.status === SlotStatus.BUSY || proc.data.inFlight > 0 ? 'busy' : 'idle';
  }
}

/** mtime of a file in ms, or -1 when it does not exist. */
export function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}
