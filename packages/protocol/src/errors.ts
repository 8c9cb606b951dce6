/**
 * The error registry: every coded error of every package, in this one module.
 *
 * One class per code, the code as a literal type, the original error as `cause` (the
 * shape of undici `lib/core/errors.js` and fastify `lib/errors.js`). {@link ERRORS} maps
 * each code to its class, the source files that throw it and what it means; every code
 * has a row in `docs/errors.md` (what it means, how to fix it), and a unit test holds the
 * registry, the sources and that table equal, both ways.
 *
 * A package that throws one of these imports it from `@emperor/protocol` (the packages
 * that used to define them re-export theirs, so old imports keep working). A new code is
 * a class here, an entry in {@link ERRORS} and a row in docs/errors.md.
 */
import { clip, describeLocation, quote } from './text.js';

/** Options accepted by every {@link EmperorError} subclass. */
export interface EmperorErrorOptions {
  /** The lower-level error this one explains. */
  readonly cause?: unknown;
}

/**
 * Base class of every error this project throws on purpose. Code that catches errors
 * can tell ours from a bug with `err instanceof EmperorError` and switch on `err.code`.
 */
export abstract class EmperorError extends Error {
  /** Stable machine-readable code, e.g. `ERR_CONFIG_VALUE`; a key of {@link ERRORS}, documented in docs/errors.md. */
  abstract readonly code: string;

  constructor(message: string, options?: EmperorErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }
}

/** True when `err` is one of our coded errors (any package). */
export function isEmperorError(err: unknown): err is EmperorError {
  return err instanceof EmperorError;
}

// --- every package -----------------------------------------------------------------

/**
 * A bug in Emperor's own code, never a problem in a config file: an invariant failed, or
 * a function was called against its contract (an option name the option table does not
 * have, no vassal file to resolve). The message says which. Node's `ERR_INTERNAL_ASSERTION`
 * plays the same part.
 */
export class InternalError extends EmperorError {
  readonly code = 'ERR_INTERNAL' as const;
}

// --- @emperor/config: files to typed config ----------------------------------------

/** Where a config read or parse error happened. */
export interface ConfigErrorLocation {
  /** The file as given to the loader (not made absolute). */
  readonly file: string;
  /** 1-based line; 0 when unknown or not about one line. */
  readonly line: number;
}

/**
 * Base of the three config errors: each names the file as given and the 1-based line
 * (0 when unknown), and its message is `file:line: problem` on one line:
 *
 *   emperor.d/shop.ini:7: harakiri: expected whole seconds >= 0, got "ten"
 */
export abstract class ConfigError extends EmperorError {
  readonly file: string;
  readonly line: number;

  /** `problem` is the sentence after `file:line: `. */
  constructor(where: ConfigErrorLocation, problem: string, options?: EmperorErrorOptions) {
    super(`${describeLocation(where.file, where.line)}: ${problem}`, options);
    this.file = where.file;
    this.line = where.line;
  }
}

/**
 * `ERR_CONFIG_READ`: the file could not be turned into text. Missing, unreadable
 * (EACCES), not a regular file, a symlink loop (ELOOP), larger than 1 MiB, not valid
 * UTF-8, or containing a NUL byte (a binary file). Problem example: `cannot read: permission denied`.
 */
export class ConfigReadError extends ConfigError {
  readonly code = 'ERR_CONFIG_READ' as const;
}

/**
 * `ERR_CONFIG_PARSE`: the text is not a config file we accept. Bad XML or JSON, a root
 * element other than `<uwsgi>`, JSON without an object `uwsgi`, a nested element or
 * object where a value belongs, an XML entity declaration (refused outright, so an
 * entity-expansion bomb cannot even start), or an unsupported extension such as `.yaml`.
 * Problem example: `<processes> is not closed (</uwsgi> on line 5 comes first)`.
 */
export class ConfigParseError extends ConfigError {
  readonly code = 'ERR_CONFIG_PARSE' as const;
}

/** What a {@link ConfigValueError} is about. */
export interface ConfigValueErrorInit extends ConfigErrorLocation {
  /** The option (as written) whose value is wrong, or the option that is missing. */
  readonly option: string;
  /** The offending value after placeholder passes; `undefined` when the option is missing. */
  readonly value: string | undefined;
  /** What would have been accepted, e.g. `whole seconds >= 0`. */
  readonly expected: string;
  /** The sentence after the subject; defaults to `expected <expected>`. */
  readonly problem?: string;
  /** What the message names before the problem; defaults to `option` (`no app` for a missing app). */
  readonly subject?: string;
}

/**
 * `ERR_CONFIG_VALUE`: the file parsed but a value cannot be accepted: a bad value for a
 * known option, a missing socket or app, a contradiction (`cheaper` >= `processes`,
 * `module` with `wsgi-file`), a bad placeholder (`%(x)` of an option never set, a cycle,
 * `@(...)`, an unknown `%x`), or, with `strict = true`, an unknown option.
 *
 * The message is `file:line: option: expected ..., got "value"` with the value quoted and
 * cut to about 60 characters.
 */
export class ConfigValueError extends ConfigError {
  readonly code = 'ERR_CONFIG_VALUE' as const;
  readonly option: string;
  readonly value: string | undefined;
  readonly expected: string;

  constructor(init: ConfigValueErrorInit, options?: EmperorErrorOptions) {
    const problem = init.problem ?? `expected ${init.expected}`;
    const got = init.value === undefined ? '' : `, got ${quote(init.value)}`;
    // The option name comes from the file too: clip it like any other untrusted text.
    super(init, `${init.subject ?? clip(init.option)}: ${problem}${got}`, options);
    this.option = init.option;
    this.value = init.value;
    this.expected = init.expected;
  }
}

/**
 * `npm run docs` was asked to fill the generated part of a page that lacks its
 * `<!-- generated:NAME ... -->` / `<!-- end generated:NAME -->` markers.
 */
export class DocsMarkersError extends EmperorError {
  readonly code = 'ERR_DOCS_MARKERS' as const;
}

// --- @emperor/emperor and the vassal master: who runs a vassal -----------------------

/**
 * Tyrant mode (`emperor-tyrant`) refused a vassal: its file is owned by uid 0 or gid 0,
 * the emperor cannot run it as the file's owner, or the vassal asks for a `uid`/`gid`
 * other than its file's owner. uWSGI core/emperor.c logs "invalid permissions" for the
 * first and fails a later `setgid()` for the last.
 */
export class TyrantError extends EmperorError {
  readonly code = 'ERR_TYRANT' as const;
}

/**
 * A database vassal source (`emperor = pg://...`) cannot read its vassals: the database
 * is unreachable or refuses the connection (logged once per outage; retried with a
 * growing delay), the query fails or returns too few columns (logged once per distinct
 * error), or the connection settings cannot be used. The vassals it started keep running
 * as they are: an error is never read as "every row deleted".
 */
export class VassalSourceError extends EmperorError {
  readonly code = 'ERR_VASSAL_SOURCE' as const;
}

/**
 * A row of a database vassal source cannot be a vassal: its name is not a vassal file
 * name, another row has the same name, or (tyrant mode) its uid/gid is not a number.
 * Logged once per row and problem; the row is left out, and a running vassal whose row
 * went bad keeps its previous row.
 */
export class VassalRowError extends EmperorError {
  readonly code = 'ERR_VASSAL_ROW' as const;
}

/**
 * A `uid`/`gid` cannot be used: no such user or group, switching needs root (or, for an
 * emperor that dropped to a user of its own, the setuid and setgid capabilities), the
 * switch itself failed, a capability of the emperor's `cap` is outside its bounding set,
 * or the vassal's user cannot read Emperor's worker code, enter `chdir` or read the app;
 * or a `pg://` row's file cannot be given to its master's user (no root, no CAP_CHOWN).
 */
export class PrivilegeError extends EmperorError {
  readonly code = 'ERR_PRIVILEGE' as const;
}

// --- the vassal master: sockets and workers -----------------------------------------

/** A vassal socket, a stats socket the emperor binds before dropping privileges, or an on-demand vassal's socket cannot be bound: the message names the address and the reason. */
export class SocketBindError extends EmperorError {
  readonly code = 'ERR_SOCKET_BIND' as const;
}

/**
 * A socket of the worker spec cannot be served: no protocol module of this Node worker
 * has its protocol name (a master and a worker from different builds), or the app's
 * server cannot be served over that protocol (the uwsgi protocol hands its connections
 * to an `http.Server`; an app that made an `https.Server` or a bare `net.Server` cannot
 * be served on a uwsgi socket). The entry exits with `ExitCode.APP_LOAD` (22).
 */
export class WorkerProtocolError extends EmperorError {
  readonly code = 'ERR_WORKER_PROTOCOL' as const;
}

/**
 * A worker could not `listen()` on a socket its master bound: two vassals bound the same
 * port before either listened, and the second one's workers lose here (libuv reports
 * `EADDRINUSE` at `listen()`, not at bind; docs/architecture.md "The gap at start"). The
 * entry exits with `ExitCode.UNAVAILABLE` (69) and the master respawns it with backoff.
 */
export class SocketListenError extends EmperorError {
  readonly code = 'ERR_SOCKET_LISTEN' as const;
  /** The socket's address as configured. */
  readonly socket: string;
  /** The system error code (`EADDRINUSE`, ...), when there is one. */
  readonly errno: string | undefined;

  /** @param cause the error `listen()` emitted */
  constructor(socket: string, cause: Error) {
    super(`cannot listen on ${socket}: ${cause.message}`, { cause });
    this.socket = socket;
    this.errno = (cause as NodeJS.ErrnoException).code;
  }
}

/** A Python vassal has no usable interpreter: missing, not runnable by the vassal's user, or too old. */
export class PythonInterpreterError extends EmperorError {
  readonly code = 'ERR_PYTHON_INTERPRETER' as const;
}

/** A limit (`limit-as`, `cpu-affinity`) is requested but the util-linux wrapper that applies it is not installed. */
export class MissingToolError extends EmperorError {
  readonly code = 'ERR_MISSING_TOOL' as const;
}

/** A `master-fifo` cannot be made: its directory is missing or not writable by the vassal's user, or mkfifo failed. */
export class MasterFifoError extends EmperorError {
  readonly code = 'ERR_MASTER_FIFO' as const;
}

/** A worker program found no worker spec it can read: it was not started by a vassal master, or by one of another build. */
export class WorkerSpecError extends EmperorError {
  readonly code = 'ERR_WORKER_SPEC' as const;
}

/** A Node app module loaded but offers nothing we can serve. */
export class AppShapeError extends EmperorError {
  readonly code = 'ERR_APP_SHAPE' as const;
}

// --- between processes, and the stats clients ---------------------------------------

/** A received IPC message is not one we know (see ipc.ts). */
/**
 * A preloaded Python app's template process could not fork a worker (`fork()` or
 * `socketpair()` failed: EAGAIN at the process limit, ENOMEM). That worker is not started.
 */
export class AppTemplateError extends EmperorError {
  readonly code = 'ERR_APP_TEMPLATE' as const;
}

export class IpcMessageError extends EmperorError {
  readonly code = 'ERR_IPC_MESSAGE' as const;
}

/**
 * The emperor's runtime directory cannot hold its control socket safely (it cannot be
 * created, belongs to another user, or others can write it): the emperor runs without
 * handover, and its vassals stop with it.
 */
export class RuntimeDirError extends EmperorError {
  readonly code = 'ERR_RUNTIME_DIR' as const;
}

/**
 * A peer on the control channel failed to prove it holds a vassal's lease (an emperor
 * refusing a would-be master, or a master refusing a would-be emperor): refused, logged.
 */
export class ControlAuthError extends EmperorError {
  readonly code = 'ERR_CONTROL_AUTH' as const;
}

/**
 * `emperor upgrade` failed: the emperor refused (no handover, behind a privilege-drop
 * launcher, already stopping) or the new emperor did not come up; the old one keeps
 * running and serving. Also the command's own failures (no runtime directory, no key).
 */
export class UpgradeError extends EmperorError {
  readonly code = 'ERR_UPGRADE' as const;
}

/** A stats server cannot be reached, does not answer in time, or sends something that is not JSON. */
export class StatsReadError extends EmperorError {
  readonly code = 'ERR_STATS_READ' as const;
}

/** A stats document is neither a vassal's (`workers`) nor an emperor's (`vassals`). */
export class StatsShapeError extends EmperorError {
  readonly code = 'ERR_STATS_SHAPE' as const;
}

// --- the emperor command line ---------------------------------------------------------

/**
 * The `emperor` command line is wrong: an unknown command (with the one it looks like:
 * `unknown command "stat"; did you mean stats?`), a command without its argument, a flag
 * without its value. Printed as one plain line on stderr; the command exits 2.
 */
export class UsageError extends EmperorError {
  readonly code = 'ERR_USAGE' as const;
}

// --- the registry ---------------------------------------------------------------------

/** A class whose instances carry the code `C` (any constructor parameters). */
export type ErrorClass<C extends string = string> = abstract new (...args: never[]) => EmperorError & { readonly code: C };

/** What the registry records about one code. */
export interface ErrorInfo<C extends string = string> {
  /** The one class thrown with this code. */
  readonly errorClass: ErrorClass<C>;
  /**
   * The source files that construct it, relative to the repository root (a helper such
   * as config's `invalid()` counts where it is defined, not where it is called).
   */
  readonly thrownFrom: readonly string[];
  /** What it means, in one sentence; docs/errors.md has the full story and the fix. */
  readonly meaning: string;
}

/** Checks at compile time that each entry's class carries the entry's own code. */
function registry<const R extends { readonly [C in keyof R & string]: ErrorInfo<C> }>(entries: R): R {
  return entries;
}

/** Every error code, in the order of docs/errors.md. */
export const ERRORS = registry({
  ERR_CONFIG_READ: {
    errorClass: ConfigReadError,
    thrownFrom: ['packages/config/src/read.ts'],
    meaning: 'A config file could not be read as UTF-8 text of at most 1 MiB.',
  },
  ERR_CONFIG_PARSE: {
    errorClass: ConfigParseError,
    thrownFrom: ['packages/config/src/file-name.ts', 'packages/config/src/read-ini.ts', 'packages/config/src/read-json.ts', 'packages/config/src/read-xml.ts'],
    meaning: 'The text is not an INI, XML or JSON config file Emperor accepts.',
  },
  ERR_CONFIG_VALUE: {
    errorClass: ConfigValueError,
    thrownFrom: ['packages/cli/src/check-app.ts', 'packages/config/src/emperor-config.ts', 'packages/config/src/values.ts', 'packages/config/src/vassal-config.ts'],
    meaning: 'A config file parsed, but a value, a placeholder or a combination of options cannot be accepted.',
  },
  ERR_SOCKET_BIND: {
    errorClass: SocketBindError,
    thrownFrom: ['packages/emperor/src/on-demand.ts', 'packages/process/src/stats-server.ts', 'packages/vassal/src/master/cheap-watch.ts', 'packages/vassal/src/master/sockets.ts'],
    meaning: 'The vassal master could not bind one of its sockets (or, with `cheap`, make it listen), or the emperor one of its stats sockets before dropping privileges, or an on-demand vassal\'s socket.',
  },
  ERR_PRIVILEGE: {
    errorClass: PrivilegeError,
    thrownFrom: [
      'packages/cli/src/privilege-drop.ts',
      'packages/emperor/src/pg-source.ts',
      'packages/emperor/src/privileges.ts',
      'packages/process/src/users.ts',
      'packages/vassal/src/master/app-access.ts',
      'packages/vassal/src/master/users.ts',
      'packages/vassal/src/master/worker-code.ts',
    ],
    meaning: 'A uid/gid (a vassal\'s or the emperor\'s own) or a capability of cap cannot be had, or the vassal\'s user cannot read Emperor\'s worker code or the app.',
  },
  ERR_TYRANT: {
    errorClass: TyrantError,
    thrownFrom: ['packages/emperor/src/tyrant.ts', 'packages/vassal/src/master/users.ts'],
    meaning: 'Tyrant mode refused a vassal: its file\'s owner, or a uid/gid other than that owner.',
  },
  ERR_VASSAL_SOURCE: {
    errorClass: VassalSourceError,
    thrownFrom: ['packages/emperor/src/pg-connection.ts', 'packages/emperor/src/pg-source.ts'],
    meaning: 'A database vassal source cannot read its vassals; the ones it started keep running.',
  },
  ERR_VASSAL_ROW: {
    errorClass: VassalRowError,
    thrownFrom: ['packages/emperor/src/pg-source.ts'],
    meaning: 'A row of a database vassal source cannot be a vassal: its name, a duplicate, or its uid/gid.',
  },
  ERR_PYTHON_INTERPRETER: {
    errorClass: PythonInterpreterError,
    thrownFrom: ['packages/vassal/src/master/python-interpreter.ts'],
    meaning: 'A Python vassal has no usable Python 3.9+ interpreter.',
  },
  ERR_MISSING_TOOL: {
    errorClass: MissingToolError,
    thrownFrom: ['packages/cli/src/privilege-drop.ts', 'packages/process/src/child.ts'],
    meaning: 'limit-as, cpu-affinity or a privilege drop needs prlimit, taskset or setpriv, which is not installed.',
  },
  ERR_MASTER_FIFO: {
    errorClass: MasterFifoError,
    thrownFrom: ['packages/vassal/src/master/master-fifo.ts'],
    meaning: 'A master-fifo path cannot be made into a FIFO; the vassal runs without it.',
  },
  ERR_WORKER_SPEC: {
    errorClass: WorkerSpecError,
    thrownFrom: ['packages/vassal/src/shared/worker-spec.ts'],
    meaning: 'A worker program was started without a readable EMPEROR_WORKER spec.',
  },
  ERR_APP_SHAPE: {
    errorClass: AppShapeError,
    thrownFrom: ['packages/vassal/src/worker/node/app-loader.ts'],
    meaning: 'A Node module loaded but exports nothing to serve and never called listen().',
  },
  ERR_SOCKET_LISTEN: {
    errorClass: SocketListenError,
    thrownFrom: ['packages/vassal/src/worker/node/protocols/index.ts'],
    meaning: 'A Node worker could not listen() on a socket its master bound.',
  },
  ERR_WORKER_PROTOCOL: {
    errorClass: WorkerProtocolError,
    thrownFrom: ['packages/vassal/src/worker/node/protocols/fastcgi.ts', 'packages/vassal/src/worker/node/protocols/index.ts', 'packages/vassal/src/worker/node/protocols/uwsgi.ts'],
    meaning: 'A Node worker cannot serve one of its sockets over the protocol the spec names.',
  },
  ERR_IPC_MESSAGE: {
    errorClass: IpcMessageError,
    thrownFrom: ['packages/protocol/src/ipc.ts', 'packages/protocol/src/control.ts'],
    meaning: 'A process received a control message it does not understand.',
  },
  ERR_RUNTIME_DIR: {
    errorClass: RuntimeDirError,
    thrownFrom: ['packages/emperor/src/leases.ts', 'packages/emperor/src/control-server.ts', 'packages/emperor/src/row-files.ts'],
    meaning: 'The emperor runtime directory cannot hold its control socket safely; no handover.',
  },
  ERR_CONTROL_AUTH: {
    errorClass: ControlAuthError,
    thrownFrom: ['packages/emperor/src/control-server.ts'],
    meaning: 'A peer on the control channel failed to prove it holds a vassal lease.',
  },
  ERR_UPGRADE: {
    errorClass: UpgradeError,
    thrownFrom: ['packages/emperor/src/emperor.ts', 'packages/emperor/src/handover.ts', 'packages/emperor/src/upgrade.ts', 'packages/cli/src/upgrade.ts'],
    meaning: 'An emperor upgrade was refused or failed; the old emperor keeps running.',
  },
  ERR_STATS_READ: {
    errorClass: StatsReadError,
    thrownFrom: ['packages/protocol/src/stats-client.ts'],
    meaning: 'A stats socket could not be read, timed out, or did not answer JSON.',
  },
  ERR_APP_TEMPLATE: {
    errorClass: AppTemplateError,
    thrownFrom: ['packages/vassal/src/master/runtimes/python-fork.ts'],
    meaning: 'A preloaded Python app\'s template process could not fork a worker (fork() or socketpair() failed).',
  },
  ERR_STATS_SHAPE: {
    errorClass: StatsShapeError,
    thrownFrom: ['packages/cli/src/top/model.ts'],
    meaning: 'A stats socket answered JSON that is neither a vassal\'s nor an emperor\'s stats document.',
  },
  ERR_USAGE: {
    errorClass: UsageError,
    thrownFrom: ['packages/cli/src/main.ts'],
    meaning: 'The emperor command line is wrong: an unknown command, a missing argument or flag value.',
  },
  ERR_DOCS_MARKERS: {
    errorClass: DocsMarkersError,
    thrownFrom: ['packages/config/src/reference-docs.ts'],
    meaning: 'npm run docs found a page without the markers around its generated part.',
  },
  ERR_INTERNAL: {
    errorClass: InternalError,
    thrownFrom: ['packages/cli/src/privilege-drop.ts', 'packages/config/src/option-reader.ts', 'packages/config/src/resolve.ts', 'packages/emperor/src/pg-source.ts', 'packages/emperor/src/source.ts', 'packages/vassal/src/worker/node/protocols/fastcgi-records.ts'],
    meaning: 'A bug in Emperor: an invariant failed or a function was called against its contract.',
  },
});

/** Every code Emperor throws: the keys of {@link ERRORS}. */
export type ErrorCode = keyof typeof ERRORS;
