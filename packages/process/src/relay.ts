/**
 * Relaying a connection a process accepted on a listening socket it must not serve
 * itself back to that socket, where the processes that do serve it (a vassal's workers)
 * accept it. The emperor does it for the first connection to an on-demand vassal, a
 * master for the connection that ends its cheap mode (uWSGI has no equivalent: its
 * master and emperor watch the socket with epoll without accepting, which libuv cannot).
 * The workers see the relaying process as the peer (REMOTE_ADDR 127.0.0.1, or none on a
 * unix socket) for that one connection.
 */
import net from 'node:net';

/**
 * A raw libuv TCP or pipe server handle: what `net._createServerHandle` returns (Node's
 * cluster uses the same) and what arrives as the handle of an IPC message carrying one.
 * `listen` returns 0 or a negative errno; `onconnection` gets a non-zero status on an
 * accept error. Closing it closes its descriptor only.
 */
export interface RawServerHandle {
  readonly fd: number;
  onconnection: ((status: number, client: unknown) => void) | null;
  listen(backlog: number): number;
  close(callback?: () => void): void;
}

/** True when `value` is a {@link RawServerHandle} (an IPC message's handle is `unknown`). */
export function isRawServerHandle(value: unknown): value is RawServerHandle {
  return typeof value === 'object' && value !== null && typeof (value as { fd?: unknown }).fd === 'number' && typeof (value as { listen?: unknown }).listen === 'function';
}

/** Where to relay to: a TCP address or a unix socket (abstract: no file, Linux's `@name`). */
export type RelayTarget =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string; readonly abstract: boolean };

/** The host to connect to for a TCP listener bound to `host`: a wildcard becomes its loopback. */
export function connectHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

/**
 * Pipes `client` to a new connection to `target` and back; either end closing or failing
 * closes both. Never throws; a connect failure ends the client's connection.
 */
export function relayConnection(client: net.Socket, target: RelayTarget): void {
  const upstream = target.kind === 'unix'
    ? net.connect(target.abstract ? `\0${target.path}` : target.path)
    : net.connect({ host: connectHost(target.host), port: target.port });
  const end = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end);
  upstream.on('error', end);
  client.on('close', () => upstream.end());
  upstream.on('close', () => client.end());
  client.pipe(upstream);
  upstream.pipe(client);
}
