/**
 * Where the master's and workers' lines go: a `logto` file (appended to, reopened for
 * logrotate) or stderr.
 *
 * A buffered sink (the workers' request lines) copies lines into one preallocated byte
 * buffer and writes it with one system call once 32 KiB have gathered or every 250 ms.
 * Request lines are written as latin1: every character of a line built from Node's HTTP
 * parser is one byte of the request as received, so the file gets those bytes back, as
 * uWSGI writes them. Measured on this machine (`npm run bench request-log` and
 * in-process timings of 190-byte lines in batches of 128):
 * - sonic-boom with `minLength`: 3 µs per line, as its string mode re-measures the whole
 *   pending buffer (`Buffer.byteLength`) on every write;
 * - batches handed to the thread pool (`fs.write`): the wake-ups and completions cost
 *   more than the write, a copy of 32 KiB into the page cache of a few microseconds;
 * - the batches gathered in a string and encoded as UTF-8 per 32 KiB: 0.34 µs per line;
 * - this: 0.17 µs per line. (Under load, in a worker sharing 2 cores with the load
 *   generator, a line's write measures 0.6 to 1 µs either way; the noise there is larger
 *   than the difference.)
 * uWSGI writes every line synchronously.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

/** Bytes gathered before a buffered sink writes. */
export const LOG_BUFFER_BYTES = 32 * 1024;
/** The longest a line waits in a buffered sink, ms. */
export const LOG_FLUSH_MS = 250;
/** Mode of a log file we create (`logto`): owner read/write, group read. */
const LOG_FILE_MODE = 0o640;
const STDERR = 2;
/** A non-blocking pipe (stderr shared with a process that made it non-blocking) that is full: retry after this, ms. */
const EAGAIN_RETRY_MS = 10;

/** Options of {@link openLogSink}. */
export interface LogSinkOptions {
  /** The file (`logto`); undefined = stderr. */
  readonly path?: string | undefined;
  /** Gather lines and write them in batches (see {@link LOG_BUFFER_BYTES}); else every line is written at once, synchronously. */
  readonly buffered: boolean;
  /** A write failed (disk full, a closed pipe) or lines were dropped; the sink keeps going with later lines. */
  readonly onError?: (err: Error) => void;
}

/**
 * How `write` turns text into bytes: `utf8`, or `latin1` for text whose every character
 * is one byte (below U+0100), such as the strings Node's HTTP parser makes of a request.
 */
export type LogEncoding = 'utf8' | 'latin1';

/** A log destination (`write` accepts one or more whole lines). */
export interface LogSink {
  /** The file descriptor lines go to now; children can inherit it as their stdout and stderr. */
  readonly fd: number;
  readonly path: string | undefined;
  /** Writes (or, buffered, gathers) `text`; `encoding` defaults to utf8. */
  write(text: string, encoding?: LogEncoding): void;
  /** Starts writing what is buffered now. */
  flush(): void;
  /** Writes what is buffered before returning (at exit). Never throws. */
  flushSync(): void;
  /**
   * Opens the file again by its path (after logrotate moved it) and switches to it; what
   * was written before goes to the old file, which is then closed. A sink on stderr does nothing.
   * @throws the open error (EACCES, ENOENT, ...); the sink then keeps its current file
   */
  reopen(): void;
}

/**
 * Opens a sink on `options.path` (created with mode 0640 if missing) or on stderr.
 * @throws the open error when the file cannot be opened
 */
export function openLogSink(options: LogSinkOptions): LogSink {
  return options.buffered ? new BufferedSink(options) : new DirectSink(options);
}

function openFd(path: string | undefined): number {
  return path === undefined ? STDERR : openSync(path, 'a', LOG_FILE_MODE);
}

function closeFd(fd: number): void {
  if (fd === STDERR) return;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** Writes `buf` whole, synchronously, waiting out a full non-blocking pipe. */
function writeAllSync(fd: number, buf: Buffer): void {
  let at = 0;
  while (at < buf.length) {
    try {
      at += writeSync(fd, buf, at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, EAGAIN_RETRY_MS);
    }
  }
}

/** What both sinks share: the path, the descriptor, the error callback and reopening. */
abstract class FileSink implements LogSink {
  readonly path: string | undefined;
  protected readonly onError: ((err: Error) => void) | undefined;
  protected current: number;

  constructor(options: LogSinkOptions) {
    this.path = options.path;
    this.onError = options.onError;
    this.current = openFd(options.path);
  }

  get fd(): number {
    return this.current;
  }

  abstract write(text: string, encoding?: LogEncoding): void;
  abstract flush(): void;

  flushSync(): void {
    this.flush();
  }

  reopen(): void {
    if (this.path === undefined) return;
    const fd = openFd(this.path);
    this.flush(); // what was written so far belongs to the old file
    const old = this.current;
    this.current = fd;
    closeFd(old);
  }
}

/** Every line written at once (the master's: few, and they must survive a crash). */
class DirectSink extends FileSink {
  write(text: string, encoding: LogEncoding = 'utf8'): void {
    try {
      writeAllSync(this.current, Buffer.from(text, encoding));
    } catch (err) {
      this.onError?.(err as Error);
    }
  }

  flush(): void {}
}

/**
 * Lines copied into one byte buffer and written with one synchronous write per batch.
 * Measured here against handing each batch to the thread pool (`fs.write`): the thread
 * pool's wake-ups and completions cost more than the write itself, a copy into the page
 * cache of a few microseconds. uWSGI writes every line synchronously.
 */
class BufferedSink extends FileSink {
  /** Room for a batch and the line that completes it; longer text is written on its own. */
  readonly #buf = Buffer.allocUnsafe(2 * LOG_BUFFER_BYTES);
  #length = 0;
  /** Armed by the first line of a batch: an idle worker has no timer to wake it. */
  #timer: NodeJS.Timeout | undefined;

  write(text: string, encoding: LogEncoding = 'utf8'): void {
    // A latin1 string is one byte per character; only utf8 needs measuring.
    const bytes = encoding === 'latin1' ? text.length : Buffer.byteLength(text);
    if (this.#length + bytes > this.#buf.length) this.flush();
    if (bytes > this.#buf.length) {
      this.#writeOut(Buffer.from(text, encoding));
      return;
    }
    this.#length += this.#buf.write(text, this.#length, encoding);
    if (this.#length >= LOG_BUFFER_BYTES) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), LOG_FLUSH_MS).unref();
  }

  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#length === 0) return;
    const pending = this.#buf.subarray(0, this.#length);
    this.#length = 0;
    this.#writeOut(pending);
  }

  #writeOut(bytes: Buffer): void {
    try {
      writeAllSync(this.current, bytes);
    } catch (err) {
      this.onError?.(err as Error);
    }
  }
}
