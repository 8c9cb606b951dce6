/**
 * The master's I/O as one port, so its loop runs in a unit test with fakes: binding,
 * the scoreboard, memory and accept-queue sampling, file mtimes. The defaults are the
 * real ones. Spawning goes through the runtimes (`runtimes/`).
 */
import { statSync } from 'node:fs';
import type { SocketSpec } from '@emperor/config';
import { readPss, sampleMemory } from '@emperor/process';
import { Scoreboard } from '../shared/scoreboard.js';
import { bindSockets, dupSockets, readTcpListenQueues, type BoundSocket, type DupHandle, type SocketPermissions } from './sockets.js';

/** What the master uses of its scoreboard. */
export type ScoreboardPort = Pick<Scoreboard, 'fd' | 'allocate' | 'release' | 'read' | 'readAll' | 'keep' | 'unchanged' | 'close'>;

/** The master's I/O. */
export interface MasterIo {
  /** Binds (never listens on) the vassal's sockets. @throws SocketBindError */
  bindSockets(specs: readonly SocketSpec[], perms: SocketPermissions): Promise<BoundSocket[]>;
  /**
   * A duplicate descriptor of each socket, as a handle the master may listen on and close
   * (cheap mode's watch, cheap-watch.ts). @throws (rejects with) SocketBindError
   */
  dupSockets(sockets: readonly BoundSocket[]): Promise<DupHandle[]>;
  /** Creates the scoreboard the workers inherit. */
  createScoreboard(slots: number): ScoreboardPort;
  /** RSS and address space (bytes) of each pid that could be read. Never rejects. */
  sampleMemory(pids: readonly number[]): Promise<ReadonlyMap<number, { readonly rss: number; readonly vsz: number }>>;
  /** PSS (bytes, /proc/PID/smaps_rollup) of each pid that could be read. Never rejects. */
  samplePss(pids: readonly number[]): Promise<ReadonlyMap<number, number>>;
  /** Accept-queue length by socket inode (TCP sockets, /proc/net/tcp*). */
  readListenQueues(inodes: ReadonlySet<number>): Promise<ReadonlyMap<number, number>>;
  /** A file's mtime, ms; -1 when it does not exist. */
  mtime(file: string): number;
}

/** mtime of a file in ms, or -1 when it does not exist. */
export function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

/** The real I/O. */
export const systemIo: MasterIo = {
  bindSockets: (specs, perms) => bindSockets(specs, perms),
  dupSockets: (sockets) => dupSockets(sockets),
  createScoreboard: (slots) => Scoreboard.create(slots),
  sampleMemory: (pids) => sampleMemory(pids),
  samplePss: async (pids) => new Map(pids.flatMap((pid) => {
    const pss = readPss(pid);
    return pss === undefined ? [] : [[pid, pss] as const];
  })),
  readListenQueues: (inodes) => readTcpListenQueues(inodes),
  mtime: mtimeOf,
};
