/**
 * The Node worker's entry: loads the app, accepts on the inherited sockets itself (no
 * proxy hop through the master), and publishes its state in its scoreboard slot.
 *
 * It wires the parts and owns the process: spec → protocols (chosen before the app
 * loads) → app → the app's server with the request accounting → sockets listening →
 * `ready`; then the lifecycle (stop, recycle, signals, the master's messages), the slot's
 * heartbeat and the harakiri-verbose watchdog. It is the only module that exits the
 * process: the others return, or throw coded errors (errors.ts) that it turns into one
 * log line and an exit code (`ExitCode` in packages/protocol).
 */
import net from 'node:net';
import { ExitCode, type WorkerToMaster } from '@emperor/protocol';
import { ScoreboardWriter } from '../../shared/scoreboard.js';
import { readWorkerSpec, WORKER_SPEC_ENV, type WorkerSpec } from '../../shared/worker-spec.js';
import { loadApp, type AppEntry } from './app-loader.js';
import { appErrorHandler, appServer } from './app-server.js';
import { SocketListenError, WorkerProtocolError } from './errors.js';
import { perRequestHarakiri } from './harakiri.js';
import { Lifecycle } from './lifecycle.js';
import { setUpLogging } from './logging.js';
import { planProtocols, serveSockets, type Serving } from './protocols/index.js';
import { mountListener } from './mount.js';
import { trackRequests } from './requests.js';
import { SlotPublisher } from './slot.js';
import { startStackWatchdog } from './stack-watchdog.js';

/** How long an app that neither exports a handler nor has listened may take to call listen(), ms. */
const LATE_LISTEN_TIMEOUT_MS = 30_000;
/** With the master gone, how long requests in flight get before the worker exits anyway, ms. */
const ORPHAN_EXIT_MS = 900;

const spec: WorkerSpec = readWorkerSpec(process.env);
delete process.env[WORKER_SPEC_ENV];
delete process.env.LISTEN_FDS;
delete process.env.LISTEN_FDNAMES;
process.title = `emperor worker ${spec.id} ${spec.vassal}`;

const logging = setUpLogging(spec);
const logger = logging.logger;
const send = (message: WorkerToMaster): void => {
  process.send?.(message);
};
const slot = new SlotPublisher(new ScoreboardWriter(spec.scoreboard.fd, spec.scoreboard.index), {
  harakiriMs: spec.harakiriMs,
  heartbeatIntervalMs: spec.heartbeatIntervalMs,
  onWriteError: (err) => logger.error({ err }, `cannot write the scoreboard: ${err.message}`),
});
const lifecycle = new Lifecycle({
  slot,
  logger,
  maxRequests: spec.maxRequests,
  minWorkerLifetimeMs: spec.minWorkerLifetimeMs,
  startedAtMs: Date.now(),
  send,
  reopenLogs: () => logging.reopen(),
  onStopped: () => process.exit(ExitCode.OK),
});
/** Servers whose `listen()` the app-loader's interception lets through. */
const ours = new WeakSet<net.Server>();

process.on('message', (raw) => lifecycle.onMessage(raw));
// The master is gone (the IPC channel closed): no orphans. Stop, and exit within 1 s even
// if requests are still running (pdeathsig covers the case of a blocked event loop).
process.on('disconnect', () => {
  logger.warn('lost the master; exiting');
  setTimeout(() => process.exit(ExitCode.OK), ORPHAN_EXIT_MS).unref();
  lifecycle.stop();
});
process.on('SIGTERM', () => lifecycle.stop());
// SIGINT and SIGHUP come from a terminal or a session ending; the master decides.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
process.on('uncaughtException', (err) => {
  slot.exceptions += 1;
  slot.publish();
  logger.fatal({ err }, `uncaught exception, worker exits: ${err.message}`);
  process.exit(1);
});

slot.startHeartbeat();
slot.publish();
if (spec.stackFile !== undefined && spec.stackPipeFd !== undefined) startStackWatchdog(spec.stackPipeFd, spec.stackFile);

async function start(): Promise<void> {
  if (spec.app.runtime !== 'node') throw new Error(`the Node worker cannot run a ${spec.app.runtime} app`);
  if (spec.sockets.length === 0) throw new Error('no socket to serve');
  const plan = planProtocols(spec.sockets);
  let entry: AppEntry;
  try {
    entry = await loadApp(spec.app.module, LATE_LISTEN_TIMEOUT_MS, ours, (asked) =>
      logger.warn(`the app called listen(${asked}) after it was already served on the vassal's sockets; ignored`),
    );
  } catch (err) {
    logger.error({ err, module: spec.app.module }, `cannot load app ${spec.app.module}: ${(err as Error)?.message ?? String(err)}`);
    process.exit(ExitCode.APP_LOAD);
  }
  const app = appServer(entry, appErrorHandler(logger, () => (slot.exceptions += 1)), ours);
  if (entry.kind === 'server') logger.info(`serving the server the app created (its listen() is redirected to ${spec.sockets.map((s) => s.name).join(', ')})`);
  const mount = mountListener(spec.mount.mountpoint, spec.mount.manageScriptName);
  if (mount !== undefined) app.prependListener('request', mount); // behind the accounting (prepended next), before the app
  app.prependListener('request', trackRequests({ slot, harakiri: perRequestHarakiri(spec.harakiriMs, logger, () => (slot.harakiriCount += 1)), logging, lifecycle }));
  let serving: Serving;
  try {
    serving = await serveSockets(app, plan, { bufferSize: spec.bufferSize, socketTimeoutMs: spec.socketTimeoutMs, fastcgi: spec.fastcgi, logger, backlog: spec.backlog, ours });
  } catch (err) {
    if (err instanceof SocketListenError) {
      logger.error({ code: err.errno }, err.message);
      process.exit(ExitCode.UNAVAILABLE);
    }
    if (err instanceof WorkerProtocolError) {
      logger.error(err.message);
      process.exit(ExitCode.APP_LOAD);
    }
    throw err;
  }
  // On uwsgi sockets only, the app's own server never listens; its listen callback still runs.
  if (entry.kind === 'server' && !serving.servers.some((s) => s.server === app)) app.emit('listening');
  lifecycle.served(serving);
  slot.markServing();
  slot.accepting = true;
  slot.publish();
  send({ v: 1, type: 'ready' });
}

start().catch((err: unknown) => {
  logger.error({ err }, `worker failed to start: ${(err as Error)?.message ?? String(err)}`);
  process.exit(ExitCode.APP_LOAD);
});
