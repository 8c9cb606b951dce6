/**
 * The uwsgi protocol (`socket`, `uwsgi-socket`) in Node workers: read one packet, turn it
 * back into an HTTP request head, and hand the connection to the app's `http.Server`
 * with that head pushed back in front of the body (`socket.unshift` + `emit('connection')`).
 * So the app is served by Node's own HTTP machinery, whatever shape it has (a listener, a
 * fetch app, its own server), and the response is raw HTTP, as the protocol wants
 * (uWSGI proto/base.c). One request per connection; the connection closes after it.
 *
 * This file is the connection glue; the packet itself is parsed, without I/O, in
 * uwsgi-packet.ts.
 */
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import net from 'node:net';
import { WorkerProtocolError } from '../errors.js';
import { closeGracefully, type Protocol, type ProtocolServer } from './protocol.js';
import { parseUwsgiPacket, truncatedReason, uwsgiToHttpHead } from './uwsgi-packet.js';

/** Connections that arrived over the uwsgi protocol, to frame their responses. */
const uwsgiSockets = new WeakSet<net.Socket>();

/** Options for {@link serveUwsgiConnection}. */
export interface UwsgiOptions {
  /** `buffer-size`: the largest variable block, bytes. */
  readonly bufferSize: number;
  /** `socket-timeout`: how long a client may take to send the whole packet, ms. */
  readonly timeoutMs: number;
  /** The socket's configured name, for logs about unix-socket peers. */
  readonly socketName: string;
  /** Called once per refused packet; the connection is then closed and the worker keeps serving. */
  readonly onInvalid: (peer: string, reason: string) => void;
}

function peerOf(socket: net.Socket, socketName: string): string {
  if (socket.remoteAddress === undefined) return `unix:${socketName}`;
  return socket.remoteFamily === 'IPv6' ? `[${socket.remoteAddress}]:${socket.remotePort}` : `${socket.remoteAddress}:${socket.remotePort}`;
}

/**
 * Reads the packet from a new connection, then lets `target` serve it as HTTP. A refused,
 * truncated or late packet is reported through `onInvalid` and the connection destroyed.
 */
export function serveUwsgiConnection(socket: net.Socket, target: Server, options: UwsgiOptions): void {
  const peer = peerOf(socket, options.socketName);
  let buf: Buffer = Buffer.alloc(0);
  const fail = (reason: string): void => {
    cleanup();
    options.onInvalid(peer, reason);
    socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    const parsed = parseUwsgiPacket(buf, options.bufferSize);
    if (parsed.kind === 'incomplete') return;
    if (parsed.kind === 'invalid') return fail(parsed.reason);
    const head = uwsgiToHttpHead(parsed.vars);
    if (typeof head === 'string') return fail(head);
    cleanup();
    // What the app sees as the peer is the client behind nginx, as under uWSGI (REMOTE_ADDR).
    const remoteAddress = parsed.vars.get('REMOTE_ADDR');
    if (remoteAddress) Object.defineProperty(socket, 'remoteAddress', { value: remoteAddress, configurable: true });
    const remotePort = Number(parsed.vars.get('REMOTE_PORT'));
    if (Number.isInteger(remotePort) && remotePort > 0) Object.defineProperty(socket, 'remotePort', { value: remotePort, configurable: true });
    const https = (parsed.vars.get('HTTPS') ?? '').toLowerCase();
    if (https === 'on' || https === '1' || parsed.vars.get('REQUEST_SCHEME') === 'https') {
      // Express and Koa derive req.protocol ('https') from this.
      Object.defineProperty(socket, 'encrypted', { value: true, configurable: true });
    }
    uwsgiSockets.add(socket);
    socket.unshift(Buffer.concat([head.head, buf.subarray(parsed.consumed)]));
    target.emit('connection', socket);
  };
  const onEnd = (): void => {
    if (buf.length === 0) {
      cleanup();
      socket.destroy(); // connected and left without a byte: a health check, not an error
      return;
    }
    fail(truncatedReason(buf, options.bufferSize));
  };
  const onTimeout = (): void => fail(`no whole packet within ${options.timeoutMs / 1000} s (${buf.length} bytes received)`);
  const onError = (): void => {
    cleanup();
    socket.destroy();
  };
  const cleanup = (): void => {
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('timeout', onTimeout);
    socket.off('error', onError);
    socket.setTimeout(0);
  };
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onError);
  socket.setTimeout(options.timeoutMs, onTimeout);
}

/**
 * Request listener to prepend on every server that may receive uwsgi connections: their
 * responses are not chunked (the end of the body is the end of the connection, which
 * nginx's uwsgi module expects, as uWSGI never chunks there).
 */
export function frameUwsgiResponse(req: IncomingMessage, res: ServerResponse): void {
  if (uwsgiSockets.has(req.socket)) {
    res.useChunkedEncodingByDefault = false;
    res.shouldKeepAlive = false;
  }
}

/**
 * The `uwsgi` protocol module. Needs the app's server to be an `http.Server` (it is fed
 * HTTP heads); its responses are framed by {@link frameUwsgiResponse}.
 */
export const uwsgiProtocol: Protocol = {
  name: 'uwsgi',
  serve(app, sockets, options): readonly ProtocolServer[] {
    if (!(app instanceof http.Server)) {
      throw new WorkerProtocolError(`cannot serve ${sockets.map((s) => s.name).join(', ')}: the uwsgi protocol needs the app's server to be an http.Server`);
    }
    app.prependListener('request', frameUwsgiResponse);
    return sockets.map((socket) => {
      const connection: UwsgiOptions = {
        bufferSize: options.bufferSize,
        timeoutMs: options.socketTimeoutMs,
        socketName: socket.name,
        onInvalid: (peer, reason) => options.logger.warn({ peer, socket: socket.name }, `uwsgi packet from ${peer}: ${reason}; connection closed`),
      };
      const server = net.createServer((conn) => serveUwsgiConnection(conn, app, connection));
      return { socket, server, close: () => closeGracefully(server) };
    });
  },
};
