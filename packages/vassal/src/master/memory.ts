/**
 * Memory of the live workers (RSS and address space, one read of /proc/PID/stat each):
 * every tick when a limit or the cheaper algorithm needs it, and for a stats document.
 */
import type { Clock } from '@emperor/process';
import type { MasterIo } from './io.js';
import type { Pool } from './pool/index.js';

/** One sample at a time of a pool's processes. */
export class MemorySampler {
  readonly #io: Pick<MasterIo, 'sampleMemory'>;
  readonly #clock: Clock;
  #sampling = false;
  /** When the last sample was taken, epoch ms; 0 before the first. */
  at = 0;

  constructor(io: Pick<MasterIo, 'sampleMemory'>, clock: Clock) {
    this.#io = io;
    this.#clock = clock;
  }

  /**
   * RSS and address space (bytes) by process key, of every process of `pool` with a pid.
   * Undefined when a sample is already on its way or /proc could not be read. Never rejects.
   */
  async sample(pool: Pool): Promise<Map<number, { rss: number; vsz: number }> | undefined> {
    if (this.#sampling) return undefined;
    this.#sampling = true;
    try {
      const procs = [...pool.procs.values()].filter((p) => p.pid > 0);
      const samples = await this.#io.sampleMemory(procs.map((p) => p.pid));
      this.at = this.#clock.now();
      const byKey = new Map<number, { rss: number; vsz: number }>();
      for (const p of procs) {
        const s = samples.get(p.pid);
        if (s !== undefined) byKey.set(p.key, { rss: s.rss, vsz: s.vsz });
      }
      return byKey;
    } catch {
      return undefined; // /proc unreadable: the last sample stands
    } finally {
      this.#sampling = false;
    }
  }
}
