/**
 * Serving a stats document (vassal or emperor) the way uWSGI's stats server does:
 * write the JSON and close (uwsgitop reads until EOF), or answer HTTP with `stats-http`.
 * Also the Prometheus endpoint (`prometheus`, `emperor-prometheus`), and `GET /metrics`
 * on a `stats-http` server (as uWSGI PR #2754 proposes).
 */
import net from 'node:net';
import http from 'node:http';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
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
  return listen(server, address, options.mode);
}

/**
 * Serves Prometheus metrics over HTTP: `GET /metrics` is the exposition text, `GET /`
 * a one-line pointer to it, anything else 404.
 */
export function serveMetrics(address: StatsListenAddress, metrics: MetricsSource, options: { mode?: number | undefined; onError?: (err: Error) => void } = {}): Promise<StatsServer> {
  const server = http.createServer((req, res) => {
    const path = pathOf(req);
    if (path === '/metrics') {
      answerMetrics(metrics, req, res, options.onError);
      return;
    }
    res.writeHead(path === '/' ? 200 : 404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(path === '/' ? 'Prometheus metrics are at /metrics\n' : 'not found; metrics are at /metrics\n');
  });
  return listen(server, address, options.mode);
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

/** Listens on a TCP address or a unix socket (stale socket file removed first, then chmod). */
async function listen(server: net.Server, address: StatsListenAddress, mode: number | undefined): Promise<StatsServer> {
  let path: string | undefined;
  if (address.kind === 'unix') {
    path = address.abstract ? `\0${address.path}` : address.path;
    if (!address.abstract) {
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
  if (path !== undefined && !path.startsWith('\0')) chmodSync(path, mode ?? 0o600);
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
