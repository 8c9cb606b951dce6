/**
 * The Node worker: loads the app, accepts on the inherited sockets itself (no proxy hop
 * through the master), and publishes its state in its scoreboard slot.
 *
 * Per request it only touches memory (a Map entry, counters); the slot is written by a
 * timer every `heartbeatIntervalMs`, which doubles as the heartbeat the master watches
 * to catch a blocked event loop. So the master costs nothing per request. Without
 * `harakiri` nobody watches that beat, and the timer runs only while there is something
 * to catch up: an idle worker sleeps (see {@link changed}).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { ExitCode, parseMasterToWorker, type WorkerToMaster } from '@emperor/protocol';
import { ScoreboardWriter, SlotStatus, type SlotData } from '../../shared/scoreboard.js';
import { readWorkerSpec, WORKER_SPEC_ENV, type WorkerSpec } from '../../shared/worker-spec.js';
import { loadApp, realListen, type AppEntry } from './app-loader.js';
import { setUpLogging } from './logging.js';
import { fetchListener } from './fetch-adapter.js';
import { startStackWatchdog } from './stack-watchdog.js';
import { frameUwsgiResponse, serveUwsgiConnection } from './uwsgi-server.js';

/** How long an app that neither exports a handler nor has listened may take to call listen(), ms. */
const LATE_LISTEN_TIMEOUT_MS = 30_000;

/**
 * When idle⇄busy transitions are written to the slot at once. Under keep-alive load a
 * worker goes idle→busy about once per request, and a write costs about 1.3 µs: so the
 * start of a request is published unless the slot was written in the last millisecond
 * (at most ~1000 writes/s, ~0.13% of a core), which puts the request that blocks the
 * event loop in the slot before it blocks, for the master's harakiri line. Going idle
 * is published at most every 100 ms; the periodic heartbeat write catches up the rest.
 */
const BUSY_PUBLISH_MS = 1;
const IDLE_PUBLISH_MS = 100;

interface InFlight {
  readonly res: ServerResponse;
  readonly startMs: number;
  readonly method: string;
  readonly uri: string;
}

const spec: WorkerSpec = readWorkerSpec(process.env);
delete process.env[WORKER_SPEC_ENV];
delete process.env.LISTEN_FDS;
delete process.env.LISTEN_FDNAMES;
process.title = `emperor worker ${spec.id} ${spec.vassal}`;

const logging = setUpLogging(spec);
const logger = logging.logger;
const writer = new ScoreboardWriter(spec.scoreboard.fd, spec.scoreboard.index);
const inFlight = new Map<IncomingMessage, InFlight>();
const servers: net.Server[] = [];
const ours = new WeakSet<net.Server>();

const startedAt = Date.now();
let status: SlotStatus = SlotStatus.STARTING;
let accepting = false;
let stopping = false;
let recycling = false;
let requests = 0;
let exceptions = 0;
let txBytes = 0;
let runningTimeUs = 0;
let avgRtUs = 0;
let harakiriCount = 0;
let lastRequestEndMs = 0;
let lastPublishMs = 0;

function publish(): void {
  let oldest: InFlight | undefined;
  for (const r of inFlight.values()) {
    oldest = r;
    break; // Map keeps insertion order: the first entry is the oldest request
  }
  const data: SlotData = {
    pid: process.pid,
    status: stopping ? SlotStatus.STOPPING : status === SlotStatus.STARTING ? status : inFlight.size > 0 ? SlotStatus.BUSY : SlotStatus.IDLE,
    accepting,
    inFlight: inFlight.size,
    heartbeatMs: Date.now(),
    requests,
    exceptions,
    txBytes,
    runningTimeUs,
    avgRtUs,
    requestStartMs: oldest?.startMs ?? 0,
    harakiriCount,
    lastRequestEndMs,
    method: oldest?.method ?? '',
    uri: oldest?.uri ?? '',
  };
  lastPublishMs = data.heartbeatMs;
  try {
    writer.write(data);
  } catch (err) {
    logger.error({ err }, `cannot write the scoreboard: ${(err as Error).message}`);
  }
}

/**
 * The catch-up write without `harakiri`: armed when the worker's state changes, it writes
 * the slot `heartbeatIntervalMs` later, and again every interval while requests are in
 * flight, then stops. An idle worker so arms no timer and never wakes: a 1 s timer in an
 * idle worker cost about 0.2 ms of CPU per second (measured; 4% of a core for 200
 * vassals). With `harakiri` the slot is written on a fixed interval instead (the beat).
 */
let catchUp: NodeJS.Timeout | undefined;
function changed(): void {
  if (catchUp !== undefined || spec.harakiriMs > 0) return;
  catchUp = setTimeout(() => {
    catchUp = undefined;
    publish();
    if (inFlight.size > 0) changed();
  }, spec.heartbeatIntervalMs).unref();
}

function send(message: WorkerToMaster): void {
  process.send?.(message);
}

/** Answers 500 if nothing was sent yet, counts the exception and logs it with its stack. */
function onAppError(err: unknown, req: IncomingMessage, res: ServerResponse): void {
  exceptions += 1;
  logger.error({ err, method: req.method, uri: req.url }, `exception in ${req.method ?? '?'} ${req.url ?? '?'}: ${(err as Error)?.message ?? String(err)}`);
  if (!res.headersSent) {
    res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' });
    res.end('Internal Server Error\n');
  } else {
    res.destroy();
  }
}

/**
 * Accounting for every request, prepended to the server's `request` listeners so it
 * runs before the app: in-flight tracking, per-request harakiri, counters on close.
 */
function track(req: IncomingMessage, res: ServerResponse): void {
  const startMs = Date.now();
  const t0 = performance.now();
  const socket = req.socket;
  const tx0 = socket.bytesWritten;
  inFlight.set(req, { res, startMs, method: req.method ?? '', uri: req.url ?? '' });
  if (inFlight.size === 1 && startMs - lastPublishMs >= BUSY_PUBLISH_MS) publish();
  changed();
  if ((stopping || recycling) && !res.headersSent) res.setHeader('connection', 'close');
  let timer: NodeJS.Timeout | undefined;
  if (spec.harakiriMs > 0) {
    timer = setTimeout(() => {
      harakiriCount += 1;
      const ranMs = Date.now() - startMs;
      logger.error(
        { method: req.method, uri: req.url, ran_ms: ranMs, harakiri_ms: spec.harakiriMs },
        `HARAKIRI: ${req.method ?? '?'} ${req.url ?? '?'} ran for ${(ranMs / 1000).toFixed(1)} s (harakiri ${spec.harakiriMs / 1000} s); its connection is closed`,
      );
      res.destroy();
    }, spec.harakiriMs);
  }
  res.once('close', () => {
    if (timer !== undefined) clearTimeout(timer);
    inFlight.delete(req);
    const rtUs = (performance.now() - t0) * 1000;
    requests += 1;
    runningTimeUs += rtUs;
    avgRtUs = avgRtUs === 0 ? rtUs : (avgRtUs + rtUs) / 2; // uWSGI's running average
    const sent = socket.bytesWritten - tx0;
    txBytes += sent;
    lastRequestEndMs = Date.now();
    logging.request(req, res, startMs, rtUs, sent, requests);
    if (inFlight.size === 0 && lastRequestEndMs - lastPublishMs >= IDLE_PUBLISH_MS) publish();
    else changed();
    checkMaxRequests();
  });
}

function listenerFor(entry: Exclude<AppEntry, { kind: 'server' }>): http.RequestListener {
  if (entry.kind === 'fetch') return fetchListener(entry.app, onAppError);
  const listener = entry.listener;
  return (req, res) => {
    try {
      const result: unknown = listener(req, res);
      if (result instanceof Promise) result.catch((err: unknown) => onAppError(err, req, res));
    } catch (err) {
      onAppError(err, req, res);
    }
  };
}

function listenOn(server: net.Server, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    realListen(server, { fd, backlog: spec.backlog } as net.ListenOptions, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

async function start(): Promise<void> {
  if (spec.app.runtime !== 'node') throw new Error(`the Node worker cannot run a ${spec.app.runtime} app`);
  if (spec.sockets.length === 0) throw new Error('no socket to serve');
  let entry: AppEntry;
  try {
    entry = await loadApp(spec.app.module, LATE_LISTEN_TIMEOUT_MS, ours, (asked) =>
      logger.warn(`the app called listen(${asked}) after it was already served on the vassal's sockets; ignored`),
    );
  } catch (err) {
    logger.error({ err, module: spec.app.module }, `cannot load app ${spec.app.module}: ${(err as Error)?.message ?? String(err)}`);
    process.exit(ExitCode.APP_LOAD);
  }
  // One HTTP server serves every socket: the app's own, or ours around its handler.
  let target: net.Server;
  if (entry.kind === 'server') {
    target = entry.server;
    logger.info(`serving the server the app created (its listen() is redirected to ${spec.sockets.map((s) => s.name).join(', ')})`);
  } else {
    target = http.createServer(listenerFor(entry));
    ours.add(target);
  }
  const hasUwsgi = spec.sockets.some((s) => s.protocol === 'uwsgi');
  if (hasUwsgi && !(target instanceof http.Server)) {
    logger.error(`cannot serve ${spec.sockets.filter((s) => s.protocol === 'uwsgi').map((s) => s.name).join(', ')}: the uwsgi protocol needs the app's server to be an http.Server`);
    process.exit(ExitCode.APP_LOAD);
  }
  const httpTarget = target as http.Server;
  httpTarget.prependListener('request', track);
  if (hasUwsgi) httpTarget.prependListener('request', frameUwsgiResponse);
  const forward: http.RequestListener = (req, res) => httpTarget.emit('request', req, res);
  let targetListens = false;
  for (const s of spec.sockets) {
    let server: net.Server;
    if (s.protocol === 'uwsgi') {
      server = net.createServer((socket) =>
        serveUwsgiConnection(socket, httpTarget, {
          bufferSize: spec.bufferSize,
          timeoutMs: spec.socketTimeoutMs,
          socketName: s.name,
          onInvalid: (peer, reason) => logger.warn({ peer, socket: s.name }, `uwsgi packet from ${peer}: ${reason}; connection closed`),
        }),
      );
    } else if (!targetListens) {
      server = target;
      targetListens = true;
    } else {
      server = http.createServer(forward); // further http sockets hand their requests to the one server
    }
    if (entry.kind !== 'server' || server !== entry.server) ours.add(server);
    try {
      await listenOn(server, s.fd);
    } catch (err) {
      // Two vassals bound the same port before either listened: the second loses here.
      logger.error({ code: (err as NodeJS.ErrnoException).code }, `cannot listen on ${s.name}: ${(err as Error).message}`);
      process.exit(ExitCode.UNAVAILABLE);
    }
    servers.push(server);
  }
  // Only uwsgi sockets: the app's own server never listens, but its listen callback still runs.
  if (!targetListens && entry.kind === 'server') target.emit('listening');
  status = SlotStatus.IDLE;
  accepting = true;
  publish();
  send({ v: 1, type: 'ready' });
}

/**
 * Stops accepting new connections on every socket (the listening sockets live on in the
 * master) and resolves once every connection of every server has ended. Shared by the
 * graceful stop and by max-requests recycling: a server's `close` event fires only once.
 */
let drained: Promise<void> | undefined;
function stopAccepting(): Promise<void> {
  if (drained !== undefined) return drained;
  accepting = false;
  for (const r of inFlight.values()) if (!r.res.headersSent) r.res.setHeader('connection', 'close');
  drained = Promise.all(
    servers.map(
      (server) =>
        new Promise<void>((resolve) => {
          // net.Server#close, not http.Server#close: the latter also drops idle keep-alive
          // connections at once (Node >= 19), racing a client that is sending on them.
          net.Server.prototype.close.call(server, () => resolve());
        }),
    ),
  ).then(() => undefined);
  publish();
  return drained;
}

/**
 * `max-requests` (uWSGI core/utils.c: checked in the worker after each request, gated by
 * `min-worker-lifetime`): stop accepting and ask the master for a replacement, which
 * sends `stop` once it is ready.
 */
function checkMaxRequests(): void {
  if (recycling || stopping || spec.maxRequests <= 0 || requests < spec.maxRequests) return;
  if (Date.now() - startedAt < spec.minWorkerLifetimeMs) return;
  recycling = true;
  logger.info({ requests }, `served ${requests} requests (max-requests ${spec.maxRequests}); asking to be replaced`);
  void stopAccepting();
  send({ v: 1, type: 'recycle', reason: 'max-requests' });
}

/**
 * Graceful stop: stop accepting, tell every in-flight request's client to close its
 * connection, let idle keep-alive connections end on their own (the next response
 * carries `Connection: close`, or the server's keep-alive timeout closes them), then
 * exit 0. Closing idle connections at once would race a client that is sending on them,
 * which is how reloads lose keep-alive requests (pm2 reload loses 39-46 per reload on
 * this machine).
 */
let stopped: Promise<void> | undefined;
function stop(): Promise<void> {
  if (stopped !== undefined) return stopped;
  stopping = true;
  stopped = stopAccepting().then(() => finishStop());
  return stopped;
}

function finishStop(): void {
  publish();
  process.exit(ExitCode.OK);
}

process.on('message', (raw) => {
  try {
    const message = parseMasterToWorker(raw);
    switch (message.type) {
      case 'stop':
        void stop();
        return;
      case 'reopen-logs':
        logging.reopen();
        return;
      default: {
        const never: never = message;
        void never;
      }
    }
  } catch (err) {
    logger.warn((err as Error).message);
  }
});

// The master is gone (the IPC channel closed): no orphans. Stop, and exit within 1 s even
// if requests are still running (pdeathsig covers the case of a blocked event loop).
process.on('disconnect', () => {
  logger.warn('lost the master; exiting');
  setTimeout(() => process.exit(ExitCode.OK), 900).unref();
  void stop();
});
process.on('SIGTERM', () => void stop());
// SIGINT and SIGHUP come from a terminal or a session ending; the master decides.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});

process.on('uncaughtException', (err) => {
  exceptions += 1;
  publish();
  logger.fatal({ err }, `uncaught exception, worker exits: ${err.message}`);
  process.exit(1);
});

if (spec.harakiriMs > 0) setInterval(publish, spec.heartbeatIntervalMs).unref();
publish();
if (spec.stackFile !== undefined && spec.stackPipeFd !== undefined) startStackWatchdog(spec.stackPipeFd, spec.stackFile);

start().catch((err: unknown) => {
  logger.error({ err }, `worker failed to start: ${(err as Error)?.message ?? String(err)}`);
  process.exit(ExitCode.APP_LOAD);
});
