/**
 * The emperor's handle on one vassal: its master process, its lifecycle state, its
 * restart throttle and the figures the emperor's stats report (uWSGI core/emperor.c
 * `struct uwsgi_instance`).
 *
 * States: `starting → ready → reloading → ready … → stopping → dead`; a master that dies
 * unasked goes to `throttled` (waiting to respawn) or `cursed` (failing repeatedly;
 * still retried at the maximum interval, never abandoned); an invalid vassal file, or one
 * the emperor may not run as the user it asks for, goes to `config-error` and waits for
 * the file to change. An on-demand vassal (on-demand.ts) waits in `on-demand` for the first
 * connection on its socket, and goes back there when its master exits for `idle` +
 * `die-on-idle`; any other vassal that exits for that waits in `idle` for its file to change.
 */
import { EventEmitter } from 'node:events';
import { ExitCode, PrivilegeError, parseMasterToEmperor, type EmperorToMaster } from '@emperor/protocol';
import {
  type BackoffOptions,
  type BackoffState,
  type WorkerChild,
  type Clock,
  type ExitInfo,
  type Logger,
  type TimerHandle,
  INITIAL_BACKOFF,
  describeExit,
  nextBackoff,
  systemClock,
} from '@emperor/process';
import type net from 'node:net';
import type { OnDemandSocket } from './on-demand.js';
import type { KnownVassal } from './reconcile.js';
import type { VassalFile } from './source.js';

/** Vassal lifecycle states. */
export type VassalState = 'starting' | 'ready' | 'reloading' | 'stopping' | 'dead' | 'throttled' | 'cursed' | 'config-error' | 'on-demand' | 'idle';

/**
 * How long a master may take to stop after being asked, before SIGKILL, ms: uWSGI's
 * default `worker-reload-mercy` (60 s, which bounds its workers) plus slack.
 */
export const VASSAL_STOP_MERCY_MS = 70_000;

/** After an on-demand master's crash, how often and how many times a busy TCP port is tried again (its workers may hold it a moment longer). */
export const REBIND_RETRY_MS = 100;
export const REBIND_ATTEMPTS = 50;

/** Uptime after which a master's death is not part of a crash loop, ms. */
export const VASSAL_HEALTHY_MS = 30_000;

/**
 * Starts the master process of a vassal file.
 * @throws PrivilegeError when the emperor may not start it as the user it asks for: the
 *   vassal then waits in `config-error` for its file to change; any other error counts as
 *   a failed start (respawned with backoff)
 */
export type SpawnMaster = (file: VassalFile, onDemand?: OnDemandHandoff) => WorkerChild;

/** What an on-demand vassal's master gets: the listening socket for its fd 0, and its name. */
export interface OnDemandHandoff {
  readonly fd: number;
  readonly name: string;
}

/** Options for {@link Vassal}. */
export interface VassalOptions {
  readonly spawn: SpawnMaster;
  readonly logger: Logger;
  /** `emperor-throttle` / `emperor-max-throttle`, ms. */
  readonly throttleMs: number;
  readonly maxThrottleMs: number;
  /** Uptime after which a failing vassal counts as recovered, ms. @default VASSAL_HEALTHY_MS */
  readonly healthyMs?: number;
  /** @default systemClock */
  readonly clock?: Clock;
  /** The socket of an on-demand vassal (`emperor-on-demand-*`): started by its first connection. */
  readonly onDemand?: OnDemandSocket | undefined;
}

/** The backoff for a vassal: doubling from `emperor-throttle`, cursed once it reaches `emperor-max-throttle`. */
export function vassalBackoff(throttleMs: number, maxThrottleMs: number, healthyMs = VASSAL_HEALTHY_MS): BackoffOptions {
  const steps = Math.ceil(Math.log2(Math.max(1, maxThrottleMs / Math.max(1, throttleMs)))) + 1;
  return { initialMs: throttleMs, maxMs: maxThrottleMs, healthyMs, curseAfter: steps };
}

/**
 * True when a vassal has gone silent: it has sent at least one heartbeat (uWSGI counts
 * only from the first one, so a vassal without `heartbeat` is never judged) and the last
 * one is more than `requiredMs` old (`emperor-required-heartbeat`; 0 = off).
 * @param lastHeartbeat epoch ms of the last heartbeat; 0 = none yet
 */
export function heartbeatOverdue(lastHeartbeat: number, now: number, requiredMs: number): boolean {
  return requiredMs > 0 && lastHeartbeat > 0 && now - lastHeartbeat > requiredMs;
}

/**
 * When `emperor-required-heartbeat` must next be checked, epoch ms: the first moment one
 * of `lastHeartbeats` (epoch ms; 0 = none yet) can be overdue (see {@link heartbeatOverdue}),
 * and `requiredMs` from `now` at the latest, since a heartbeat that arrives after `now`
 * cannot be overdue before then. The emperor arms one timer for it instead of looking
 * every second (an idle emperor then wakes once per heartbeat period at most, issue 23);
 * a master is still judged the moment it is overdue. Always after `now`; `requiredMs` > 0.
 */
export function nextHeartbeatCheck(lastHeartbeats: Iterable<number>, now: number, requiredMs: number): number {
  let next = now + requiredMs;
  for (const last of lastHeartbeats) {
    // One overdue already was judged at `now` (or is not judged: stopping, no master): it
    // must not make the timer spin.
    if (last > 0 && last + requiredMs + 1 > now) next = Math.min(next, last + requiredMs + 1);
  }
  return next;
}


/** What a lease keeps of a vassal for the emperor that adopts it (epoch ms). */
export interface AdoptedRecord {
  readonly born: number;
  readonly respawns: number;
  readonly lastMod: number;
  readonly firstRun: number;
  readonly lastRun: number;
}

function isClosable(value: unknown): value is { close(): void } {
  return typeof value === 'object' && value !== null && typeof (value as { close?: unknown }).close === 'function';
}

/** One vassal. */
export class Vassal extends EventEmitter<{ dead: []; change: [] }> implements KnownVassal {
  readonly name: string;
  #file: VassalFile;
  #state: VassalState = 'dead';
  #child: WorkerChild | undefined;
  #stopping = false;
  #timer: TimerHandle | undefined;
  /** Armed while a vassal with a failure streak runs: at `healthyMs` of uptime the streak ends. */
  #healthyTimer: TimerHandle | undefined;
  readonly #options: VassalOptions;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #backoff: BackoffState = INITIAL_BACKOFF;
  readonly #backoffOptions: BackoffOptions;
  /** Epoch ms of the next spawn attempt while throttled or cursed; 0 otherwise. */
  nextAttemptAt = 0;
  born = 0;
  lastMod = 0;
  loyal = false;
  ready = false;
  accepting = false;
  lastLoyal = 0;
  lastReady = 0;
  lastAccepting = 0;
  firstRun = 0;
  lastRun = 0;
  lastHeartbeat = 0;
  /** Reloads and respawns. */
  respawns = 0;
  cursedAt = 0;
  lastError = '';
  /** What the running master reported before exiting {@link ExitCode.CONFIG} (its `config-error` message). */
  #configError: string | undefined;
  /** The on-demand socket, if this vassal is on demand. */
  readonly onDemand: OnDemandSocket | undefined;
  /** Masters started by a connection on the on-demand socket. */
  coldStarts = 0;
  /** The running master said it exits for `idle` (uWSGI byte 22), with the socket it sent back. */
  #idleExit: { readonly handle: unknown } | undefined;
  /** Connections the emperor accepted, waiting for a throttled respawn. */
  readonly #waitingClients: net.Socket[] = [];

  constructor(file: VassalFile, options: VassalOptions) {
    super();
    this.name = file.name;
    this.#file = file;
    this.#options = options;
    this.#logger = options.logger.child({ vassal: file.name });
    this.#clock = options.clock ?? systemClock;
    this.#backoffOptions = vassalBackoff(options.throttleMs, options.maxThrottleMs, options.healthyMs);
    this.onDemand = options.onDemand;
  }

  get file(): VassalFile {
    return this.#file;
  }

  get state(): VassalState {
    return this.#state;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  get pid(): number {
    return this.#child !== undefined && !this.#child.isDead() ? this.#child.pid : -1;
  }

  /** The master's handle while it runs. */
  get master(): WorkerChild | undefined {
    return this.#child;
  }

  get backoff(): BackoffState {
    return this.#backoff;
  }

  #setState(state: VassalState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('change');
  }

  /** The vassal cannot run as its file is (`message`, logged once): it waits for the file to change. */
  refuse(message: string): void {
    this.lastError = message;
    this.#logger.error({ file: this.#file.path }, message);
    this.#setState('config-error');
  }

  /** Spawns the master; an on-demand vassal waits for a connection on its socket instead. */
  start(): void {
    if (this.#stopping) return;
    if (this.onDemand !== undefined) {
      this.#clearTimer();
      this.#waitOnDemand(false);
      return;
    }
    this.#spawn();
  }

  /**
   * Binds (or keeps) the on-demand socket and waits for its first connection. A socket
   * that cannot be bound is one error line naming the file and the socket; the vassal
   * then waits in `config-error` for its file to change.
   */
  #waitOnDemand(back: boolean, attempt = 0): void {
    const socket = this.onDemand;
    if (socket === undefined || this.#stopping) return;
    try {
      socket.open();
    } catch (err) {
      // After a crash, the master's workers may hold a TCP port for a moment longer.
      if (back && (err as Error).message.includes('address already in use') && attempt < REBIND_ATTEMPTS) {
        this.#setState('throttled');
        this.#timer = this.#clock.setTimeout(() => {
          this.#timer = undefined;
          this.#waitOnDemand(true, attempt + 1);
        }, REBIND_RETRY_MS);
        return;
      }
      this.lastError = (err as Error).message;
      this.#logger.error({ code: (err as { code?: string }).code, file: this.#file.path, on_demand: socket.name }, this.lastError);
      this.#setState('config-error');
      return;
    }
    socket.arm((client) => this.#coldStart(client));
    // uWSGI's lines (core/emperor.c), without its `[uwsgi-emperor]` prefix.
    this.#logger.info(
      { file: this.#file.path, on_demand: socket.name },
      back
        ? `${this.name} -> back to "on demand" mode, waiting for connections on socket "${socket.name}" ...`
        : `${this.name} -> "on demand" instance detected, waiting for connections on socket "${socket.name}" ...`,
    );
    this.#setState('on-demand');
  }

  /**
   * A connection the emperor accepted on the on-demand socket: start the master (no
   * sooner than a pending respawn delay allows; connections meanwhile wait with this
   * one) and relay the connections to it.
   */
  #coldStart(client: net.Socket): void {
    if (this.onDemand === undefined || this.#stopping) {
      client.destroy();
      return;
    }
    client.pause();
    this.#waitingClients.push(client);
    if (this.#timer !== undefined) return; // a delayed start is coming
    const waitMs = this.nextAttemptAt - this.#clock.now();
    if (waitMs > 0) {
      // A master that crashed is not restarted faster than its backoff allows.
      this.#timer = this.#clock.setTimeout(() => {
        this.#timer = undefined;
        this.nextAttemptAt = 0;
        this.#launchOnDemand();
      }, waitMs);
      return;
    }
    this.#launchOnDemand();
  }

  #launchOnDemand(): void {
    const socket = this.onDemand;
    const clients = this.#waitingClients.splice(0);
    if (socket === undefined || this.#stopping || !socket.isOpen) {
      for (const c of clients) c.destroy();
      return;
    }
    this.coldStarts += 1;
    this.#spawn({ fd: socket.fd, name: socket.name });
    if (this.#child === undefined) {
      for (const c of clients) c.destroy();
      // Not allowed to run as its file asks: the socket closes (connections are refused,
      // not reset) until the file changes. Any other failed spawn went through the exit
      // path, which waits on the socket again.
      if (this.#state === 'config-error') socket.close(false);
      return;
    }
    // The master holds the socket now: the next connections are its workers'.
    socket.release();
    for (const c of clients) {
      socket.relay(c);
      c.resume();
    }
  }

  #spawn(onDemand?: OnDemandHandoff): void {
    this.#clearTimer();
    const now = this.#clock.now();
    let child: WorkerChild;
    try {
      child = this.#options.spawn(this.#file, onDemand);
    } catch (err) {
      this.lastError = (err as Error).message;
      if (err instanceof PrivilegeError) {
        // The emperor may not start it as the user it asks for: like an invalid file, it
        // waits for the file to change instead of failing every few seconds. Said once.
        this.#logger.error({ code: err.code, file: this.#file.path }, this.lastError);
        this.#setState('config-error');
        return;
      }
      this.#logger.error(`cannot spawn the master of ${this.name}: ${this.lastError}`);
      this.#onExit({ code: ExitCode.UNAVAILABLE, signal: null }, now);
      return;
    }
    this.#child = child;
    this.#configError = undefined;
    this.#idleExit = undefined;
    this.born = now;
    this.lastMod = this.#file.fingerprint.mtimeMs;
    this.lastRun = now;
    if (this.firstRun === 0) this.firstRun = now;
    this.ready = false;
    this.accepting = false;
    this.loyal = false;
    this.lastHeartbeat = 0;
    this.#setState('starting');
    this.#logger.info(
      { master_pid: child.pid, file: this.#file.path, ...(onDemand === undefined ? {} : { on_demand: onDemand.name }) },
      `vassal ${this.name} started (master pid ${child.pid})${onDemand === undefined ? '' : ` by a connection on "${onDemand.name}"`}`,
    );
    this.#attach(child);
  }

  /**
   * Takes over a master a previous emperor started (issue 19): the figures the stats
   * report continue from `record` (its lease), the flags from what the master says of
   * itself. The heartbeat rule starts again from the master's next heartbeat, so a
   * handover pauses it rather than violating it.
   */
  adopt(child: WorkerChild, record: AdoptedRecord, flags: { readonly ready: boolean; readonly accepting: boolean; readonly loyal: boolean }): void {
    const now = this.#clock.now();
    this.#child = child;
    this.born = record.born;
    this.lastMod = record.lastMod;
    this.lastRun = record.lastRun;
    this.firstRun = record.firstRun;
    this.respawns = record.respawns;
    this.ready = flags.ready;
    this.accepting = flags.accepting;
    this.loyal = flags.loyal;
    if (flags.ready) this.lastReady = now;
    if (flags.accepting) this.lastAccepting = now;
    if (flags.loyal) this.lastLoyal = now;
    this.lastHeartbeat = 0;
    this.#setState(flags.ready ? 'ready' : 'starting');
    this.#logger.info({ master_pid: child.pid, file: this.#file.path }, `vassal ${this.name} adopted (master pid ${child.pid}, started ${new Date(record.born).toISOString()}, ${record.respawns} respawn(s))`);
    this.#attach(child);
  }

  #attach(child: WorkerChild): void {
    child.on('message', (raw, handle) => this.#onMessage(raw, child, handle));
    child.once('exit', (exit) => this.#onExit(exit, this.#clock.now()));
    if (this.#backoff.failures > 0) {
      const healthyMs = this.#backoffOptions.healthyMs;
      this.#healthyTimer = this.#clock.setTimeout(() => {
        this.#healthyTimer = undefined;
        if (this.#child !== child || child.isDead()) return;
        this.#logger.info(`vassal ${this.name} has run for ${healthyMs / 1000} s; its failure streak of ${this.#backoff.failures} is forgiven`);
        this.#backoff = INITIAL_BACKOFF;
        this.cursedAt = 0;
        this.emit('change');
      }, healthyMs);
    }
  }

  #onMessage(raw: unknown, from: WorkerChild, handle?: unknown): void {
    let message;
    try {
      message = parseMasterToEmperor(raw);
    } catch (err) {
      this.#logger.warn((err as Error).message);
      return;
    }
    const now = this.#clock.now();
    switch (message.type) {
      case 'ready':
        this.ready = true;
        this.lastReady = now;
        if (this.#state === 'starting') this.#setState('ready');
        this.#logger.info(`vassal ${this.name} is ready`);
        return;
      case 'accepting':
        this.accepting = true;
        this.lastAccepting = now;
        return;
      case 'loyal':
        this.loyal = true;
        this.lastLoyal = now;
        return;
      case 'heartbeat':
        this.lastHeartbeat = now;
        return;
      case 'reloaded':
        if (this.#state === 'reloading') this.#setState('ready');
        if (!message.ok) this.lastError = 'the last reload was abandoned; the previous workers kept serving';
        return;
      case 'idle':
        if (this.#child !== from) return;
        // uWSGI byte 22: a voluntary exit follows; not a crash.
        this.#idleExit = { handle };
        this.#logger.info(`vassal ${this.name} is idle and exits${this.onDemand === undefined ? '' : '; its socket goes back to the emperor'}`);
        return;
      case 'config-error':
        if (this.#child !== undefined && this.#child !== from) return; // from a master already replaced
        this.#configError = message.message;
        // Usually the exit follows; if it came first, the stats get the real error now.
        if (this.#state === 'config-error' && this.#child === undefined) {
          this.lastError = message.message;
          this.emit('change');
        }
        return;
      default: {
        const never: never = message;
        void never;
      }
    }
  }

  #onExit(exit: ExitInfo, now: number): void {
    const uptime = now - this.born;
    this.#child = undefined;
    if (this.#healthyTimer !== undefined) this.#clock.clearTimeout(this.#healthyTimer);
    this.#healthyTimer = undefined;
    this.ready = false;
    this.accepting = false;
    const idleExit = this.#idleExit;
    this.#idleExit = undefined;
    if (this.#stopping) {
      if (idleExit !== undefined && isClosable(idleExit.handle)) idleExit.handle.close();
      this.#logger.info({ exit_code: exit.code, signal: exit.signal }, `vassal ${this.name} stopped (${describeExit(exit)})`);
      this.#setState('dead');
      this.emit('dead');
      return;
    }
    if (idleExit !== undefined && exit.code === 0) {
      if (this.onDemand !== undefined) {
        // Its socket came back with the message (connections meanwhile wait in its queue);
        // without it (an older master), bind it again.
        this.onDemand.adopt(idleExit.handle);
        this.#waitOnDemand(true);
        return;
      }
      this.#logger.info(`vassal ${this.name} stopped for idle (die-on-idle); it starts again when its file changes`);
      this.#setState('idle');
      return;
    }
    // Said it was idle, then failed: the socket it sent back is of no use (the crash path binds anew).
    if (idleExit !== undefined && isClosable(idleExit.handle)) idleExit.handle.close();
    if (exit.code === ExitCode.CONFIG) {
      const row = this.#file.kind === 'row';
      this.lastError = this.#configError ??
        (row ? 'invalid config in its row (the master exited 78 without saying why; see its log)' : 'invalid vassal file (the master exited 78 without saying why; see its log)');
      // The master logged the error itself (one line, file:line: option: reason); the stats keep it as last_error.
      this.#logger.warn(row
        ? `vassal ${this.name} has an invalid config in its row of ${this.#file.monitor}; waiting for its ts to change`
        : `vassal ${this.name} has an invalid file; waiting for it to change`);
      this.#setState('config-error');
      return;
    }
    this.#backoff = nextBackoff(this.#backoff, uptime, now, this.#backoffOptions);
    const delay = this.#backoff.delayMs;
    this.lastError = `master ${describeExit(exit)}`;
    const cursed = this.#backoff.cursed;
    if (cursed && this.cursedAt === 0) this.cursedAt = now;
    if (!cursed) this.cursedAt = 0;
    this.nextAttemptAt = now + delay;
    this.#logger[delay === 0 ? 'warn' : 'error'](
      { exit_code: exit.code, signal: exit.signal, uptime_ms: uptime, respawn_in_ms: delay, failures: this.#backoff.failures },
      `vassal ${this.name} master died: ${describeExit(exit)} after ${(uptime / 1000).toFixed(1)} s; ` +
        (cursed ? `cursed after ${this.#backoff.failures} failures in a row, retrying every ${(delay / 1000).toFixed(1)} s` : delay === 0 ? 'respawning' : `respawning in ${(delay / 1000).toFixed(1)} s`),
    );
    if (this.onDemand !== undefined) {
      // Back on the socket at once; the next connection starts it, no sooner than the backoff allows.
      this.#waitOnDemand(true);
      return;
    }
    this.#setState(cursed ? 'cursed' : 'throttled');
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.nextAttemptAt = 0;
      this.respawns += 1;
      this.start();
    }, delay);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.nextAttemptAt = 0;
  }

  #send(message: EmperorToMaster): boolean {
    return this.#child?.send(message) ?? false;
  }

  /**
   * `emperor-required-heartbeat`: a master silent for longer than `requiredMs` is killed
   * with SIGKILL and respawned through the usual death path, as uWSGI core/emperor.c
   * does ("brutally respawning"); a master that stopped heartbeating is hung, so a polite
   * stop would only wait. Returns whether it was killed.
   */
  checkHeartbeat(requiredMs: number, now = this.#clock.now()): boolean {
    const child = this.#child;
    if (child === undefined || child.isDead() || this.#stopping || !heartbeatOverdue(this.lastHeartbeat, now, requiredMs)) return false;
    this.#logger.error(
      { master_pid: child.pid, last_heartbeat_ms_ago: now - this.lastHeartbeat },
      `vassal ${this.name} sent no heartbeat in the last ${requiredMs / 1000} s (emperor-required-heartbeat); killing master pid ${child.pid} to respawn it`,
    );
    this.lastHeartbeat = 0;
    this.lastError = `no heartbeat for ${requiredMs / 1000} s; killed`;
    child.kill('SIGKILL');
    return true;
  }

  /**
   * Reloads with `file` (its new version). A running master reloads its workers
   * gracefully; a vassal that is not running (invalid file, throttled, cursed) is
   * started now: a changed file deserves a fresh attempt.
   */
  reload(file: VassalFile): void {
    this.#file = file;
    if (this.#stopping) return;
    this.respawns += 1;
    if (this.#child !== undefined && !this.#child.isDead()) {
      this.lastMod = file.fingerprint.mtimeMs;
      this.lastRun = this.#clock.now();
      this.#logger.info(`reloading vassal ${this.name}`);
      if (this.#send({ v: 1, type: 'reload' })) {
        if (this.#state === 'ready') this.#setState('reloading');
      } else {
        this.#child.kill('SIGHUP');
      }
      return;
    }
    if (this.onDemand !== undefined && this.#state === 'on-demand') {
      this.lastMod = file.fingerprint.mtimeMs;
      this.#logger.info(`updated configuration for "on demand" instance ${this.name}`);
      return;
    }
    this.#backoff = INITIAL_BACKOFF;
    this.cursedAt = 0;
    this.lastError = '';
    this.start();
  }

  /** Asks for a graceful reload of the same file (emperor SIGHUP). */
  reloadInPlace(): void {
    this.reload(this.#file);
  }

  /** Asks the master to reopen its `logto` file and its workers' (emperor SIGUSR2, for logrotate). */
  reopenLogs(): void {
    this.#send({ v: 1, type: 'reopen-logs' });
  }

  /**
   * Stops the vassal gracefully: the master stops its workers within their mercy and
   * exits; SIGKILL after `mercyMs`. Resolves when it is dead. Idempotent.
   */
  stop(mercyMs = VASSAL_STOP_MERCY_MS): Promise<void> {
    this.#stopping = true;
    this.#clearTimer();
    for (const c of this.#waitingClients.splice(0)) c.destroy();
    // The vassal is going: its socket (and a unix socket's file) with it.
    this.onDemand?.close(true);
    const child = this.#child;
    if (child === undefined || child.isDead()) {
      this.#child = undefined;
      this.#setState('dead');
      this.emit('dead');
      return Promise.resolve();
    }
    if (this.#state !== 'stopping') this.#logger.info(`stopping vassal ${this.name}`);
    this.#setState('stopping');
    const stop: EmperorToMaster = { v: 1, type: 'stop' };
    return child.stop({ message: stop, signal: 'SIGTERM', mercyMs }).then(() => undefined);
  }

  /**
   * Lets go of the on-demand socket without removing a unix socket's file: the emperor
   * hands over to a next one (issue 19), which binds it again (a unix socket file is
   * removed and bound anew; connections in the old queue are lost).
   */
  releaseOnDemand(): void {
    this.onDemand?.close(false);
  }

  /** Kills the master now. */
  kill(): void {
    this.#stopping = true;
    this.#clearTimer();
    this.#child?.kill('SIGKILL');
  }
}
