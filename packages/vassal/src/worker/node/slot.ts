/**
 * The Node worker's scoreboard slot: its counters, the requests in flight, and when the
 * slot is written (docs/architecture.md, "How state flows without per-request messages").
 *
 * Per request only memory is touched (a Map entry, counters); the slot is written by a
 * timer every `heartbeatIntervalMs`, which doubles as the heartbeat the master watches to
 * catch a blocked event loop. So the master costs nothing per request. Without
 * `harakiri` nobody watches that beat, and the timer runs only while there is something
 * to catch up: an idle worker sleeps (see {@link SlotPublisher.changed}).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SlotStatus, type SlotData } from '../../shared/scoreboard.js';

/**
 * When idle⇄busy transitions are written to the slot at once. Under keep-alive load a
 * worker goes idle→busy about once per request, and a write costs about 1.3 µs.
 * - With `harakiri`, every idle→busy start is written: the request that blocks the event
 *   loop must be in the slot before it blocks, for the master's harakiri line. A write
 *   skipped because the heartbeat had written the slot in the same millisecond lost it
 *   (the line said "no request"), so no throttle applies there.
 * - Without `harakiri` nobody watches a blocked loop, and a stats read asks for a fresh
 *   write: a start is written unless the slot was written in the last millisecond (at
 *   most ~1000 writes/s, ~0.13% of a core).
 * Going idle is written at most every 100 ms; the periodic write catches up the rest.
 */
export const BUSY_PUBLISH_MS = 1;
/** See {@link BUSY_PUBLISH_MS}. */
export const IDLE_PUBLISH_MS = 100;

/** A request in flight, as the slot shows the oldest one. */
export interface InFlight {
  readonly res: ServerResponse;
  /** Epoch ms. */
  readonly startMs: number;
  readonly method: string;
  readonly uri: string;
}

/**
 * The worker's phase as its slot shows it: `starting` until its sockets listen,
 * `serving` (idle or busy, from the requests in flight), `stopping` once a graceful stop
 * began. A recycling worker (max-requests) still shows busy or idle, not accepting.
 */
export type WorkerPhase = 'starting' | 'serving' | 'stopping';

/** The slot status the master reads for a phase and a number of requests in flight. */
export function slotStatus(phase: WorkerPhase, inFlight: number): SlotStatus {
  if (phase === 'stopping') return SlotStatus.STOPPING;
  if (phase === 'starting') return SlotStatus.STARTING;
  return inFlight > 0 ? SlotStatus.BUSY : SlotStatus.IDLE;
}

/** Where a slot is written: the worker's `ScoreboardWriter` (shared/scoreboard.ts), or a fake in tests. */
export interface SlotWriter {
  /** @throws the write's error (the publisher reports it and carries on) */
  write(data: SlotData): void;
}

/** Options for {@link SlotPublisher}. Durations in ms. */
export interface SlotOptions {
  /** `harakiri` in ms; 0 = off. With it, the slot is written every `heartbeatIntervalMs`. */
  readonly harakiriMs: number;
  /** How often the slot is written while there is something to write (the heartbeat). */
  readonly heartbeatIntervalMs: number;
  /** Called when a write fails; the worker keeps serving. */
  readonly onWriteError: (err: Error) => void;
  /** Epoch ms of a write (its heartbeat). @default Date.now */
  readonly now?: () => number;
  /** Arms the catch-up write; the timer must not keep the process alive. @default an unref'd setTimeout */
  readonly schedule?: (fn: () => void, ms: number) => void;
}

const unrefTimeout = (fn: () => void, ms: number): void => {
  setTimeout(fn, ms).unref();
};

/**
 * Owns the worker's slot: the counters the master sums into its stats, the requests in
 * flight (oldest first, for harakiri and stats), and the writes.
 */
export class SlotPublisher {
  /** Requests in flight, oldest first (a Map keeps insertion order). */
  readonly inFlight = new Map<IncomingMessage, InFlight>();
  /** Requests completed since spawn. */
  requests = 0;
  /** Exceptions from the app (answered 500, or uncaught). */
  exceptions = 0;
  /** Bytes sent, response heads included. */
  txBytes = 0;
  /** Sum of response times, µs. */
  runningTimeUs = 0;
  /** uWSGI's running average `(avg + rt) / 2`, µs. */
  avgRtUs = 0;
  /** Requests ended by the worker's own harakiri. */
  harakiriCount = 0;
  /** End of the last completed request, epoch ms; 0 before the first. */
  lastRequestEndMs = 0;
  /** Accepting new connections (cleared by a graceful stop or a recycle). */
  accepting = false;
  #phase: WorkerPhase = 'starting';
  #lastPublishMs = 0;
  #catchUpArmed = false;
  readonly #writer: SlotWriter;
  readonly #options: SlotOptions;
  readonly #now: () => number;
  readonly #schedule: (fn: () => void, ms: number) => void;
  readonly #catchUp = (): void => {
    this.#catchUpArmed = false;
    this.publish();
    if (this.inFlight.size > 0) this.changed();
  };

  constructor(writer: SlotWriter, options: SlotOptions) {
    this.#writer = writer;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#schedule = options.schedule ?? unrefTimeout;
  }

  /** Where the worker is, as its slot shows it. */
  get phase(): WorkerPhase {
    return this.#phase;
  }

  /** The sockets listen: `starting` → `serving` (a stop that came first is kept). */
  markServing(): void {
    if (this.#phase === 'starting') this.#phase = 'serving';
  }

  /** A graceful stop began. */
  markStopping(): void {
    this.#phase = 'stopping';
  }

  /** Writes the whole slot now (one positional write). A failed write is reported, never thrown. */
  publish(): void {
    let oldest: InFlight | undefined;
    for (const r of this.inFlight.values()) {
      oldest = r;
      break; // Map keeps insertion order: the first entry is the oldest request
    }
    const data: SlotData = {
      pid: process.pid,
      status: slotStatus(this.#phase, this.inFlight.size),
      accepting: this.accepting,
      inFlight: this.inFlight.size,
      heartbeatMs: this.#now(),
      requests: this.requests,
      exceptions: this.exceptions,
      txBytes: this.txBytes,
      runningTimeUs: this.runningTimeUs,
      avgRtUs: this.avgRtUs,
      requestStartMs: oldest?.startMs ?? 0,
      harakiriCount: this.harakiriCount,
      lastRequestEndMs: this.lastRequestEndMs,
      method: oldest?.method ?? '',
      uri: oldest?.uri ?? '',
    };
    this.#lastPublishMs = data.heartbeatMs;
    try {
      this.#writer.write(data);
    } catch (err) {
      this.#options.onWriteError(err as Error);
    }
  }

  /**
   * The catch-up write without `harakiri`: armed when the worker's state changes, it
   * writes the slot `heartbeatIntervalMs` later, and again every interval while requests
   * are in flight, then stops. An idle worker so arms no timer and never wakes: a 1 s
   * timer in an idle worker cost about 0.2 ms of CPU per second (measured; 4% of a core
   * for 200 vassals). With `harakiri` the slot is written on a fixed interval instead
   * (see {@link startHeartbeat}).
   */
  changed(): void {
    if (this.#catchUpArmed || this.#options.harakiriMs > 0) return;
    this.#catchUpArmed = true;
    this.#schedule(this.#catchUp, this.#options.heartbeatIntervalMs);
  }

  /**
   * With `harakiri`: writes the slot every `heartbeatIntervalMs` for the worker's life,
   * the heartbeat whose absence shows the master a blocked event loop. Without, nothing.
   */
  startHeartbeat(): void {
    if (this.#options.harakiriMs > 0) setInterval(() => this.publish(), this.#options.heartbeatIntervalMs).unref();
  }

  /**
   * Writes the slot for a stats read (the master's `publish`). It does not count as the
   * last write for the rules of requestStarted and requestEnded: a request that starts right after it is still written
   * at once (else the one that blocks the event loop next would miss the slot, and the
   * harakiri line its method and URI).
   */
  publishRequested(): void {
    const last = this.#lastPublishMs;
    this.publish();
    this.#lastPublishMs = last;
  }

  /**
   * A request started at `startMs` (epoch ms): in flight, and published at once when it
   * makes an idle worker busy (without `harakiri`, unless the slot was written in the last
   * {@link BUSY_PUBLISH_MS}).
   */
  requestStarted(req: IncomingMessage, res: ServerResponse, startMs: number): void {
    this.inFlight.set(req, { res, startMs, method: req.method ?? '', uri: req.url ?? '' });
    if (this.inFlight.size === 1 && (this.#options.harakiriMs > 0 || startMs - this.#lastPublishMs >= BUSY_PUBLISH_MS)) this.publish();
    this.changed();
  }

  /**
   * A request ended at `endMs` (epoch ms) after `rtUs` µs, having sent `sentBytes`:
   * counted, and published when it leaves the worker idle (at most every
   * {@link IDLE_PUBLISH_MS}).
   * @returns the requests completed, this one included
   */
  requestEnded(req: IncomingMessage, rtUs: number, sentBytes: number, endMs: number): number {
    this.inFlight.delete(req);
    const n = (this.requests += 1);
    this.runningTimeUs += rtUs;
    this.avgRtUs = this.avgRtUs === 0 ? rtUs : (this.avgRtUs + rtUs) / 2; // uWSGI's running average
    this.txBytes += sentBytes;
    this.lastRequestEndMs = endMs;
    if (this.inFlight.size === 0 && endMs - this.#lastPublishMs >= IDLE_PUBLISH_MS) this.publish();
    else this.changed();
    return n;
  }
}
