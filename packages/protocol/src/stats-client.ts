/**
 * Reads one stats document from a stats server, the way uwsgitop does: connect, read
 * until the server closes, parse JSON. Works against our master and emperor and against
 * uWSGI itself.
 */
import { connect, type Socket } from 'node:net';
import { StatsReadError } from './errors.js';

/** Where to read stats from, parsed from a string. */
export type StatsAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'http'; readonly url: string };

/**
 * Parses a stats address as uwsgitop does: `http://...` → HTTP GET; anything with a `:`
 * → TCP `host:port` (split at the last colon, `:port` means 127.0.0.1, `[v6]:port` allowed);
 * `@name` → abstract unix socket; anything else → unix socket path.
 */
export function parseStatsAddress(address: string): StatsAddress {
  if (/^https?:\/\//.test(address)) return { kind: 'http', url: address };
  if (address.startsWith('@')) return { kind: 'unix', path: `\0${address.slice(1)}` };
  const colon = address.lastIndexOf(':');
  if (colon >= 0 && !address.includes('/')) {
    let host = address.slice(0, colon);
    const port = Number(address.slice(colon + 1));
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    if (host === '' || host === '0.0.0.0') host = '127.0.0.1';
    return { kind: 'tcp', host, port };
  }
  return { kind: 'unix', path: address };
}

/**
 * Connects, reads until EOF and returns the parsed JSON document.
 * A response that starts with an HTTP status line (`stats-http`) has its headers stripped.
 * @param timeoutMs whole-operation timeout in milliseconds. @default 5000
 * @throws StatsReadError when the server is unreachable, times out, or sends invalid JSON.
 */
export async function readStats(address: string, options: { timeoutMs?: number } = {}): Promise<unknown> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const target = parseStatsAddress(address);
  let body: string;
  if (target.kind === 'http') {
    try {
      const res = await fetch(target.url, { signal: AbortSignal.timeout(timeoutMs) });
      body = await res.text();
    } catch (err) {
      throw new StatsReadError(`stats ${address}: ${(err as Error).message}`, { cause: err });
    }
  } else {
    body = await readUntilEof(target, address, timeoutMs);
  }
  if (body.startsWith('HTTP/')) {
    const end = body.indexOf('\r\n\r\n');
    body = end >= 0 ? body.slice(end + 4) : '';
  }
  try {
    return JSON.parse(body) as unknown;
  } catch (err) {
    throw new StatsReadError(`stats ${address}: not JSON (${body.length} bytes): ${(err as Error).message}`, { cause: err });
  }
}

function readUntilEof(target: Exclude<StatsAddress, { kind: 'http' }>, address: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket: Socket = target.kind === 'tcp' ? connect(target.port, target.host) : connect(target.path);
    socket.setTimeout(timeoutMs, () => socket.destroy(new StatsReadError(`stats ${address}: no answer within ${timeoutMs} ms`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', (err) => reject(err instanceof StatsReadError ? err : new StatsReadError(`stats ${address}: ${err.message}`, { cause: err })));
    // Nothing is written: a plain stats server closes without reading, and unread bytes
    // would make its kernel answer with RST, which can cut the document short.
  });
}
