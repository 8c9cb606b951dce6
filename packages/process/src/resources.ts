/**
 * Memory of running processes, for `reload-on-rss`, `reload-on-as` and stats.
 * RSS comes from pidusage; the address space (VSZ) from /proc/PID/stat field 23, which
 * pidusage does not report (uWSGI core/utils.c `get_memusage` reads the same fields).
 */
import { readFile } from 'node:fs/promises';
import pidusage from 'pidusage';

/** One process's memory, bytes. */
export interface MemorySample {
  readonly rss: number;
  readonly vsz: number;
  /** CPU use since the previous sample, percent of one core. */
  readonly cpu: number;
}

/** Reads VSZ (bytes) from /proc/PID/stat; 0 if the process is gone. */
export async function readVsz(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[20]) || 0; // field 23 overall = index 20 after pid and comm
  } catch {
    return 0;
  }
}

/**
 * Samples every pid at once. Pids that are gone are left out of the result.
 */
export async function sampleMemory(pids: readonly number[]): Promise<Map<number, MemorySample>> {
  const out = new Map<number, MemorySample>();
  if (pids.length === 0) return out;
  const results = await Promise.all(
    pids.map(async (pid) => {
      try {
        const [usage, vsz] = await Promise.all([pidusage(pid), readVsz(pid)]);
        return [pid, { rss: usage.memory, vsz, cpu: usage.cpu }] as const;
      } catch {
        return undefined;
      }
    }),
  );
  for (const r of results) if (r !== undefined) out.set(r[0], r[1]);
  return out;
}
