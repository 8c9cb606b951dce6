/**
 * Cheap mode's watch: the first connection to a vassal with no worker (`cheap`, `idle`)
 * wakes its master at once, not on its next 1 s tick.
 *
 * uWSGI's master adds its sockets to its event loop in cheap mode and spawns the workers
 * when one becomes readable, without accepting (core/master_checks.c). libuv cannot watch
 * a listening socket without accepting from it, and the master's own descriptor must
 * never get an accept watcher (sockets.ts). So the master watches a duplicate descriptor
 * of each socket ({@link dupSockets}), listening on it: the first connection is accepted
 * there, every duplicate is closed at once (the sockets stay open and listening: the
 * master's descriptors hold them), the workers are spawned, and that one connection is
 * relayed to its socket, where a worker accepts it (its peer is then the master: REMOTE_ADDR
 * 127.0.0.1, as for the first connection of an on-demand vassal). Connections that come
 * after wait in the socket's queue for the workers, as before.
 *
 * The 1 s tick's reading of the listen queues stays as the fallback: for the moment the
 * duplicates are not there yet (0.1 to 0.2 s after cheap mode begins), and for inherited
 * `fd://` sockets, which have no address to relay to and are not watched.
 */
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { relayConnection, type Logger } from '@emperor/process';
import { SocketBindError } from '@emperor/protocol';
import { socketWhere, type BoundSocket, type DupHandle } from './sockets.js';

/** What {@link CheapWatch} needs. */
export interface CheapWatchOptions {
  /** Duplicates of the sockets' descriptors (sockets.ts `dupSockets`). @throws SocketBindError */
  readonly dup: (sockets: readonly BoundSocket[]) => Promise<DupHandle[]>;
  /** Called once per wake, after the connection is on its way to a worker. */
  readonly onConnection: () => void;
  readonly logger: Pick<Logger, 'info' | 'warn'>;
}

/** Watches a cheap master's sockets for the connection that wakes it. */
export class CheapWatch {
  readonly #o: CheapWatchOptions;
  #handles: DupHandle[] = [];
  #arming: Promise<void> | undefined;
  /** Bumped by every disarm: an arming in flight that finds it changed closes what it got. */
  #epoch = 0;

  constructor(options: CheapWatchOptions) {
    this.#o = options;
  }

  /** True while duplicates watch (not while they are being had). */
  get watching(): boolean {
    return this.#handles.length > 0;
  }

  /** True while duplicates watch or are being had. */
  get busy(): boolean {
    return this.#handles.length > 0 || this.#arming !== undefined;
  }

  /**
   * Watches `sockets` (the inherited ones excepted) with a listen(`backlog`) on a
   * duplicate of each: from when it resolves they listen, even if no worker ever did
   * (`cheap` at start needs that). Does nothing while armed or arming.
   * @throws (rejects with) SocketBindError when the duplicates cannot be had or one
   *   cannot listen; nothing stays open then
   */
  arm(sockets: readonly BoundSocket[], backlog: number): Promise<void> {
    if (this.#handles.length > 0) return Promise.resolve();
    if (this.#arming !== undefined) return this.#arming;
    const epoch = this.#epoch;
    const watched = sockets.filter((s) => s.spec.address.kind !== 'fd');
    if (watched.length === 0) return Promise.resolve();
    const arming = (async () => {
      const handles = await this.#o.dup(watched);
      if (epoch !== this.#epoch) {
        for (const h of handles) h.close(); // disarmed meanwhile: the workers are back
        return;
      }
      for (const [i, h] of handles.entries()) {
        const err = h.listen(backlog);
        const socket = watched[i] as BoundSocket;
        if (err !== 0) {
          for (const other of handles) other.close();
          throw new SocketBindError(`${socketWhere(socket.spec)}: cannot listen: ${getSystemErrorName(err)}`);
        }
        h.onconnection = (status, client) => this.#connection(socket, status, client);
      }
      this.#handles = handles;
    })().finally(() => {
      if (this.#arming === arming) this.#arming = undefined;
    });
    this.#arming = arming;
    return arming;
  }

  /** Stops watching: closes the duplicates (the sockets stay open and listening). */
  disarm(): void {
    this.#epoch += 1;
    this.#arming = undefined;
    const handles = this.#handles;
    this.#handles = [];
    for (const h of handles) {
      h.onconnection = null;
      h.close();
    }
  }

  #connection(socket: BoundSocket, status: number, client: unknown): void {
    this.disarm(); // before anything else: no second connection is accepted here
    const address = socket.spec.address;
    if (status === 0 && typeof client === 'object' && client !== null && address.kind !== 'fd') {
      const conn = new net.Socket({ handle: client, readable: true, writable: true } as net.SocketConstructorOpts);
      relayConnection(conn, address);
    }
    this.#o.onConnection();
  }
}
