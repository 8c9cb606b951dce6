/**
 * uWSGI's master FIFO (`master-fifo`, core/fifo.c): a named pipe the master reads
 * one-byte commands from, so scripts control a vassal by path rather than by pid
 * (`echo r > /run/app.fifo`; several commands in one write run in order, `echo +++s`).
 *
 * As in uWSGI, the FIFO is created (after any file at its path is removed) with mode
 * 0600, by the master once it runs as the vassal's user, and `0`..`9` switch to the
 * N-th `master-fifo` path: the FIFO there is created and read instead (the old one is
 * left without a reader, as uWSGI leaves it). Unlike uWSGI, the master holds the FIFO
 * open for writing too, so a writer closing it is not an end of file and nothing is
 * recreated after each command; and a FIFO that cannot be created is one error line,
 * not the end of the vassal (uWSGI exits).
 */
import { execFileSync } from 'node:child_process';
import { constants, openSync, unlinkSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Logger } from '@emperor/process/logger';
import { MasterFifoError } from '@emperor/protocol';

/** What one command does; the return value, when a string, is logged as why it did nothing. */
export type FifoCommand = () => string | undefined | void;

/** Commands uWSGI has and Emperor does not, with what to do instead. */
export const UNSUPPORTED_FIFO_COMMANDS: Readonly<Record<string, string>> = {
  R: 'brutal reload; use r (graceful) or c (chain)',
  W: 'brutal reload of the workers; use w (graceful)',
  f: 're-forking the master',
  L: 'log rotation; let logrotate rotate the file, then send l',
  p: 'pausing the instance',
  E: 'emperor rescan; the emperor watches its directory and rescans every emperor-freq',
  B: 'broodlord reinforcements',
  C: 'cheap mode',
  S: 'subscriptions',
  b: 're-binding unix sockets',
};

/** Bytes a shell adds around commands (`echo` ends with a newline): skipped without a word. */
const BLANK = new Set(['\n', '\r', ' ', '\t']);
/** Unknown bytes named in their log line, at most (`cat /dev/urandom > fifo` is one line per read). */
const SHOWN_UNKNOWN = 8;

/** The readable end of the active FIFO. */
interface Active {
  readonly path: string;
  readonly stream: Socket;
}

/**
 * Reads commands from the first of `paths` (the `master-fifo` values) and runs the
 * matching `commands` entry for each byte. Every command, known or not, is one log line.
 */
export class MasterFifo {
  readonly #paths: readonly string[];
  readonly #commands: Readonly<Record<string, FifoCommand>>;
  readonly #logger: Logger;
  #active: Active | undefined;

  /**
   * Creates and opens the FIFO at `paths[0]`. When it cannot (a directory in the way, no
   * permission in the directory), logs one error line and reads no commands.
   */
  constructor(paths: readonly string[], commands: Readonly<Record<string, FifoCommand>>, logger: Logger) {
    this.#paths = paths;
    this.#commands = commands;
    this.#logger = logger;
    this.#switchTo(0);
  }

  /** The path of the FIFO read now; undefined when it could not be created. */
  get path(): string | undefined {
    return this.#active?.path;
  }

  /** Stops reading; with `remove` (`vacuum`), removes the FIFO file too. */
  close(remove = false): void {
    const active = this.#active;
    this.#active = undefined;
    if (active === undefined) return;
    active.stream.destroy();
    if (remove) {
      try {
        unlinkSync(active.path);
      } catch {
        // already gone
      }
    }
  }

  #switchTo(slot: number): void {
    const path = this.#paths[slot] as string;
    let fd: number;
    try {
      fd = createFifo(path);
    } catch (err) {
      this.#logger.error({ option: 'master-fifo', path }, `master-fifo: cannot create ${path}: ${(err as Error).message}; ${this.#active === undefined ? 'the vassal runs without it' : `still reading ${this.#active.path}`}`);
      return;
    }
    this.close();
    // A FIFO descriptor is a pipe to libuv: read without blocking, like a socket.
    const stream = new Socket({ fd, readable: true, writable: false });
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('error', (err) => this.#logger.error({ option: 'master-fifo', path }, `master-fifo: cannot read ${path}: ${err.message}`));
    this.#active = { path, stream };
  }

  #onData(chunk: Buffer): void {
    const unknown: string[] = [];
    let ignored = 0;
    for (const byte of chunk) {
      const cmd = String.fromCharCode(byte);
      if (BLANK.has(cmd)) continue;
      if (byte >= 0x30 && byte <= 0x39) {
        this.#slot(byte - 0x30);
        continue;
      }
      const run = Object.hasOwn(this.#commands, cmd) ? this.#commands[cmd] : undefined;
      if (run !== undefined) {
        this.#logger.info({ option: 'master-fifo', command: cmd }, `master FIFO: ${cmd}`);
        const why = run();
        if (typeof why === 'string') this.#logger.warn({ option: 'master-fifo', command: cmd }, `master FIFO: ${cmd} did nothing: ${why}`);
      } else if (Object.hasOwn(UNSUPPORTED_FIFO_COMMANDS, cmd)) {
        this.#logger.warn({ option: 'master-fifo', command: cmd }, `master FIFO: command ${cmd} is not supported (${UNSUPPORTED_FIFO_COMMANDS[cmd]})`);
      } else {
        ignored += 1;
        if (unknown.length < SHOWN_UNKNOWN) unknown.push(byte >= 0x21 && byte <= 0x7e ? cmd : `0x${byte.toString(16).padStart(2, '0')}`);
      }
    }
    if (ignored > 0) {
      this.#logger.warn({ option: 'master-fifo' }, `master FIFO: ignored ${ignored} unknown command byte(s): ${unknown.join(' ')}${ignored > unknown.length ? ' …' : ''}`);
    }
  }

  #slot(slot: number): void {
    if (slot >= this.#paths.length) {
      this.#logger.warn({ option: 'master-fifo' }, `master FIFO: no slot ${slot} (${this.#paths.length} master-fifo path(s)); still reading ${this.#active?.path ?? 'nothing'}`);
      return;
    }
    if (this.#paths[slot] === this.#active?.path) return;
    this.#switchTo(slot);
    const now = this.#active?.path;
    if (now === this.#paths[slot]) this.#logger.info({ option: 'master-fifo' }, `active master FIFO is now ${now}`);
  }
}

/**
 * Removes whatever is at `path`, makes a FIFO there with mode 0600 (Node has no mkfifo:
 * coreutils' does it) and opens it for reading and writing, without blocking.
 * @returns the descriptor
 * @throws the unlink, mkfifo or open error
 */
function createFifo(path: string): number {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  try {
    execFileSync('mkfifo', ['-m', '600', '--', path], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim().replace(/^mkfifo: /, '');
    throw new MasterFifoError(stderr || (err as Error).message, { cause: err });
  }
  // Read and write: opening a FIFO read-only without a writer would see end of file
  // each time a writer closes, and opening it write-only blocks until a reader comes.
  return openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
}
