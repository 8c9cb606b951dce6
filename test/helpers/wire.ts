/**
 * Clients that speak the wire formats byte by byte, for asserting framing: a uwsgi
 * client (what nginx's uwsgi_pass sends) and a raw TCP exchange.
 */
import { connect, type Socket } from 'node:net';
import { encodeUwsgiPacket } from '@emperor/vassal';

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
      for (const d of Array.isArray(data) ? data : [data]) socket.write(d);
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
export async function uwsgiRequest(target: Target, vars: Iterable<readonly [string, string]>, body: Buffer = Buffer.alloc(0)): Promise<RawResponse> {
  const raw = await exchange(target, [encodeUwsgiPacket(vars), body], { keepOpen: true });
  return parseResponse(raw);
}
