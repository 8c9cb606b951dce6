/**
 * Memory of running processes, for `reload-on-rss`, `reload-on-as` and stats: RSS, the
 * address space (VSZ) and CPU time, all from one read of /proc/PID/stat (uWSGI
 * core/utils.c `get_memusage` reads the same fields).
 *
 * One synchronous read per process: /proc is served from memory, so it cannot block on a
 * disk, and it costs about 17 µs where pidusage plus a separate VSZ read cost about
 * 480 µs through the libuv thread pool (measured). A master samples every worker every
 * second, so at 200 idle vassals that difference was most of their CPU.
 */
import { readFileSync } from 'node:fs';

/** One process's memory, bytes. */
export interface MemorySample {
  readonly rss: number;
  readonly vsz: number;
  /** CPU use since the previous sample of the same pid, percent of one core (0 on the first). */
  readonly cpu: number;
}

/** Clock ticks per second of /proc CPU times (`USER_HZ`, 100 on every Linux ABI Node runs on). */
const USER_HZ = 100;

let pageBytes: number | undefined;
/**
 * The page size, from the kernel's own two views of this process's RSS (pages in
 * /proc/self/statm, kB in /proc/self/status); 4096 if they cannot be read.
 */
function pageSize(): number {
  if (pageBytes === undefined) {
    try {
      const pages = Number(readFileSync('/proc/self/statm', 'utf8').split(' ')[1]);
      const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
      const guess = (kb * 1024) / pages;
      // Between the two reads RSS may move a little: snap to a power of two.
      pageBytes = Number.isFinite(guess) && guess > 0 ? 2 ** Math.round(Math.log2(guess)) : 4096;
    } catch {
      pageBytes = 4096;
    }
  }
  return pageBytes;
}

/** The fields of /proc/PID/stat after `comm` (which may hold spaces and parentheses); undefined if gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Reads VSZ (bytes) from /proc/PID/stat; 0 if the process is gone. */
export async function readVsz(pid: number): Promise<number> {
  return Number(statFields(pid)?.[20]) || 0; // field 23 overall = index 20 after pid and comm
}

/**
 * The proportional set size of `pid` (bytes): its resident pages, each shared one divided
 * by the number of processes sharing it, from /proc/PID/smaps_rollup (Linux 4.14+). What
 * a process really costs when its pages are shared (a worker forked from a preloaded
 * app). Undefined when it cannot be read (gone, another user's, no smaps_rollup). The
 * kernel walks the page tables for this read (about 0.1 ms for a 30 MiB process), so it
 * is taken for stats documents only, not on every tick.
 */
export function readPss(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = /^Pss:\s+(\d+) kB$/m.exec(text)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** Previous CPU reading per pid, for the percentage. */
const lastCpu = new Map<number, { ticks: number; at: number }>();

/**
 * Samples every pid at once. Pids that are gone are left out of the result (and
 * forgotten).
 */
export async function sampleMemory(pids: readonly number[], now = performance.now()): Promise<Map<number, MemorySample>> {
  const out = new Map<number, MemorySample>();
  for (const pid of pids) {
    const f = statFields(pid);
    if (f === undefined) {
      lastCpu.delete(pid);
      continue;
    }
    // Fields 14, 15 (utime, stime), 23 (vsize, bytes), 24 (rss, pages), counted from 1 with pid and comm.
    const ticks = Number(f[11]) + Number(f[12]);
    const prev = lastCpu.get(pid);
    lastCpu.set(pid, { ticks, at: now });
    const cpu = prev === undefined || now <= prev.at ? 0 : (((ticks - prev.ticks) / USER_HZ) * 1000 * 100) / (now - prev.at);
    out.set(pid, { rss: (Number(f[21]) || 0) * pageSize(), vsz: Number(f[20]) || 0, cpu });
  }
  for (const pid of lastCpu.keys()) if (!pids.includes(pid) && statFields(pid) === undefined) lastCpu.delete(pid);
  return out;
}
