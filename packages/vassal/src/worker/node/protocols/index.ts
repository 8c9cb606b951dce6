/**
 * The Node worker's protocol modules, chosen by each socket's protocol name in the worker
 * spec (`WorkerSocket.protocol`), and the one place that makes their servers listen on
 * the inherited fds and stops them. Adding a protocol (FastCGI) is one more module in
 * {@link PROTOCOLS}; the worker's entry does not branch on protocols.
 */
import type net from 'node:net';
import type { SocketProtocol } from '@emperor/config';
import type { WorkerSocket } from '../../../shared/worker-spec.js';
import { realListen } from '../app-loader.js';
import { SocketListenError, WorkerProtocolError } from '../errors.js';
import { fastcgiProtocol } from './fastcgi.js';
import { httpProtocol } from './http.js';
import type { Protocol, ProtocolOptions, ProtocolServer } from './protocol.js';
import { uwsgiProtocol } from './uwsgi.js';

export type { Protocol, ProtocolOptions, ProtocolServer, RequestSocketFacts } from './protocol.js';

/**
 * A module for every protocol the config gives a socket (`SocketProtocol`): a protocol
 * added there is a compile error here until the Node worker has its module.
 */
const MODULES = { http: httpProtocol, uwsgi: uwsgiProtocol, fastcgi: fastcgiProtocol } as const satisfies Record<SocketProtocol, Protocol>;

/** Every protocol module of the Node worker, by name (a Map: `constructor` or `__proto__` name nothing). */
export const PROTOCOLS: ReadonlyMap<string, Protocol> = new Map(Object.values(MODULES).map((p) => [p.name, p]));

/**
 * The module serving `socket`.
 * @throws WorkerProtocolError naming the socket, its protocol and the ones there are, when no module has that name
 */
export function protocolFor(socket: WorkerSocket): Protocol {
  const protocol = PROTOCOLS.get(socket.protocol);
  if (protocol === undefined) {
    throw new WorkerProtocolError(
      `socket ${socket.name}: unknown protocol ${JSON.stringify(socket.protocol)} in the worker spec (EMPEROR_WORKER); this Node worker serves ${[...PROTOCOLS.keys()].join(', ')}`,
    );
  }
  return protocol;
}

/** A worker's sockets with the module serving each: what {@link serveSockets} serves. */
export interface ProtocolPlan {
  /** Every socket, in config order (the order of their fds). */
  readonly sockets: readonly WorkerSocket[];
  /** The sockets of each protocol, in config order. */
  readonly byProtocol: ReadonlyMap<Protocol, readonly WorkerSocket[]>;
}

/**
 * Chooses the module of every socket. The worker does this before it loads the app, so
 * a spec it cannot serve stops it before the app runs any code.
 * @throws WorkerProtocolError for the first socket whose protocol no module has
 */
export function planProtocols(sockets: readonly WorkerSocket[]): ProtocolPlan {
  const byProtocol = new Map<Protocol, WorkerSocket[]>();
  for (const socket of sockets) {
    const protocol = protocolFor(socket);
    const list = byProtocol.get(protocol);
    if (list === undefined) byProtocol.set(protocol, [socket]);
    else list.push(socket);
  }
  return { sockets, byProtocol };
}

/** The worker's sockets, listening. */
export interface Serving {
  /** One per socket, in config order. */
  readonly servers: readonly ProtocolServer[];
  /**
   * Graceful stop of every socket: stops accepting and resolves once every connection
   * has ended (see {@link ProtocolServer.close}). Call it once.
   */
  close(): Promise<void>;
}

/** What {@link serveSockets} needs besides the plan. */
export interface ServeOptions extends ProtocolOptions {
  /** `listen`: the listen backlog. */
  readonly backlog: number;
  /**
   * The servers the app's `listen()` interception lets through (app-loader.ts). Every
   * server made here is added; `app` is not when it is the app's own server, whose
   * `listen()` calls stay intercepted.
   */
  readonly ours: WeakSet<net.Server>;
}

/**
 * Serves every socket of `plan` into `app` (each protocol's {@link Protocol.serve}),
 * then listens on the inherited fds in config order.
 * @param app the one server every protocol feeds; its `request` listeners already in place
 * @throws WorkerProtocolError when a module cannot serve `app`; SocketListenError when a
 *   socket cannot be listened on (the servers that did listen are left as they are: the
 *   caller exits)
 */
export async function serveSockets(app: net.Server, plan: ProtocolPlan, options: ServeOptions): Promise<Serving> {
  const bySocket = new Map<WorkerSocket, ProtocolServer>();
  for (const [protocol, sockets] of plan.byProtocol) {
    for (const served of protocol.serve(app, sockets, options)) bySocket.set(served.socket, served);
  }
  const servers: ProtocolServer[] = [];
  for (const socket of plan.sockets) {
    const served = bySocket.get(socket);
    if (served === undefined) throw new WorkerProtocolError(`socket ${socket.name}: the ${socket.protocol} module returned no server for it`);
    if (served.server !== app) options.ours.add(served.server);
    await listenOn(served.server, socket, options.backlog);
    servers.push(served);
  }
  return {
    servers,
    close: () => Promise.all(servers.map((s) => s.close())).then(() => undefined),
  };
}

/** The real `listen()` on an inherited fd. @throws SocketListenError with what `listen()` emitted */
function listenOn(server: net.Server, socket: WorkerSocket, backlog: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new SocketListenError(socket.name, err));
    server.once('error', onError);
    realListen(server, { fd: socket.fd, backlog } as net.ListenOptions, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
