/**
 * One logger for every tier: pino JSON lines on stderr, one line per event, which the
 * systemd journal keeps as is. When stderr is a terminal the lines are formatted by
 * pino-pretty in-process (a synchronous stream, no transport thread: a worker thread per
 * process would cost every master and worker several MB).
 *
 * pino itself is loaded by the first line a process logs. A worker that logs nothing
 * (the usual case: the master logs its spawn, readiness and exit) never loads it, which
 * saves it about 9 MB of RSS and 30 ms of start-up (measured on Node 20).
 */
import { createRequire } from 'node:module';
import type { Logger, LevelWithSilent, DestinationStream } from 'pino';
import type PinoModule from 'pino';
import type PinoPretty from 'pino-pretty';

export type { Logger } from 'pino';

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Minimum level; default `EMPEROR_LOG_LEVEL` or `info`. */
  readonly level?: LevelWithSilent;
  /** Human-readable output; default: stderr is a TTY (or `EMPEROR_LOG_PRETTY=1`). */
  readonly pretty?: boolean;
  /** Where lines go; default stderr (fd 2), written synchronously so nothing is lost on exit. */
  readonly destination?: DestinationStream;
}

/**
 * Creates the process's logger with fixed bindings on every line, e.g.
 * `{ vassal: 'shop.ini' }` in a master, `{ vassal: 'shop.ini', worker: 2 }` in a worker.
 * `pid` is always present; `hostname` is dropped (the journal has it).
 */
export function createLogger(bindings: Record<string, unknown>, options: LoggerOptions = {}): Logger {
  let real: Logger | undefined;
  const make = (): Logger => {
    const require = createRequire(import.meta.url);
    const { pino } = require('pino') as typeof PinoModule;
    const level = options.level ?? (process.env.EMPEROR_LOG_LEVEL as LevelWithSilent | undefined) ?? 'info';
    const wantPretty = options.pretty ?? (process.env.EMPEROR_LOG_PRETTY === '1' || (process.env.EMPEROR_LOG_PRETTY !== '0' && process.stderr.isTTY === true));
    // pino-pretty is loaded only for a terminal: it costs ~35 ms at every worker start otherwise.
    const destination =
      options.destination ??
      (wantPretty
        ? (require('pino-pretty') as typeof PinoPretty)({ destination: 2, sync: true, colorize: process.stderr.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'hostname', singleLine: true })
        : pino.destination({ dest: 2, sync: true }));
    // A line nobody can read any more (EPIPE: the pipe or journal stream behind stderr
    // is gone, as when a master outlives the emperor whose stderr it shares) is dropped;
    // losing a log line must not end a process that serves requests.
    if (options.destination === undefined) (destination as unknown as NodeJS.EventEmitter).on('error', () => {});
    return pino({ level, base: { pid: process.pid, ...bindings } }, destination);
  };
  // The first use of any method or property creates the pino logger.
  return new Proxy({} as Logger, {
    get(_target, prop) {
      real ??= make();
      const value = Reflect.get(real, prop, real) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(real) : value;
    },
    set(_target, prop, value) {
      real ??= make();
      return Reflect.set(real, prop, value, real);
    },
  });
}
