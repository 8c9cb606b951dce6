/**
 * The vassal's stats document, in uWSGI's shape (core/master_utils.c
 * `uwsgi_master_generate_stats`), built from the master's worker table and the
 * scoreboard readings of the last tick.
 */
import { VERSION, type VassalStats, type WorkerStats } from '@emperor/protocol';
import type { Master } from './master.js';
import { currentOf, phaseOf, slotsInOrder, statusOf, type Pool, type WorkerSlot } from './pool/index.js';

function workerStats(pool: Pool, slot: WorkerSlot): WorkerStats {
  const p = currentOf(pool, slot);
  const d = p?.data;
  const requests = slot.requestsBefore + (d?.requests ?? 0);
  const exceptions = slot.exceptionsBefore + (d?.exceptions ?? 0);
  const inRequest = d !== undefined && d.inFlight > 0 && d.requestStartMs > 0;
  return {
    id: slot.id,
    pid: p?.pid ?? 0,
    accepting: p !== undefined && phaseOf(p.state) === 'ready' ? 1 : 0,
    requests,
    delta_requests: d?.requests ?? 0,
    exceptions,
    harakiri_count: slot.harakiriBefore + (d?.harakiriCount ?? 0),
    signals: 0,
    signal_queue: 0,
    status: statusOf(pool, slot),
    rss: p?.rss ?? 0,
    vsz: p?.vsz ?? 0,
    pss: p?.pss ?? 0,
    running_time: Math.round(slot.runningTimeBefore + (d?.runningTimeUs ?? 0)),
    last_spawn: Math.floor(slot.lastSpawn / 1000),
    respawn_count: slot.respawnCount,
    tx: slot.txBefore + (d?.txBytes ?? 0),
    avg_rt: Math.round(d?.avgRtUs ?? 0),
    apps: [
      {
        id: 0,
        modifier1: 0,
        mountpoint: '',
        startup_time: p && p.readyAt > 0 ? Math.round((p.readyAt - p.spawnedAt) / 1000) : 0,
        requests,
        exceptions,
        chdir: p?.config.chdir ?? '',
      },
    ],
    cores: [
      {
        id: 0,
        requests: d?.requests ?? 0,
        static_requests: 0,
        routed_requests: 0,
        offloaded_requests: 0,
        write_errors: 0,
        read_errors: 0,
        in_request: inRequest ? 1 : 0,
        vars: inRequest ? [`REQUEST_METHOD=${d.method}`, `REQUEST_URI=${d.uri}`, ''] : [],
        req_info: inRequest ? { request_start: Math.floor(d.requestStartMs / 1000) } : {},
      },
    ],
    in_flight: d?.inFlight ?? 0,
    websockets: d?.websockets ?? 0,
    last_exit_reason: slot.lastExitReason,
    runtime: p?.config.runtime ?? '',
  };
}

/** Builds the stats document from the master's current state. */
export function buildVassalStats(master: Master): VassalStats {
  const queues = master.listenQueues();
  const config = master.config;
  const sockets = master.sockets.map((s) => {
    const q = queues.get(s.spec.name) ?? { queue: 0, max: config.listen };
    return { name: s.spec.name, proto: s.spec.protocol, queue: q.queue, max_queue: q.max, shared: 0 as const, can_offload: 0 as const };
  });
  const listenQueue = sockets.reduce((m, s) => Math.max(m, s.queue), 0);
  return {
    version: VERSION,
    listen_queue: listenQueue,
    listen_queue_errors: 0,
    signal_queue: 0,
    load: listenQueue,
    pid: process.pid,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    cwd: process.cwd(),
    locks: [],
    sockets,
    workers: slotsInOrder(master.pool).map((slot) => workerStats(master.pool, slot)),
    vassal: config.name,
    state: master.state,
  };
}
