/**
 * On-demand vassals (uWSGI core/emperor.c `on_demand_bind`, `emperor_check_on_demand_socket`,
 * docs OnDemandVassals.rst): the emperor binds a vassal's socket, waits for the first
 * connection, and only then starts the vassal, handing the listening socket over as its
 * fd 0. Until then the vassal costs one listening socket in the emperor.
 *
 * Node cannot wait for a connection without accepting it (libuv accepts as soon as the
 * socket is readable), so the emperor accepts exactly one: in the connection callback it
 * starts the master (which inherits the listening socket), then closes its own copy, so
 * the next connections queue for the vassal's workers. The one connection it accepted is
 * relayed to the same socket (the workers accept the relay) and so is answered, never
 * refused; its peer address is the emperor's. A master that exits for `idle` +
 * `die-on-idle` sends the listening socket back on its IPC channel, so connections that
 * arrive meanwhile wait in the kernel's queue for the emperor to wait on it again.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { basename, extname, join } from 'node:path';
import { getSystemErrorName } from 'node:util';
import type { EmperorOnDemand } from '@emperor/config';
import { isRawServerHandle, relayConnection, type RawServerHandle } from '@emperor/process';
import { SocketBindError } from '@emperor/protocol';
import type { VassalFile } from './source.js';

/** The listen backlog of an on-demand socket: uWSGI's default `listen` (its `on_demand_bind` uses `listen_queue`). */
export const ON_DEMAND_BACKLOG = 100;

/** How long `emperor-on-demand-exec` may run, ms. */
export const ON_DEMAND_EXEC_TIMEOUT_MS = 10_000;

/** A socket name as uWSGI cuts it: up to the first character below 32 (a newline, usually). */
export function cutSocketName(text: string): string {
  const end = text.search(/[\x00-\x1f]/);
  return end < 0 ? text : text.slice(0, end);
}

/**
 * The socket an on-demand vassal waits on, or undefined when `file` is not on demand:
 * `emperor-on-demand-extension` reads `PATH+EXT` (no such file: not on demand),
 * `emperor-on-demand-directory` gives `DIR/NAME.socket` (NAME without its last
 * extension), `emperor-on-demand-exec` runs `COMMAND "PATH"` through /bin/sh and takes
 * its output (empty: not on demand). Names are cut at the first control character.
 * An extension file that cannot be read for another reason than its absence, or a
 * command that fails, is a `problem` (one line saying why).
 */
export function onDemandSocketName(file: Pick<VassalFile, 'path' | 'name'>, how: EmperorOnDemand): { readonly name: string | undefined } | { readonly problem: string } {
  switch (how.kind) {
    case 'extension': {
      let text: string;
      try {
        text = readFileSync(file.path + how.extension, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { name: undefined };
        return { problem: `emperor-on-demand-extension: cannot read ${file.path + how.extension}: ${(err as Error).message}` };
      }
      const name = cutSocketName(text);
      return { name: name === '' ? undefined : name };
    }
    case 'directory': {
      const name = basename(file.name, extname(file.name));
      return { name: join(how.directory, `${name}.socket`) };
    }
    case 'exec': {
      let out: string;
      try {
        out = execFileSync('/bin/sh', ['-c', `${how.command} "$1"`, 'sh', file.path], { encoding: 'utf8', timeout: ON_DEMAND_EXEC_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'inherit'] });
      } catch (err) {
        return { problem: `emperor-on-demand-exec: ${how.command} "${file.path}" failed: ${(err as Error).message.split('\n')[0] ?? ''}` };
      }
      const name = cutSocketName(out);
      return { name: name === '' ? undefined : name };
    }
    default: {
      const never: never = how;
      return never;
    }
  }
}

/** Where a socket name points, for binding and for relaying the first connection. */
export type OnDemandAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string; readonly abstract: boolean };

/**
 * Parses a socket name as uWSGI's `on_demand_bind`: TCP when it contains `:` (`:8080`
 * is every IPv4 interface, `[::1]:8080` IPv6), else a unix socket path (`@name`: abstract).
 * @throws SocketBindError on a port that is not a number from 1 to 65535
 */
export function parseOnDemandAddress(name: string, where: string): OnDemandAddress {
  if (!name.includes(':') || name.startsWith('/') || name.startsWith('.')) {
    return name.startsWith('@') ? { kind: 'unix', path: name.slice(1), abstract: true } : { kind: 'unix', path: name, abstract: false };
  }
  const at = name.lastIndexOf(':');
  let host = name.slice(0, at);
  const port = Number(name.slice(at + 1));
  if (!/^\d+$/.test(name.slice(at + 1)) || port < 1 || port > 65535) {
    throw new SocketBindError(`${where}: expected host:port with a port from 1 to 65535`);
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { kind: 'tcp', host: host === '' ? '0.0.0.0' : host, port };
}

type CreateServerHandle = (address: string | null, port: number, addressType: number, fd?: number) => RawServerHandle | number;
const createServerHandle = (net as unknown as { _createServerHandle: CreateServerHandle })._createServerHandle;

/** The handles that bound unix sockets, never closed (see {@link OnDemandSocket.open}). */
const KEPT_BINDERS = new Set<RawServerHandle>();

/**
 * One on-demand socket, owned by the emperor while its vassal is not running.
 * `open()` binds and listens, `arm()` waits for one connection, `release()` lets go
 * once the master holds the socket, `adopt()` takes it back from an exiting master.
 */
export class OnDemandSocket {
  /** The name as configured (what stats show as `on_demand`). */
  readonly name: string;
  readonly address: OnDemandAddress;
  /** `file: on-demand socket "S"`, for error messages. */
  readonly #where: string;
  #handle: RawServerHandle | undefined;
  #onConnection: ((client: net.Socket) => void) | undefined;

  /** @throws SocketBindError on a name that is not an address */
  constructor(name: string, where: string) {
    this.name = name;
    this.#where = where;
    this.address = parseOnDemandAddress(name, where);
  }

  /** The emperor holds the listening socket now. */
  get isOpen(): boolean {
    return this.#handle !== undefined;
  }

  /** The emperor's descriptor of the listening socket (for the master's fd 0); -1 when it holds none. */
  get fd(): number {
    return this.#handle?.fd ?? -1;
  }

  /**
   * Binds and listens (unless it holds the socket already). A unix socket file in the way
   * is removed when it is a socket (uWSGI unlinks whatever is there; a regular file is
   * refused here), and the new one gets mode 0666, as uWSGI's `on_demand_bind`.
   * @throws SocketBindError naming the file, the socket and the reason
   */
  open(): void {
    if (this.#handle !== undefined) return;
    const a = this.address;
    let handle: RawServerHandle | number;
    if (a.kind === 'tcp') {
      const family = net.isIP(a.host);
      if (family === 0) throw new SocketBindError(`${this.#where}: cannot bind: ${a.host} is not an IP address`);
      handle = createServerHandle(a.host, a.port, family);
    } else {
      if (!a.abstract) this.#clearUnixPath(a.path);
      const bound = createServerHandle(a.abstract ? `\0${a.path}` : a.path, -1, -1);
      if (typeof bound === 'number') throw this.#bindError(bound);
      // libuv unlinks a pipe's path when the handle that bound it closes (uv__pipe_close),
      // and the emperor closes its handle while the master serves the same socket: so the
      // emperor works on a second handle of the same descriptor, which knows no path, and
      // the binding one is kept, never closed (its descriptor is the second one's).
      handle = createServerHandle(null, 0, 0, bound.fd);
      if (typeof handle === 'number') {
        bound.close();
        throw this.#bindError(handle);
      }
      KEPT_BINDERS.add(bound);
    }
    if (typeof handle === 'number') throw this.#bindError(handle);
    const err = handle.listen(ON_DEMAND_BACKLOG);
    if (err !== 0) {
      handle.close();
      throw this.#bindError(err);
    }
    if (a.kind === 'unix' && !a.abstract) {
      try {
        chmodSync(a.path, 0o666);
      } catch {
        // the socket works; its mode stays what the umask made it
      }
    }
    this.#handle = handle;
  }

  #clearUnixPath(path: string): void {
    let isSocket: boolean;
    try {
      isSocket = lstatSync(path).isSocket();
    } catch {
      return;
    }
    if (!isSocket) throw new SocketBindError(`${this.#where}: cannot bind: a file that is not a socket is in the way`);
    try {
      unlinkSync(path);
    } catch (err) {
      throw new SocketBindError(`${this.#where}: cannot remove the old socket file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }

  #bindError(errno: number): SocketBindError {
    let code = getSystemErrorName(errno);
    const a = this.address;
    if (code === 'EACCES' && a.kind === 'unix' && !a.abstract) code = 'EACCES (no such directory, or no permission)';
    const why = code === 'EADDRINUSE' ? 'address already in use (another process is listening there)' : code;
    return new SocketBindError(`${this.#where}: cannot bind: ${why}`);
  }

  /**
   * Calls `onConnection` with each connection the emperor accepts until {@link release}
   * (the first one's callback starts the master and releases the socket at once; while a
   * start is delayed, the next ones come too).
   */
  arm(onConnection: (client: net.Socket) => void): void {
    const handle = this.#handle;
    if (handle === undefined) return;
    this.#onConnection = onConnection;
    handle.onconnection = (status, client) => {
      if (status !== 0 || client === undefined || client === null) return;
      const socket = new net.Socket({ handle: client, readable: true, writable: true } as net.SocketConstructorOpts);
      const take = this.#onConnection;
      if (take === undefined) socket.destroy();
      else take(socket);
    };
  }

  /** Closes the emperor's copy (the running master holds the socket; a unix socket file stays). */
  release(): void {
    const handle = this.#handle;
    this.#handle = undefined;
    this.#onConnection = undefined;
    if (handle === undefined) return;
    handle.onconnection = null;
    handle.close();
  }

  /**
   * Takes back the listening socket an exiting master sent (a raw handle from its IPC
   * message) and listens on it again. Returns false when `handle` is not one (the caller
   * then binds anew with {@link open}).
   */
  adopt(handle: unknown): boolean {
    if (!isRawServerHandle(handle)) return false;
    if (this.#handle !== undefined) {
      handle.close();
      return true;
    }
    // Already listening (the master's workers called listen()); this gives it libuv's watcher.
    if (handle.listen(ON_DEMAND_BACKLOG) !== 0) {
      handle.close();
      return false;
    }
    this.#handle = handle;
    return true;
  }

  /** Closes the socket; `unlink` also removes a unix socket file (the vassal is gone for good). */
  close(unlink: boolean): void {
    this.release();
    const a = this.address;
    if (unlink && a.kind === 'unix' && !a.abstract) {
      try {
        if (lstatSync(a.path).isSocket()) unlinkSync(a.path);
      } catch {
        // already gone
      }
    }
  }

  /**
   * Relays `client` (the connection the emperor accepted) to the socket, where the
   * vassal's workers accept it: both directions piped, either end closing closes both.
   */
  relay(client: net.Socket): void {
    relayConnection(client, this.address);
  }
}
