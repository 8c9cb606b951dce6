/**
 * One logger for every tier: pino, one line per event on stderr (or a `logto` file), in
 * one of two styles (`log-style`, docs/logging.md):
 * - `json`: pino's JSON objects, for machines (a log shipper, `docker logs` into a JSON
 *   pipeline);
 * - `text`: one line per event in the spirit of uWSGI's log lines, with the same fields
 *   (see {@link formatTextLine}), for people (journald, a terminal).
 *
 * `auto` (the default) picks text under systemd (stderr is the journal: `JOURNAL_STREAM`
 * names it) and on a terminal, JSON otherwise. Each tier resolves the choice once and
 * pins it in `EMPEROR_LOG_STYLE` ({@link pinLogStyle}), which its children inherit: the
 * emperor decides for its masters, a master (or its vassal file's `log-style`) for its
 * workers, so the lines of one tree agree even where a worker's stderr is a `logto` file.
 *
 * Text lines are made from pino's JSON by a small formatter in this process (no
 * pino-pretty, no transport thread: a worker thread per process would cost every master
 * and worker several MB). Event lines are rare; request lines do not go through pino.
 *
 * pino itself is loaded by the first line a process logs. A worker that logs nothing
 * (the usual case: the master logs its spawn, readiness and exit) never loads it, which
 * saves it about 9 MB of RSS and 30 ms of start-up (measured on Node 20).
 */
import { fstatSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Logger, LevelWithSilent, DestinationStream } from 'pino';
import type PinoModule from 'pino';

export type { Logger } from 'pino';

/** How event lines are written: see the module comment. */
export type LogStyle = 'text' | 'json';

/** `log-style` as configured: a {@link LogStyle}, or `auto` (decided by where stderr goes). */
export type LogStyleChoice = LogStyle | 'auto';

/** The variable a tier pins its resolved {@link LogStyle} in, for its children (and for tests). */
export const LOG_STYLE_ENV = 'EMPEROR_LOG_STYLE';

/** What {@link resolveLogStyle} looks at; the real process's by default. */
export interface LogStyleContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** stderr is a terminal. */
  readonly isTTY: boolean;
  /** `dev:ino` of fd 2, as systemd writes it in `JOURNAL_STREAM`; undefined when unknown. */
  readonly stderrId: string | undefined;
}

function stderrId(): string | undefined {
  try {
    const stats = fstatSync(2);
    return `${stats.dev}:${stats.ino}`;
  } catch {
    return undefined;
  }
}

function processContext(): LogStyleContext {
  return { env: process.env, isTTY: process.stderr.isTTY === true, stderrId: stderrId() };
}

/**
 * The style for `choice`: `text` or `json` as given; for `auto`, an inherited
 * `EMPEROR_LOG_STYLE`, else `text` when stderr is the systemd journal (`JOURNAL_STREAM`
 * equals fd 2's `dev:ino`, the check systemd.exec(5) recommends: a service that redirects
 * its stderr elsewhere inherits the variable too) or a terminal, else `json`.
 */
export function resolveLogStyle(choice: LogStyleChoice, context: LogStyleContext = processContext()): LogStyle {
  if (choice !== 'auto') return choice;
  const pinned = context.env[LOG_STYLE_ENV];
  if (pinned === 'text' || pinned === 'json') return pinned;
  const journal = context.env.JOURNAL_STREAM;
  if (journal !== undefined && journal !== '' && journal === context.stderrId) return 'text';
  return context.isTTY ? 'text' : 'json';
}

/**
 * Resolves `choice` ({@link resolveLogStyle}) and pins the result in this process's
 * `EMPEROR_LOG_STYLE`, so the loggers it creates from now on, and the children it spawns
 * (which inherit its environment), write that style.
 * @returns the pinned style
 */
export function pinLogStyle(choice: LogStyleChoice): LogStyle {
  const style = resolveLogStyle(choice);
  process.env[LOG_STYLE_ENV] = style;
  return style;
}

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Minimum level; default `EMPEROR_LOG_LEVEL` or `info`. */
  readonly level?: LevelWithSilent;
  /** The line style; default {@link resolveLogStyle}('auto'), read when the first line is logged. */
  readonly style?: LogStyle;
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
    const style = options.style ?? resolveLogStyle('auto');
    const destination = options.destination ?? pino.destination({ dest: 2, sync: true });
    // A line nobody can read any more (EPIPE: the pipe or journal stream behind stderr
    // is gone, as when a master outlives the emperor whose stderr it shares) is dropped;
    // losing a log line must not end a process that serves requests.
    if (options.destination === undefined) (destination as unknown as NodeJS.EventEmitter).on('error', () => {});
    return pino({ level, base: { pid: process.pid, ...bindings } }, style === 'text' ? textDestination(destination) : destination);
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

/** A destination that turns each of pino's JSON lines into a text line before `inner` gets it. */
function textDestination(inner: DestinationStream): DestinationStream {
  return {
    write(chunk: string): void {
      let out = '';
      for (const line of chunk.split('\n')) {
        if (line === '') continue;
        let record: unknown;
        try {
          record = JSON.parse(line);
        } catch {
          out += `${line}\n`;
          continue;
        }
        out += typeof record === 'object' && record !== null && !Array.isArray(record) ? formatTextLine(record as Record<string, unknown>) : `${line}\n`;
      }
      inner.write(out);
    },
  };
}

const LEVEL_NAMES: Readonly<Record<number, string>> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** The bindings that name the process, shown in its `[pid: N|...]` head rather than as fields. */
const HEAD_FIELDS = new Set(['level', 'time', 'pid', 'msg', 'role', 'vassal', 'worker', 'err']);
/** A field value shown bare: nothing that would make the line ambiguous to read. */
const BARE = /^[^ "|=\\\u0000-\u001f\u007f]+$/;
const CONTROL = /[\u0000-\u001f\u007f]/g;

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** `2026-12-06 13:42:01.123`, local time, from epoch ms. */
function localTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Control characters as `\n`, `\r`, `\t` or `\xHH`, so a message stays on its line. */
function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => (c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/** A field's value: bare when unambiguous, else as JSON (strings quoted, objects compact). */
function fieldValue(value: unknown): string {
  if (typeof value === 'string') return BARE.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * One event as a text line (the `text` log style), from the record pino (or the Python
 * worker, which writes the same) would write as JSON:
 *
 *   2026-12-06 13:42:01.123 INFO [pid: 4242|vassal: shop.ini|worker: 2] worker ready | generation=1
 *
 * local time with milliseconds; the level; the process's head in the shape of uWSGI's
 * request line prefix (`[pid: N|app: 0|req: 1/1]`): its pid, then `role`, `vassal` and
 * `worker` when bound; the message, control characters escaped; then ` |` and every other
 * field as `key=value`, in the record's order (strings bare when unambiguous, else JSON).
 * An `err` (pino's serialised error: `type`, `message`, `stack`) adds `err=` with its type
 * and message, and its stack on the lines that follow, each indented by four spaces: the
 * one exception to one line per event, for a traceback a person reads.
 *
 * The Python worker's `Log` (packages/vassal/python) renders the same bytes; a unit test
 * holds the two equal.
 * @returns the line, with its newline
 */
export function formatTextLine(record: Readonly<Record<string, unknown>>): string {
  const level = typeof record.level === 'number' ? (LEVEL_NAMES[record.level] ?? String(record.level)) : String(record.level ?? '');
  const time = typeof record.time === 'number' ? localTime(record.time) : String(record.time ?? '');
  let head = `[pid: ${String(record.pid ?? '?')}`;
  if (record.role !== undefined) head += `|${String(record.role)}`;
  if (record.vassal !== undefined) head += `|vassal: ${escapeControl(String(record.vassal))}`;
  if (record.worker !== undefined) head += `|worker: ${String(record.worker)}`;
  let line = `${time} ${level} ${head}] ${escapeControl(typeof record.msg === 'string' ? record.msg : String(record.msg ?? ''))}`;
  const fields: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (!HEAD_FIELDS.has(key) && value !== undefined) fields.push(`${key}=${fieldValue(value)}`);
  }
  let stack = '';
  const err = record.err;
  if (typeof err === 'object' && err !== null) {
    const { type, message, stack: trace } = err as { type?: unknown; message?: unknown; stack?: unknown };
    fields.push(`err=${fieldValue(`${String(type ?? 'Error')}: ${String(message ?? '')}`)}`);
    if (typeof trace === 'string' && trace !== '') stack = trace.split('\n').map((l) => `\n    ${escapeControl(l)}`).join('');
  } else if (err !== undefined) {
    fields.push(`err=${fieldValue(err)}`);
  }
  if (fields.length > 0) line += ` | ${fields.join(' ')}`;
  return `${line}${stack}\n`;
}
