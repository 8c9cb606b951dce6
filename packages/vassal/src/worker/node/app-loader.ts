/**
 * Loading a Node app and finding what to serve.
 *
 * Accepted shapes, tried in this order:
 * 1. The app calls `listen()` itself (an unmodified `server.js`): the first
 *    `net.Server#listen` call is intercepted before the module loads, and that server is
 *    served on the vassal's sockets instead of the port it asked for (what PM2 cluster
 *    mode does through Node's cluster module).
 * 2. The default export (or `module.exports`) is a request listener `(req, res)`:
 *    what `http.createServer` takes (Express apps, `connect`, plain functions).
 * 3. It has `fetch(request)` returning a Response (Hono and other web-standard apps).
 * 4. It has `callback()` returning a listener (Koa).
 */
import net from 'node:net';
import type { RequestListener } from 'node:http';
import { pathToFileURL } from 'node:url';
import { AppShapeError } from '@emperor/protocol';
import { isFetchApp, type FetchApp } from './fetch-adapter.js';

/** What the app gave us to serve. */
export type AppEntry =
  | { readonly kind: 'server'; readonly server: net.Server }
  | { readonly kind: 'listener'; readonly listener: RequestListener }
  | { readonly kind: 'fetch'; readonly app: FetchApp };

// Defined in the error registry (@emperor/protocol errors.ts); re-exported so existing imports keep working.
export { AppShapeError };

const originalListen = net.Server.prototype.listen;

/** Calls the real `listen` (ours, never intercepted). */
export function realListen(server: net.Server, options: net.ListenOptions, callback?: () => void): void {
  originalListen.call(server, options, callback);
}

/**
 * Installs the listen interception: every `listen()` on a server that is not ours is
 * handed to `onCapture` instead of binding anything. Its listen callback is kept as a
 * `listening` listener, so it runs when the server really listens on our sockets.
 * @returns a function removing the hook.
 */
export function interceptListen(ours: WeakSet<net.Server>, onCapture: (server: net.Server, asked: string) => void): () => void {
  net.Server.prototype.listen = function patchedListen(this: net.Server, ...args: unknown[]): net.Server {
    if (ours.has(this)) return originalListen.apply(this, args as Parameters<typeof originalListen>);
    const callback = args.findLast((a): a is () => void => typeof a === 'function');
    if (callback !== undefined) this.once('listening', callback);
    const asked = args.filter((a) => typeof a !== 'function').map((a) => JSON.stringify(a)).join(', ');
    onCapture(this, asked);
    return this;
  } as typeof originalListen;
  return () => {
    net.Server.prototype.listen = originalListen;
  };
}

/** Picks what to serve from a module namespace. Undefined when nothing fits. */
export function entryFromExports(namespace: Record<string, unknown>): AppEntry | undefined {
  const candidates = [namespace.default, namespace];
  for (const value of candidates) {
    if (typeof value === 'function') return { kind: 'listener', listener: value as RequestListener };
    if (isFetchApp(value)) return { kind: 'fetch', app: value };
    if (typeof value === 'object' && value !== null && typeof (value as { callback?: unknown }).callback === 'function') {
      const listener = (value as { callback(): unknown }).callback();
      if (typeof listener === 'function') return { kind: 'listener', listener: listener as RequestListener };
    }
  }
  return undefined;
}

/**
 * Imports the app module (ESM or CommonJS) and resolves what to serve. If the module
 * neither exports something servable nor has called `listen()` by the time it finished
 * loading, waits up to `listenTimeoutMs` for a late `listen()` (apps that connect to a
 * database first).
 *
 * The interception stays for the worker's life: once we serve something, a later
 * `listen()` by the app is not allowed to bind its own port (every worker would race
 * for it); it is reported through `onIgnoredListen` and its callback still runs.
 * @throws whatever the import throws (the caller logs it with its stack), or AppShapeError.
 */
export async function loadApp(
  modulePath: string,
  listenTimeoutMs: number,
  ours: WeakSet<net.Server>,
  onIgnoredListen: (asked: string) => void,
): Promise<AppEntry> {
  let server: net.Server | undefined;
  let settled = false;
  let wake: (() => void) | undefined;
  interceptListen(ours, (s, asked) => {
    if (!settled && server === undefined) {
      server = s;
      wake?.();
      return;
    }
    onIgnoredListen(asked);
    process.nextTick(() => s.emit('listening'));
  });
  const namespace = (await import(pathToFileURL(modulePath).href)) as Record<string, unknown>;
  const entry = server !== undefined ? undefined : entryFromExports(namespace);
  if (server === undefined && entry === undefined) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, listenTimeoutMs);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  settled = true;
  if (server !== undefined) return { kind: 'server', server };
  if (entry !== undefined) return entry;
  throw new AppShapeError(
    `${modulePath} exports neither a request listener (req, res), an object with fetch(request), nor one with callback(), ` +
      `and did not call listen() within ${listenTimeoutMs / 1000} s`,
  );
}
