/**
 * The Node worker's coded errors (one class per code, as in packages/protocol/src/errors.ts;
 * each code has a row in docs/errors.md). Library modules throw them; only the worker's
 * entry (worker-main.ts) turns them into a log line and an exit code.
 */
import { EmperorError } from '@emperor/protocol';

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
