/**
 * Clients that speak the wire formats byte by byte, for asserting framing: a uwsgi
 * client (what nginx's uwsgi_pass sends), a FastCGI client (what fastcgi_pass and
 * lighttpd send) and a raw TCP exchange.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { FCGI_END_REQUEST, FCGI_STDOUT, decodeRecords, encodeRecord, encodeRequest, encodeUwsgiPacket, type EncodeRequestOptions, type FastcgiRecord } from '@emperor/vassal';

/** A parsed HTTP/1.x response. */
export interface RawResponse {
  readonly raw: Buffer;
  readonly statusLine: string;
  readonly status: number;
  /** Header names lower-cased; a repeated header keeps every value joined by ", ". */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/** Splits one HTTP response (head and whatever follows it). @throws when there is no head */
export function parseResponse(raw: Buffer): RawResponse {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no HTTP response head in ${JSON.stringify(raw.subarray(0, 200).toString('latin1'))}`);
  const [statusLine = '', ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { raw, statusLine, status: Number(statusLine.split(' ')[1]), headers, body: raw.subarray(end + 4) };
}

/** Where to connect: a TCP port on 127.0.0.1 or a unix socket path. */
export type Target = number | string;

function open(target: Target): Socket {
  return typeof target === 'number' ? connect(target, '127.0.0.1') : connect(target);
}

/**
 * Sends `data` (then half-closes unless `keepOpen`) and resolves with everything received
 * until the server closes. Rejects on a socket error other than a reset after data
 * (a server that closes with unread bytes sends RST; that still counts as "closed").
 */
export function exchange(target: Target, data: Buffer | readonly Buffer[], options: { timeoutMs?: number; keepOpen?: boolean } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = open(target);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${options.timeoutMs ?? 10_000} ms; got ${JSON.stringify(Buffer.concat(chunks).subarray(0, 200).toString('latin1'))}`));
    }, options.timeoutMs ?? 10_000);
    socket.on('connect', () => {
      // No write of an empty buffer (a request without a body): it would be queued behind
      // the first write and, if the server has answered and closed by then (a fast worker,
      // seen with the Node worker on a unix socket), fail with EPIPE, which destroys the
      // socket before its answer is read.
      for (const d of Array.isArray(data) ? data : [data]) if (d.length > 0) socket.write(d);
      if (options.keepOpen !== true) socket.end();
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') resolve(Buffer.concat(chunks));
      else reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/**
 * For fuzzing: sends `bytes` to 127.0.0.1:`port` (then half-closes) and resolves with
 * what came back, latin-1, once the server closes, resets, or sends nothing for 2 s.
 * Never rejects: a fuzz case judges the worker, not the exchange.
 */
export function fuzzExchange(port: number, bytes: Uint8Array): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    const done = (): void => {
      socket.destroy();
      resolve(got);
    };
    socket.setTimeout(2000, done);
    socket.on('data', (d) => (got += d.toString('latin1')));
    socket.on('error', done);
    socket.on('close', done);
    socket.on('connect', () => socket.end(bytes));
  });
}

/**
 * For fuzzing an HTTP server: the inputs the HTTP fuzzers share, in this order (so a seed
 * gives the same samples): random bytes, random text, `request` with up to 16 bytes of
 * junk written over it somewhere, `request` cut short, and a head with 1 to `maxBigHeaders`
 * headers of 1,000 bytes each. A fuzzer adds its own after these.
 */
export function httpMutations(request: string, maxBigHeaders: number): fc.Arbitrary<Uint8Array>[] {
  return [
    fc.uint8Array({ maxLength: 2048 }),
    fc.string({ maxLength: 300 }).map((s) => new TextEncoder().encode(s)),
    fc.tuple(fc.nat(request.length), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([at, junk]) => {
      const b = Buffer.from(request, 'latin1');
      return Buffer.concat([b.subarray(0, at), Buffer.from(junk), b.subarray(at + junk.length)]);
    }),
    fc.nat(request.length).map((cut) => Buffer.from(request.slice(0, cut), 'latin1')),
    fc.integer({ min: 1, max: maxBigHeaders }).map((n) => Buffer.from(`GET / HTTP/1.1\r\n${'X-Big: '.concat('y'.repeat(1000), '\r\n').repeat(n)}\r\n`)),
  ];
}

/** The vars nginx sends with the stock uwsgi_params for `GET uri` (plus a Host header). */
export function nginxVars(method: string, uri: string, extra: Record<string, string> = {}): [string, string][] {
  const [path = '/', query = ''] = uri.split('?', 2);
  const base: Record<string, string> = {
    QUERY_STRING: query,
    REQUEST_METHOD: method,
    CONTENT_TYPE: '',
    CONTENT_LENGTH: '',
    REQUEST_URI: uri,
    PATH_INFO: decodeURIComponent(path),
    DOCUMENT_ROOT: '/usr/share/nginx/html',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REQUEST_SCHEME: 'http',
    REMOTE_ADDR: '10.1.2.3',
    REMOTE_PORT: '40000',
    SERVER_PORT: '80',
    SERVER_NAME: 'example.test',
    HTTP_HOST: 'example.test',
    HTTP_USER_AGENT: 'wire-test',
  };
  return Object.entries({ ...base, ...extra });
}

/** One request over the uwsgi protocol; resolves with the raw HTTP response (the connection closes after it). */
export async function uwsgiRequest(target: Target, vars: Iterable<readonly [string, string]>, body: Buffer = Buffer.alloc(0), options: { timeoutMs?: number } = {}): Promise<RawResponse> {
  const raw = await exchange(target, [encodeUwsgiPacket(vars), body], { keepOpen: true, ...options });
  return parseResponse(raw);
}

/** The params nginx sends with the stock fastcgi_params for `method uri` (plus a Host header). */
export function fastcgiParams(method: string, uri: string, extra: Record<string, string> = {}): [string, string][] {
  const [path = '/', query = ''] = uri.split('?', 2);
  const base: Record<string, string> = {
    QUERY_STRING: query,
    REQUEST_METHOD: method,
    CONTENT_TYPE: '',
    CONTENT_LENGTH: '',
    SCRIPT_NAME: decodeURIComponent(path),
    REQUEST_URI: uri,
    DOCUMENT_URI: decodeURIComponent(path),
    DOCUMENT_ROOT: '/usr/share/nginx/html',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REQUEST_SCHEME: 'http',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'nginx/1.22.1',
    REMOTE_ADDR: '10.1.2.3',
    REMOTE_PORT: '40000',
    SERVER_ADDR: '127.0.0.1',
    SERVER_PORT: '80',
    SERVER_NAME: 'example.test',
    HTTP_HOST: 'example.test',
    HTTP_USER_AGENT: 'wire-test',
  };
  return Object.entries({ ...base, ...extra });
}

/** A FastCGI response read back: its records, and the CGI response their STDOUT makes. */
export interface CgiResponse {
  readonly records: FastcgiRecord[];
  /** From the `Status:` line (200 when there is none, as CGI says). */
  readonly status: number;
  /** Header names lower-cased. */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** `FCGI_END_REQUEST`'s protocolStatus, when it came. */
  readonly protocolStatus: number | undefined;
}

/**
 * The response to request `requestId` in `raw`: its STDOUT joined and split into the CGI
 * head and body. @throws when there is no STDOUT head
 */
export function parseCgiResponse(raw: Buffer, requestId = 1): CgiResponse {
  const { records } = decodeRecords(raw);
  const mine = records.filter((r) => r.requestId === requestId);
  const stdout = Buffer.concat(mine.filter((r) => r.type === FCGI_STDOUT).map((r) => r.content));
  const end = mine.find((r) => r.type === FCGI_END_REQUEST);
  const protocolStatus = end?.content[4];
  const at = stdout.indexOf('\r\n\r\n');
  if (at < 0) return { records, status: 0, headers: {}, body: stdout, protocolStatus };
  const headers: Record<string, string> = {};
  for (const line of stdout.subarray(0, at).toString('latin1').split('\r\n')) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { records, status: Number((headers.status ?? '200').split(' ')[0]), headers, body: stdout.subarray(at + 4), protocolStatus };
}

/** One FastCGI request on a new connection (closed by the worker after it); the response. */
export async function fastcgiRequest(target: Target, params: Iterable<readonly [string, string]>, body: Buffer = Buffer.alloc(0), options: EncodeRequestOptions = {}): Promise<CgiResponse> {
  const raw = await exchange(target, encodeRequest(params, body, options), { keepOpen: true });
  return parseCgiResponse(raw, options.requestId ?? 1);
}

/**
 * A connection to a FastCGI socket that stays open (`FCGI_KEEP_CONN`), for requests one
 * after the other and raw records; it collects whatever the worker sends.
 */
export class FastcgiConnection {
  readonly socket: Socket;
  #received: Buffer = Buffer.alloc(0);
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.#received = Buffer.concat([this.#received, c]);
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => undefined);
  }

  static open(target: Target): Promise<FastcgiConnection> {
    return new Promise((resolve, reject) => {
      const socket = open(target);
      socket.once('connect', () => resolve(new FastcgiConnection(socket)));
      socket.once('error', reject);
    });
  }

  /** Everything received so far. */
  get received(): Buffer {
    return this.#received;
  }

  write(data: Buffer): void {
    this.socket.write(data);
  }

  /**
   * Waits until the records received include `FCGI_END_REQUEST` for `requestId`; the
   * response, and forgets that request's records (others stay, in order).
   */
  async response(requestId = 1, timeoutMs = 10_000): Promise<CgiResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { records, rest } = decodeRecords(this.#received);
      const endAt = records.findIndex((r) => r.type === FCGI_END_REQUEST && r.requestId === requestId);
      if (endAt >= 0) {
        const mine = records.slice(0, endAt + 1).filter((r) => r.requestId === requestId);
        const others = records.filter((r, i) => i > endAt || r.requestId !== requestId);
        const bytes = (list: FastcgiRecord[]): Buffer => Buffer.concat(list.map((r) => encodeRecord(r.type, r.requestId, r.content)));
        this.#received = Buffer.concat([bytes(others), rest]);
        return parseCgiResponse(bytes(mine), requestId);
      }
      if (this.closed) throw new Error(`connection closed before END_REQUEST ${requestId}; got ${records.length} record(s) and ${rest.length} more bytes`);
      if (Date.now() > deadline) throw new Error(`no END_REQUEST ${requestId} within ${timeoutMs} ms; got ${records.map((r) => `${r.type}/${r.requestId}`).join(' ')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Waits for the worker to close the connection. */
  async closedByPeer(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`still open after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** libfcgi's command-line client (Debian `libfcgi-bin`). */
export const CGI_FCGI = '/usr/bin/cgi-fcgi';

/**
 * One request with `cgi-fcgi -bind -connect` (libfcgi-bin): `env` is every param it sends
 * (its whole environment), `body` its stdin. Resolves with the CGI response it prints.
 * @throws with the apt-get command when cgi-fcgi is not installed
 */
export function cgiFcgi(target: Target, env: Record<string, string>, body: Buffer = Buffer.alloc(0)): Promise<RawResponse & { readonly cgiStatus: number }> {
  if (!existsSync(CGI_FCGI)) throw new Error(`cgi-fcgi is missing: run \`apt-get install libfcgi-bin\` (CI does it in .ci/run)`);
  const where = typeof target === 'number' ? `127.0.0.1:${target}` : target;
  return new Promise((resolve, reject) => {
    const child = execFile(CGI_FCGI, ['-bind', '-connect', where], { env, encoding: 'buffer', timeout: 10_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`cgi-fcgi failed: ${err.message} ${String(stderr)}`));
        return;
      }
      const response = parseResponse(Buffer.concat([Buffer.from('HTTP/1.1 000 CGI\r\n'), stdout]));
      resolve({ ...response, cgiStatus: Number((response.headers.status ?? '200').split(' ')[0]) });
    });
    // cgi-fcgi reads stdin only for CONTENT_LENGTH bytes: a GET's cgi-fcgi may exit before
    // the (empty) end reaches its pipe, which is EPIPE there, not a failure; the answer is
    // judged from its output and exit status.
    child.stdin?.on('error', () => {});
    child.stdin?.end(body);
  });
}
