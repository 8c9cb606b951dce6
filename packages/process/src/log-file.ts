/**
 * Where the master's and workers' lines go: a `logto` file (appended to, reopened for
 * logrotate) or stderr. Writes go through sonic-boom; a buffered sink (the workers'
 * request lines) writes when 4 KiB have gathered or every 250 ms, so a line costs a
 * string append, not a system call.
 */
import { closeSync, openSync } from 'node:fs';
import sonicBoom from 'sonic-boom';

// sonic-boom is CommonJS: its class is the module itself, and also its `SonicBoom` property.
const SonicBoom = sonicBoom.SonicBoom;
type SonicBoom = InstanceType<typeof sonicBoom.SonicBoom>;

/** Bytes gathered before a buffered sink writes. */
export const LOG_BUFFER_BYTES = 4096;
/** The longest a line waits in a buffered sink, ms. */
export const LOG_FLUSH_MS = 250;
/** Mode of a log file we create (`logto`): owner read/write, group read. */
const LOG_FILE_MODE = 0o640;
const STDERR = 2;

/** Options of {@link openLogSink}. */
export interface LogSinkOptions {
  /** The file (`logto`); undefined = stderr. */
  readonly path?: string | undefined;
  /** Gather lines and write them in batches (see {@link LOG_BUFFER_BYTES}); else every line is written at once, synchronously. */
  readonly buffered: boolean;
  /** A write failed (disk full, a closed pipe); the sink keeps trying with later lines. */
  readonly onError?: (err: Error) => void;
}

/** A log destination (`write` accepts one or more whole lines). */
export interface LogSink {
  /** The file descriptor lines go to now; children can inherit it as their stdout and stderr. */
  readonly fd: number;
  readonly path: string | undefined;
  write(text: string): void;
  /** Starts writing what is buffered now. */
  flush(): void;
  /** Writes what is buffered before returning (at exit). Never throws. */
  flushSync(): void;
  /**
   * Opens the file again by its path (after logrotate moved it) and switches to it; what
   * was buffered goes to the old file first. A sink on stderr does nothing.
   * @throws the open error (EACCES, ENOENT, ...); the sink then keeps its current file
   */
  reopen(): void;
}

/**
 * Opens a sink on `options.path` (created with mode 0640 if missing) or on stderr.
 * @throws the open error when the file cannot be opened
 */
export function openLogSink(options: LogSinkOptions): LogSink {
  return new FileSink(options);
}

class FileSink implements LogSink {
  readonly path: string | undefined;
  readonly #options: LogSinkOptions;
  #boom: SonicBoom;
  #fd: number;

  constructor(options: LogSinkOptions) {
    this.#options = options;
    this.path = options.path;
    [this.#boom, this.#fd] = this.#open();
  }

  get fd(): number {
    return this.#fd;
  }

  #open(): [SonicBoom, number] {
    const fd = this.path === undefined ? STDERR : openSync(this.path, 'a', LOG_FILE_MODE);
    try {
      const boom = this.#options.buffered
        ? new SonicBoom({ fd, sync: false, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_MS })
        : new SonicBoom({ fd, sync: true });
      boom.on('error', (err: Error) => this.#options.onError?.(err));
      return [boom, fd];
    } catch (err) {
      if (fd !== STDERR) closeSync(fd);
      throw err;
    }
  }

  write(text: string): void {
    try {
      this.#boom.write(text);
    } catch (err) {
      this.#options.onError?.(err as Error);
    }
  }

  flush(): void {
    if (!this.#options.buffered) return;
    try {
      this.#boom.flush();
    } catch (err) {
      this.#options.onError?.(err as Error);
    }
  }

  flushSync(): void {
    try {
      this.#boom.flushSync();
    } catch {
      // at exit, with nowhere left to say so
    }
  }

  reopen(): void {
    if (this.path === undefined) return;
    const old = this.#boom;
    [this.#boom, this.#fd] = this.#open();
    // end() writes what old still buffers, then closes its descriptor (never stderr: only files reopen).
    old.end();
  }
}
