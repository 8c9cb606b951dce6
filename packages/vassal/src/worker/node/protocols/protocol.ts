/**
 * What a protocol module of the Node worker is: how connections accepted on an inherited
 * listening socket reach the app.
 *
 * Every protocol hands its requests to one server, the app's HTTP server (ours around
 * the app's request listener, or the server the app created itself): `http-socket` lets
 * that server accept and parse, the uwsgi protocol turns its packet into an HTTP head and
 * hands the connection over (`emit('connection')`), and FastCGI hands over each request
 * as a connection of its own (a Duplex between its records and Node's HTTP). So every app shape is served by Node's own HTTP machinery, and the
 * worker's accounting (slot, request log, harakiri, max-requests) hangs on that server's
 * `request` event, the same for every protocol.
 *
 * A module is chosen by the socket's protocol name in the worker spec (protocols/index.ts).
 * Shapes after vitest's `PoolWorker` (one small interface, implementations chosen by
 * name); parsers stay sans-IO in their own files (h11's `_readers.py` apart from its
 * connection), so they are tested without a socket.
 */
import net from 'node:net';
import type { Logger } from '@emperor/process/logger';
import type { FastcgiValues, WorkerSocket } from '../../../shared/worker-spec.js';

/** What a protocol module is given about the worker, besides its sockets. */
export interface ProtocolOptions {
  /** `buffer-size`, bytes: the largest request block (uwsgi vars, FastCGI params) accepted. */
  readonly bufferSize: number;
  /** What FastCGI answers to `FCGI_GET_VALUES` (the vassal's capacity). */
  readonly fastcgi: FastcgiValues;
  /** `socket-timeout`, ms: how long a client may take to send a whole request block. */
  readonly socketTimeoutMs: number;
  /** For the one warning line per refused connection; the worker keeps serving. */
  readonly logger: Logger;
}

/**
 * What the worker reads from a request's socket (`req.socket`) for its slot and its
 * request log, typed where it is read. A protocol whose connections are not the
 * client's own (uwsgi and FastCGI behind a front end) makes the socket it hands over
 * say what the client did:
 * - `remoteAddress`, `remotePort`, `remoteFamily`: the client (uwsgi's `REMOTE_ADDR`,
 *   `REMOTE_PORT`), not the front end;
 * - `encrypted`: true when the client used TLS (`HTTPS=on`), for `req.protocol` in
 *   Express and Koa;
 * - `bytesWritten`: the bytes of HTTP response the app's server wrote on it so far,
 *   heads included (the request's share is the difference from its start).
 */
export interface RequestSocketFacts {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly remoteFamily?: string | undefined;
  readonly encrypted?: boolean;
  readonly bytesWritten: number;
}

/** One listening socket as a protocol serves it. */
export interface ProtocolServer {
  readonly socket: WorkerSocket;
  /**
   * What listens on the socket's inherited fd; the caller calls the real `listen()` on
   * it with `{ fd, backlog }` (protocols/index.ts). It may be the app's server itself.
   */
  readonly server: net.Server;
  /**
   * Graceful stop: stops accepting on this socket (the listening socket lives on in the
   * master) and resolves once every connection accepted on it has ended. Requests in
   * flight finish; the worker has already asked their responses to close the
   * connection. Called once; never rejects.
   */
  close(): Promise<void>;
}

/** A protocol module: `http` (`http-socket`), `uwsgi` (`socket`, `uwsgi-socket`), `fastcgi` (`fastcgi-socket`). */
export interface Protocol {
  /** The protocol's name in the worker spec (`WorkerSocket.protocol`). */
  readonly name: string;
  /**
   * Serves `sockets` (every socket of this protocol, in config order) into `app`, the
   * one server all protocols feed: checks that `app` can be served this way, installs
   * the per-request hooks the protocol needs on it (uwsgi: responses neither chunked nor
   * kept alive), and returns one server per socket, not listening yet. Called once per
   * worker, after the worker's own `request` listener is on `app`.
   * @throws WorkerProtocolError when `app` cannot be served over this protocol
   */
  serve(app: net.Server, sockets: readonly WorkerSocket[], options: ProtocolOptions): readonly ProtocolServer[];
}

/**
 * `net.Server#close` on `server`, resolved once its last connection has ended. Not
 * `http.Server#close`, which also drops idle keep-alive connections at once (Node >= 19),
 * racing a client that is sending on them: that is how reloads lose keep-alive requests.
 */
export function closeGracefully(server: net.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    // Its callback gets ERR_SERVER_NOT_RUNNING when the server never listened: done too.
    net.Server.prototype.close.call(server, () => resolve());
  });
}
