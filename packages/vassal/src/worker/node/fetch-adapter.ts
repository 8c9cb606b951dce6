/**
 * Serves a web-standard app (`{ fetch(request): Response }`, e.g. Hono, itty-router, or
 * Bun/Deno-style handlers) from Node's http server: the IncomingMessage becomes a
 * Request, the Response is streamed back with backpressure.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** The shape we accept: an object with a `fetch` method. */
export interface FetchApp {
  fetch(request: Request): Response | Promise<Response>;
}

/** True when `value` looks like a {@link FetchApp}. */
export function isFetchApp(value: unknown): value is FetchApp {
  return typeof value === 'object' && value !== null && typeof (value as { fetch?: unknown }).fetch === 'function';
}

/** Converts a Node request into a web Request; the body streams (`duplex: 'half'`). */
export function toWebRequest(req: IncomingMessage, signal: AbortSignal): Request {
  const host = req.headers.host ?? 'localhost';
  const url = new URL(req.url ?? '/', `http://${host}`);
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.set(name, value);
  }
  const method = req.method ?? 'GET';
  const init: RequestInit & { duplex?: 'half' } = { method, headers, signal };
  if (method !== 'GET' && method !== 'HEAD') {
    init.body = Readable.toWeb(req) as ReadableStream<Uint8Array>;
    init.duplex = 'half';
  }
  return new Request(url, init);
}

/** Writes a web Response to a Node response. */
export async function sendWebResponse(response: Response, res: ServerResponse, head: boolean): Promise<void> {
  res.statusCode = response.status;
  if (response.statusText !== '') res.statusMessage = response.statusText;
  const cookies = response.headers.getSetCookie();
  for (const [name, value] of response.headers) {
    if (name === 'set-cookie') continue;
    res.setHeader(name, value);
  }
  if (cookies.length > 0) res.setHeader('set-cookie', cookies);
  if (response.body === null || head) {
    res.end();
    return;
  }
  await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>), res);
}

/**
 * A request listener serving `app`. A rejected or throwing `fetch` is reported through
 * `onError` (which answers 500 when it still can).
 */
export function fetchListener(app: FetchApp, onError: (err: unknown, req: IncomingMessage, res: ServerResponse) => void) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const controller = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    void (async () => {
      try {
        const response = await app.fetch(toWebRequest(req, controller.signal));
        await sendWebResponse(response, res, req.method === 'HEAD');
      } catch (err) {
        if (controller.signal.aborted) return; // the client went away
        onError(err, req, res);
      }
    })();
  };
}
