/**
 * A vassal master this emperor did not spawn: one a previous emperor left, adopted
 * through the control socket (issue 19). It is a {@link WorkerChild} like a spawned
 * one, so a {@link Vassal} drives it the same way; what differs is underneath: messages
 * travel on the control socket instead of Node's IPC channel, and since the process is
 * not our child, its death is learnt by polling its pid (the socket closing says when to
 * look), and its exit status is unknown.
 */
import { EventEmitter } from 'node:events';
import {
  StopEscalation,
  pidAlive,
  systemClock,
  type ChildEvents,
  type Clock,
  type ExitInfo,
  type JsonLines,
  type StopOptions,
  type TimerHandle,
  type WorkerChild,
} from '@emperor/process';

/** How often the pid of an adopted master without a live control socket is checked, ms. */
export const ADOPTED_POLL_MS = 100;

/** Options of {@link AdoptedMaster}. */
export interface AdoptedMasterOptions {
  /** Epoch ms the master was started (its lease's `born`). */
  readonly spawnedAt: number;
  /** @default systemClock */
  readonly clock?: Clock;
  /** How to signal it when kill(2) is refused (an emperor that is not root; see spawnChild). */
  readonly signalAs?: ((signal: NodeJS.Signals) => void) | undefined;
  /** @default pidAlive */
  readonly alive?: (pid: number) => boolean;
}

/** An adopted vassal master; see the module comment. */
export class AdoptedMaster extends EventEmitter<ChildEvents> implements WorkerChild {
  readonly pid: number;
  readonly spawnedAt: number;
  readonly exited: Promise<ExitInfo>;
  readonly #clock: Clock;
  readonly #alive: (pid: number) => boolean;
  readonly #signalAs: ((signal: NodeJS.Signals) => void) | undefined;
  #resolve: (exit: ExitInfo) => void = () => {};
  #exit: ExitInfo | undefined;
  #channel: JsonLines | undefined;
  #poll: TimerHandle | undefined;
  readonly #stopping: StopEscalation;

  constructor(pid: number, options: AdoptedMasterOptions) {
    super();
    this.pid = pid;
    this.spawnedAt = options.spawnedAt;
    this.#clock = options.clock ?? systemClock;
    this.#stopping = new StopEscalation(this, this.#clock);
    this.#alive = options.alive ?? pidAlive;
    this.#signalAs = options.signalAs;
    this.exited = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    this.#watch();
  }

  get exit(): ExitInfo | undefined {
    return this.#exit;
  }

  /** True when it has a live control socket. */
  get connected(): boolean {
    return this.#channel !== undefined && !this.#channel.closed;
  }

  isDead(): boolean {
    return this.#exit !== undefined;
  }

  /**
   * Takes the master's control socket (after a handshake): its messages become `message`
   * events; its closing makes the pid watched until it is gone or connects again.
   */
  attach(channel: JsonLines): void {
    if (this.isDead()) {
      channel.close('that master is gone');
      return;
    }
    const previous = this.#channel;
    this.#channel = channel;
    previous?.close('replaced by a new connection');
    this.#stopWatching();
    channel.on('message', (raw) => this.emit('message', raw));
    channel.once('close', () => {
      if (this.#channel !== channel) return;
      this.#channel = undefined;
      this.#watch();
    });
  }

  #watch(): void {
    if (this.#poll !== undefined || this.isDead()) return;
    const check = (): void => {
      this.#poll = undefined;
      if (!this.#alive(this.pid)) {
        this.#ended();
        return;
      }
      if (this.#channel === undefined) this.#poll = this.#clock.setTimeout(check, ADOPTED_POLL_MS);
    };
    // Never at once: whoever holds this handle attaches its listeners first.
    this.#poll = this.#clock.setTimeout(check, ADOPTED_POLL_MS);
  }

  #stopWatching(): void {
    if (this.#poll !== undefined) this.#clock.clearTimeout(this.#poll);
    this.#poll = undefined;
  }

  #ended(): void {
    if (this.#exit !== undefined) return;
    const exit: ExitInfo = { code: null, signal: null };
    this.#exit = exit;
    this.#stopWatching();
    this.#stopping.cancel();
    this.#channel?.close('the master is gone');
    this.emit('exit', exit);
    this.#resolve(exit);
  }

  send(message: unknown): boolean {
    if (this.isDead()) return false;
    return this.#channel?.send(message) ?? false;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.isDead()) return;
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPERM') this.#signalAs?.(signal);
    }
    // A kill may end it before its socket says so (or it has none): look soon.
    this.#watch();
  }

  /** Same escalation as Child.stop: the message (or signal), SIGKILL after the mercy. */
  stop(options: StopOptions = {}): Promise<ExitInfo> {
    return this.#stopping.stop(options);
  }

  hurry(ms: number): void {
    this.#stopping.hurry(ms);
  }
}
