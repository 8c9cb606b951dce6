/**
 * The emperor's stats document: uWSGI's emperor stats (core/emperor.c, `emperor_stats`:
 * one entry per vassal and a `blacklist` of throttled ones) plus our fields (`state`,
 * `path`, `throttle_ms`, `last_error`, `cold_starts`). Times are whole seconds since the
 * epoch, as uWSGI's.
 */
import { VERSION, type EmperorStats, type EmperorVassalStats } from '@emperor/protocol';
import { type Vassal } from './vassal.js';

const sec = (ms: number): number => Math.floor(ms / 1000);

/**
 * The stats document of an emperor managing `managed`, watching `monitors` (the scanners'
 * arguments), in tyrant mode when `tyrant`. Pure but for the clock and this process's ids.
 */
export function emperorStats(managed: Iterable<Vassal>, monitors: readonly string[], tyrant: boolean): EmperorStats {
  const all = [...managed];
  const now = Date.now();
  const vassals: EmperorVassalStats[] = [...all]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((v) => ({
      id: v.name,
      pid: v.pid,
      born: sec(v.born),
      last_mod: sec(v.lastMod),
      last_heartbeat: sec(v.lastHeartbeat),
      loyal: v.loyal ? 1 : 0,
      ready: v.ready ? 1 : 0,
      accepting: v.accepting ? 1 : 0,
      last_loyal: sec(v.lastLoyal),
      last_ready: sec(v.lastReady),
      last_accepting: sec(v.lastAccepting),
      first_run: sec(v.firstRun),
      last_run: sec(v.lastRun),
      cursed: sec(v.cursedAt),
      zerg: 0,
      on_demand: v.onDemand?.name ?? '',
      uid: v.file.uid,
      gid: v.file.gid,
      monitor: v.file.monitor,
      respawns: v.respawns,
      state: v.state,
      path: v.file.path,
      throttle_ms: v.nextAttemptAt > 0 ? Math.max(0, v.nextAttemptAt - now) : 0,
      last_error: v.lastError,
      cold_starts: v.coldStarts,
    }));
  const blacklist = all
    .filter((v) => v.backoff.failures > 0)
    .map((v) => ({
      id: v.name,
      throttle_level: v.backoff.delayMs,
      attempt: v.backoff.failures,
      first_attempt: sec(v.backoff.firstFailureAt),
      last_attempt: sec(v.backoff.lastFailureAt),
    }));
  return {
    version: VERSION,
    pid: process.pid,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    cwd: process.cwd(),
    emperor: [...monitors],
    emperor_tyrant: tyrant ? 1 : 0,
    throttle_level: 0,
    vassals,
    blacklist,
  };
}
