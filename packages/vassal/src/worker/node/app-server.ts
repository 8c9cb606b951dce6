/**
 * The one server every protocol of a Node worker feeds (protocols/protocol.ts): the
 * server the app created itself, or an `http.Server` of ours around the app's request
 * listener or fetch app, which answers the app's exceptions with a 500.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type net from 'node:net';
import type { Logger } from '@emperor/process/logger';
import type { AppEntry } from './app-loader.js';
import { fetchListener } from './fetch-adapter.js';

/** Reports an exception of the app's handler for one request. */
export type AppErrorHandler = (err: unknown, req: IncomingMessage, res: ServerResponse) => void;

/**
 * Answers 500 if nothing was sent yet (else destroys the response), calls `count`, and
 * logs the exception with its stack and the request's method and URI.
 */
export function appErrorHandler(logger: Logger, count: () => void): AppErrorHandler {
  return (err, req, res) => {
    count();
    logger.error({ err, method: req.method, uri: req.url }, `exception in ${req.method ?? '?'} ${req.url ?? '?'}: ${(err as Error)?.message ?? String(err)}`);
    if (!res.headersSent) {
      res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' });
      res.end('Internal Server Error\n');
    } else {
      res.destroy();
    }
  };
}

/** The app's listener with its throws and rejections reported to `onError`. */
function listenerFor(entry: Exclude<AppEntry, { kind: 'server' }>, onError: AppErrorHandler): http.RequestListener {
  if (entry.kind === 'fetch') return fetchListener(entry.app, onError);
  const listener = entry.listener;
  return (req, res) => {
    try {
      const result: unknown = listener(req, res);
      if (result instanceof Promise) result.catch((err: unknown) => onError(err, req, res));
    } catch (err) {
      onError(err, req, res);
    }
  };
}

/**
 * The server to serve: the app's own (`kind: 'server'`), else a new `http.Server` around
 * its handler, added to `ours` so its `listen()` is not intercepted (app-loader.ts).
 */
export function appServer(entry: AppEntry, onError: AppErrorHandler, ours: WeakSet<net.Server>): net.Server {
  if (entry.kind === 'server') return entry.server;
  const server = http.createServer(listenerFor(entry, onError));
  ours.add(server);
  return server;
}
