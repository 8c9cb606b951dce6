/**
 * The kernel's accept queues of the vassal's TCP sockets: read sparingly, kept for stats
 * and the cheaper algorithms, and a full queue logged at most every
 * {@link LISTEN_FULL_LOG_MS}.
 */
import type { Clock, Logger } from '@emperor/process';
import { TICK_MS } from './pool/types.js';
import { pendingUnixConnections, type BoundSocket } from './sockets.js';

/** A full listen queue is logged at most this often, ms (uWSGI logs it every cycle). */
export const LISTEN_FULL_LOG_MS = 10_000;

/**
 * How often the kernel's accept queues are read when no algorithm needs them every tick
 * (only for the "listen queue full" line), ms. /proc/net/tcp lists every socket of the
 * host; only its head, the listening sockets, is read (see readTcpListenQueues: 0.08 ms,
 * against 4-8 ms for the whole file on a quiet host and 14 ms with 24,000 TIME_WAIT
 * connections), but each reading is still a wake-up and kernel time, and 200 masters
 * reading the whole file every second cost most of a core (measured): so this is slow
 * unless `cheaper-algo` is `backlog` or `busyness` or `idle` is set. It is not read at
 * all while every worker is idle and accepting: an idle worker takes a connection at
 * once, so the queue cannot be full. A stats request refreshes a reading older than
 * {@link QUEUE_FRESH_MS} first.
 */
export const QUEUE_SAMPLE_IDLE_MS = 30_000;
/** A queue reading younger than this is fresh enough for a stats document, ms. */
export const QUEUE_FRESH_MS = 1000;

/** One socket's queue and its maximum (the backlog the kernel uses). */
export interface QueueReading {
  readonly queue: number;
  readonly max: number;
}

/** When to read on a tick. */
export interface SampleOptions {
  /** An algorithm needs the queues every tick (`cheaper-algo` backlog/busyness, `idle`). */
  readonly everyTick: boolean;
  /** Some worker has a request in flight or is not accepting. */
  readonly busy: () => boolean;
  /**
   * `idle`'s cheap mode: no worker runs, so connections waiting on unix sockets are
   * counted too (from /proc/net/unix, see pendingUnixConnections), for the first one to
   * wake the workers. @default false
   */
  readonly cheap?: boolean;
}

/** The accept queues of one master's sockets. */
export class ListenQueues {
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #read: (inodes: ReadonlySet<number>) => Promise<ReadonlyMap<number, number>>;
  /** The backlog the kernel uses (`listen` capped by somaxconn). */
  maxBacklog = 0;
  #queues = new Map<string, QueueReading>();
  #nextRead = 0;
  #reading: Promise<void> | undefined;
  #readAt = 0;
  #lastFullLog = 0;
  #fullSince = 0;
  /** Connections waiting on the unix sockets, read only in cheap mode; 0 otherwise. */
  #unixPending = 0;

  constructor(logger: Logger, clock: Clock, read: (inodes: ReadonlySet<number>) => Promise<ReadonlyMap<number, number>>) {
    this.#logger = logger;
    this.#clock = clock;
    this.#read = read;
  }

  /**
   * Reads the queues in the background on a tick: every tick when an algorithm needs
   * them, otherwise every {@link QUEUE_SAMPLE_IDLE_MS} while some worker is busy. A slow
   * read (a host with very many sockets) pushes the next one back, so reading never
   * takes more than ~2% of the time. Resolves when the reading is in; never rejects.
   */
  sample(sockets: readonly BoundSocket[], options: SampleOptions): Promise<void> {
    const now = this.#clock.now();
    if (this.#reading !== undefined) return this.#reading;
    this.#unixPending = options.cheap === true ? pendingUnixConnections(new Set(sockets.filter((s) => !s.tcp).map((s) => s.inode))) : 0;
    if (now < this.#nextRead || (!options.everyTick && (now - this.#readAt < QUEUE_SAMPLE_IDLE_MS || !options.busy()))) return Promise.resolve();
    return this.#start(sockets);
  }

  /** Makes sure the reading is at most {@link QUEUE_FRESH_MS} old (for a stats document). Never rejects. */
  async fresh(sockets: readonly BoundSocket[]): Promise<void> {
    if (this.#clock.now() - this.#readAt > QUEUE_FRESH_MS) await (this.#reading ?? this.#start(sockets));
  }

  #start(sockets: readonly BoundSocket[]): Promise<void> {
    // An inherited socket (fd://N) is TCP or not whatever its address says: BoundSocket.tcp knows.
    const tcp = sockets.filter((s) => s.tcp);
    if (tcp.length === 0) return Promise.resolve();
    const t0 = performance.now();
    this.#reading = this.#read(new Set(tcp.map((s) => s.inode)))
      .then((byInode) => {
        const queues = new Map<string, QueueReading>();
        for (const s of sockets) queues.set(s.spec.name, { queue: byInode.get(s.inode) ?? 0, max: this.maxBacklog });
        this.#queues = queues;
        this.#readAt = this.#clock.now();
        this.#nextRead = this.#readAt + Math.max(0, (performance.now() - t0) * 50 - TICK_MS);
        this.#logFull(sockets, this.#readAt);
      })
      .catch(() => {
        // /proc unreadable: the last reading stands
      })
      .finally(() => {
        this.#reading = undefined;
      });
    return this.#reading;
  }

  #logFull(sockets: readonly BoundSocket[], now: number): void {
    for (const s of sockets) {
      const q = this.#queues.get(s.spec.name);
      if (q === undefined || q.max === 0 || q.queue < q.max) continue;
      if (this.#fullSince === 0) this.#fullSince = now;
      if (now - this.#lastFullLog >= LISTEN_FULL_LOG_MS) {
        this.#lastFullLog = now;
        this.#logger.error(
          { socket: s.spec.name, queue: q.queue, max: q.max },
          `*** listen queue of socket "${s.spec.name}" full !!! (${q.queue}/${q.max}) *** (full since ${Math.round((now - this.#fullSince) / 1000)} s; raise processes, cheaper limits or listen)`,
        );
      }
      return;
    }
    this.#fullSince = 0;
  }

  /** The largest accept queue over the sockets, from the last reading (in cheap mode, unix sockets' waiting connections too). */
  backlog(): number {
    let max = this.#unixPending;
    for (const q of this.#queues.values()) max = Math.max(max, q.queue);
    return max;
  }

  /**
   * The accept queue of each socket and its maximum, by socket name, from the last
   * reading (0 for unix sockets and before the first one).
   */
  of(sockets: readonly BoundSocket[]): Map<string, QueueReading> {
    const out = new Map<string, QueueReading>();
    for (const s of sockets) out.set(s.spec.name, this.#queues.get(s.spec.name) ?? { queue: 0, max: this.maxBacklog });
    return out;
  }
}
