/**
 * The sd_notify protocol (systemd `Type=notify`): READY=1, STATUS=, RELOADING=1,
 * STOPPING=1 and WATCHDOG=1 as datagrams on the unix socket named by `NOTIFY_SOCKET`.
 *
 * Node has no unix datagram sockets, so a datagram is sent by running `systemd-notify`,
 * which ships with systemd itself (so it is there wherever systemd sets NOTIFY_SOCKET),
 * speaks every address form libsystemd knows (paths, `@abstract`, vsock), and, run by
 * root, sends its parent's pid as the sender credentials, so `NotifyAccess=main`
 * accepts the messages. It is run without `--no-block`: it then waits for systemd to
 * have processed the message (a `BARRIER=1` round trip), which closes the race where a
 * short-lived sender is gone before systemd can attribute its message to the unit.
 * The alternatives were a native addon (`unix-dgram` compiles with node-gyp at install;
 * `node-unix-socket` is a prebuilt Rust addon without abstract-socket support we could
 * confirm) for a few messages a minute.
 *
 * Messages are sent one at a time, in order; a STATUS= or WATCHDOG=1 still waiting is
 * replaced by a newer one, so a burst of state changes costs one process, not hundreds.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '@emperor/process';
import { findExecutable } from '@emperor/process';

/** Sends one notification (newline-separated `KEY=VALUE` lines). */
export type NotifySend = (message: string) => Promise<void>;

/** How long one `systemd-notify` may take (its own barrier timeout is 5 s), ms. */
const SEND_TIMEOUT_MS = 10_000;

/**
 * A {@link NotifySend} that runs `systemd-notify KEY=VALUE...`; failures are logged, not
 * thrown (a supervisor must not stop because systemd did not hear it).
 */
export function systemdNotifyCommand(command: string, logger: Logger): NotifySend {
  return (message) =>
    new Promise((resolve) => {
      const child = spawn(command, message.split('\n'), { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), SEND_TIMEOUT_MS);
      child.once('error', (err) => logger.warn(`sd_notify: cannot run ${command}: ${err.message}`));
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        // A barrier that nobody answers (a test socket, podman's conmon) fails after the
        // message itself was delivered: not worth a warning.
        if (code !== 0 && !/barrier/i.test(stderr)) {
          logger.warn(`sd_notify: ${command} ${signal ?? `exited ${code}`}: ${stderr.trim() || 'no message'}`);
        }
        resolve();
      });
    });
}

/** Clock reading for `MONOTONIC_USEC`: CLOCK_MONOTONIC in µs (libuv's hrtime reads it). */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/** Options of {@link Notifier}. */
export interface NotifierOptions {
  readonly send: NotifySend;
  /** `WATCHDOG_USEC`: send WATCHDOG=1 every half of it; 0 = no watchdog. */
  readonly watchdogUsec?: number;
  /** @default monotonicUsec */
  readonly monotonic?: () => bigint;
}

type Pending = { readonly kind: 'status' | 'watchdog' | 'other'; message: string };

/** Speaks sd_notify for the emperor. Every method returns at once; sending happens in order behind it. */
export class Notifier {
  readonly #send: NotifySend;
  readonly #monotonic: () => bigint;
  readonly #queue: Pending[] = [];
  #sending: Promise<void> | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #lastStatus = '';
  #closed = false;

  constructor(options: NotifierOptions) {
    this.#send = options.send;
    this.#monotonic = options.monotonic ?? monotonicUsec;
    const usec = options.watchdogUsec ?? 0;
    if (usec > 0) {
      // Half the interval, as sd_watchdog_enabled(3) recommends.
      this.#watchdog = setInterval(() => this.#enqueue('watchdog', 'WATCHDOG=1'), Math.max(1, Math.floor(usec / 2000)));
      this.#watchdog.unref();
      this.#enqueue('watchdog', 'WATCHDOG=1');
    }
  }

  /** READY=1 (start-up done, or a reload finished), with the current status. */
  ready(status: string): void {
    this.#lastStatus = status;
    this.#enqueue('other', `READY=1\nSTATUS=${status}`);
  }

  /** STATUS=, when it differs from the last one sent. */
  status(status: string): void {
    if (status === this.#lastStatus) return;
    this.#lastStatus = status;
    this.#enqueue('status', `STATUS=${status}`);
  }

  /** RELOADING=1 with MONOTONIC_USEC, which systemd 253+ needs to match the reload. */
  reloading(): void {
    this.#enqueue('other', `RELOADING=1\nMONOTONIC_USEC=${this.#monotonic()}\nSTATUS=reloading every vassal`);
  }

  /**
   * MAINPID= (the emperor handing over to a new one, issue 19): systemd follows `pid` as
   * the unit's main process from now on. Sent by the old emperor, the main pid still.
   */
  mainPid(pid: number, status: string): void {
    this.#lastStatus = status;
    this.#enqueue('other', `MAINPID=${pid}\nSTATUS=${status}`);
  }

  /** STOPPING=1. */
  stopping(status: string): void {
    this.#lastStatus = status;
    this.#enqueue('other', `STOPPING=1\nSTATUS=stopping: ${status}`);
  }

  #enqueue(kind: Pending['kind'], message: string): void {
    if (this.#closed) return;
    // A newer STATUS= (or WATCHDOG=1) makes a waiting one pointless.
    const waiting = kind === 'other' ? undefined : this.#queue.find((p) => p.kind === kind);
    if (waiting !== undefined) waiting.message = message;
    else this.#queue.push({ kind, message });
    this.#sending ??= this.#drain();
  }

  async #drain(): Promise<void> {
    for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) await this.#send(next.message);
    this.#sending = undefined;
  }

  /** Stops the watchdog and waits until everything queued has been sent. */
  async close(): Promise<void> {
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog);
    this.#closed = true;
    await this.#sending;
  }
}

/**
 * The emperor's notifier from its environment, or undefined when systemd is not
 * listening (`NOTIFY_SOCKET` unset) or `systemd-notify` is missing (logged).
 */
export function notifierFromEnv(env: NodeJS.ProcessEnv, logger: Logger): Notifier | undefined {
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return undefined;
  const command = findExecutable('systemd-notify');
  if (command === undefined) {
    logger.error(
      `NOTIFY_SOCKET is set (${socket}) but systemd-notify is not installed, so the emperor cannot tell systemd it is ready: ` +
        'a Type=notify unit will time out. Install systemd\'s systemd-notify, or use Type=exec',
    );
    return undefined;
  }
  return new Notifier({ send: systemdNotifyCommand(command, logger), watchdogUsec: watchdogUsec(env, process.pid) });
}

/**
 * The watchdog interval systemd asks of process `pid`, µs, or 0: `WATCHDOG_USEC` when
 * `WATCHDOG_PID` is unset or names `pid` (sd_watchdog_enabled(3)); junk counts as unset.
 */
export function watchdogUsec(env: NodeJS.ProcessEnv, pid: number): number {
  const owner = env.WATCHDOG_PID;
  if (owner !== undefined && owner !== '' && Number(owner) !== pid) return 0;
  const usec = Number(env.WATCHDOG_USEC ?? '');
  return Number.isSafeInteger(usec) && usec > 0 ? usec : 0;
}
