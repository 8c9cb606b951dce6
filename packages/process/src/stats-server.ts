/**
 * Serving a stats document (vassal or emperor) the way uWSGI's stats server does:
 * write the JSON and close (uwsgitop reads until EOF), or answer HTTP with `stats-http`.
 * Also the Prometheus endpoint (`prometheus`, `emperor-prometheus`), and `GET /metrics`
 * on a `stats-http` server (as uWSGI PR #2754 proposes).
 */
import net from 'node:net';
import http from 'node:http';
import { lookup } from 'node:dns/promises';
import { chmodSync, chownSync, lstatSync, unlinkSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { SocketBindError } from '@emperor/protocol';
import type { MetricsSource } from './metrics.js';

/** Where to listen: the shape of `ListenAddress` in @emperor/config. */
export type StatsListenAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string; readonly abstract: boolean };

/** Serialises like uWSGI: tab-indented, or minified with `stats-minified`. */
export function renderStats(doc: unknown, minified: boolean): string {
  return minified ? JSON.stringify(doc) : `${JSON.stringify(doc, null, '\t')}\n`;
}

/** A running stats (or metrics) server; `close()` stops it and removes its unix socket. */
export interface StatsServer {
  /** `host:port` (the real port when 0 was asked for) or the socket path. */
  readonly address: string;
  close(): Promise<void>;
}

/** Options of {@link serveStats}. */
export interface ServeStatsOptions {
  /** `stats-http`: answer HTTP requests instead of writing the document on connect. */
  readonly http: boolean;
  /** Mode of a unix socket. @default 0o600 */
  readonly mode?: number | undefined;
  /** With `http`: also answer `GET /metrics` with these. */
  readonly metrics?: MetricsSource | undefined;
  /** Called when rendering the metrics fails (the scrape gets a 500). */
  readonly onError?: (err: Error) => void;
  /**
   * A socket already bound to `address` ({@link bindListenSocket}, by the process that
   * bound it before dropping privileges, and inherited): listen on it instead of binding.
   * Its mode and owner were set when it was bound.
   */
  readonly fd?: number | undefined;
}

/**
 * Serves `render()` (a string, or a promise of one) on `address`: each connection gets the document and is closed (what
 * uwsgitop expects), or with `http` set, each HTTP request gets it as
 * `application/json` (uWSGI `stats-http`). A unix socket is created with mode 0600
 * unless `mode` says otherwise, after removing a stale socket file (never another file).
 */
export function serveStats(address: StatsListenAddress, render: () => string | Promise<string>, options: ServeStatsOptions): Promise<StatsServer> {
  const metrics = options.metrics;
  const server: net.Server = options.http
    ? http.createServer((req, res) => {
        if (metrics !== undefined && pathOf(req) === '/metrics') {
          answerMetrics(metrics, req, res, options.onError);
          return;
        }
        void Promise.resolve(render()).then(
          (doc) => {
            res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*', connection: 'close' });
            res.end(doc);
          },
          (err: unknown) => {
            options.onError?.(err as Error);
            res.writeHead(500, { connection: 'close' });
            res.end();
          },
        );
      })
    : net.createServer((socket) => {
        socket.on('error', () => {});
        void Promise.resolve(render()).then((doc) => socket.end(doc), () => socket.destroy());
      });
  return listen(server, address, options.mode, options.fd);
}

/**
 * Serves Prometheus metrics over HTTP: `GET /metrics` is the exposition text, `GET /`
 * a one-line pointer to it, anything else 404.
 */
export function serveMetrics(
  address: StatsListenAddress,
  metrics: MetricsSource,
  options: { mode?: number | undefined; onError?: (err: Error) => void; fd?: number | undefined } = {},
): Promise<StatsServer> {
  const server = http.createServer((req, res) => {
    const path = pathOf(req);
    if (path === '/metrics') {
      answerMetrics(metrics, req, res, options.onError);
      return;
    }
    res.writeHead(path === '/' ? 200 : 404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(path === '/' ? 'Prometheus metrics are at /metrics\n' : 'not found; metrics are at /metrics\n');
  });
  return listen(server, address, options.mode, options.fd);
}

function pathOf(req: http.IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function answerMetrics(metrics: MetricsSource, req: http.IncomingMessage, res: http.ServerResponse, onError: ((err: Error) => void) | undefined): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  metrics.render().then(
    (text) => {
      res.writeHead(200, { 'content-type': metrics.contentType });
      res.end(req.method === 'HEAD' ? undefined : text);
    },
    (err: unknown) => {
      onError?.(err as Error);
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`cannot render metrics: ${(err as Error).message}\n`);
    },
  );
}

/** Listens on a TCP address or a unix socket (stale socket file removed first, then chmod), or on an inherited bound socket. */
async function listen(server: net.Server, address: StatsListenAddress, mode: number | undefined, fd: number | undefined): Promise<StatsServer> {
  let path: string | undefined;
  if (address.kind === 'unix') {
    path = address.abstract ? `\0${address.path}` : address.path;
    if (!address.abstract && fd === undefined) {
      try {
        if (lstatSync(path).isSocket()) unlinkSync(path);
      } catch {
        // nothing there
      }
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (fd !== undefined) {
      server.listen({ fd }, done);
      return;
    }
    if (path === undefined) {
      if (address.kind === 'tcp') server.listen(address.port, address.host, done);
      return;
    }
    // bind() makes the file with the umask's mode, and it accepts connections before a
    // chmod could narrow it: bind under a umask that leaves nothing wider than the final
    // mode (Node binds a unix socket synchronously in listen()). The chmod below then
    // sets the mode exactly.
    const previous = path.startsWith('\0') ? undefined : process.umask(0o777 & ~(mode ?? 0o600));
    try {
      server.listen(path, done);
    } finally {
      if (previous !== undefined) process.umask(previous);
    }
  });
  if (path !== undefined && !path.startsWith('\0') && fd === undefined) chmodSync(path, mode ?? 0o600);
  server.on('error', () => {});
  const shown = address.kind === 'tcp' ? `${address.host}:${(server.address() as net.AddressInfo).port}` : address.path;
  return {
    address: shown,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // An HTTP client's idle keep-alive connection would hold close() open.
        if (server instanceof http.Server) server.closeIdleConnections();
        if (path !== undefined && !path.startsWith('\0')) {
          try {
            unlinkSync(path);
          } catch {
            // gone
          }
        }
      }),
  };
}

interface BoundHandle {
  readonly fd: number;
  close(): void;
  getsockname?(out: { port?: number }): number;
}
type CreateServerHandle = (address: string | null, port: number, addressType: number, fd?: number, flags?: number) => BoundHandle | number;
// Not in @types/node; stable since Node 0.x because cluster relies on it (the vassal master binds its sockets the same way).
const createServerHandle = (net as unknown as { _createServerHandle: CreateServerHandle })._createServerHandle;

/** Handles bound for another process: kept referenced and never closed (closing a unix one would unlink its file). */
const handedOver: BoundHandle[] = [];

/** Options of {@link bindListenSocket}. */
export interface BindListenSocketOptions {
  /** Mode of a unix socket file. @default 0o600 */
  readonly mode?: number | undefined;
  /** Owner given to a unix socket file, so the process that serves it after a privilege drop can remove it at exit. */
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
}

/** A socket bound by {@link bindListenSocket}. */
export interface BoundListenSocket {
  readonly fd: number;
  /** Why the unix socket file could not be given to `uid`/`gid` (no CAP_CHOWN); it is root's then. */
  readonly ownerWarning: string | undefined;
}

/**
 * Binds `address` without listening, for a stats or metrics server another process will
 * serve on the inherited descriptor ({@link ServeStatsOptions.fd}): the emperor binds
 * what needs root (a socket in a root-owned directory, a port below 1024), then starts
 * its unprivileged self with the descriptors. Nothing accepts on it here. A stale unix
 * socket file is removed first (never another kind of file); the file gets `mode`, and
 * the owner asked for when this process may chown. The handle stays open for this
 * process's life.
 * @throws SocketBindError naming the address and the reason (address in use, permission, no such directory)
 */
export async function bindListenSocket(address: StatsListenAddress, options: BindListenSocketOptions = {}): Promise<BoundListenSocket> {
  const shown = address.kind === 'tcp' ? `${address.host}:${address.port}` : address.abstract ? `@${address.path}` : address.path;
  let handle: BoundHandle | number;
  let path: string | undefined;
  if (address.kind === 'tcp') {
    let ip = address.host;
    let family = net.isIP(ip);
    if (family === 0) {
      try {
        const found = await lookup(address.host);
        ip = found.address;
        family = found.family;
      } catch (err) {
        throw new SocketBindError(`cannot resolve host ${JSON.stringify(address.host)}`, { cause: err });
      }
    }
    handle = createServerHandle(ip, address.port, family);
  } else {
    path = address.abstract ? `\0${address.path}` : address.path;
    if (!address.abstract) {
      try {
        if (lstatSync(path).isSocket()) unlinkSync(path);
      } catch {
        // nothing there
      }
    }
    const previous = address.abstract ? undefined : process.umask(0o777 & ~(options.mode ?? 0o600));
    try {
      handle = createServerHandle(path, -1, -1);
    } finally {
      if (previous !== undefined) process.umask(previous);
    }
  }
  if (typeof handle === 'number') throw new SocketBindError(`cannot bind ${shown}: ${getSystemErrorName(handle)}`);
  const bound = handle;
  if (address.kind === 'tcp') {
    // libuv defers EADDRINUSE from bind() to listen(): check what the socket is bound to.
    const out: { port?: number } = {};
    if ((bound.getsockname?.(out) ?? 0) !== 0 || (address.port !== 0 && out.port !== address.port)) {
      bound.close();
      throw new SocketBindError(`cannot bind ${shown}: EADDRINUSE (another process is listening there)`);
    }
  }
  let ownerWarning: string | undefined;
  if (path !== undefined && !path.startsWith('\0')) {
    chmodSync(path, options.mode ?? 0o600);
    if (options.uid !== undefined || options.gid !== undefined) {
      try {
        chownSync(path, options.uid ?? -1, options.gid ?? -1);
      } catch (err) {
        ownerWarning = `cannot give ${shown} to uid ${options.uid ?? '-'} gid ${options.gid ?? '-'} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); it stays root's`;
      }
    }
  }
  handedOver.push(bound);
  return { fd: bound.fd, ownerWarning };
}
