/**
 * The thin terminal loop around {@link renderTop}: read the stats every `interval`, draw
 * on the alternate screen, react to keys and resizes, and always give the terminal back
 * (raw mode off, cursor shown, main screen restored) however the loop ends.
 *
 * One stats read per refresh and a redraw in place (cursor home, clear to end of each
 * line) keep it cheap: `pm2 monit` is known for burning CPU and flickering (PM2 #2793).
 */
import { ExitCode, readStats } from '@emperor/protocol';
import { defaultSort, kindOf, nextSort, renderTop, type TopSample, type TopSort } from './render.js';

/** Terminal control sequences (ECMA-48 / xterm). */
const ALT_SCREEN_ON = '\x1b[?1049h';
const ALT_SCREEN_OFF = '\x1b[?1049l';
const CURSOR_HIDE = '\x1b[?25l';
const CURSOR_SHOW = '\x1b[?25h';
const HOME = '\x1b[H';
const CLEAR_LINE_END = '\x1b[K';
const CLEAR_BELOW = '\x1b[J';
const CTRL_C = '\x03';

/** The streams `top` talks to; process.stdin/stdout by default. */
export interface TopIo {
  readonly stdin: NodeJS.ReadStream;
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WritableStream;
}

/** Options of {@link runTop}. */
export interface RunTopOptions {
  /** Refresh interval, ms. */
  readonly intervalMs: number;
  readonly io?: TopIo;
}

/**
 * Shows the live view until `q` (or Ctrl-C, SIGTERM, SIGHUP); when stdout is not a
 * terminal, prints one snapshot as text instead. Resolves to {@link ExitCode.OK}, or
 * {@link ExitCode.FAILURE} when the first read fails.
 */
export async function runTop(address: string, options: RunTopOptions): Promise<ExitCode> {
  const io = options.io ?? { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
  if (io.stdout.isTTY !== true) return printSnapshot(address, io);
  let current: TopSample;
  try {
    current = { doc: await readStats(address, { timeoutMs: 5000 }), atMs: Date.now() };
    renderTop(current, undefined, { width: 80, height: 24 }); // refuse a document we cannot show before taking the screen
  } catch (err) {
    io.stderr.write(`emperor top: ${(err as Error).message}\n`);
    return ExitCode.FAILURE;
  }
  return new Live(address, options.intervalMs, io, current).run();
}

/** One snapshot as text: what `emperor stats ADDR` prints and what `top` prints into a pipe. */
export async function printSnapshot(address: string, io: Pick<TopIo, 'stdout' | 'stderr'>): Promise<ExitCode> {
  try {
    const doc = await readStats(address, { timeoutMs: 5000 });
    io.stdout.write(renderTop({ doc, atMs: Date.now() }, undefined, { width: Infinity, height: Infinity, address }));
    return ExitCode.OK;
  } catch (err) {
    io.stderr.write(`emperor: ${(err as Error).message}\n`);
    return ExitCode.FAILURE;
  }
}

class Live {
  readonly #address: string;
  readonly #intervalMs: number;
  readonly #io: TopIo;
  #current: TopSample;
  #previous: TopSample | undefined;
  #sort: TopSort | undefined;
  #message = '';
  #timer: NodeJS.Timeout | undefined;
  #reading = false;
  #done: ((code: ExitCode) => void) | undefined;
  #restored = false;

  constructor(address: string, intervalMs: number, io: TopIo, first: TopSample) {
    this.#address = address;
    this.#intervalMs = intervalMs;
    this.#io = io;
    this.#current = first;
  }

  run(): Promise<ExitCode> {
    const { stdin, stdout } = this.#io;
    const onKey = (data: Buffer | string): void => this.#onKey(String(data));
    const onResize = (): void => this.#draw();
    const onSignal = (): void => this.#finish(ExitCode.OK);
    const onExit = (): void => this.#restore();
    return new Promise<ExitCode>((resolve) => {
      this.#done = (code) => {
        clearTimeout(this.#timer);
        stdin.off('data', onKey);
        stdout.off('resize', onResize);
        process.off('SIGTERM', onSignal);
        process.off('SIGHUP', onSignal);
        process.off('exit', onExit);
        this.#restore();
        resolve(code);
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGHUP', onSignal);
      // The last resort: whatever ends the process, the terminal is given back.
      process.on('exit', onExit);
      stdout.write(ALT_SCREEN_ON + CURSOR_HIDE);
      if (stdin.isTTY === true) stdin.setRawMode(true);
      stdin.on('data', onKey);
      stdin.resume();
      stdout.on('resize', onResize);
      this.#drawAndSchedule();
    });
  }

  /** Draws the current snapshot and schedules the next refresh; a failure ends the view. */
  #drawAndSchedule(): void {
    try {
      this.#draw();
      this.#timer = setTimeout(() => void this.#refresh(), this.#intervalMs);
    } catch (err) {
      this.#finish(ExitCode.FAILURE, err);
    }
  }

  async #refresh(): Promise<void> {
    if (this.#reading || this.#done === undefined) return;
    this.#reading = true;
    try {
      const doc = await readStats(this.#address, { timeoutMs: Math.max(1000, Math.min(5000, this.#intervalMs)) });
      // A document of the other kind (the address now serves something else) starts over.
      this.#previous = kindOf(doc) === kindOf(this.#current.doc) ? this.#current : undefined;
      this.#current = { doc, atMs: Date.now() };
      this.#message = '';
    } catch (err) {
      this.#message = `${(err as Error).message}; showing the last snapshot`;
    } finally {
      this.#reading = false;
    }
    this.#drawAndSchedule();
  }

  #draw(): void {
    if (this.#restored) return;
    const { stdout } = this.#io;
    const screen = renderTop(this.#current, this.#previous, {
      width: stdout.columns ?? 80,
      height: stdout.rows ?? 24,
      interactive: true,
      address: this.#address,
      message: this.#message,
      ...(this.#sort === undefined ? {} : { sort: this.#sort }),
    });
    const lines = screen.trimEnd().split('\n');
    stdout.write(`${HOME}${lines.map((l) => l + CLEAR_LINE_END).join('\r\n')}${CLEAR_BELOW}`);
  }

  #onKey(keys: string): void {
    for (const key of keys) {
      if (key === 'q' || key === 'Q' || key === CTRL_C) {
        this.#finish(ExitCode.OK);
        return;
      }
      const kind = kindOf(this.#current.doc);
      if (key === 's' && kind !== undefined) this.#sort = nextSort(kind, this.#sort);
      else if (key === 'r' && kind !== undefined) {
        const sort = this.#sort ?? defaultSort(kind);
        this.#sort = { column: sort.column, descending: !sort.descending };
      } else continue;
      this.#draw();
    }
  }

  #finish(code: ExitCode, err?: unknown): void {
    const done = this.#done;
    this.#done = undefined;
    done?.(code);
    if (err !== undefined) this.#io.stderr.write(`emperor top: ${(err as Error).message}\n`);
  }

  /** Idempotent: raw mode off, cursor back, main screen back, stdin released. */
  #restore(): void {
    if (this.#restored) return;
    this.#restored = true;
    const { stdin, stdout } = this.#io;
    if (stdin.isTTY === true) stdin.setRawMode(false);
    stdin.pause();
    stdout.write(CURSOR_SHOW + ALT_SCREEN_OFF);
  }
}
