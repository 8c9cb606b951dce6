/**
 * FastCGI (`fastcgi-socket`) in Node workers: nginx `fastcgi_pass`, lighttpd
 * `fastcgi.server`, Apache `mod_proxy_fcgi`. The records are parsed without I/O
 * (fastcgi-records.ts); this file is the connection glue.
 *
 * Each request is handed to the app's `http.Server` as a connection of its own: a Duplex
 * ({@link FastcgiRequestSocket}) whose readable side is an HTTP/1.1 request head built from
 * the params, then the STDIN stream as the body, and whose writable side takes the HTTP
 * response Node writes and sends it back as the CGI response FastCGI wants (`Status:`
 * instead of the status line, no hop-by-hop headers, no chunking) in `FCGI_STDOUT`
 * records of at most 65535 bytes, then `FCGI_END_REQUEST`. So every app shape is served
 * by Node's own HTTP machinery, and the worker's accounting hangs on the same `request`
 * event as for every protocol. (Node documents emitting `connection` with any Duplex.)
 *
 * Connections: one request at a time (a second `BEGIN_REQUEST` is answered
 * `FCGI_CANT_MPX_CONN`), kept open after it when the front end asks (`FCGI_KEEP_CONN`,
 * nginx `fastcgi_keep_conn on`) until {@link KEEP_CONN_IDLE_MS} idle, else closed after
 * `FCGI_END_REQUEST` as the spec says; a stopping worker closes each after its next
 * request. `FCGI_ABORT_REQUEST`, or the
 * front end closing, ends the request (the app sees its request aborted). The app's
 * errors go to the worker's log, never to `FCGI_STDERR` (as uWSGI).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { WorkerProtocolError } from '../errors.js';
import {
  encodeEndRequest, encodeResponseEnd, encodeStream, FastcgiParser, FCGI_REQUEST_COMPLETE, FCGI_STDOUT,
  type FastcgiEvent, type FastcgiRequestHead,
} from './fastcgi-records.js';
import { closeGracefully, type Protocol, type ProtocolServer } from './protocol.js';
import { uwsgiToHttpHead } from './uwsgi-packet.js';

/** An idle `FCGI_KEEP_CONN` connection is closed after this long, ms (the Python worker's, and Node's keepAliveTimeout). */
export const KEEP_CONN_IDLE_MS = 5000;

/** What a FastCGI connection needs besides the socket. */
export interface FastcgiOptions {
  /** `buffer-size`: the most bytes of a request's PARAMS. */
  readonly bufferSize: number;
  /** `socket-timeout`: how long a request head (BEGIN_REQUEST and PARAMS) may take from its first byte, ms. */
  readonly timeoutMs: number;
  /** The socket's configured name, for log lines about unix-socket peers. */
  readonly socketName: string;
  /** `FCGI_MAX_CONNS` and `FCGI_MAX_REQS` (the vassal's; worker-spec.ts). */
  readonly maxConns: number;
  readonly maxReqs: number;
  /** Called once per refused connection or stalled head; the connection is then closed and the worker keeps serving. */
  readonly onInvalid: (peer: string, reason: string) => void;
}

/** The virtual sockets of FastCGI requests, to frame their responses. */
const fastcgiSockets = new WeakSet<object>();

function peerOf(socket: net.Socket, socketName: string): string {
  if (socket.remoteAddress === undefined) return `unix:${socketName}`;
  return socket.remoteFamily === 'IPv6' ? `[${socket.remoteAddress}]:${socket.remotePort}` : `${socket.remoteAddress}:${socket.remotePort}`;
}

const CRLF2 = Buffer.from('\r\n\r\n');
/** Response headers that describe the HTTP hop, which FastCGI does not have: the front end frames the response. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding']);

/**
 * Node's HTTP response turned into a CGI response (FastCGI spec 6.1: no status line;
 * `Status:` and `Location:` set the status): the head's status line becomes `Status:`,
 * hop-by-hop headers go, a chunked body (an app that set `Transfer-Encoding` itself) is
 * un-chunked, and 1xx heads (`writeContinue`, `writeEarlyHints`) are dropped: CGI has none.
 * Pure: bytes in, bytes out.
 */
export class CgiResponseWriter {
  #head: Buffer | undefined = Buffer.alloc(0);
  #chunked: ChunkDecoder | undefined;

  /** The CGI bytes for what Node wrote next (empty while a head is incomplete). */
  write(data: Buffer): Buffer {
    if (this.#head === undefined) return this.#chunked === undefined ? data : this.#chunked.decode(data);
    let buf = this.#head.length === 0 ? data : Buffer.concat([this.#head, data]);
    for (;;) {
      const end = buf.indexOf(CRLF2);
      if (end < 0) {
        this.#head = buf;
        return Buffer.alloc(0);
      }
      const text = buf.toString('latin1', 0, end);
      buf = buf.subarray(end + 4);
      const lines = text.split('\r\n');
      const status = /^HTTP\/\d\.\d (\d{3})(.*)$/.exec(lines[0] ?? '');
      const code = Number(status?.[1] ?? 200);
      if (code >= 100 && code < 200) continue; // an interim head: CGI has no such thing
      const out = [`Status: ${code}${status?.[2] ?? ' OK'}`];
      for (const line of lines.slice(1)) {
        const name = line.slice(0, line.indexOf(':')).trim().toLowerCase();
        if (name === 'transfer-encoding' && /chunked/i.test(line)) this.#chunked = new ChunkDecoder();
        if (!HOP_BY_HOP.has(name)) out.push(line);
      }
      this.#head = undefined;
      const head = Buffer.from(`${out.join('\r\n')}\r\n\r\n`, 'latin1');
      const body = this.#chunked === undefined ? buf : this.#chunked.decode(buf);
      return body.length === 0 ? head : Buffer.concat([head, body]);
    }
  }
}

/** A chunked body (RFC 9112 7.1) decoded as it comes; extensions and trailers are dropped. */
class ChunkDecoder {
  /** Bytes of the current chunk still to come; -1 between chunks (a size line), -2 after the last. */
  #left = -1;
  #line = '';
  /** CRLF bytes to skip after a chunk's data. */
  #skip = 0;

  decode(data: Buffer): Buffer {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < data.length && this.#left !== -2) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, data.length - pos);
        this.#skip -= n;
        pos += n;
      } else if (this.#left > 0) {
        const n = Math.min(this.#left, data.length - pos);
        out.push(data.subarray(pos, pos + n));
        this.#left -= n;
        pos += n;
        if (this.#left === 0) {
          this.#left = -1;
          this.#skip = 2;
        }
      } else {
        const nl = data.indexOf(0x0a, pos);
        this.#line += data.toString('latin1', pos, nl < 0 ? data.length : nl);
        if (nl < 0) break;
        pos = nl + 1;
        const size = Number.parseInt(this.#line.split(';')[0]?.trim() ?? '', 16);
        this.#line = '';
        this.#left = Number.isFinite(size) && size > 0 ? size : -2; // 0 (or nonsense): the last chunk; trailers are dropped
      }
    }
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  }
}

/** How the request body reaches Node's HTTP parser. */
type Framing = { readonly kind: 'none' } | { readonly kind: 'length'; left: number } | { readonly kind: 'chunked' };

/**
 * One FastCGI request as the connection the app's `http.Server` serves: see the module's
 * doc. It describes the client (`remoteAddress`, `remotePort`, `encrypted` from
 * `REMOTE_ADDR`, `REMOTE_PORT`, `HTTPS`) and counts `bytesWritten` (the HTTP bytes Node
 * wrote, heads included), as {@link RequestSocketFacts} wants.
 */
export class FastcgiRequestSocket extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: string | undefined;
  readonly encrypted: boolean;
  bytesWritten = 0;
  /** The FastCGI request id. */
  readonly requestId: number;
  readonly #conn: FastcgiConnection;
  readonly #cgi = new CgiResponseWriter();
  #ended = false;
  #timer: NodeJS.Timeout | undefined;
  #timeoutMs = 0;

  constructor(conn: FastcgiConnection, head: FastcgiRequestHead) {
    super({ allowHalfOpen: true });
    this.#conn = conn;
    this.requestId = head.requestId;
    const params = head.params;
    const addr = params.get('REMOTE_ADDR');
    this.remoteAddress = addr === undefined || addr === '' ? conn.socket.remoteAddress : addr;
    this.remoteFamily = this.remoteAddress === undefined ? undefined : net.isIPv6(this.remoteAddress) ? 'IPv6' : 'IPv4';
    const port = Number(params.get('REMOTE_PORT'));
    this.remotePort = Number.isInteger(port) && port > 0 ? port : addr === undefined ? conn.socket.remotePort : undefined;
    const https = (params.get('HTTPS') ?? '').toLowerCase();
    this.encrypted = https === 'on' || https === '1' || params.get('REQUEST_SCHEME') === 'https';
    fastcgiSockets.add(this);
  }

  /** Node's HTTP server and apps call these on sockets; a FastCGI request has no TCP options of its own. */
  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  /** `socket.setTimeout`: 'timeout' after `ms` without bytes either way (0 turns it off). */
  setTimeout(ms: number, callback?: () => void): this {
    if (callback !== undefined) this.once('timeout', callback);
    this.#timeoutMs = ms;
    this.#touch();
    return this;
  }

  #touch(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = this.#timeoutMs > 0 && !this.destroyed ? setTimeout(() => this.emit('timeout'), this.#timeoutMs) : undefined;
  }

  /** Body bytes (or the synthetic head) for Node's parser; false: stop feeding. */
  feed(data: Buffer | null): boolean {
    if (this.#timeoutMs > 0) this.#touch();
    return this.push(data);
  }

  override _read(): void {
    this.#conn.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send([chunk], callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.#send(chunks.map((c) => c.chunk), callback);
  }

  #send(chunks: Buffer[], callback: (error?: Error | null) => void): void {
    if (this.#timeoutMs > 0) this.#touch();
    const records: Buffer[] = [];
    for (const chunk of chunks) {
      this.bytesWritten += chunk.length;
      const cgi = this.#cgi.write(chunk);
      if (cgi.length > 0) records.push(...encodeStream(FCGI_STDOUT, this.requestId, cgi));
    }
    if (records.length === 0) return callback();
    this.#conn.write(records, callback);
  }

  /** The response is complete: the end of STDOUT and `FCGI_END_REQUEST`; then the connection serves the next request, or closes. */
  override _final(callback: (error?: Error | null) => void): void {
    this.#ended = true;
    this.#conn.write([encodeResponseEnd(this.requestId)], (err) => {
      this.#conn.requestEnded(this);
      this.push(null); // the request's connection is over: lets the Duplex close
      callback(err);
    });
  }

  /**
   * Destroyed before the response ended (harakiri, the app's error after its head went
   * out, Node's own 400): the FastCGI connection is closed, so the front end sees the
   * response break off, as with every protocol. After an abort from the front end it
   * gets its `FCGI_END_REQUEST` instead ({@link FastcgiConnection.abort}).
   */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (!this.#ended) this.#conn.requestDestroyed(this);
    callback(error);
  }
}

/**
 * Request listener prepended on the app's server: FastCGI responses are neither chunked
 * nor kept alive in HTTP terms (FCGI_END_REQUEST ends them).
 */
export function frameFastcgiResponse(req: IncomingMessage, res: ServerResponse): void {
  if (fastcgiSockets.has(req.socket)) {
    res.useChunkedEncodingByDefault = false;
    res.shouldKeepAlive = false;
  }
}

/** The connections of one FastCGI socket, for a graceful stop. */
interface ConnectionSet {
  readonly live: Set<FastcgiConnection>;
  closing: boolean;
}

/** One connection from the front end: records in, requests to the app's server, records out. */
export class FastcgiConnection {
  readonly socket: net.Socket;
  readonly #target: http.Server;
  readonly #options: FastcgiOptions;
  readonly #set: ConnectionSet;
  readonly #parser: FastcgiParser;
  /** The request being served, once its head went to the app. */
  #request: FastcgiRequestSocket | undefined;
  /** The head of the active request, until the first STDIN record says how its body is framed. */
  #pending: FastcgiRequestHead | undefined;
  #framing: Framing = { kind: 'none' };
  #keepConn = false;
  #headTimer: NodeJS.Timeout | undefined;
  #paused = false;
  #corked = false;
  #done = false;
  /** The front end shut its side after sending: close once the request in flight ends. */
  #peerEnded = false;

  constructor(socket: net.Socket, target: http.Server, options: FastcgiOptions, set: ConnectionSet) {
    this.socket = socket;
    this.#target = target;
    this.#options = options;
    this.#set = set;
    this.#parser = new FastcgiParser({ bufferSize: options.bufferSize, maxConns: options.maxConns, maxReqs: options.maxReqs });
    set.live.add(this);
    // As Node's http.Server does for its own connections: no Nagle delay on the small
    // records that end a response (with it, kept connections waited for delayed ACKs).
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    socket.on('close', () => this.#onClose());
    socket.on('error', () => socket.destroy());
    socket.setTimeout(KEEP_CONN_IDLE_MS, () => this.#onIdle());
  }

  /** Between requests, with nothing of the next one received. */
  get idle(): boolean {
    return this.#request === undefined && this.#pending === undefined && !this.#parser.inHead && this.#parser.buffered === 0;
  }

  /**
   * Writes records to the front end; `callback` once they are out (backpressure for the
   * app's response). Writes of one turn of the event loop leave in one system call (the
   * socket is corked until `setImmediate`), so a response's last STDOUT and its
   * END_REQUEST arrive together: apart, a front end may answer its client before it
   * reads END_REQUEST, and nginx then drops the kept connection when that client closes
   * (measured with the Python worker, which now sends them together too).
   */
  write(records: Buffer[], callback: (err?: Error | null) => void): void {
    const socket = this.socket;
    if (socket.destroyed) {
      callback();
      return;
    }
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      setImmediate(() => {
        this.#corked = false;
        socket.uncork();
      });
    }
    const data = records.length === 1 ? (records[0] as Buffer) : Buffer.concat(records);
    if (socket.write(data)) callback();
    else socket.once('drain', () => callback());
  }

  /** The app's parser wants more body: take reads again. */
  resume(): void {
    if (this.#paused) {
      this.#paused = false;
      this.socket.resume();
    }
  }

  #onData(chunk: Buffer): void {
    for (const event of this.#parser.push(chunk)) {
      this.#event(event);
      if (this.#done) return;
    }
    this.#armHeadTimer();
  }

  #event(event: FastcgiEvent): void {
    switch (event.kind) {
      case 'request':
        this.#keepConn = event.head.keepConn;
        this.#pending = event.head;
        if (event.head.role === 'AUTHORIZER') this.#start({ kind: 'none' }, undefined);
        return;
      case 'stdin':
        this.#stdin(event.data);
        return;
      case 'stdin-end':
        this.#stdinEnd();
        return;
      case 'abort':
        this.abort();
        return;
      case 'reply':
        this.socket.write(event.data);
        if (event.close) this.#close();
        return;
      case 'invalid':
        this.#fail(event.reason);
        return;
      default: {
        const never: never = event;
        void never;
      }
    }
  }

  /**
   * The request goes to the app: the HTTP head built from the params (uwsgi-packet.ts does
   * the same for uwsgi vars), its body framed by CONTENT_LENGTH, else chunked when the
   * body turns out to have bytes (a front end streaming a body of unknown length).
   */
  #start(framing: Framing, first: Buffer | undefined): void {
    const head = this.#pending;
    if (head === undefined) return;
    this.#pending = undefined;
    const built = uwsgiToHttpHead(head.params, { chunkedBody: framing.kind === 'chunked' });
    if (typeof built === 'string') return this.#fail(`request ${head.requestId}: ${built}`);
    this.#framing = framing;
    const request = new FastcgiRequestSocket(this, head);
    this.#request = request;
    this.socket.setTimeout(0);
    request.feed(built.head);
    if (first !== undefined) this.#stdin(first);
    this.#target.emit('connection', request);
  }

  #stdin(data: Buffer): void {
    if (this.#pending !== undefined) {
      const length = contentLength(this.#pending.params);
      this.#start(length === undefined ? { kind: 'chunked' } : { kind: 'length', left: length }, data);
      return;
    }
    const request = this.#request;
    if (request === undefined) return;
    const framing = this.#framing;
    let more = true;
    if (framing.kind === 'length') {
      // Never past CONTENT_LENGTH (spec 6.2: at most that many bytes): the rest is dropped.
      const take = data.subarray(0, framing.left);
      framing.left -= take.length;
      if (take.length > 0) more = request.feed(take);
    } else if (framing.kind === 'chunked') {
      more = request.feed(Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')]));
    }
    if (!more && !this.#paused) {
      this.#paused = true;
      this.socket.pause();
    }
  }

  #stdinEnd(): void {
    if (this.#pending !== undefined) {
      const length = contentLength(this.#pending.params);
      this.#start(length === undefined || length === 0 ? { kind: 'none' } : { kind: 'length', left: length }, undefined);
    }
    const request = this.#request;
    if (request === undefined) return;
    const framing = this.#framing;
    if (framing.kind === 'chunked') request.feed(Buffer.from('0\r\n\r\n'));
    // A body shorter than CONTENT_LENGTH (the client went away, spec 6.2): its end is the
    // end of the request's input, which Node's parser reports as an aborted request.
    else if (framing.kind === 'length' && framing.left > 0) request.feed(null);
  }

  /**
   * `FCGI_ABORT_REQUEST`: the request ends at once (the app sees it aborted) and the
   * front end gets its `FCGI_END_REQUEST` (spec 5.4).
   */
  abort(): void {
    const request = this.#request;
    const id = this.#pending?.requestId;
    this.#pending = undefined;
    if (request === undefined) {
      if (id !== undefined) this.#endWithoutApp(id);
      return;
    }
    this.#request = undefined;
    this.socket.write(encodeEndRequest(request.requestId, 0, FCGI_REQUEST_COMPLETE));
    request.destroy();
    this.#between();
  }

  #endWithoutApp(requestId: number): void {
    this.socket.write(encodeEndRequest(requestId, 0, FCGI_REQUEST_COMPLETE));
    this.#between();
  }

  /** The app's response ended and its END_REQUEST is out. */
  requestEnded(request: FastcgiRequestSocket): void {
    if (this.#request !== request) return;
    this.#request = undefined;
    this.#between();
  }

  /** The app's side of the request was destroyed before its response ended: the connection goes. */
  requestDestroyed(request: FastcgiRequestSocket): void {
    if (this.#request !== request) return;
    this.#request = undefined;
    this.#close();
  }

  /** After a request: the next one on a kept connection, else close (spec 3.5, FCGI_KEEP_CONN). */
  #between(): void {
    this.#parser.ended();
    this.resume();
    this.socket.setTimeout(KEEP_CONN_IDLE_MS);
    if (!this.#keepConn || this.#set.closing || this.#peerEnded) this.socket.end();
  }

  #armHeadTimer(): void {
    const started = this.#parser.inHead || this.#pending !== undefined || (this.#request === undefined && this.#parser.buffered > 0);
    if (started && this.#headTimer === undefined) {
      // The Python worker's words (server.py head_timeout).
      this.#headTimer = setTimeout(() => this.#fail(`request head not complete ${this.#options.timeoutMs / 1000} s after its first byte (${this.#parser.buffered} bytes)`), this.#options.timeoutMs);
    } else if (!started && this.#headTimer !== undefined) {
      clearTimeout(this.#headTimer);
      this.#headTimer = undefined;
    }
  }

  /**
   * Idle for {@link KEEP_CONN_IDLE_MS}: a kept connection closes; one we already ended
   * (after its END_REQUEST, waiting for the front end to close its side, which avoids
   * resetting what it still sends) is destroyed.
   */
  #onIdle(): void {
    if (!this.idle) return;
    if (this.socket.writableEnded) this.socket.destroy();
    else this.socket.end();
  }

  #fail(reason: string): void {
    // The peer is asked for only here: getpeername per connection cost a few % of CPU.
    this.#options.onInvalid(peerOf(this.socket, this.#options.socketName), reason);
    this.#close();
  }

  #close(): void {
    this.#done = true;
    this.socket.destroy();
  }

  /**
   * The front end shut its side (the server allows half-open connections): a request in
   * flight still gets its response, then the connection closes; a head cut short is
   * logged; an idle connection just closes.
   */
  #onEnd(): void {
    this.#peerEnded = true;
    if (this.#request !== undefined && this.#pending === undefined) return;
    if (this.#pending !== undefined || this.#parser.inHead || this.#parser.buffered > 0) {
      this.#fail(`the front end closed the connection in the middle of a record or request head (${this.#parser.buffered} bytes)`);
      return;
    }
    // Ended already (after its last END_REQUEST): the socket closes by itself once what
    // it still has to write is out (both sides done); destroying it here could cut that off.
    if (!this.socket.writableEnded) this.socket.end();
  }

  #onClose(): void {
    if (this.#headTimer !== undefined) clearTimeout(this.#headTimer);
    this.#headTimer = undefined;
    const request = this.#request;
    this.#request = undefined;
    this.#pending = undefined;
    this.#set.live.delete(this);
    // The front end went away: the request ends (the app sees it aborted).
    if (request !== undefined && !request.destroyed) request.destroy();
  }
}

function contentLength(params: ReadonlyMap<string, string>): number | undefined {
  const text = params.get('CONTENT_LENGTH') ?? '';
  return /^\d{1,15}$/.test(text) ? Number(text) : undefined;
}

/**
 * The `fastcgi` protocol module. Needs the app's server to be an `http.Server` (it is fed
 * HTTP requests); its responses are framed by {@link frameFastcgiResponse}.
 */
export const fastcgiProtocol: Protocol = {
  name: 'fastcgi',
  serve(app, sockets, options): readonly ProtocolServer[] {
    if (!(app instanceof http.Server)) {
      throw new WorkerProtocolError(`cannot serve ${sockets.map((s) => s.name).join(', ')}: FastCGI needs the app's server to be an http.Server`);
    }
    app.prependListener('request', frameFastcgiResponse);
    return sockets.map((socket) => {
      const set: ConnectionSet = { live: new Set(), closing: false };
      const connection: FastcgiOptions = {
        bufferSize: options.bufferSize,
        timeoutMs: options.socketTimeoutMs,
        socketName: socket.name,
        maxConns: options.fastcgi.maxConns,
        maxReqs: options.fastcgi.maxReqs,
        onInvalid: (peer, reason) => options.logger.warn({ peer, socket: socket.name }, `FastCGI from ${peer}: ${reason}; connection closed`),
      };
      // Half-open allowed: a front end may shut its side once the request is sent and still read the response.
      const server = net.createServer({ allowHalfOpen: true }, (conn) => new FastcgiConnection(conn, app, connection, set));
      return {
        socket,
        server,
        // Connections end after their next request or when idle (KEEP_CONN_IDLE_MS), not at
        // once: closing an idle kept connection races the front end's next request on it
        // (measured: nginx logged "upstream prematurely closed connection" on every
        // recycle, and does not retry a POST). See docs/nginx.md on keepalive_timeout.
        close: () => {
          set.closing = true;
          return closeGracefully(server);
        },
      };
    });
  },
};
