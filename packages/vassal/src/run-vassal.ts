/**
 * Running one vassal master in this process, either under an emperor (an IPC channel
 * is open: `node master.js FILE`) or standalone in the foreground
 * (`emperor --ini FILE`, like `uwsgi --ini FILE`).
 */
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMAND_LINE, formatWarning, loadVassalConfig, resolveVassalConfig, type RawOption, type VassalConfig } from '@emperor/config';
import { ExitCode, isEmperorError, parseEmperorToMaster, type MasterToEmperor } from '@emperor/protocol';
import { createLogger, renderStats, serveStats, type Logger, type StatsServer } from '@emperor/process';
import { Master } from './master.js';
import { PythonInterpreters, type PythonInterpreter } from './python-interpreter.js';
import { buildVassalStats } from './stats.js';
import { enforceTyrant, type ForcedIdentity } from './users.js';

/** Where the worker programs are, next to this file in the built package. */
export const WORKER_ENTRIES = {
  node: fileURLToPath(new URL('./runtimes/node/worker-main.js', import.meta.url)),
  python: join(dirname(fileURLToPath(import.meta.url)), '..', 'python', 'emperor_worker.py'),
} as const;

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
}

function load(file: string | undefined, options: RunVassalOptions, logger: Logger): VassalConfig {
  const { config, warnings } =
    file === undefined
      ? // `emperor --http-socket :8080 --module app.js`: the command line is the vassal.
        resolveVassalConfig([{ file: COMMAND_LINE, format: 'ini', options: options.overrides ?? [] }])
      : loadVassalConfig(file, {
          ...(options.inherit ? { inherit: options.inherit } : {}),
          ...(options.overrides ? { overrides: options.overrides } : {}),
        });
  for (const w of warnings) logger.warn({ code: w.code, file: w.file, line: w.line, option: w.option }, formatWarning(w));
  if (options.tyrant !== undefined) enforceTyrant(config, options.tyrant);
  return config;
}

/**
 * Loads the vassal file (or, with `file` undefined, the command-line options alone),
 * starts the master and keeps the process alive until it stops.
 * Exits the process: 0 after a requested stop, {@link ExitCode.CONFIG} when the file is
 * invalid (the emperor then waits for the file to change), {@link ExitCode.UNAVAILABLE}
 * when a socket or the uid/gid cannot be had.
 */
export async function runVassal(file: string | undefined, options: RunVassalOptions = {}): Promise<void> {
  const name = file === undefined ? 'command-line' : basename(file);
  const logger = createLogger({ vassal: name });
  const underEmperor = typeof process.send === 'function';
  process.title = `emperor vassal ${name}`;
  let config: VassalConfig;
  try {
    config = load(file, options, logger);
  } catch (err) {
    const e = err as { code?: string; file?: string; line?: number; option?: string; message: string };
    logger.error({ code: e.code, file: e.file, line: e.line, option: e.option }, isEmperorError(err) ? e.message : `${file ?? COMMAND_LINE}: ${e.message}`);
    process.exit(ExitCode.CONFIG);
  }

  // One info line per vassal start (and per reload that changes it) saying which Python runs the app.
  const pythons = new PythonInterpreters();
  const sayPython = (found: PythonInterpreter): void =>
    logger.info({ python: found.path, python_version: found.version }, `python interpreter: ${found.path} (Python ${found.version}, from ${found.source})`);
  try {
    pythons.prepare(config, sayPython);
  } catch (err) {
    logger.error({ code: (err as { code?: string }).code }, (err as Error).message);
    process.exit(ExitCode.UNAVAILABLE);
  }
  const master = new Master({
    config,
    logger,
    reloadConfig: () => {
      const next = load(file, options, logger);
      pythons.prepare(next, sayPython); // a reload to a missing interpreter is abandoned
      return next;
    },
    workerEntries: WORKER_ENTRIES,
    pythonInterpreter: (c) => pythons.pathFor(c),
  });
  const tell = (message: MasterToEmperor): void => {
    if (underEmperor && process.connected) process.send?.(message);
  };
  master.on('ready', () => tell({ v: 1, type: 'ready' }));
  master.on('accepting', () => tell({ v: 1, type: 'accepting' }));
  master.on('loyal', () => tell({ v: 1, type: 'loyal' }));
  master.on('heartbeat', () => tell({ v: 1, type: 'heartbeat' }));
  master.on('reloaded', (ok) => tell({ v: 1, type: 'reloaded', ok }));
  let stats: StatsServer | undefined;
  master.on('exit', (code) => {
    void (stats?.close() ?? Promise.resolve()).finally(() => process.exit(code));
  });

  process.on('SIGTERM', () => void master.stop('SIGTERM'));
  process.on('SIGINT', () => {
    if (underEmperor) return; // a terminal's Ctrl-C: the emperor stops us in order
    void master.stop('SIGINT');
  });
  process.on('SIGHUP', () => void master.reload('graceful'));
  if (underEmperor) {
    process.on('message', (raw) => {
      let message;
      try {
        message = parseEmperorToMaster(raw);
      } catch (err) {
        logger.warn((err as Error).message);
        return;
      }
      switch (message.type) {
        case 'reload':
          void master.reload('graceful');
          return;
        case 'chain-reload':
          void master.reload('chain');
          return;
        case 'stop':
          void master.stop('emperor');
          return;
        default: {
          const never: never = message;
          void never;
        }
      }
    });
    // The emperor is gone (its end of the IPC channel closed, even on SIGKILL): stop fast.
    process.on('disconnect', () => {
      const mercy = master.config.noOrphans ? NO_ORPHANS_MERCY_MS : ORPHAN_MERCY_MS;
      logger.error('lost connection with the emperor; stopping');
      void master.stop('emperor lost', mercy);
      setTimeout(() => master.destroy(1), mercy + 400).unref();
    });
  }

  try {
    await master.start();
  } catch (err) {
    logger.error({ code: (err as { code?: string }).code }, (err as Error).message);
    master.destroy(ExitCode.UNAVAILABLE);
    return;
  }
  if (config.stats !== undefined) {
    try {
      stats = await serveStats(config.stats, async () => {
        await master.freshQueues();
        return renderStats(buildVassalStats(master), config.statsMinified);
      }, {
        http: config.statsHttp,
        mode: config.chmodSocket,
      });
      logger.info(`stats server on ${stats.address}`);
    } catch (err) {
      logger.error(`stats: cannot listen on ${JSON.stringify(config.stats)}: ${(err as Error).message}`);
    }
  }
}
