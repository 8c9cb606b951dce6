/**
 * What a vassal master does before it runs its pool, in this order: the sockets bound
 * (privileged ports and socket ownership need root), the pidfile written, the privileges
 * dropped, then as the vassal's user: the worker code checked readable, the runtime
 * prepared (the Python interpreter is the one that user would run), the app's access
 * judged, the scoreboard created.
 */
import { readFileSync } from 'node:fs';
import type { VassalConfig } from '@emperor/config';
import type { Logger } from '@emperor/process';
import type { MasterIo, ScoreboardPort } from './io.js';
import type { Runtime } from './runtimes/runtime.js';
import type { BoundSocket } from './sockets.js';
import { dropPrivileges, resolveCredentials } from './users.js';
import { checkCodeReadable } from './worker-code.js';

/** Scoreboard capacity: two processes per worker id (old and new during a reload). */
export const SCOREBOARD_SLOTS = 2 * 1024 + 4;

/** What {@link startUp} needs. */
export interface StartUpInputs {
  readonly config: VassalConfig;
  readonly runtime: Runtime;
  readonly io: MasterIo;
  readonly logger: Logger;
  /** Writes the pidfile, as root (the master FIFO's `P` rewrites it later). @throws the write error */
  readonly writePidfile: () => void;
  /** Judges what must be judged as the vassal's user (the app's access). @throws to stop the master */
  readonly afterDrop?: ((config: VassalConfig) => void) | undefined;
}

/**
 * Binds, drops and creates what the pool needs. On a failure after binding, the sockets
 * are closed again.
 * @throws PythonInterpreterError, SocketBindError, PrivilegeError (the caller logs them
 *   and exits with ExitCode.UNAVAILABLE)
 */
export async function startUp(p: StartUpInputs): Promise<{ sockets: BoundSocket[]; scoreboard: ScoreboardPort }> {
  const { config, runtime } = p;
  const credentials = resolveCredentials(config.uid, config.gid);
  const chown = config.chownSocket;
  const owner = chown === undefined ? undefined : resolveCredentials(chown.user, chown.group);
  const sockets = await p.io.bindSockets(config.sockets, { mode: config.chmodSocket, uid: owner?.uid, gid: owner?.gid });
  try {
    p.writePidfile();
    // pino loads with the first log line: make that happen while Emperor's own files are
    // surely readable, then check the vassal's user can read the worker code it execs.
    void p.logger.level;
    dropPrivileges(credentials);
    checkCodeReadable(runtime.code);
    runtime.prepare(config);
    p.afterDrop?.(config);
    return { sockets, scoreboard: p.io.createScoreboard(SCOREBOARD_SLOTS) };
  } catch (err) {
    for (const s of sockets) s.close(true);
    throw err;
  }
}

/** Linux caps the backlog at net.core.somaxconn silently; uWSGI refuses to start instead. We warn, once, in `logger`. */
export function warnSomaxconn(listen: number, logger: Pick<Logger, 'warn'>): void {
  try {
    const max = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    if (listen > max) logger.warn(`listen ${listen} is above net.core.somaxconn (${max}); the kernel uses ${max}`);
  } catch {
    // not Linux, or no /proc
  }
}
