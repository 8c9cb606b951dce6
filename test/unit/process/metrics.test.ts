import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emperorMetrics, vassalMetrics } from '@emperor/process';
import type { EmperorStats, EmperorVassalStats, VassalStats, WorkerStats } from '@emperor/protocol';
import { promtoolProblems, sample } from '../../helpers/promtool.js';

function worker(id: number, over: Partial<WorkerStats> = {}): WorkerStats {
  return {
    id, pid: 100 + id, accepting: 1, requests: 10 * id, delta_requests: 10 * id, exceptions: 0, harakiri_count: 0, signals: 0, signal_queue: 0,
    status: 'idle', rss: 40e6, vsz: 700e6, pss: 20e6, running_time: 250_000, last_spawn: 1_795_315_029, respawn_count: 1, tx: 1000, avg_rt: 1500,
    apps: [], cores: [], in_flight: 0, websockets: 0, last_exit_reason: '', runtime: 'node', ...over,
  };
}

function vassalDoc(workers: WorkerStats[]): VassalStats {
  return {
    version: '0.1.0', listen_queue: 4, listen_queue_errors: 0, signal_queue: 0, load: 4, pid: 99, uid: 0, gid: 0, cwd: '/', locks: [],
    sockets: [{ name: '127.0.0.1:8080', proto: 'http', queue: 4, max_queue: 100, shared: 0, can_offload: 0 }, { name: '/run/shop.sock', proto: 'uwsgi', queue: 0, max_queue: 100, shared: 0, can_offload: 0 }],
    workers, vassal: 'shop "main".ini', state: 'ready',
  };
}

test('vassal metrics: per worker counters, gauges in base units, status as a state set, per socket queue; valid for promtool', async () => {
  const doc = vassalDoc([worker(1, { exceptions: 2, harakiri_count: 1, respawn_count: 3, status: 'busy', in_flight: 5 }), worker(2)]);
  const text = await vassalMetrics(() => doc).render();
  assert.equal(promtoolProblems(text), '');
  const w1 = { vassal: 'shop \\"main\\".ini', worker: '1' };
  assert.equal(sample(text, 'emperor_worker_requests_total', w1), 10);
  assert.equal(sample(text, 'emperor_worker_exceptions_total', w1), 2);
  assert.equal(sample(text, 'emperor_worker_harakiri_total', w1), 1);
  assert.equal(sample(text, 'emperor_worker_respawns_total', w1), 2, 'respawn_count counts the first spawn');
  assert.equal(sample(text, 'emperor_worker_rss_bytes', w1), 40e6);
  assert.equal(sample(text, 'emperor_worker_average_response_time_seconds', w1), 0.0015);
  assert.equal(sample(text, 'emperor_worker_response_time_seconds_total', w1), 0.25);
  assert.equal(sample(text, 'emperor_worker_in_flight_requests', w1), 5);
  assert.equal(sample(text, 'emperor_worker_status', { ...w1, status: 'busy' }), 1);
  assert.equal(sample(text, 'emperor_worker_status', { ...w1, status: 'idle' }), 0);
  assert.equal(sample(text, 'emperor_worker_requests_total', { worker: '2' }), 20);
  assert.equal(sample(text, 'emperor_socket_queue_length', { socket: '127.0.0.1:8080', proto: 'http' }), 4);
  assert.equal(sample(text, 'emperor_socket_max_queue_length', { socket: '/run/shop.sock', proto: 'uwsgi' }), 100);
  assert.equal(sample(text, 'emperor_vassal_listen_queue_length'), 4);
});

test('each scrape reads a fresh document: a worker id that went away leaves no stale series', async () => {
  let doc = vassalDoc([worker(1), worker(2)]);
  const metrics = vassalMetrics(() => doc);
  assert.equal(sample(await metrics.render(), 'emperor_worker_requests_total', { worker: '2' }), 20);
  doc = vassalDoc([worker(1, { requests: 11 })]);
  const text = await metrics.render();
  assert.equal(sample(text, 'emperor_worker_requests_total', { worker: '1' }), 11);
  assert.equal(sample(text, 'emperor_worker_requests_total', { worker: '2' }), undefined);
});

function vassal(id: string, state: string, over: Partial<EmperorVassalStats> = {}): EmperorVassalStats {
  return {
    id, pid: 300, born: 1_795_315_000, last_mod: 0, last_heartbeat: 0, loyal: 1, ready: 1, accepting: 1, last_loyal: 0, last_ready: 0,
    last_accepting: 0, first_run: 0, last_run: 0, cursed: 0, zerg: 0, on_demand: '', uid: 0, gid: 0, monitor: '/etc/emperor.d', respawns: 0,
    state, path: `/etc/emperor.d/${id}`, throttle_ms: 0, last_error: '', cold_starts: 0, ...over,
  };
}

test('emperor metrics: vassals by state (every state listed), per vassal state, readiness, respawns; valid for promtool', async () => {
  const doc: EmperorStats = {
    version: '0.1.0', pid: 1, uid: 0, gid: 0, cwd: '/', emperor: ['/etc/emperor.d'], emperor_tyrant: 0, throttle_level: 0,
    vassals: [vassal('a.ini', 'ready', { respawns: 3 }), vassal('b.ini', 'ready'), vassal('c.xml', 'cursed', { pid: -1, ready: 0, loyal: 0, throttle_ms: 180_000 })],
    blacklist: [],
  };
  const text = await emperorMetrics(() => doc).render();
  assert.equal(promtoolProblems(text), '');
  assert.equal(sample(text, 'emperor_vassals', { state: 'ready' }), 2);
  assert.equal(sample(text, 'emperor_vassals', { state: 'cursed' }), 1);
  assert.equal(sample(text, 'emperor_vassals', { state: 'throttled' }), 0);
  assert.equal(sample(text, 'emperor_vassal_state', { vassal: 'c.xml', state: 'cursed' }), 1);
  assert.equal(sample(text, 'emperor_vassal_respawns_total', { vassal: 'a.ini' }), 3);
  assert.equal(sample(text, 'emperor_vassal_ready', { vassal: 'c.xml' }), 0);
  assert.equal(sample(text, 'emperor_vassal_start_time_seconds', { vassal: 'c.xml' }), 0, 'not running');
  assert.equal(sample(text, 'emperor_vassal_throttle_seconds', { vassal: 'c.xml' }), 180);
});

test('promtool is a real check: it refuses what is wrong', () => {
  assert.match(promtoolProblems('# HELP x_total x\n# TYPE x_total counter\nx_total{a="b} 1\n'), /exit 1/);
  assert.match(promtoolProblems('# HELP foo x\n# TYPE foo counter\nfoo 1\n'), /_total/);
});
