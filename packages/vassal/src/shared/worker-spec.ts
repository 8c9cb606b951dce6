/**
 * What a master tells a worker at spawn, in the environment variable
 * `EMPEROR_WORKER` (JSON, removed from the app's environment by the worker before the
 * app loads). Both runtimes (Node and Python) read it; change them together.
 */
import type { SocketProtocol, VassalConfig } from '@emperor/config';
import { WORKER_SPEC_VERSION, WorkerSpecError } from '@emperor/protocol';
import type { RequestLogSpec } from './request-log.js';

/** Version of the spec (defined with the other cross-language contracts in packages/protocol); a worker refuses any other. */
export { WORKER_SPEC_VERSION };

/** Name of the environment variable carrying the {@link WorkerSpec}. */
export const WORKER_SPEC_ENV = 'EMPEROR_WORKER';

/** One inherited listening socket. */
export interface WorkerSocket {
  /** The fd in the worker: 3, 4, … in config order. */
  readonly fd: number;
  /** The address as configured (for logs). */
  readonly name: string;
  readonly protocol: SocketProtocol;
}

/** The app a Node worker loads. */
export interface NodeApp {
  readonly runtime: 'node';
  /** Absolute path of the module. */
  readonly module: string;
}

/** The app a Python worker loads (uWSGI's python plugin options). */
export interface PythonApp {
  readonly runtime: 'python';
  /** Dotted module, optionally `module:callable`. */
  readonly module: string | undefined;
  /** Absolute path of a Python file. */
  readonly wsgiFile: string | undefined;
  readonly callable: string;
  /**
   * `asgi` was set: serve the app as ASGI (docs/asgi.md). False: as ASGI when its
   * callable is an `async def` (or has one as `__call__`), else as WSGI.
   */
  readonly asgi: boolean;
  /** `async`: connections an ASGI worker holds at once (each one request or WebSocket session at a time). */
  readonly asyncLimit: number;
  /** `websockets-max-size` in bytes: the largest WebSocket message an ASGI worker accepts. */
  readonly websocketsMaxBytes: number;
  readonly pythonpath: readonly string[];
  readonly home: string | undefined;
  /**
   * `lazy-apps`: true when each worker imports the app itself; false when a template
   * process imports it once and forks the workers (uWSGI's default).
   */
  readonly lazy: boolean;
  /** For the `uwsgi` module apps import: `numproc` (`processes`). */
  readonly processes: number;
  /** For the `uwsgi` module: `masterpid()`, the vassal master's pid. */
  readonly masterPid: number;
  /** For the `uwsgi` module: `opt`, the vassal's options as resolved, `[name, value]` in file order. */
  readonly options: readonly (readonly [string, string])[];
}

/** Everything a worker needs to run. Durations in milliseconds, sizes in bytes. */
export interface WorkerSpec {
  readonly v: typeof WORKER_SPEC_VERSION;
  /** The vassal's name (file name), for logs. */
  readonly vassal: string;
  /** Worker id, 1-based, stable across respawns. */
  readonly id: number;
  /** Reload generation this process belongs to. */
  readonly generation: number;
  /** The inherited scoreboard fd and this process's slot in it. */
  readonly scoreboard: { readonly fd: number; readonly index: number };
  readonly sockets: readonly WorkerSocket[];
  /** Listen backlog (`listen`). */
  readonly backlog: number;
  /** `buffer-size`: bytes. */
  readonly bufferSize: number;
  /** `threads`: Python requests served at once, one per thread (1: the worker's own thread only). */
  readonly threads: number;
  /** `socket-timeout` in ms: a client read or write (Python), a whole uwsgi packet (Node). */
  readonly socketTimeoutMs: number;
  /** `no-defer-accept`: the Python worker leaves `TCP_DEFER_ACCEPT` off its uwsgi TCP listeners. */
  readonly noDeferAccept?: boolean;
  /** `harakiri` in ms; 0 = off. */
  readonly harakiriMs: number;
  readonly harakiriVerbose: boolean;
  /** How often the worker writes its slot (and so its heartbeat), ms. */
  readonly heartbeatIntervalMs: number;
  /**
   * Requests after which the worker asks to be recycled (`max-requests` plus this
   * worker's `max-requests-delta` share, already added by the master); 0 = off.
   * Checked after each request, and only once the worker has lived
   * `minWorkerLifetimeMs` (uWSGI core/utils.c semantics): then it sends
   * `{type:'recycle', reason:'max-requests'}` once and stops accepting new connections.
   */
  readonly maxRequests: number;
  /** `min-worker-lifetime` in ms: gates `maxRequests`. */
  readonly minWorkerLifetimeMs: number;
  /**
   * With `harakiri-verbose`: a file (absolute path, mode 0600) where the worker writes
   * its stack when the master asks, just before a harakiri kill. Python: register
   * `faulthandler` for SIGUSR2 on this file (all threads). Node: a watchdog thread
   * writes the main thread's stack. The master reads and logs it. Undefined otherwise.
   */
  readonly stackFile: string | undefined;
  /** Node workers with `stackFile`: the fd of the pipe the master writes a byte to when it wants the stack. */
  readonly stackPipeFd: number | undefined;
  /** Which requests to log and how (uWSGI's default line, `log-format`, or JSON). */
  readonly requestLog: RequestLogSpec;
  /**
   * `logto`: the file the worker's lines go to (absolute). Its stdout and stderr already
   * are that file; on `{type:'reopen-logs'}` it opens the path again, after logrotate.
   */
  readonly logto: string | undefined;
  readonly app: NodeApp | PythonApp;
  /** `mount` and `manage-script-name`: how the request's path is split for the app. */
  readonly mount: MountSpec;
  /** What a FastCGI socket answers to `FCGI_GET_VALUES`. */
  readonly fastcgi: FastcgiValues;
}

/** `mount` and `manage-script-name` (uWSGI core/protocol.c), for every protocol. */
export interface MountSpec {
  /** The mountpoint without a trailing slash; "" for the root. */
  readonly mountpoint: string;
  /**
   * Python: SCRIPT_NAME becomes the mountpoint and PATH_INFO the rest of the path
   * (PATH_INFO, or SCRIPT_NAME when PATH_INFO is empty) when the path is under the
   * mountpoint. Node: the mountpoint is taken off the front of `req.url`.
   */
  readonly manageScriptName: boolean;
}

/**
 * The answers to FastCGI's `FCGI_GET_VALUES` (FastCGI 1.0 spec 4.1), the vassal's
 * capacity rather than one worker's: any worker may be asked. `FCGI_MPXS_CONNS` is
 * always 0 (no multiplexing).
 */
export interface FastcgiValues {
  /** `FCGI_MAX_CONNS`: connections the vassal keeps open at once. */
  readonly maxConns: number;
  /** `FCGI_MAX_REQS`: requests it serves at once. */
  readonly maxReqs: number;
}

/**
 * Open connections per worker that FastCGI reports: the Python worker's cap on its
 * connections (python/emperor_worker/server.py MAX_CONNECTIONS); a Node worker has no cap
 * and reports the same figure.
 */
export const FASTCGI_CONNS_PER_WORKER = 512;

/**
 * `FCGI_MAX_CONNS` and `FCGI_MAX_REQS` of a vassal: `processes` workers of
 * {@link FASTCGI_CONNS_PER_WORKER} connections each; a Python worker serves `threads`
 * requests at once, a Node worker as many as its connections.
 */
export function fastcgiValues(config: Pick<VassalConfig, 'processes' | 'threads' | 'runtime'>): FastcgiValues {
  const maxConns = config.processes * FASTCGI_CONNS_PER_WORKER;
  return { maxConns, maxReqs: config.runtime === 'python' ? config.processes * config.threads : maxConns };
}

/**
 * How often a worker writes its slot, ms: with `harakiri` (ms, 0 = off) an eighth of it,
 * between 50 and 250 ms, so a blocked event loop shows within `harakiri` plus one beat;
 * without, once a second while it has requests in flight.
 */
export function heartbeatIntervalMs(harakiriMs: number): number {
  return harakiriMs > 0 ? Math.min(250, Math.max(50, harakiriMs / 8)) : 1000;
}

/** Parses and checks the spec from the environment. @throws WorkerSpecError when it is missing, not JSON, or of another version. */
export function readWorkerSpec(env: NodeJS.ProcessEnv): WorkerSpec {
  const raw = env[WORKER_SPEC_ENV];
  if (raw === undefined) throw new WorkerSpecError(`${WORKER_SPEC_ENV} is not set: this program is started by a vassal master`);
  let spec: WorkerSpec;
  try {
    spec = JSON.parse(raw) as WorkerSpec;
  } catch (err) {
    throw new WorkerSpecError(`${WORKER_SPEC_ENV} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (spec.v !== WORKER_SPEC_VERSION) throw new WorkerSpecError(`${WORKER_SPEC_ENV}: unsupported version ${String(spec.v)}`);
  return spec;
}
