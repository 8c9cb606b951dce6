/**
 * Stand-ins for time and processes, for unit tests of supervisors (the emperor's vassal
 * handles, the vassal master): a clock that moves only when the test says so, and a
 * child process the test makes speak and exit. Nothing here sleeps or starts a process.
 */
import { EventEmitter } from 'node:events';
import { StopEscalation, type ChildEvents, type Clock, type ExitInfo, type StopOptions, type TimerHandle, type WorkerChild } from '@emperor/process';

interface ManualTimer {
  readonly at: number;
  readonly id: number;
  readonly fn: () => void;
}

/**
 * A {@link Clock} whose time only moves in {@link advance} (or {@link advanceTo}); due
 * timers run in time order, each with `now()` at its own due time, as real timers would.
 */
export class ManualClock implements Clock {
  /** Epoch ms now. */
  time: number;
  #timers: ManualTimer[] = [];
  #next = 0;

  constructor(start = 1_000_000) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.#next;
    this.#timers.push({ at: this.time + Math.max(0, ms), fn, id });
    return id as unknown as TimerHandle;
  }

  clearTimeout(timer: TimerHandle): void {
    this.#timers = this.#timers.filter((t) => t.id !== (timer as unknown as number));
  }

  /** Milliseconds until the next timer, or undefined when none is armed. */
  get nextIn(): number | undefined {
    const at = Math.min(...this.#timers.map((t) => t.at));
    return Number.isFinite(at) ? at - this.time : undefined;
  }

  /** How many timers are armed. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): void {
    this.advanceTo(this.time + ms);
  }

  /** Moves time forward to the epoch ms `until`, running every timer due by then. */
  advanceTo(until: number): void {
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.time = Math.max(this.time, due.at);
      due.fn();
    }
    this.time = Math.max(this.time, until);
  }
}

/** Options for {@link FakeChild}. */
export interface FakeChildOptions {
  /** Its pid. @default the next of a counter from 10000 */
  readonly pid?: number;
  /** A SIGKILL ends it (on the next microtask, as the kernel's reaping would). @default true */
  readonly exitOnSigkill?: boolean;
}

/**
 * A {@link WorkerChild} the test drives: it records what it was sent ({@link sent},
 * {@link signals}), speaks with {@link say} and ends with {@link exitWith}. Its stop
 * escalation (SIGKILL after the mercy) runs on the clock it was given.
 */
export class FakeChild extends EventEmitter<ChildEvents> implements WorkerChild {
  static #nextPid = 10_000;
  readonly pid: number;
  readonly spawnedAt: number;
  readonly exited: Promise<ExitInfo>;
  /** IPC messages it received, in order. */
  readonly sent: unknown[] = [];
  /** Signals it received, in order. */
  readonly signals: NodeJS.Signals[] = [];
  /** False once its IPC channel is closed (it exited, or {@link disconnect}). */
  connected = true;
  readonly #clock: Clock;
  readonly #exitOnSigkill: boolean;
  #exit: ExitInfo | undefined;
  #resolve: (exit: ExitInfo) => void = () => {};
  readonly #stopping: StopEscalation;

  constructor(clock: Clock, options: FakeChildOptions = {}) {
    super();
    this.#clock = clock;
    this.#stopping = new StopEscalation(this, this.#clock);
    this.pid = options.pid ?? FakeChild.#nextPid++;
    this.spawnedAt = clock.now();
    this.#exitOnSigkill = options.exitOnSigkill ?? true;
    this.exited = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  get exit(): ExitInfo | undefined {
    return this.#exit;
  }

  isDead(): boolean {
    return this.#exit !== undefined;
  }

  send(message: unknown): boolean {
    if (this.isDead() || !this.connected) return false;
    this.sent.push(message);
    return true;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.isDead()) return;
    this.signals.push(signal);
    if (signal === 'SIGKILL' && this.#exitOnSigkill) queueMicrotask(() => this.exitWith(null, 'SIGKILL'));
  }

  stop(options: StopOptions = {}): Promise<ExitInfo> {
    return this.#stopping.stop(options);
  }

  hurry(ms: number): void {
    this.#stopping.hurry(ms);
  }

  /** The process sends its supervisor an IPC message. */
  say(message: unknown): void {
    this.emit('message', message);
  }

  /** Its IPC channel closes (the process lives on). */
  disconnect(): void {
    this.connected = false;
  }

  /** The process ends with `code` (or by `signal`); a second call does nothing. */
  exitWith(code: number | null, signal: NodeJS.Signals | null = null): void {
    if (this.#exit !== undefined) return;
    this.connected = false;
    this.#exit = { code, signal };
    this.#stopping.cancel();
    this.emit('exit', this.#exit);
    this.#resolve(this.#exit);
  }
}

/**
 * Lets every queued microtask run, chains included (a SIGKILLed fake child's exit, promise
 * continuations): resolves on the event loop's next check phase. Not a timer.
 */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
