/**
 * Serving a stats document (vassal or emperor) the way uWSGI's stats server does:
 * write the JSON and close (uwsgitop reads until EOF), or answer HTTP with `stats-http`.
 */
import net from 'node:net';
import http from 'node:http';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';

/** Where to listen: the shape of `ListenAddress` in @emperor/config. */
export type StatsListenAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string; readonly abstract: boolean };

/** Serialises like uWSGI: tab-indented, or minified with `stats-minified`. */
export function renderStats(doc: unknown, minified: boolean): string {
  return minified ? JSON.stringify(doc) : `${JSON.stringify(doc, null, '\t')}\n`;
}

/** A running stats server; `close()` stops it and removes its unix socket. */
export interface StatsServer {
  readonly address: string;
  close(): Promise<void>;
}

/**
 * Serves `render()` (a string, or a promise of one) on `address`: each connection gets the document and is closed (what
 * uwsgitop expects), or with `http` set, each HTTP request gets it as
 * `application/json` (uWSGI `stats-http`). A unix socket is created with mode 0600
 * unless `mode` says otherwise, after removing a stale socket file (never another file).
 */
export async function serveStats(
  address: StatsListenAddress,
  render: () => string | Promise<string>,
  options: { http: boolean; mode?: number | undefined },
): Promise<StatsServer> {
  const server: net.Server = options.http
    ? http.createServer((req, res) => {
        void Promise.resolve(render()).then(
          (doc) => {
            res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*', connection: 'close' });
            res.end(doc);
          },
          () => {
            res.writeHead(500, { connection: 'close' });
            res.end();
          },
        );
      })
    : net.createServer((socket) => {
        socket.on('error', () => {});
        void Promise.resolve(render()).then((doc) => socket.end(doc), () => socket.destroy());
      });
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
    if (path !== undefined) server.listen(path, done);
    else if (address.kind === 'tcp') server.listen(address.port, address.host, done);
  });
  if (path !== undefined && !path.startsWith('\0')) chmodSync(path, options.mode ?? 0o600);
  server.on('error', () => {});
  const shown = address.kind === 'tcp' ? `${address.host}:${(server.address() as net.AddressInfo).port}` : address.path;
  return {
    address: shown,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
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
