/**
 * How a Node worker stops: a graceful stop (the master's `stop`, SIGTERM, the master
 * gone) and a recycle (`max-requests`). Both stop accepting and let the connections in
 * flight end; a stop then tells the entry it is done (the entry exits), a recycle asks
 * the master for a replacement, which sends `stop` once it is ready.
 */
import { parseMasterToWorker, type WorkerToMaster } from '@emperor/protocol';
import type { Logger } from '@emperor/process/logger';
import type { Serving } from './protocols/index.js';
import type { SlotPublisher } from './slot.js';

/**
 * Where the worker is in its life: `serving`; `recycling` (max-requests reached, not
 * accepting, waiting for the master's `stop`); `stopping` (draining, then done).
 */
export type LifecycleState = 'serving' | 'recycling' | 'stopping';

/**
 * Whether `max-requests` asks for a replacement now (uWSGI core/utils.c: checked after
 * each request, and only once the worker has lived `min-worker-lifetime`).
 * @param maxRequests 0 = off
 * @param livedMs how long the worker has run, ms
 * @param minWorkerLifetimeMs `min-worker-lifetime` in ms
 */
export function recycleDue(requests: number, maxRequests: number, livedMs: number, minWorkerLifetimeMs: number): boolean {
  return maxRequests > 0 && requests >= maxRequests && livedMs >= minWorkerLifetimeMs;
}

/** What a {@link Lifecycle} needs. Durations in ms. */
export interface LifecycleOptions {
  readonly slot: SlotPublisher;
  readonly logger: Logger;
  /** `max-requests` (with this worker's `max-requests-delta` share); 0 = off. */
  readonly maxRequests: number;
  /** `min-worker-lifetime` in ms. */
  readonly minWorkerLifetimeMs: number;
  /** When the worker started, epoch ms. */
  readonly startedAtMs: number;
  /** Sends a message to the master (a no-op without an IPC channel). */
  readonly send: (message: WorkerToMaster) => void;
  /** `reopen-logs` from the master. */
  readonly reopenLogs: () => void;
  /** A graceful stop has finished (every connection ended, the slot written): the entry exits 0. */
  readonly onStopped: () => void;
}

/** The worker's stop and recycle. */
export class Lifecycle {
  #state: LifecycleState = 'serving';
  #serving: Serving | undefined;
  #drained: Promise<void> | undefined;
  readonly #options: LifecycleOptions;

  constructor(options: LifecycleOptions) {
    this.#options = options;
  }

  /** Serving, recycling or stopping. */
  get state(): LifecycleState {
    return this.#state;
  }

  /** True once the worker stops accepting: every response still to be sent says `Connection: close`. */
  get draining(): boolean {
    return this.#state !== 'serving';
  }

  /** The sockets listen: a later stop or recycle closes them (at once, if one came first). */
  served(serving: Serving): void {
    this.#serving = serving;
    if (this.#drained !== undefined) void serving.close();
  }

  /**
   * Stops accepting new connections on every socket (the listening sockets live on in
   * the master) and resolves once every connection has ended. Shared by the graceful
   * stop and the recycle: a server's `close` event fires only once.
   */
  #stopAccepting(): Promise<void> {
    if (this.#drained !== undefined) return this.#drained;
    const slot = this.#options.slot;
    slot.accepting = false;
    for (const r of slot.inFlight.values()) if (!r.res.headersSent) r.res.setHeader('connection', 'close');
    this.#drained = this.#serving?.close() ?? Promise.resolve();
    slot.publish();
    return this.#drained;
  }

  /**
   * After each request: `max-requests` reached, stop accepting and ask the master for a
   * replacement, once.
   */
  requestEnded(): void {
    const { slot, maxRequests } = this.#options;
    // Per request: a few comparisons; the clock is read only once max-requests is reached.
    if (this.#state !== 'serving' || maxRequests <= 0 || slot.requests < maxRequests) return;
    if (!recycleDue(slot.requests, maxRequests, Date.now() - this.#options.startedAtMs, this.#options.minWorkerLifetimeMs)) return;
    this.#state = 'recycling';
    this.#options.logger.info({ requests: slot.requests }, `served ${slot.requests} requests (max-requests ${maxRequests}); asking to be replaced`);
    void this.#stopAccepting();
    this.#options.send({ v: 1, type: 'recycle', reason: 'max-requests' });
  }

  /**
   * Graceful stop: stop accepting, tell every in-flight request's client to close its
   * connection, let idle keep-alive connections end on their own (the next response
   * carries `Connection: close`, or the server's keep-alive timeout closes them), write
   * the slot, then {@link LifecycleOptions.onStopped}. Closing idle connections at once
   * would race a client that is sending on them, which is how reloads lose keep-alive
   * requests (pm2 reload loses 39-46 per reload on this machine). Idempotent.
   */
  stop(): void {
    if (this.#state === 'stopping') return;
    this.#state = 'stopping';
    this.#options.slot.markStopping();
    void this.#stopAccepting().then(() => {
      this.#options.slot.publish();
      this.#options.onStopped();
    });
  }

  /**
   * A control message from the master (`stop`, `reopen-logs`, `publish`). One it does not
   * understand is logged and ignored.
   */
  onMessage(raw: unknown): void {
    try {
      const message = parseMasterToWorker(raw);
      switch (message.type) {
        case 'stop':
          this.stop();
          return;
        case 'reopen-logs':
          this.#options.reopenLogs();
          return;
        case 'publish':
          // A stats read waits for this: every request that ended is counted in the slot.
          this.#options.slot.publishRequested();
          this.#options.send({ v: 1, type: 'published' });
          return;
        default: {
          const never: never = message;
          void never;
        }
      }
    } catch (err) {
      this.#options.logger.warn((err as Error).message);
    }
  }
}
