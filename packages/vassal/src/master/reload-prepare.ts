/**
 * A reload's I/O before any worker starts: the vassal file re-read (or the running
 * config kept), the runtime prepared for it, its new sockets bound. Anything that fails
 * is one "reload abandoned" line, and the running workers keep serving.
 */
import type { VassalConfig } from '@emperor/config';
import type { Logger } from '@emperor/process';
import type { MasterIo } from './io.js';
import type { PoolEvent } from './pool/index.js';
import type { BoundSocket } from './sockets.js';
import { resolveCredentials } from './users.js';

/** What {@link prepareReload} needs. */
export interface ReloadInputs {
  /** False keeps the running config (the master FIFO's `w`). */
  readonly reread: boolean;
  readonly running: VassalConfig;
  /** The sockets bound now. */
  readonly bound: readonly BoundSocket[];
  /** @throws on an invalid file */
  readonly reloadConfig: () => VassalConfig;
  /** @throws when the config's runtime cannot run it (no Python interpreter) */
  readonly prepareRuntime: (config: VassalConfig) => void;
  readonly bindSockets: MasterIo['bindSockets'];
  /** The touch files whose mtime the pool knows already. */
  readonly touched: ReadonlyMap<string, number>;
  readonly mtime: MasterIo['mtime'];
  /** Takes the sockets the new config adds (bound before the pool hears of it). */
  readonly adopt: (sockets: readonly BoundSocket[]) => void;
  readonly logger: Logger;
}

/** A reload's config and the sockets it adds. */
export interface PreparedReload {
  readonly config: VassalConfig;
  readonly sockets: readonly BoundSocket[];
}

/**
 * Why a reload from `running` to `next` cannot be done in place, or undefined: the
 * master dropped to its uid/gid at start and cannot take other ones.
 */
export function reloadRefusal(running: Pick<VassalConfig, 'uid' | 'gid'>, next: Pick<VassalConfig, 'uid' | 'gid'>): string | undefined {
  if (String(next.uid) === String(running.uid) && String(next.gid) === String(running.gid)) return undefined;
  return `uid/gid changed (${running.uid ?? '-'}:${running.gid ?? '-'} → ${next.uid ?? '-'}:${next.gid ?? '-'}); that needs a restart of the vassal`;
}

/**
 * Gets a reload's config ready, synchronously unless sockets must be bound.
 * @returns the pool's answer: `reload-prepared` (with the mtimes of touch files the
 *   config adds), or `reload-refused` (logged here)
 */
export function prepareReload(p: ReloadInputs): PoolEvent | Promise<PoolEvent> {
  const answer = (prepared: PreparedReload | undefined): PoolEvent => {
    if (prepared === undefined) return { type: 'reload-refused' };
    p.adopt(prepared.sockets);
    const c = prepared.config;
    const files = [...c.touchReload, ...c.touchChainReload, ...c.touchLogreopen].filter((f) => !p.touched.has(f));
    return { type: 'reload-prepared', config: c, mtimes: new Map(files.map((f) => [f, p.mtime(f)])) };
  };
  const prepared = readReloadConfig(p);
  return prepared instanceof Promise ? prepared.then(answer) : answer(prepared);
}

/** The config and its new sockets, or undefined (logged) when the reload is abandoned. */
function readReloadConfig(p: ReloadInputs): PreparedReload | undefined | Promise<PreparedReload | undefined> {
  let config: VassalConfig;
  try {
    config = p.running;
    if (p.reread) {
      config = p.reloadConfig();
      p.prepareRuntime(config); // a reload to a missing interpreter is abandoned
    }
  } catch (err) {
    p.logger.error({ err_code: (err as { code?: string }).code }, `reload abandoned: ${(err as Error).message}; the running workers keep serving`);
    return undefined;
  }
  const refusal = reloadRefusal(p.running, config);
  if (refusal !== undefined) {
    p.logger.error(`reload abandoned: ${refusal}`);
    return undefined;
  }
  // Bind sockets the new config adds; keep the ones it shares with the old.
  const missing = config.sockets.filter((spec) => !p.bound.some((s) => s.spec.name === spec.name && s.spec.protocol === spec.protocol));
  if (missing.length === 0) return { config, sockets: [] };
  const abandon = (err: unknown): undefined => {
    p.logger.error(`reload abandoned: ${(err as Error).message}; the running workers keep serving`);
    return undefined;
  };
  try {
    const owner = config.chownSocket === undefined ? undefined : resolveCredentials(config.chownSocket.user, config.chownSocket.group);
    return p.bindSockets(missing, { mode: config.chmodSocket, uid: owner?.uid, gid: owner?.gid }).then((sockets) => ({ config, sockets }), abandon);
  } catch (err) {
    return abandon(err);
  }
}
