/**
 * Memory of the live workers (RSS and address space, one read of /proc/PID/stat each):
 * every tick when a limit or the cheaper algorithm needs it, and for a stats document.
 */
import type { Clock } from '@emperor/process';
import type { MasterIo } from './io.js';
import type { Pool } from './pool/index.js';

/** One sample at a time of a pool's processes. */
export class MemorySampler {
  readonly #io: Pick<MasterIo, 'sampleMemory' | 'samplePss'>;
  readonly #clock: Clock;
  #sampling = false;
  /** When the last sample was taken, epoch ms; 0 before the first. */
  at = 0;

  /** When PSS was last read, epoch ms; 0 before the first. */
  pssAt = 0;

  constructor(io: Pick<MasterIo, 'sampleMemory' | 'samplePss'>, clock: Clock) {
    this.#io = io;
    this.#clock = clock;
  }

  /**
   * RSS and address space (bytes) by process key, of every process of `pool` with a pid,
   * and with `pss` their PSS too (bytes; dearer to read: for stats documents).
   * Undefined when a sample is already on its way or /proc could not be read. Never rejects.
   */
  async sample(pool: Pool, pss = false): Promise<Map<number, { rss: number; vsz: number; pss?: number }> | undefined> {
    if (this.#sampling) return undefined;
    this.#sampling = true;
    try {
      const procs = [...pool.procs.values()].filter((p) => p.pid > 0);
      const pids = procs.map((p) => p.pid);
      const [samples, psses] = await Promise.all([this.#io.sampleMemory(pids), pss ? this.#io.samplePss(pids) : undefined]);
      this.at = this.#clock.now();
      if (pss) this.pssAt = this.at;
      const byKey = new Map<number, { rss: number; vsz: number; pss?: number }>();
      for (const p of procs) {
        const s = samples.get(p.pid);
        const q = psses?.get(p.pid);
        if (s !== undefined) byKey.set(p.key, q === undefined ? { rss: s.rss, vsz: s.vsz } : { rss: s.rss, vsz: s.vsz, pss: q });
      }
      return byKey;
    } catch {
      return undefined; // /proc unreadable: the last sample stands
    } finally {
      this.#sampling = false;
    }
  }
}
