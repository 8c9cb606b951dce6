/**
 * The Node worker's logging: its own event lines (pino), one request line per finished
 * request (uWSGI's format, `log-format` or JSON), and with `logto` the app's console
 * output, all to the `logto` file or stderr.
 *
 * A finished request only records its values (a small object); the lines are formatted
 * in batches, every {@link BATCH_REQUESTS} requests or {@link LOG_FLUSH_MS}, and written
 * with the batch. Measured on the hello world of `npm run bench request-log`: formatting
 * each line as its response ends cost about twice the CPU of formatting them together,
 * where the formatting code stays in the cache. Per-function CPU profiles of a worker
 * under that load, with and without request lines, show where a line's cost goes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
// Subpaths, not the package index: a worker loads only what it needs (start time, memory).
import { createLogger, type Logger } from '@emperor/process/logger';
import { LOG_FLUSH_MS, openLogSink, type LogSink } from '@emperor/process/log-file';
import { compileLogFormat, formatDefaultLine, jsonRenderer, packetSize, shouldLog, varSlots, type RequestFacts } from '../../shared/request-log.js';
import type { WorkerSpec } from '../../shared/worker-spec.js';
import type { RequestSocketFacts } from './protocols/protocol.js';
import { requestUrl } from './mount.js';

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

/** `text` as one character per byte of its UTF-8: written as latin1, it becomes that UTF-8 again. */
function latin1OfUtf8(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/**
 * A finished request as its line sees it: every value read when the request ends, while
 * the request's objects are still in the CPU's cache. Reading them from `req` when the
 * batch is formatted, 128 requests later, made a batch's formatting dearer: 1.1 against
 * 0.65 µs of CPU per line, timed in a worker under `npm run bench request-log` (cache
 * misses, we believe; the runs are noisy). Only `log-format` header variables read the
 * raw headers later.
 *
 * Node's HTTP parser makes every request string (the URI, header values) with one
 * character per byte received (latin1), so the lines are written as latin1 and the log
 * gets the request's bytes as they came, UTF-8 or not, as uWSGI logs them. Written as
 * UTF-8, a User-Agent with "ü" would come out as "Ã¼".
 */
class FinishedRequest implements RequestFacts {
  readonly user = '';
  readonly pid: number;
  readonly wid: number;
  readonly n: number;
  readonly method: string;
  readonly uri: string;
  readonly proto: string;
  readonly status: number;
  /** The client: the socket's peer, or with `log-x-forwarded-for` the first X-Forwarded-For entry. */
  readonly addr: string;
  readonly port: number;
  readonly startMs: number;
  readonly durationUs: number;
  readonly rsize: number;
  readonly hsize: number;
  readonly headers: number;
  readonly vars: number;
  readonly pktsize: number;
  readonly host: string;
  /** Node's rawHeaders: names and values, alternating. */
  readonly raw: readonly string[];

  /** @param head the response head as Node wrote it ("" when none was sent) */
  constructor(wid: number, n: number, req: IncomingMessage, head: string, status: number, startMs: number, durationUs: number, rsize: number, xForwardedFor: boolean) {
    this.pid = process.pid;
    this.wid = wid;
    this.n = n;
    this.method = req.method ?? '';
    this.uri = requestUrl(req); // as it came, before a mount took its mountpoint off
    const version = req.httpVersion;
    this.proto = version === '1.1' ? 'HTTP/1.1' : `HTTP/${version}`;
    this.status = status;
    // Headers are read from rawHeaders: `req.headers` would build an object per request.
    const raw = req.rawHeaders;
    this.raw = raw;
    const socket: RequestSocketFacts = req.socket; // the client, as the protocol describes it
    this.addr = (xForwardedFor && firstForwarded(rawHeader(raw, 'x-forwarded-for', 'X-Forwarded-For'))) || (socket.remoteAddress ?? '');
    this.port = socket.remotePort ?? 0;
    this.startMs = startMs;
    this.durationUs = durationUs;
    this.rsize = rsize;
    this.hsize = head.length;
    this.headers = headerCount(head);
    this.host = rawHeader(raw, 'host', 'Host');
    this.vars = varSlots(raw);
    this.pktsize = packetSize(this.method, this.uri, this.proto, this.addr, this.port, this.host, raw);
  }

  header(name: string): string {
    return name === 'host' ? this.host : rawHeader(this.raw, name);
  }
}

/** Node's serialised response head (`HTTP/1.1 200 OK\r\n...\r\n\r\n`), set once headers are sent. */
function headOf(res: ServerResponse): string {
  const head = (res as unknown as { _header?: unknown })._header;
  return typeof head === 'string' ? head : '';
}

/**
 * Response header count: the line ends of the head, less the status line's and the final
 * one. Node refuses CR and LF inside header values, so every LF ends a line; a
 * one-character search is the cheapest (measured).
 */
function headerCount(head: string): number {
  let lines = 0;
  for (let at = head.indexOf('\n'); at !== -1; at = head.indexOf('\n', at + 1)) lines++;
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
  // Request lines are written as latin1 (see FinishedRequest): text of ours in them (the
  // vassal's name, a template's literal parts) goes in as the latin1 form of its UTF-8.
  const render = log.json
    ? jsonRenderer({ vassal: latin1OfUtf8(spec.vassal), worker: spec.id })
    : log.format !== undefined
      ? compileLogFormat(latin1OfUtf8(log.format))
      : (f: RequestFacts) => formatDefaultLine(f, log.micros);

  const finished: FinishedRequest[] = [];
  // Armed by the first request of a batch, so an idle worker is never woken for its log.
  let drainTimer: NodeJS.Timeout | undefined;
  const drain = (): void => {
    if (drainTimer !== undefined) {
      clearTimeout(drainTimer);
      drainTimer = undefined;
    }
    if (finished.length === 0) return;
    let lines = '';
    for (const r of finished) lines += render(r);
    finished.length = 0;
    sink.write(lines, 'latin1');
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
      finished.push(new FinishedRequest(spec.id, n, req, head, status, startMs, durationUs, rsize, log.xForwardedFor));
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

/**
 * A request header by lower-case name, from Node's rawHeaders (name, value, ...); repeated
 * ones joined with ", ". `capitalised` is the usual spelling ("Host"), matched without
 * lower-casing the name (an allocation per header and request).
 */
function rawHeader(raw: readonly string[], name: string, capitalised = ''): string {
  let found: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i] as string;
    if (key.length !== name.length || (key !== capitalised && key !== name && key.toLowerCase() !== name)) continue;
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
