/**
 * The master's bond to its emperor: a lease, not a leash (issue 19).
 *
 * Under the emperor that spawned it, the master talks over Node's IPC channel. When that
 * channel closes (the emperor exited, was SIGKILLed, or is handing over to a new build),
 * a master holding a lease keeps serving and connects to the control socket named in
 * the lease every {@link RECONNECT_MS}, until an emperor proves it holds the lease's
 * secret and adopts it; after `emperor-adopt-timeout` without one, it stops gracefully.
 * A master without a lease (handover off, `emperor-adopt-timeout = 0`) or with
 * `no-orphans` stops at once, as before. The handshake is in @emperor/protocol control.ts.
 */
import { readFileSync, closeSync } from 'node:fs';
import net from 'node:net';
import {
  CONTROL_VERSION,
  LEASE_FD,
  LEASE_FD_ENV,
  parseAdoptingEmperorMessage,
  parseEmperorHandshake,
  parseMasterLease,
  type EmperorToMaster,
  type MasterLease,
  type MasterToEmperor,
} from '@emperor/protocol';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SocketSpec } from '@emperor/config';
import type { BoundSocket, SocketPermissions } from './sockets.js';
import { JsonLines, checkLeaseProof, leaseProof, randomHex, systemClock, type Clock, type Logger, type TimerHandle } from '@emperor/process';

/** How often an orphaned master tries the control socket, ms. */
export const RECONNECT_MS = 200;

/** How long one handshake may take before the master hangs up and tries again, ms. */
export const HANDSHAKE_TIMEOUT_MS = 2000;

/**
 * Reads the lease the emperor handed on fd {@link LEASE_FD} (named by
 * `EMPEROR_LEASE_FD`) and closes it; unsets the variable so workers do not inherit it.
 * Undefined when there is none, or it cannot be read (logged): the master then stops
 * with its emperor, the old rule.
 */
export function takeLease(env: NodeJS.ProcessEnv, logger: Logger): MasterLease | undefined {
  const named = env[LEASE_FD_ENV];
  if (named === undefined) return undefined;
  delete env[LEASE_FD_ENV];
  if (named !== String(LEASE_FD)) {
    logger.warn(`${LEASE_FD_ENV}=${named}: expected ${LEASE_FD}; running without a lease (this vassal stops with its emperor)`);
    return undefined;
  }
  try {
    // The emperor writes the lease and closes its end at once: this read ends at EOF.
    const text = readFileSync(LEASE_FD, 'utf8');
    return parseMasterLease(JSON.parse(text));
  } catch (err) {
    logger.warn(`cannot read the emperor's lease on fd ${LEASE_FD}: ${(err as Error).message}; this vassal stops with its emperor`);
    return undefined;
  } finally {
    try {
      closeSync(LEASE_FD);
    } catch {
      // already closed
    }
  }
}

/** Why a master without an emperor stops. */
export type AbandonReason = 'emperor-lost' | 'no-emperor';

/** Where the master stands with an emperor. */
export type LinkState = 'ipc' | 'orphaned' | 'handshake' | 'adopted' | 'closed';

/** What the master reports about itself during a handshake. */
export interface MasterFlags {
  readonly ready: boolean;
  readonly accepting: boolean;
  readonly loyal: boolean;
}

/** Options of {@link EmperorLink}. */
export interface EmperorLinkOptions {
  /** The lease from the spawning emperor; undefined = no handover. */
  readonly lease: MasterLease | undefined;
  readonly logger: Logger;
  /** `no-orphans`: stop when the emperor goes, even with a lease. */
  readonly noOrphans: boolean;
  /** A message from an adopting emperor (the IPC channel's messages are handled by the caller). */
  readonly onMessage: (message: EmperorToMaster) => void;
  /**
   * No emperor: the master must stop. `emperor-lost`: the old rule (no lease, an adopt
   * timeout of 0, or `no-orphans`), stop fast; `no-emperor`: none adopted it within the
   * adopt timeout, stop gracefully. `why` is the log line's start.
   */
  readonly onAbandoned: (reason: AbandonReason, why: string) => void;
  readonly flags: () => MasterFlags;
  /** Sends over the IPC channel while it is open; false when it is not. */
  readonly sendIpc: (message: MasterToEmperor) => boolean;
  /** @default systemClock */
  readonly clock?: Clock;
  /** This process's pid (tests). @default process.pid */
  readonly pid?: number;
  /** Control-version stamped on the hello (tests simulate an older master). @default CONTROL_VERSION */
  readonly version?: number;
}

/** The master's side of the emperor bond; see the module comment. */
export class EmperorLink {
  readonly #options: EmperorLinkOptions;
  readonly #clock: Clock;
  #state: LinkState = 'ipc';
  #channel: JsonLines | undefined;
  #retry: TimerHandle | undefined;
  #deadline: TimerHandle | undefined;
  #handshakeTimer: TimerHandle | undefined;
  #adoptTimeoutMs: number;
  /** Said once per orphanhood: the first refusal, the first failure to connect. */
  #quiet = new Set<string>();

  constructor(options: EmperorLinkOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#adoptTimeoutMs = options.lease?.adoptTimeoutMs ?? 0;
  }

  get state(): LinkState {
    return this.#state;
  }

  /** Tells whichever emperor listens now; dropped while orphaned. */
  send(message: MasterToEmperor): void {
    if (this.#state === 'ipc') this.#options.sendIpc(message);
    else if (this.#state === 'adopted') this.#channel?.send(message);
  }

  /** The spawning emperor's IPC channel closed (or an adopting emperor's socket did). */
  lost(): void {
    if (this.#state === 'closed' || this.#state === 'orphaned' || this.#state === 'handshake') return;
    const { lease, logger } = this.#options;
    if (lease === undefined || this.#adoptTimeoutMs === 0 || this.#options.noOrphans) {
      this.#state = 'closed';
      this.#options.onAbandoned('emperor-lost', lease === undefined || this.#adoptTimeoutMs === 0 ? 'lost connection with the emperor' : 'lost connection with the emperor (no-orphans)');
      return;
    }
    this.#state = 'orphaned';
    this.#quiet.clear();
    logger.warn(
      { control: lease.control, adopt_timeout_ms: this.#adoptTimeoutMs },
      `lost the emperor; serving on and waiting up to ${this.#adoptTimeoutMs / 1000} s for a new one on ${lease.control} (emperor-adopt-timeout)`,
    );
    this.#deadline = this.#clock.setTimeout(() => {
      this.#deadline = undefined;
      if (this.#state === 'adopted' || this.#state === 'closed') return;
      this.#teardown();
      this.#state = 'closed';
      this.#options.onAbandoned('no-emperor', `no emperor adopted this vassal within ${this.#adoptTimeoutMs / 1000} s (emperor-adopt-timeout)`);
    }, this.#adoptTimeoutMs);
    this.#connect();
  }

  /** The master is exiting: no more retries. Idempotent. */
  close(): void {
    this.#teardown();
    if (this.#deadline !== undefined) this.#clock.clearTimeout(this.#deadline);
    this.#deadline = undefined;
    this.#state = 'closed';
  }

  #teardown(): void {
    if (this.#retry !== undefined) this.#clock.clearTimeout(this.#retry);
    if (this.#handshakeTimer !== undefined) this.#clock.clearTimeout(this.#handshakeTimer);
    this.#retry = undefined;
    this.#handshakeTimer = undefined;
    const channel = this.#channel;
    this.#channel = undefined;
    channel?.removeAllListeners();
    channel?.close();
  }

  #once(key: string, say: () => void): void {
    if (this.#quiet.has(key)) return;
    this.#quiet.add(key);
    say();
  }

  #again(): void {
    this.#teardown();
    if (this.#state === 'closed' || this.#state === 'adopted') return;
    this.#state = 'orphaned';
    this.#retry = this.#clock.setTimeout(() => {
      this.#retry = undefined;
      this.#connect();
    }, RECONNECT_MS);
  }

  #connect(): void {
    const lease = this.#options.lease;
    if (lease === undefined || this.#state !== 'orphaned') return;
    this.#state = 'handshake';
    const socket = net.createConnection(lease.control);
    const channel = new JsonLines(socket);
    this.#channel = channel;
    const nonce = randomHex(16);
    let step: 'hello' | 'proof' | 'done' = 'hello';
    this.#handshakeTimer = this.#clock.setTimeout(() => {
      this.#handshakeTimer = undefined;
      this.#once('slow', () => this.#options.logger.warn(`the emperor on ${lease.control} did not finish the handshake in ${HANDSHAKE_TIMEOUT_MS / 1000} s; retrying`));
      this.#again();
    }, HANDSHAKE_TIMEOUT_MS);
    socket.once('connect', () => {
      channel.send({ v: this.#options.version ?? CONTROL_VERSION, type: 'hello', vassal: lease.vassal, pid: this.#options.pid ?? process.pid, nonce });
    });
    channel.on('close', (reason) => {
      if (this.#channel !== channel) return;
      if (step === 'done') {
        this.#channel = undefined;
        this.#state = 'ipc'; // so that lost() starts a new orphanhood
        this.#options.logger.warn(`the control socket to the emperor closed (${reason})`);
        this.lost();
        return;
      }
      if (step === 'hello') this.#once('connect', () => this.#options.logger.info(`no emperor answers on ${lease.control} yet (${reason}); retrying every ${RECONNECT_MS} ms`));
      this.#again();
    });
    channel.on('message', (raw) => {
      if (step === 'done') {
        try {
          this.#options.onMessage(parseAdoptingEmperorMessage(raw));
        } catch (err) {
          this.#options.logger.warn((err as Error).message);
        }
        return;
      }
      let message;
      try {
        message = parseEmperorHandshake(raw);
      } catch (err) {
        this.#once('bad', () => this.#options.logger.error(`the emperor on ${lease.control}: ${(err as Error).message}; not adopted by it`));
        this.#again();
        return;
      }
      if (message.type === 'refused') {
        this.#once(`refused:${message.reason}`, () => this.#options.logger.warn(`the emperor on ${lease.control} refused to adopt this vassal: ${message.reason}; retrying`));
        this.#again();
        return;
      }
      if (step === 'hello' && message.type === 'challenge') {
        if (!checkLeaseProof(lease.secret, 'emperor', nonce, message.proof)) {
          this.#once('forged', () => this.#options.logger.error({ code: 'ERR_CONTROL_AUTH' }, `the process on ${lease.control} could not prove it holds this vassal's lease; not adopted by it`));
          this.#again();
          return;
        }
        step = 'proof';
        channel.send({ v: CONTROL_VERSION, type: 'proof', proof: leaseProof(lease.secret, 'master', message.nonce), ...this.#options.flags() });
        return;
      }
      if (step === 'proof' && message.type === 'adopted') {
        step = 'done';
        if (this.#handshakeTimer !== undefined) this.#clock.clearTimeout(this.#handshakeTimer);
        this.#handshakeTimer = undefined;
        if (this.#deadline !== undefined) this.#clock.clearTimeout(this.#deadline);
        this.#deadline = undefined;
        this.#adoptTimeoutMs = message.adoptTimeoutMs;
        this.#state = 'adopted';
        this.#options.logger.info(`adopted by the emperor on ${lease.control}`);
        return;
      }
      this.#once('order', () => this.#options.logger.error(`the emperor on ${lease.control} sent ${message.type} out of order; not adopted by it`));
      this.#again();
    });
  }
}

/** How often a master replacing an older one retries a bind that finds its address in use, ms. */
export const BIND_RETRY_MS = 50;

/**
 * A `bindSockets` that, until `waitMs` after this call, retries a bind whose address is
 * in use: a master replacing an older one (another version) waits for that one to let
 * go of the vassal's sockets. Node 20 has no SO_REUSEPORT, so two masters cannot hold
 * one TCP port; the new master binds the moment the old one closes it.
 */
export function bindWaiting(
  bind: (specs: readonly SocketSpec[], perms: SocketPermissions) => Promise<BoundSocket[]>,
  waitMs: number,
  logger: Logger,
  clock: Clock = systemClock,
): (specs: readonly SocketSpec[], perms: SocketPermissions) => Promise<BoundSocket[]> {
  const until = clock.now() + waitMs;
  return async (specs, perms) => {
    let said = false;
    for (;;) {
      try {
        return await bind(specs, perms);
      } catch (err) {
        if (!/address already in use/.test((err as Error).message) || clock.now() >= until) throw err;
        if (!said) logger.info(`${(err as Error).message}: waiting up to ${Math.ceil((until - clock.now()) / 1000)} s for the master being replaced to let go of it`);
        said = true;
        await sleep(BIND_RETRY_MS);
      }
    }
  };
}
