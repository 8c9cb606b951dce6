/**
 * Control messages between the three tiers.
 *
 * Emperor ⇄ vassal master and master ⇄ worker talk over one Node IPC channel per child
 * (newline-delimited JSON, so the Python worker speaks it too). Messages are a
 * versioned, discriminated union, parsed on receipt by a function that throws a coded
 * error; nothing here is sent per request (state flows through the scoreboard).
 * The meanings follow uWSGI's emperor pipe bytes (docs EmperorProtocol.rst,
 * core/emperor.c): 0 stop, 1 reload, 1/5/17/26 spawned/accepting/loyal/heartbeat.
 */
import { IpcMessageError } from './errors.js';

/** Version stamped on every message; a receiver refuses any other. */
export const IPC_VERSION = 1;

/** Emperor → vassal master. */
export type EmperorToMaster =
  /** Reload every worker gracefully, re-reading the vassal file (uWSGI byte 1). */
  | { readonly v: 1; readonly type: 'reload' }
  /** Stop gracefully: in-flight requests finish within the mercy, then exit 0 (uWSGI byte 2). */
  | { readonly v: 1; readonly type: 'stop' }
  /** Reopen the `logto` file (the emperor got SIGUSR2, e.g. from logrotate); the master tells its workers. */
  | { readonly v: 1; readonly type: 'reopen-logs' };

/** Vassal master → emperor. */
export type MasterToEmperor =
  /** Every worker of the first generation is accepting (uWSGI byte 1, "spawned"). */
  | { readonly v: 1; readonly type: 'ready' }
  /** At least one worker is accepting connections (uWSGI byte 5). */
  | { readonly v: 1; readonly type: 'accepting' }
  /** The first request completed (uWSGI byte 17, "loyal"). */
  | { readonly v: 1; readonly type: 'loyal' }
  /** The master is alive; sent every `heartbeat` seconds (uWSGI byte 26). */
  | { readonly v: 1; readonly type: 'heartbeat' }
  /** A reload finished; `ok` is false when it was abandoned and the old workers kept serving. */
  | { readonly v: 1; readonly type: 'reloaded'; readonly ok: boolean }
  /**
   * The vassal's configuration is invalid; the master exits {@link ExitCode.CONFIG} right
   * after. `message` is the one line it logged (`file:line: option: reason`), `code` the
   * error's (`ERR_CONFIG_VALUE`, `ERR_TYRANT`, ...): the emperor's stats show it as the
   * vassal's `last_error`. Added within version 1: an emperor that predates it logs an
   * unknown message type and still sees the exit code, so the version did not change.
   */
  | { readonly v: 1; readonly type: 'config-error'; readonly code: string; readonly message: string }
  /**
   * Voluntary shutdown (uWSGI byte 22): `idle` with `die-on-idle` found no request for
   * that long; the master exits 0 right after. An on-demand vassal's master sends the
   * listening socket it got on fd 0 back with it (as the message's handle), so the
   * emperor waits on it again with no moment where a connection is refused. Added within
   * version 1: an older emperor logs an unknown message type and sees an exit 0.
   */
  | { readonly v: 1; readonly type: 'idle' };

/** Vassal master → worker. */
export type MasterToWorker =
  /** Stop accepting, finish in-flight requests, exit 0. The master SIGKILLs after the mercy. */
  | { readonly v: 1; readonly type: 'stop' }
  /**
   * Reopen the `logto` file by its path, after the master reopened its own (SIGUSR2 or
   * `touch-logreopen`). A message, not a signal: Python workers keep SIGUSR2 for
   * faulthandler's stack dumps.
   */
  | { readonly v: 1; readonly type: 'reopen-logs' }
  /**
   * Write your scoreboard slot now and answer `published`: a stats read waits (a bounded
   * few ms) for every serving worker's slot to show the requests it answered before the
   * read (issue 17). Added within version 1: a worker that predates it logs an unknown
   * message and the master uses the slot it has once its wait ends.
   */
  | { readonly v: 1; readonly type: 'publish' };

/** Why a worker asks to be replaced. */
export type RecycleReason = 'max-requests';

/** Worker → vassal master. */
export type WorkerToMaster =
  /** The app is loaded and the worker accepts on every inherited socket. */
  | { readonly v: 1; readonly type: 'ready' }
  /**
   * The worker reached a limit it checks itself (uWSGI checks `max-requests` in the
   * worker after each request). It has stopped accepting new connections and keeps
   * serving what it has; the master starts a replacement and then sends `stop`.
   */
  | { readonly v: 1; readonly type: 'recycle'; readonly reason: RecycleReason }
  /** The answer to `publish`: the slot was written after the `publish` came. */
  | { readonly v: 1; readonly type: 'published' };

/**
 * Vassal master → app template (a preloaded Python app that forks the workers, issue 17).
 * `id` is the master's name for one forked worker; the template answers every `fork`
 * with `forked` or `fork-failed`, and reports the worker's exit later.
 */
export type MasterToTemplate =
  /**
   * Fork one worker: `spec` is the whole worker spec (as `EMPEROR_WORKER`), `cpus` its
   * `cpu-affinity` CPUs (empty: as the template), `limitAsBytes` its RLIMIT_AS (0: none).
   */
  | { readonly v: 1; readonly type: 'fork'; readonly id: number; readonly spec: unknown; readonly cpus: readonly number[]; readonly limitAsBytes: number }
  /** Pass a {@link MasterToWorker} message to worker `id`. */
  | { readonly v: 1; readonly type: 'to-worker'; readonly id: number; readonly message: MasterToWorker }
  /** No worker will be forked from it any more: exit once its workers are gone. */
  | { readonly v: 1; readonly type: 'stop' };

/** App template → vassal master. */
export type TemplateToMaster =
  /** The app is imported (and the heap frozen): forks are served from now on. */
  | { readonly v: 1; readonly type: 'loaded' }
  /** Worker `id` runs as `pid`. */
  | { readonly v: 1; readonly type: 'forked'; readonly id: number; readonly pid: number }
  /** Worker `id` could not be forked (`reason`: the OS error). */
  | { readonly v: 1; readonly type: 'fork-failed'; readonly id: number; readonly reason: string }
  /** Worker `id` (`pid`) exited and was reaped: exactly one of `code` and `signal` is set. */
  | { readonly v: 1; readonly type: 'worker-exit'; readonly id: number; readonly pid: number; readonly code: number | null; readonly signal: string | null }
  /** A {@link WorkerToMaster} message from worker `id`, passed on as received (parsed by the master). */
  | { readonly v: 1; readonly type: 'from-worker'; readonly id: number; readonly message: unknown };

type Union = EmperorToMaster | MasterToEmperor | MasterToWorker | WorkerToMaster | MasterToTemplate | TemplateToMaster;

function parseWith<T extends Union>(
  raw: unknown,
  channel: string,
  types: Readonly<Record<T['type'], (m: Record<string, unknown>) => boolean>>,
): T {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new IpcMessageError(`${channel}: message is not an object: ${preview(raw)}`);
  }
  const m = raw as Record<string, unknown>;
  if (m.v !== IPC_VERSION) {
    throw new IpcMessageError(`${channel}: unsupported message version ${preview(m.v)} (expected ${IPC_VERSION})`);
  }
  const type = m.type;
  if (typeof type !== 'string' || !Object.hasOwn(types, type)) {
    throw new IpcMessageError(`${channel}: unknown message type ${preview(type)}`);
  }
  const check = types[type as T['type']];
  if (!check(m)) throw new IpcMessageError(`${channel}: malformed ${type} message: ${preview(raw)}`);
  return raw as T;
}

function preview(value: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(value) ?? String(value);
  } catch {
    s = String(value);
  }
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

const always = (): boolean => true;

/** Parses an emperor → master message. @throws IpcMessageError */
export function parseEmperorToMaster(raw: unknown): EmperorToMaster {
  return parseWith<EmperorToMaster>(raw, 'emperor→master', { reload: always, stop: always, 'reopen-logs': always });
}

/** Parses a master → emperor message. @throws IpcMessageError */
export function parseMasterToEmperor(raw: unknown): MasterToEmperor {
  return parseWith<MasterToEmperor>(raw, 'master→emperor', {
    ready: always,
    accepting: always,
    loyal: always,
    heartbeat: always,
    reloaded: (m) => typeof m.ok === 'boolean',
    'config-error': (m) => typeof m.code === 'string' && typeof m.message === 'string',
    idle: always,
  });
}

/** Parses a master → worker message. @throws IpcMessageError */
export function parseMasterToWorker(raw: unknown): MasterToWorker {
  return parseWith<MasterToWorker>(raw, 'master→worker', { stop: always, 'reopen-logs': always, publish: always });
}

/** Parses a worker → master message. @throws IpcMessageError */
export function parseWorkerToMaster(raw: unknown): WorkerToMaster {
  return parseWith<WorkerToMaster>(raw, 'worker→master', {
    ready: always,
    recycle: (m) => m.reason === 'max-requests',
    published: always,
  });
}

const isId = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) > 0;

/** Parses an app template → master message. @throws IpcMessageError */
export function parseTemplateToMaster(raw: unknown): TemplateToMaster {
  return parseWith<TemplateToMaster>(raw, 'template→master', {
    loaded: always,
    forked: (m) => isId(m.id) && isId(m.pid),
    'fork-failed': (m) => isId(m.id) && typeof m.reason === 'string',
    'worker-exit': (m) => isId(m.id) && isId(m.pid) && ((Number.isInteger(m.code) && m.signal === null) || (m.code === null && typeof m.signal === 'string')),
    'from-worker': (m) => isId(m.id) && Object.hasOwn(m, 'message'),
  });
}

/** Parses a master → app template message (the TypeScript side of the contract). @throws IpcMessageError */
export function parseMasterToTemplate(raw: unknown): MasterToTemplate {
  return parseWith<MasterToTemplate>(raw, 'master→template', {
    fork: (m) => isId(m.id) && typeof m.spec === 'object' && m.spec !== null && Array.isArray(m.cpus) && Number.isSafeInteger(m.limitAsBytes),
    'to-worker': (m) => {
      if (!isId(m.id)) return false;
      try {
        parseMasterToWorker(m.message);
        return true;
      } catch {
        return false;
      }
    },
    stop: always,
  });
}

/**
 * Process exit codes: those with a meaning between tiers (uWSGI uses 22 for "no app" and
 * 26 for "exile"; we use the sysexits.h values where one fits), and the `emperor` command's
 * own. Every exit of every process is one of these; no bare numbers.
 */
export const ExitCode = {
  /** Clean exit after a requested stop; a command that did what it was asked. */
  OK: 0,
  /**
   * A command failed (`emperor check` found an invalid file, `emperor stats`/`top` could
   * not read the socket) or the emperor could not start; the shell's plain failure.
   */
  FAILURE: 1,
  /** The command line is wrong (unknown command, bad flag value): what yargs and most CLIs exit with. */
  USAGE: 2,
  /** The vassal file is invalid: the emperor waits for the file to change instead of respawning. */
  CONFIG: 78,
  /** The worker could not load the app (module missing, import threw, syntax error). */
  APP_LOAD: 22,
  /** The vassal could not acquire a resource (busy port, bad uid): respawned with backoff. */
  UNAVAILABLE: 69,
} as const;

/** One of the {@link ExitCode} values. */
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
