/**
 * A handle on one child process: spawn, await exit, stop gracefully with SIGKILL
 * escalation. Shared by the emperor (vassal masters) and the masters (workers).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { MissingToolError } from '@emperor/protocol';
import { systemClock, type Clock, type TimerHandle } from './clock.js';

/**
 * How a child ended: exactly one of `code` and `signal` is set, except for a process we
 * did not spawn (an adopted vassal master), whose status we cannot learn: both null.
 */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /**
   * The process never ran: spawn() failed (EACCES on the program or on its working
   * directory, ENOENT, EAGAIN). Node then emits only 'error', never 'exit'; {@link Child}
   * turns that into this exit, so a supervisor waiting on the exit is not left waiting.
   */
  readonly spawnError?: string;
}

/** "exit code 1", "killed by signal SIGKILL" or "could not start: spawn node EACCES". */
export function describeExit(exit: ExitInfo): string {
  if (exit.spawnError !== undefined) return `could not start: ${exit.spawnError}`;
  // An adopted master is not our child: its exit status went to whoever reaped it.
  if (exit.code === null && exit.signal === null) return 'exited (status unknown: adopted, not our child)';
  return exit.signal !== null ? `killed by signal ${exit.signal}` : `exit code ${exit.code ?? '?'}`;
}

/** Default grace between the polite request and SIGKILL, ms (uWSGI's worker-reload-mercy is 60 s). */
export const DEFAULT_MERCY_MS = 60_000;

/** Options for {@link Child.stop}. */
export interface StopOptions {
  /** IPC message asking the child to stop; sent instead of a signal when the channel is open. */
  readonly message?: unknown;
  /** Signal sent when there is no message or no channel. @default 'SIGTERM' */
  readonly signal?: NodeJS.Signals;
  /** Milliseconds before SIGKILL. @default DEFAULT_MERCY_MS */
  readonly mercyMs?: number;
}

/** The events of a supervised child: raw IPC messages (the owner parses them) and its one exit. */
export type ChildEvents = { message: [message: unknown, handle?: unknown]; exit: [ExitInfo] };

/**
 * A process as its supervisor sees it: what the emperor needs of a vassal master and a
 * master of a worker. {@link Child} (a process we spawned) implements it; so do the test
 * helpers' fake child and, later, a worker forked by a Python template process, which is
 * not our direct child and reports its exit through the template.
 *
 * `exit` is emitted once; `exited` resolves with the same value.
 */
export interface WorkerChild extends EventEmitter<ChildEvents> {
  /** The pid; 0 if the process never started. */
  readonly pid: number;
  /** Epoch ms when it was started (the supervisor's clock). */
  readonly spawnedAt: number;
  /** How it ended, once it has. */
  readonly exit: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  isDead(): boolean;
  /** Sends an IPC message if the channel is open; returns whether it was sent. */
  send(message: unknown): boolean;
  /** Sends a signal unless the process is already gone. @default 'SIGKILL' */
  kill(signal?: NodeJS.Signals): void;
  /** Asks it to stop (message, else signal), SIGKILL after the mercy; idempotent. */
  stop(options?: StopOptions): Promise<ExitInfo>;
  /** SIGKILL after `ms` from now if still alive (replaces a pending stop's deadline). */
  hurry(ms: number): void;
}

/**
 * One spawned process. `exited` resolves once with how it ended; the `message` event
 * carries raw IPC messages (the owner parses them). The SIGKILL escalation of
 * {@link stop} and {@link hurry} runs on the given clock.
 */
export class Child extends EventEmitter<ChildEvents> implements WorkerChild {
  readonly process: ChildProcess;
  /** Wall-clock ms when spawned. */
  readonly spawnedAt: number;
  readonly exited: Promise<ExitInfo>;
  readonly #clock: Clock;
  #exit: ExitInfo | undefined;
  readonly #stopping: StopEscalation;
  readonly #signalAs: ((signal: NodeJS.Signals) => void) | undefined;

  /**
   * @param clock the stop escalation's timers (and `spawnedAt`)
   * @param signalAs how to signal the child when kill(2) is refused (EPERM): an emperor
   *   that is not root, keeping CAP_SETUID but not CAP_KILL, cannot signal a master
   *   running as another user, but can start a process as that user which does
   */
  constructor(proc: ChildProcess, clock: Clock = systemClock, signalAs?: (signal: NodeJS.Signals) => void) {
    super();
    this.process = proc;
    this.#clock = clock;
    this.#stopping = new StopEscalation(this, this.#clock);
    this.spawnedAt = clock.now();
    this.#signalAs = signalAs;
    this.exited = new Promise((resolve) => {
      const ended = (exit: ExitInfo): void => {
        if (this.#exit !== undefined) return;
        this.#exit = exit;
        this.#stopping.cancel();
        this.emit('exit', exit);
        resolve(exit);
      };
      proc.once('exit', (code, signal) => ended({ code, signal }));
      // A failed spawn (EACCES, ENOENT, EAGAIN) emits 'error' and never 'exit' (Node's
      // ChildProcess.spawn); it has no pid. An IPC write racing the child's death emits
      // 'error' too, with a pid, and the real exit follows. Neither may crash the supervisor.
      proc.on('error', (err) => {
        if (proc.pid === undefined) ended({ code: null, signal: null, spawnError: err.message });
      });
    });
    proc.on('message', (m, handle) => this.emit('message', m, handle));
  }

  /** The pid; 0 if the spawn failed. */
  get pid(): number {
    return this.process.pid ?? 0;
  }

  /** How it ended, once it has. */
  get exit(): ExitInfo | undefined {
    return this.#exit;
  }

  isDead(): boolean {
    return this.#exit !== undefined;
  }

  /** Sends an IPC message if the channel is open; returns whether it was sent. */
  send(message: unknown): boolean {
    if (this.isDead() || !this.process.connected) return false;
    try {
      return this.process.send(message as object);
    } catch {
      return false;
    }
  }

  /** Sends a signal unless the child is already gone. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.isDead()) return;
    let sent = false;
    try {
      // False (with an 'error' event, which the constructor absorbs) when kill(2) fails.
      sent = this.process.kill(signal);
    } catch {
      // ESRCH: it died between the check and the kill.
    }
    if (!sent && !this.isDead()) this.#signalAs?.(signal);
  }

  /**
   * Asks the child to stop, then SIGKILLs it after `mercyMs`. Idempotent: a second call
   * while stopping returns the same exit; a dead child returns at once.
   * Same escalation as vitest's forks pool and Node's cluster `worker.kill()`.
   */
  stop(options: StopOptions = {}): Promise<ExitInfo> {
    return this.#stopping.stop(options);
  }

  /** Shortens a pending stop: SIGKILL after `ms` from now if still alive. */
  hurry(ms: number): void {
    this.#stopping.hurry(ms);
  }
}

/** What {@link StopEscalation} needs of the child it stops. */
export interface Stoppable {
  readonly exit: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  isDead(): boolean;
  send(message: unknown): boolean;
  kill(signal?: NodeJS.Signals): void;
}

/**
 * The stop every {@link WorkerChild} shares (a spawned child, a worker forked by a Python
 * template, a master adopted from an earlier emperor, the tests' fake): the stop message
 * (or `signal`, SIGTERM by default), then SIGKILL after the mercy; `hurry` shortens a
 * pending stop. Same escalation as vitest's forks pool and Node's cluster `worker.kill()`.
 */
export class StopEscalation {
  readonly #child: Stoppable;
  readonly #clock: Clock;
  #timer: TimerHandle | undefined;

  constructor(child: Stoppable, clock: Clock) {
    this.#child = child;
    this.#clock = clock;
  }

  /** Idempotent: a second call while stopping returns the same exit; a dead child returns at once. */
  stop(options: StopOptions = {}): Promise<ExitInfo> {
    const child = this.#child;
    if (child.exit !== undefined) return Promise.resolve(child.exit);
    if (this.#timer === undefined) {
      const sent = options.message !== undefined && child.send(options.message);
      if (!sent) child.kill(options.signal ?? 'SIGTERM');
      this.#timer = this.#clock.setTimeout(() => child.kill('SIGKILL'), options.mercyMs ?? DEFAULT_MERCY_MS);
    }
    return child.exited;
  }

  /** SIGKILL after `ms` from now if still alive (ms). */
  hurry(ms: number): void {
    if (this.#child.isDead()) return;
    this.cancel();
    this.#timer = this.#clock.setTimeout(() => this.#child.kill('SIGKILL'), ms);
  }

  /** Drops the pending SIGKILL (the child exited). */
  cancel(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
  }
}

/** Finds an executable on PATH (or the usual sbin/bin dirs); undefined if absent. */
export function findExecutable(name: string, path = process.env.PATH ?? ''): string | undefined {
  const dirs = [...path.split(delimiter), '/usr/bin', '/bin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Kernel-level settings applied to a child before its program starts, through small
 * util-linux exec wrappers (Node cannot call prctl/setrlimit/sched_setaffinity itself):
 * `setpriv --pdeathsig`, `prlimit --as`, `taskset -c`. Each wrapper execs the next, so
 * the pid stays the same and the settings are in place before the app loads.
 */
export interface ProcessLimits {
  /**
   * Signal the child when its parent dies (`PR_SET_PDEATHSIG`): true means SIGKILL. The
   * kernel delivers it only when the parent may signal the child (root, CAP_KILL, or the
   * same uid), so a master a non-root emperor started as another user does not get it.
   */
  readonly pdeathsig?: boolean | NodeJS.Signals | undefined;
  /**
   * Run the program as this user, group and supplementary groups (`setpriv --reuid
   * --regid --groups`, or `--clear-groups` for none). Needs root or CAP_SETUID and
   * CAP_SETGID.
   */
  readonly credentials?: SpawnCredentials | undefined;
  /**
   * The capabilities the program starts with, through the inheritable and ambient sets
   * (`setpriv --inh-caps --ambient-caps`, names as in capabilities(7) without `cap_`). An
   * empty list clears both sets, so a program that is not root starts with no capability
   * at all (a non-root → non-root setuid keeps them, and ambient ones survive exec).
   */
  readonly capabilities?: readonly string[] | undefined;
  /** RLIMIT_AS soft and hard limit, bytes (uWSGI `limit-as`). */
  readonly limitAsBytes?: number | undefined;
  /** CPUs to pin to (uWSGI `cpu-affinity`). */
  readonly cpus?: readonly number[] | undefined;
}

/** Who a child runs as: {@link ProcessLimits.credentials}. */
export interface SpawnCredentials {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups; empty for none (tyrant mode, as uWSGI). */
  readonly groups: readonly number[];
}

// Defined in the error registry (@emperor/protocol errors.ts); re-exported so existing imports keep working.
export { MissingToolError };

const toolCache = new Map<string, string | undefined>();
function tool(name: string): string | undefined {
  if (!toolCache.has(name)) toolCache.set(name, findExecutable(name));
  return toolCache.get(name);
}

/** True when `setpriv` is installed, i.e. pdeathsig can be set. */
export function canSetPdeathsig(): boolean {
  return tool('setpriv') !== undefined;
}

/**
 * Builds `[file, args]` running `command args` under the given limits.
 * @throws MissingToolError when `prlimit` or `taskset` is needed but not installed.
 */
export function wrapCommand(command: string, args: readonly string[], limits: ProcessLimits): [string, string[]] {
  let argv = [command, ...args];
  if (limits.cpus !== undefined && limits.cpus.length > 0) {
    const taskset = tool('taskset');
    if (taskset === undefined) throw new MissingToolError('cpu-affinity needs taskset (util-linux), which is not installed');
    argv = [taskset, '-c', limits.cpus.join(','), ...argv];
  }
  if (limits.limitAsBytes !== undefined && limits.limitAsBytes > 0) {
    const prlimit = tool('prlimit');
    if (prlimit === undefined) throw new MissingToolError('limit-as needs prlimit (util-linux), which is not installed');
    argv = [prlimit, `--as=${limits.limitAsBytes}:${limits.limitAsBytes}`, '--', ...argv];
  }
  const setprivArgs = [...credentialArgs(limits.credentials), ...capabilityArgs(limits.capabilities)];
  const setpriv = tool('setpriv');
  if (setprivArgs.length > 0 && setpriv === undefined) {
    throw new MissingToolError('starting a process as another user or without capabilities needs setpriv (util-linux), which is not installed');
  }
  // setpriv sets pdeathsig after changing the credentials (which clear it).
  const deathSignal = limits.pdeathsig === true ? 'KILL' : limits.pdeathsig === false || limits.pdeathsig === undefined ? undefined : limits.pdeathsig.replace(/^SIG/, '');
  if (deathSignal !== undefined && setpriv !== undefined) setprivArgs.push('--pdeathsig', deathSignal);
  if (setprivArgs.length > 0 && setpriv !== undefined) argv = [setpriv, ...setprivArgs, '--', ...argv];
  const [file, ...rest] = argv;
  return [file as string, rest];
}

function credentialArgs(credentials: SpawnCredentials | undefined): string[] {
  if (credentials === undefined) return [];
  const groups = credentials.groups.length === 0 ? ['--clear-groups'] : ['--groups', credentials.groups.join(',')];
  return ['--reuid', String(credentials.uid), '--regid', String(credentials.gid), ...groups];
}

function capabilityArgs(capabilities: readonly string[] | undefined): string[] {
  if (capabilities === undefined) return [];
  const set = capabilities.length === 0 ? '-all' : ['-all', ...capabilities.map((name) => `+${name}`)].join(',');
  return ['--inh-caps', set, '--ambient-caps', set];
}

/**
 * Spawns `command args` under `limits` and wraps it in a {@link Child} whose stop
 * escalation runs on `clock`. A child started as another user by a process that is not
 * root is signalled, when kill(2) is refused, by a short-lived `setpriv ... kill` running
 * as that user.
 * @throws MissingToolError (see {@link wrapCommand}); Node's own spawn errors (EACCES,
 *   ENOENT) arrive later as an exit with `spawnError`
 */
export function spawnChild(command: string, args: readonly string[], options: SpawnOptions, limits: ProcessLimits = {}, clock: Clock = systemClock): Child {
  const [file, argv] = wrapCommand(command, args, limits);
  const proc = spawn(file, argv, options);
  const creds = limits.credentials;
  const signalAs = creds === undefined || process.getuid?.() === 0 || proc.pid === undefined ? undefined : signalAsUser(proc.pid, creds);
  return new Child(proc, clock, signalAs);
}

/**
 * Sends signals to `pid` as `credentials`' user, through `setpriv --reuid --regid
 * --clear-groups -- kill -s SIG PID`: kill(2) allows a process to signal another of the
 * same uid. A few milliseconds per signal, and signals to a master are rare (a stop's
 * SIGKILL after its mercy, a heartbeat kill, a SIGHUP without an IPC channel).
 */
export function signalAsUser(pid: number, credentials: SpawnCredentials): ((signal: NodeJS.Signals) => void) | undefined {
  const setpriv = tool('setpriv');
  const kill = tool('kill');
  if (setpriv === undefined || kill === undefined) return undefined;
  return (signal) => {
    const helper = spawn(setpriv, [...credentialArgs({ ...credentials, groups: [] }), '--', kill, '-s', signal.replace(/^SIG/, ''), String(pid)], { stdio: 'ignore' });
    helper.on('error', () => {});
    helper.unref();
  };
}
