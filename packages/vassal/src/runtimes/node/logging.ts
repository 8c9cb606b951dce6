/**
 * The Node worker's logging: its own event lines (pino), one request line per finished
 * request (uWSGI's format, `log-format` or JSON), and with `logto` the app's console
 * output, all to the `logto` file or stderr.
 *
 * A finished request only records its values (a small object); the lines are formatted
 * in batches, every {@link BATCH_REQUESTS} requests or {@link LOG_FLUSH_MS}, and written
 * with the batch. Measured on the hello world of `npm run bench request-log`: formatting
 * each line as its response ends cost about twice the CPU of formatting them together,
 * where the formatting code and data stay in the cache.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
// Subpaths, not the package index: a worker loads only what it needs (start time, memory).
import { createLogger, type Logger } from '@emperor/process/logger';
import { LOG_FLUSH_MS, openLogSink, type LogSink } from '@emperor/process/log-file';
import { compileLogFormat, countVars, formatDefaultLine, jsonRenderer, shouldLog, type RequestFacts } from '../../request-log.js';
import type { WorkerSpec } from '../../worker-spec.js';

/** What {@link setUpLogging} gives the worker. */
export interface WorkerLogging {
  readonly logger: Logger;
  /**
   * Logs one finished request if the spec says so.
   * @param sentBytes bytes written on the connection for this response, headers included
   * @param n requests this process has finished, this one included
   */
  request(req: IncomingMessage, res: ServerResponse, startMs: number, durationUs: number, sentBytes: number, n: number): void;
  /** `reopen-logs`: opens `logto` again; logs (and keeps the old file) when that fails. */
  reopen(): void;
}

/** Requests recorded before their lines are formatted and written. */
const BATCH_REQUESTS = 128;

/** What a finished request leaves for its line (the rest is read when the line is formatted). */
interface Finished {
  readonly n: number;
  readonly req: IncomingMessage;
  readonly head: string;
  readonly status: number;
  readonly startMs: number;
  readonly durationUs: number;
  readonly rsize: number;
  readonly addr: string;
  readonly port: number;
}

/** Node's serialised response head (`HTTP/1.1 200 OK\r\n...\r\n\r\n`), set once headers are sent. */
function headOf(res: ServerResponse): string {
  const head = (res as unknown as { _header?: unknown })._header;
  return typeof head === 'string' ? head : '';
}

/** Response header count: the CRLFs of the head, less the status line's and the final one. */
function headerCount(head: string): number {
  let lines = 0;
  for (let at = head.indexOf('\r\n'); at !== -1; at = head.indexOf('\r\n', at + 2)) lines++;
  return Math.max(0, lines - 2);
}

export function setUpLogging(spec: WorkerSpec): WorkerLogging {
  const bindings = { vassal: spec.vassal, worker: spec.id };
  let stderr: Logger | undefined;
  const warnOnce = (message: string): void => {
    stderr ??= createLogger(bindings);
    stderr.error(message);
  };
  let reported = false;
  const onWriteError = (err: Error): void => {
    if (reported) return; // one line, not one per request
    reported = true;
    warnOnce(`request log: cannot write (${err.message}); later lines may be lost`);
  };
  let sink: LogSink;
  try {
    sink = openLogSink({ path: spec.logto, buffered: true, onError: onWriteError });
  } catch (err) {
    // Our stderr is the same file, opened by the master (for example as root, before it
    // dropped privileges): keep writing there, but a reopen cannot work.
    warnOnce(`logto: cannot open ${spec.logto} as this worker's user (${(err as Error).message}); writing to the master's descriptor, which logrotate cannot reopen`);
    sink = openLogSink({ buffered: true, onError: onWriteError });
  }
  const toFile = spec.logto !== undefined;
  // Event lines are rare and must not wait in the buffer: each one starts a write.
  const eventLines = { write: (line: string): void => { sink.write(line); sink.flush(); } };
  const logger = toFile ? createLogger(bindings, { destination: eventLines }) : createLogger(bindings);
  if (toFile) redirectConsole(sink);

  const log = spec.requestLog;
  const render = log.json
    ? jsonRenderer(bindings)
    : log.format !== undefined
      ? compileLogFormat(log.format)
      : (f: RequestFacts) => formatDefaultLine(f, log.micros);

  const finished: Finished[] = [];
  // Armed by the first request of a batch, so an idle worker is never woken for its log.
  let drainTimer: NodeJS.Timeout | undefined;
  const drain = (): void => {
    if (drainTimer !== undefined) {
      clearTimeout(drainTimer);
      drainTimer = undefined;
    }
    if (finished.length === 0) return;
    let lines = '';
    for (const r of finished) lines += render(factsOf(r, spec.id, log.xForwardedFor));
    finished.length = 0;
    sink.write(lines);
  };
  const drainAndFlush = (): void => {
    drain();
    sink.flush();
  };
  process.on('exit', () => {
    drain();
    sink.flushSync();
  });

  return {
    logger,
    request(req, res, startMs, durationUs, sentBytes, n) {
      const head = headOf(res);
      const status = res.headersSent ? res.statusCode : 0;
      const rsize = Math.max(0, sentBytes - head.length);
      if (!shouldLog(log, status, durationUs, rsize)) return;
      // The peer is read now: the socket may be gone when the line is formatted.
      const socket = req.socket;
      finished.push({ n, req, head, status, startMs, durationUs, rsize, addr: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 });
      if (finished.length >= BATCH_REQUESTS) drain();
      else drainTimer ??= setTimeout(drainAndFlush, LOG_FLUSH_MS).unref();
    },
    reopen() {
      if (spec.logto === undefined) return;
      drain(); // the lines of the requests so far belong to the old file
      try {
        sink.reopen();
      } catch (err) {
        logger.error(`logto: cannot reopen ${spec.logto}: ${(err as Error).message}; still writing to the old file`);
      }
    },
  };
}

/** The values a line can show, for a finished request. */
function factsOf(r: Finished, wid: number, xForwardedFor: boolean): RequestFacts {
  const req = r.req;
  // Headers are read from rawHeaders: `req.headers` would build an object per request.
  const raw = req.rawHeaders;
  const forwarded = xForwardedFor ? firstForwarded(rawHeader(raw, 'x-forwarded-for')) : '';
  const addr = forwarded || r.addr;
  const method = req.method ?? '';
  const uri = req.url ?? '';
  const proto = req.httpVersion === '1.1' ? 'HTTP/1.1' : `HTTP/${req.httpVersion}`;
  const host = rawHeader(raw, 'host');
  const { vars, pktsize } = countVars(method, uri, proto, addr, r.port, host, raw);
  return {
    pid: process.pid, wid, n: r.n, method, uri, proto, status: r.status, addr, port: r.port, user: '', startMs: r.startMs,
    durationUs: r.durationUs, rsize: r.rsize, hsize: r.head.length, headers: headerCount(r.head), vars, pktsize,
    header: (name) => (name === 'host' ? host : rawHeader(raw, name)),
  };
}

/** A request header by lower-case name, from Node's rawHeaders (name, value, ...); repeated ones joined with ", ". */
function rawHeader(raw: readonly string[], name: string): string {
  let found: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i] as string;
    if (key.length !== name.length || key.toLowerCase() !== name) continue;
    found = found === undefined ? (raw[i + 1] as string) : `${found}, ${raw[i + 1] as string}`;
  }
  return found ?? '';
}

function firstForwarded(value: string): string {
  const comma = value.indexOf(',');
  return (comma === -1 ? value : value.slice(0, comma)).trim();
}

/**
 * With `logto`, what the app prints goes to the log file too, and follows it when it is
 * reopened: uWSGI dup2()s the file onto fds 1 and 2, which Node cannot do, so the
 * streams' `write` is pointed at the sink (fds 1 and 2 are the file already, for output
 * that bypasses the streams).
 */
function redirectConsole(sink: LogSink): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.write = ((chunk: string | Uint8Array, encoding?: BufferEncoding | ((err?: Error) => void), done?: (err?: Error) => void): boolean => {
      sink.write(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      sink.flush();
      (typeof encoding === 'function' ? encoding : done)?.();
      return true;
    }) as typeof stream.write;
  }
}
