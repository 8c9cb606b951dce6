/**
 * Running one vassal master in this process, either under an emperor (an IPC channel
 * is open: `node master.js FILE`) or standalone in the foreground
 * (`emperor --ini FILE`, like `uwsgi --ini FILE`).
 */
import { fchownSync } from 'node:fs';
import net from 'node:net';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMAND_LINE, formatListenAddress, formatWarning, loadVassalConfig, resolveVassalConfig, type ConfigWarning, type LoadedConfig, type RawOption, type VassalConfig } from '@emperor/config';
import { ExitCode, isEmperorError, parseEmperorToMaster, type EmperorToMaster, type MasterToEmperor } from '@emperor/protocol';
import { createLogger, openLogSink, pinLogStyle, renderStats, serveMetrics, serveStats, vassalMetrics, type Logger, type LogSink, type StatsServer } from '@emperor/process';
import { EmperorLink, bindWaiting, takeLease } from './emperor-link.js';
import { systemIo } from './io.js';
import { Master } from './master.js';
import { MasterFifo } from './master-fifo.js';
import { checkAppAccess } from './app-access.js';
import { createRuntimes } from './runtimes/index.js';
import { inspectSocketFd } from './sockets.js';
import { buildVassalStats } from './stats.js';
import { enforceTyrant, resolveCredentials, type ForcedIdentity } from './users.js';
import type { WorkerEntries } from './worker-code.js';

/**
 * Where the worker programs are, in the built package: the Node worker's entry (the one-file
 * bundle of dist/worker/node/worker-main.js made by scripts/bundle.mjs), and the
 * Python worker's launcher, whose directory holds only it and the `emperor_worker` package
 * (so nothing of ours shadows the app's imports; see python/emperor-worker.py).
 */
export const WORKER_ENTRIES: WorkerEntries = {
  node: fileURLToPath(new URL('../bundle/worker-main.js', import.meta.url)),
  python: join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'python', 'emperor-worker.py'),
};

/** How long workers get to finish when the emperor dies, ms; with `no-orphans`, {@link NO_ORPHANS_MERCY_MS}. */
export const ORPHAN_MERCY_MS = 3000;
/** `no-orphans`: the master and its workers are gone within 1 s of the emperor's death. */
export const NO_ORPHANS_MERCY_MS = 500;

/** Options for {@link runVassal}. */
export interface RunVassalOptions {
  /** `vassals-inherit` files whose options the vassal gets first. */
  readonly inherit?: readonly string[];
  /** Options from the command line, applied last. */
  readonly overrides?: readonly RawOption[];
  /** Tyrant mode: the only uid/gid this vassal may run as (its file's owner). */
  readonly tyrant?: ForcedIdentity | undefined;
  /**
   * A listening socket is open on stdin (a web server spawned this master, lighttpd
   * `bin-path`): the vassal serves it too (`ResolveVassalConfigOptions.stdinSocket`).
   * {@link runVassal} finds it out itself when it runs standalone.
   */
  readonly stdinSocket?: boolean;
  /**
   * The emperor started this master on demand: the listening socket on fd 0 is the one
   * it bound, with this name (`ResolveVassalConfigOptions.onDemandSocket`). With `idle`
   * and `die-on-idle`, the master sends it back to the emperor before it exits.
   */
  readonly onDemandSocket?: string | undefined;
}

/**
 * Reads the vassal's configuration (file, inherited files, command line).
 * @throws the config error; in tyrant mode, the error of a uid/gid other than the file's owner
 */
function read(file: string | undefined, options: RunVassalOptions): LoadedConfig<VassalConfig> {
  const stdinSocket = options.stdinSocket ?? false;
  const loaded = file === undefined
    ? // `emperor --http-socket :8080 --module app.js`: the command line is the vassal.
      resolveVassalConfig([{ file: COMMAND_LINE, format: 'ini', options: options.overrides ?? [] }], { stdinSocket })
    : loadVassalConfig(file, {
        ...(options.inherit ? { inherit: options.inherit } : {}),
        ...(options.overrides ? { overrides: options.overrides } : {}),
        stdinSocket,
        onDemandSocket: options.onDemandSocket,
      });
  if (options.tyrant !== undefined) enforceTyrant(loaded.config, options.tyrant);
  return loaded;
}

function warn(logger: Logger, warnings: readonly ConfigWarning[]): void {
  for (const w of warnings) logger.warn({ code: w.code, file: w.file, line: w.line, option: w.option }, formatWarning(w));
}

function load(file: string | undefined, options: RunVassalOptions, logger: Logger): VassalConfig {
  const { config, warnings } = read(file, options);
  warn(logger, warnings);
  return config;
}

/**
 * `logto`: the master's lines go to the file, written at once (they are few), and the
 * workers get its descriptor as their stdout and stderr. A file that cannot be opened is
 * one error line, and the vassal runs logging to stderr.
 *
 * A master about to drop to `uid`/`gid` gives the file to them (what uWSGI's
 * `logfile-chown` does): its workers reopen the file by path after logrotate, as that user.
 */
function openLog(name: string, config: VassalConfig, stderr: Logger): { logger: Logger; file: LogSink | undefined } {
  if (config.logto === undefined) return { logger: stderr, file: undefined };
  try {
    const file = openLogSink({ path: config.logto, buffered: false, onError: (err) => stderr.error(`logto: cannot write ${config.logto}: ${err.message}`) });
    if (process.getuid?.() === 0 && (config.uid !== undefined || config.gid !== undefined)) {
      try {
        const to = resolveCredentials(config.uid, config.gid);
        fchownSync(file.fd, to.uid ?? -1, to.gid ?? -1);
      } catch (err) {
        // An unknown user stops the master a moment later, with its own error line.
        stderr.warn(`logto: cannot give ${config.logto} to ${String(config.uid ?? '')}:${String(config.gid ?? '')}: ${(err as Error).message}`);
      }
    }
    stderr.info(`logging to ${config.logto}`);
    return { logger: createLogger({ vassal: name }, { destination: { write: (line: string) => file.write(line) } }), file };
  } catch (err) {
    stderr.error(`logto: cannot open ${config.logto}: ${(err as Error).message}; logging to stderr`);
    return { logger: stderr, file: undefined };
  }
}

/**
 * Sends one message to the emperor and resolves once it is written to the channel (so the
 * bin's `process.exit` with {@link runVassal}'s code does not lose it); resolves at once
 * without an emperor.
 */
function tellEmperorOnce(message: MasterToEmperor): Promise<void> {
  return new Promise((resolve) => {
    if (typeof process.send !== 'function' || !process.connected) {
      resolve();
      return;
    }
    process.send(message, undefined, {}, () => resolve());
  });
}

type CreateServerHandle = (address: string | null, port: number, addressType: number, fd?: number) => object | number;

/**
 * Sends `idle` (uWSGI byte 22) on the IPC channel and resolves once it is written; an
 * on-demand master sends its listening socket (fd 0) along as the message's handle, so
 * the emperor holds it before the master closes its own.
 */
function sendIdle(withSocket: boolean): Promise<void> {
  return new Promise((resolve) => {
    let handle: object | undefined;
    if (withSocket) {
      // Node's cluster makes its handles the same way (not in @types/node).
      const created = (net as unknown as { _createServerHandle: CreateServerHandle })._createServerHandle(null, 0, 0, 0);
      if (typeof created !== 'number') handle = created;
    }
    const message: MasterToEmperor = { v: 1, type: 'idle' };
    try {
      process.send?.(message, handle as net.Server | undefined, {}, () => resolve());
    } catch {
      resolve();
    }
  });
}

/**
 * Loads the vassal file (or, with `file` undefined, the command-line options alone),
 * starts the master and runs it until it stops. The caller (a bin) exits the process
 * with the code this resolves to: 0 after a requested stop, {@link ExitCode.CONFIG} when
 * the file is invalid (the emperor then waits for the file to change),
 * {@link ExitCode.UNAVAILABLE} when a socket, the uid/gid or a Python interpreter cannot
 * be had, {@link ExitCode.FAILURE} when the emperor vanished and the workers had to be killed.
 */
export async function runVassal(file: string | undefined, given: RunVassalOptions = {}): Promise<ExitCode> {
  const name = file === undefined ? 'command-line' : basename(file);
  const stderr = createLogger({ vassal: name });
  const underEmperor = typeof process.send === 'function';
  process.title = `emperor vassal ${name}`;
  // Standalone, a listening socket on stdin is a web server's (lighttpd bin-path, the
  // FastCGI spec's FCGI_LISTENSOCK_FILENO); under the emperor, stdin is /dev/null.
  const options: RunVassalOptions = { ...given, stdinSocket: given.stdinSocket ?? (!underEmperor && (await inspectSocketFd(0))?.listening === true) };
  let loaded: LoadedConfig<VassalConfig>;
  try {
    loaded = read(file, options);
  } catch (err) {
    const e = err as { code?: string; file?: string; line?: number; option?: string; message: string };
    const message = isEmperorError(err) ? e.message : `${file ?? COMMAND_LINE}: ${e.message}`;
    stderr.error({ code: e.code, file: e.file, line: e.line, option: e.option }, message);
    // The emperor shows it as this vassal's last error (emperor stats), not just "invalid file".
    await tellEmperorOnce({ v: 1, type: 'config-error', code: e.code ?? 'ERR_CONFIG_VALUE', message });
    return ExitCode.CONFIG;
  }
  const config = loaded.config;
  // The vassal's own log-style wins; `auto` keeps what the emperor (or this terminal) chose. Pinned for the workers.
  pinLogStyle(config.logStyle);
  const { logger, file: logFile } = openLog(name, config, stderr);
  warn(logger, loaded.warnings);

  // The emperor's lease (fd 4), if it handed one: how to find the next emperor.
  const lease = underEmperor ? takeLease(process.env, logger) : undefined;
  // The Python runtime logs one line per vassal start (and per reload that changes it)
  // saying which Python runs the app, chosen after the drop to uid/gid, as the vassal's
  // user would choose it; the app's access is judged as that user too.
  const master = new Master({
    ...(lease !== undefined && lease.bindWaitMs > 0 ? { io: { bindSockets: bindWaiting(systemIo.bindSockets, lease.bindWaitMs, logger) } } : {}),
    config,
    logger,
    reloadConfig: () => load(file, options, logger),
    afterDrop: checkAppAccess, // a reload to an unreadable app is abandoned
    runtimes: createRuntimes(WORKER_ENTRIES, logger),
    logFd: () => logFile?.fd,
  });
  const flags = { ready: false, accepting: false, loyal: false };
  const link = new EmperorLink({
    lease,
    logger,
    noOrphans: config.noOrphans,
    flags: () => flags,
    sendIpc: (message: MasterToEmperor) => underEmperor && process.connected && (process.send?.(message) ?? false),
    onMessage: (message) => onEmperor(message),
    onAbandoned: (reason, why) => {
      if (reason === 'emperor-lost') {
        // The old rule (no lease, emperor-adopt-timeout = 0, or no-orphans): stop fast.
        const mercy = master.config.noOrphans ? NO_ORPHANS_MERCY_MS : ORPHAN_MERCY_MS;
        logger.error(`${why}; stopping`);
        void master.stop('emperor lost', mercy);
        setTimeout(() => master.destroy(ExitCode.FAILURE), mercy + 400).unref();
        return;
      }
      logger.error(`${why}; stopping gracefully`);
      void master.stop('no emperor');
    },
    ...(process.env.EMPEROR_CONTROL_VERSION !== undefined ? { version: Number(process.env.EMPEROR_CONTROL_VERSION) } : {}),
  });
  const tell = (message: MasterToEmperor): void => link.send(message);
  master.on('ready', () => {
    flags.ready = true;
    tell({ v: 1, type: 'ready' });
  });
  master.on('accepting', () => {
    flags.accepting = true;
    tell({ v: 1, type: 'accepting' });
  });
  master.on('loyal', () => {
    flags.loyal = true;
    tell({ v: 1, type: 'loyal' });
  });
  master.on('heartbeat', () => tell({ v: 1, type: 'heartbeat' }));
  master.on('idle', () => {
    // uWSGI sends byte 22 and waits for the emperor's stop; here the master stops on its
    // own, after the emperor has the message (and, on demand, the socket back).
    void (async () => {
      if (underEmperor && process.connected) {
        logger.info('idle: telling the emperor (die-on-idle)');
        await sendIdle(options.onDemandSocket !== undefined);
      } else if (lease !== undefined) {
        link.send({ v: 1, type: 'idle' });
      }
      await master.stop('die-on-idle');
    })();
  });
  master.on('reloaded', (ok) => tell({ v: 1, type: 'reloaded', ok }));
  let stats: StatsServer | undefined;
  let prometheus: StatsServer | undefined;
  let fifo: MasterFifo | undefined;
  const exited = new Promise<ExitCode>((resolve) => {
    master.on('exit', (code) => {
      link.close();
      fifo?.close(config.vacuum);
      void Promise.all([stats?.close(), prometheus?.close()]).finally(() => resolve(code));
    });
  });

  process.on('SIGTERM', () => void master.stop('SIGTERM'));
  process.on('SIGINT', () => {
    if (underEmperor) return; // a terminal's Ctrl-C: the emperor stops us in order
    void master.stop('SIGINT');
  });
  process.on('SIGHUP', () => void master.reload('graceful'));
  // logrotate: the master reopens `logto` and tells its workers (a message: Python
  // workers keep SIGUSR2 for their stack dumps). `logto` itself is read at start only.
  const reopenLogs = (why: string): void => {
    if (logFile === undefined) {
      logger.info(`${why}: no logto file to reopen`);
      return;
    }
    try {
      logFile.reopen();
      logger.info(`${why}: reopened ${logFile.path}`);
    } catch (err) {
      logger.error(`logto: cannot reopen ${logFile.path}: ${(err as Error).message}; still writing to the old file`);
    }
    master.reopenLogs();
  };
  process.on('SIGUSR2', () => reopenLogs('SIGUSR2'));
  master.on('touch-logreopen', (touched) => reopenLogs(`${touched} touched`));
  // From the spawning emperor (IPC) or an adopting one (the control socket).
  function onEmperor(message: EmperorToMaster): void {
    switch (message.type) {
      case 'reload':
        void master.reload('graceful');
        return;
      case 'stop':
        void master.stop('emperor');
        return;
      case 'reopen-logs':
        reopenLogs('the emperor asked');
        return;
      default: {
        const never: never = message;
        void never;
      }
    }
  }
  if (underEmperor) {
    process.on('message', (raw) => {
      let message;
      try {
        message = parseEmperorToMaster(raw);
      } catch (err) {
        logger.warn((err as Error).message);
        return;
      }
      onEmperor(message);
    });
    // The emperor is gone (its end of the IPC channel closed, even on SIGKILL): with a
    // lease, serve on and wait for a new emperor; without one, stop fast.
    process.on('disconnect', () => link.lost());
  }

  try {
    await master.start();
  } catch (err) {
    logger.error({ code: (err as { code?: string }).code }, (err as Error).message);
    master.destroy(ExitCode.UNAVAILABLE);
    return exited;
  }
  if (config.masterFifo.length > 0) {
    fifo = new MasterFifo(config.masterFifo, {
      r: () => void master.reload('graceful'),
      w: () => void master.reload('graceful', false),
      c: () => void master.reload('chain'),
      q: () => void master.stop('master FIFO q'),
      Q: () => master.destroy(ExitCode.OK),
      l: () => reopenLogs('master FIFO l'),
      s: () => void logStats(master, logger),
      '+': () => master.adjustPool(1),
      '-': () => master.adjustPool(-1),
      P: () => {
        try {
          return master.writePidfile() ? undefined : 'no pidfile is configured';
        } catch (err) {
          return `cannot write ${config.pidfile ?? ''}: ${(err as Error).message}`;
        }
      },
    }, logger);
    if (fifo.path !== undefined) logger.info(`master FIFO on ${fifo.path}`);
  }
  // The scoreboard, memory and listen queues are brought up to date first (see Master.fresh).
  const metrics = vassalMetrics(async () => {
    await master.fresh();
    return buildVassalStats(master);
  });
  const onScrapeError = (err: Error): void => logger.error(`metrics: cannot render: ${err.message}`);
  if (config.stats !== undefined) {
    try {
      stats = await serveStats(config.stats, async () => {
        await master.fresh();
        return renderStats(buildVassalStats(master), config.statsMinified);
      }, {
        http: config.statsHttp,
        mode: config.chmodSocket,
        metrics,
        onError: onScrapeError,
      });
      logger.info(`stats server on ${stats.address}`);
    } catch (err) {
      logger.error(`stats: cannot listen on ${formatListenAddress(config.stats)}: ${(err as Error).message}; the vassal keeps serving without stats`);
    }
  }
  if (config.prometheus !== undefined) {
    try {
      prometheus = await serveMetrics(config.prometheus, metrics, { mode: config.chmodSocket, onError: onScrapeError });
      logger.info(`prometheus metrics on ${prometheus.address}/metrics`);
    } catch (err) {
      logger.error(`prometheus: cannot listen on ${formatListenAddress(config.prometheus)}: ${(err as Error).message}; the vassal keeps serving without metrics`);
    }
  }
  return exited;
}


/**
 * The master FIFO's `s` (uWSGI logs its stats): one line for the vassal, then one per
 * worker, from the same figures as the stats socket.
 */
async function logStats(master: Master, logger: Logger): Promise<void> {
  await master.fresh();
  const doc = buildVassalStats(master);
  const running = doc.workers.filter((w) => w.pid > 0);
  logger.info({ listen_queue: doc.listen_queue, workers: running.length }, `stats: ${running.length} worker(s) running of ${doc.workers.length}, ${doc.workers.reduce((n, w) => n + w.requests, 0)} requests, listen queue ${doc.listen_queue}`);
  for (const w of doc.workers) {
    logger.info(
      { worker: w.id, worker_pid: w.pid, status: w.status, requests: w.requests, exceptions: w.exceptions, avg_rt_us: w.avg_rt, rss: w.rss, respawn_count: w.respawn_count },
      `stats: worker ${w.id} (pid ${w.pid}): ${w.status}, ${w.requests} requests, ${w.exceptions} exceptions, avg ${(w.avg_rt / 1000).toFixed(1)} ms, RSS ${(w.rss / 1048576).toFixed(1)} MB, respawned ${w.respawn_count} time(s)`,
    );
  }
}
