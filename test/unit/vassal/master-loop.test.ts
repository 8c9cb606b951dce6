/**
 * The vassal master's loop on a fake clock and fake workers (master-harness.ts): first
 * spawn, crashes and backoff, ready timeouts, graceful and chain reloads (and their
 * failures), queued reloads, recycles, harakiri and mercy deadlines, stop and cheaper.
 * Every time is asserted to the millisecond; no process starts, nothing sleeps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText, resolveVassalConfig } from '@emperor/config';
import { SlotStatus } from '@emperor/vassal';
import { allReady, startMaster, vassalConfig } from './master-harness.js';

const STOP = { v: 1, type: 'stop' };
const MB = 1024 * 1024;

test('first spawn: every worker starts at once; `accepting` after the first is ready, `ready` once all are', async () => {
  const h = await startMaster(vassalConfig('processes = 2'));
  assert.deepEqual(h.launched.map((l) => l.request.id), [1, 2]);
  assert.deepEqual(h.logged(/^spawned worker \d \(pid \d+\)$/).map((l) => l.worker), [1, 2]);
  assert.equal(h.master.state, 'starting');
  h.ready(h.last(1));
  assert.deepEqual(h.events, ['accepting']);
  assert.equal(h.master.state, 'starting');
  h.ready(h.last(2));
  assert.deepEqual(h.events, ['accepting', 'ready']);
  assert.equal(h.master.state, 'ready');
  assert.equal(h.logged(/^vassal ready: 2 worker\(s\) accepting on http:\/\/127\.0\.0\.1:8080$/).length, 1);
  assert.equal(h.launched[0]?.request.spec.generation, 1);
});

test('a worker that keeps dying is respawned after 0.5, 1, 2, 4 s; one that ran 10 s is respawned at once', async () => {
  const h = await startMaster(vassalConfig('processes = 1'));
  for (const delay of [500, 1000, 2000, 4000]) {
    const w = h.last(1);
    await h.advance(100);
    w.exitWith(1);
    await h.advance(delay - 1);
    assert.equal(h.last(1), w, `not respawned ${delay - 1} ms after the death`);
    await h.advance(1);
    assert.notEqual(h.last(1), w, `respawned ${delay} ms after the death`);
  }
  assert.deepEqual(h.logged(/ died: exit code 1 after 0\.1 s/).map((l) => l.respawn_in_ms), [500, 1000, 2000, 4000]);
  assert.match(h.logged(/ died: /).at(-1)?.msg ?? '', /\(4 times in a row\); respawning in 4\.0 s$/);
  const healthy = h.last(1);
  h.ready(healthy);
  await h.advance(10_000);
  healthy.exitWith(1);
  await h.flush();
  assert.notEqual(h.last(1), healthy, 'respawned in the same millisecond');
  assert.match(h.logged(/ died: /).at(-1)?.msg ?? '', /after 10\.0 s; respawning$/);
  assert.equal(h.master.pool.slots.get(1)?.lastExitReason, 'crash');
  assert.equal(h.master.pool.slots.get(1)?.respawnCount, 6);
});

test('worker-ready-timeout: a worker not ready in time is killed at the deadline, then respawned with backoff', async () => {
  const h = await startMaster(vassalConfig('processes = 1\nworker-ready-timeout = 3'));
  const w = h.last(1);
  await h.advance(2999);
  assert.deepEqual(w.signals, []);
  await h.advance(1);
  assert.deepEqual(w.signals, ['SIGKILL']);
  assert.equal(h.logged(/^worker 1 \(pid \d+\) not ready after 3 s \(worker-ready-timeout\); killing it$/).length, 1);
  w.exitWith(null, 'SIGKILL');
  await h.advance(499);
  assert.equal(h.workers(1).length, 1);
  await h.advance(1);
  assert.equal(h.workers(1).length, 2);
  assert.equal(h.master.pool.slots.get(1)?.lastExitReason, 'not-ready');
  assert.equal(h.logged(/stopped \(not-ready\)/).length, 0, 'a timeout is not a stop the master asked for');
});

test('graceful reload: the old generation retires only once every new worker is ready', async () => {
  const h = await startMaster(vassalConfig('processes = 2'));
  await allReady(h);
  const [old1, old2] = [h.last(1), h.last(2)];
  const outcome = h.master.reload('graceful');
  assert.equal(h.master.state, 'reloading');
  assert.equal(h.launched.length, 4);
  assert.deepEqual(h.launched.slice(2).map((l) => l.request.spec.generation), [2, 2]);
  assert.equal(h.logged(/^graceful reload: starting generation 2 \(2 worker\(s\)\)$/).length, 1);
  h.ready(h.last(1));
  assert.deepEqual(old1.sent, [], 'worker 2 of generation 2 is not ready yet');
  h.ready(h.last(2));
  assert.deepEqual([old1.sent, old2.sent], [[STOP], [STOP]]);
  assert.equal(await outcome, true);
  assert.equal(h.master.state, 'ready');
  assert.deepEqual(h.events.slice(-1), ['reloaded:true']);
  assert.equal(h.logged(/^reload complete: generation 2 serving$/).length, 1);
  old1.exitWith(0);
  old2.exitWith(0);
  assert.equal(h.logged(/^worker [12] \(pid \d+\) stopped \(reload\): exit code 0$/).length, 2);
  assert.deepEqual([...h.master.pool.slots.values()].map((s) => s.current), [3, 4], 'the new processes serve');
});

test('graceful reload: a new worker that dies abandons it once the others settle; the new ones are killed, the old keep serving', async () => {
  const h = await startMaster(vassalConfig('processes = 2'));
  await allReady(h);
  const [old1, old2] = [h.last(1), h.last(2)];
  const outcome = h.master.reload();
  const [new1, new2] = [h.last(1), h.last(2)];
  new1.exitWith(22);
  assert.equal(h.logged(/^worker 1 \(pid \d+\) died before it took over: exit code 22$/).length, 1);
  assert.equal(h.master.state, 'reloading', 'worker 2 of generation 2 has not settled');
  h.ready(new2);
  assert.deepEqual(new2.signals, ['SIGKILL']);
  assert.equal(h.logged(/^reload abandoned: a new worker died or timed out before it was ready; generation 1 keeps serving$/).length, 1);
  assert.equal(await outcome, false);
  assert.deepEqual(h.events.slice(-1), ['reloaded:false']);
  assert.deepEqual([old1.sent, old2.sent, old1.signals, old2.signals], [[], [], [], []]);
  new2.exitWith(null, 'SIGKILL');
  assert.equal(h.logged(/^worker 2 \(pid \d+\) stopped \(reload-abandoned\): killed by signal SIGKILL$/).length, 1);
  assert.equal(h.master.state, 'ready');
  assert.equal(h.master.config.processes, 2);
});

test('a reload re-reads the file: an invalid one, or one with another uid, is abandoned and the workers keep serving', async () => {
  const h = await startMaster(vassalConfig('processes = 1'));
  await allReady(h);
  h.reloadTo = Object.assign(new Error('v.ini:3: processes: expected a whole number >= 1, got "many"'), { code: 'ERR_CONFIG_VALUE' });
  assert.equal(await h.master.reload(), false);
  const bad = h.logged(/^reload abandoned: /)[0];
  assert.equal(bad?.msg, 'reload abandoned: v.ini:3: processes: expected a whole number >= 1, got "many"; the running workers keep serving');
  assert.equal(bad?.err_code, 'ERR_CONFIG_VALUE');
  h.reloadTo = vassalConfig('processes = 1\nuid = 4242');
  assert.equal(await h.master.reload(), false);
  assert.equal(h.logged(/^reload abandoned: uid\/gid changed \(-:- → 4242:-\); that needs a restart of the vassal$/).length, 1);
  assert.equal(h.launched.length, 1, 'no worker was started');
  assert.deepEqual(h.events.filter((e) => e.startsWith('reloaded')), ['reloaded:false', 'reloaded:false']);
  assert.equal(h.master.state, 'ready');
});

test('a reload that changes the sockets binds the new one before any worker starts, and closes the dropped one once it took over', async () => {
  const h = await startMaster(vassalConfig('processes = 1'));
  await allReady(h);
  h.reloadTo = resolveVassalConfig([parseConfigText('[uwsgi]\nhttp-socket = 127.0.0.1:9090\nmodule = /srv/app.mjs\n', '/srv/v.ini', 'ini')], { env: {} }).config;
  const outcome = h.master.reload();
  await h.flush(); // binding is asynchronous
  assert.deepEqual(h.bound.map((s) => [s.name, s.closed]), [['127.0.0.1:8080', false], ['127.0.0.1:9090', false]]);
  const fresh = h.last(1);
  assert.deepEqual(h.launched.at(-1)?.request.spec.sockets.map((s) => s.name), ['127.0.0.1:9090']);
  h.ready(fresh);
  assert.equal(await outcome, true);
  assert.deepEqual(h.bound.map((s) => [s.name, s.closed]), [['127.0.0.1:8080', true], ['127.0.0.1:9090', false]]);
  assert.deepEqual(h.master.sockets.map((s) => s.spec.name), ['127.0.0.1:9090']);
});

test('chain reload: one worker at a time, each replacement ready before the next starts', async () => {
  const h = await startMaster(vassalConfig('processes = 2'));
  await allReady(h);
  const [old1, old2] = [h.last(1), h.last(2)];
  const outcome = h.master.reload('chain');
  assert.equal(h.launched.length, 3, 'only worker 1 is replaced first');
  assert.equal(h.logged(/^chain reload: starting generation 2 /).length, 1);
  h.ready(h.last(1));
  assert.deepEqual(old1.sent, [STOP]);
  assert.equal(h.master.pool.slots.get(1)?.lastExitReason, 'chain-reload');
  assert.equal(h.launched.length, 4, 'then worker 2');
  assert.deepEqual(old2.sent, []);
  h.ready(h.last(2));
  assert.deepEqual(old2.sent, [STOP]);
  assert.equal(await outcome, true);
});

test('a failed chain stops where it failed: the remaining workers keep serving, reloaded(false)', async () => {
  const h = await startMaster(vassalConfig('processes = 3'));
  await allReady(h);
  const olds = [h.last(1), h.last(2), h.last(3)];
  const outcome = h.master.reload('chain');
  h.ready(h.last(1));
  h.last(2).exitWith(22);
  assert.equal(h.logged(/^chain reload stopped at worker 2: its replacement never became ready; the remaining workers keep serving$/).length, 1);
  assert.equal(await outcome, false);
  assert.equal(h.launched.length, 5, 'worker 3 was never replaced');
  assert.deepEqual(olds.map((w) => w.sent.length), [1, 0, 0]);
  assert.equal(h.master.state, 'ready');
});

test('a reload asked for during a reload runs after it, merged; one asked for while starting waits for ready', async () => {
  const h = await startMaster(vassalConfig('processes = 1'));
  const early = h.master.reload('chain');
  assert.equal(await early, true, 'queued');
  assert.equal(h.launched.length, 1, 'nothing starts before the vassal is ready');
  h.ready(h.last(1));
  assert.equal(h.logged(/^chain reload: starting generation 2 /).length, 1, 'the queued reload ran once ready');
  const during = h.master.reload('chain', false);
  const during2 = h.master.reload('graceful', false);
  assert.deepEqual(await Promise.all([during, during2]), [true, true]);
  h.ready(h.last(1));
  assert.equal(h.logged(/^graceful reload: starting generation 3 \(1 worker\(s\), the running config: the file is not re-read\)$/).length, 1, 'one reload, graceful');
  h.ready(h.last(1));
  assert.equal(h.logged(/^reload complete: generation 3 serving$/).length, 1);
  assert.equal(h.logged(/reload: starting generation 4/).length, 0);
});

test('max-requests: the replacement starts first; the old worker stops once it is ready', async () => {
  const h = await startMaster(vassalConfig('processes = 1'));
  await allReady(h);
  const old = h.last(1);
  old.say({ v: 1, type: 'recycle', reason: 'max-requests' });
  assert.equal(h.logged(/^worker 1 \(pid \d+\) reached max-requests; replacing it$/).length, 1);
  const fresh = h.last(1);
  assert.notEqual(fresh, old);
  assert.deepEqual(old.sent, []);
  h.ready(fresh);
  assert.deepEqual(old.sent, [STOP]);
  old.exitWith(0);
  assert.equal(h.logged(/^worker 1 \(pid \d+\) stopped \(max-requests\): exit code 0$/).length, 1);
  assert.equal(h.master.pool.slots.get(1)?.lastExitReason, 'max-requests');
  assert.equal(h.logged(/ died/).length, 0);
});

test('max-requests with a failing replacement: the old worker is stopped anyway and its id respawns with backoff', async () => {
  const h = await startMaster(vassalConfig('processes = 1'));
  await allReady(h);
  const old = h.last(1);
  old.say({ v: 1, type: 'recycle', reason: 'max-requests' });
  h.last(1).exitWith(22);
  assert.equal(h.logged(/^worker 1: its replacement failed; stopping it anyway$/).length, 1);
  assert.deepEqual(old.sent, [STOP]);
  old.exitWith(0);
  assert.match(h.logged(/ died: /).at(-1)?.msg ?? '', /^worker 1 \(pid \d+\) died: exit code 0 after 0\.0 s \(2 times in a row\); respawning in 1\.0 s$/);
  await h.advance(999);
  assert.equal(h.workers(1).length, 2);
  await h.advance(1);
  assert.equal(h.workers(1).length, 3);
});

test('reload-on-rss: a failed replacement leaves the worker serving, and no new one is tried before the backoff', async () => {
  const h = await startMaster(vassalConfig('processes = 1\nreload-on-rss = 100\nmin-worker-lifetime = 0'));
  await allReady(h);
  const fat = h.last(1);
  h.rss.set(fat.pid, 200 * MB);
  await h.advance(1000); // the tick samples memory
  assert.equal(h.logged(/^worker 1 \(pid \d+\): rss 200 MB > 100 MB \(reload-on-rss\); replacing it gracefully$/).length, 1);
  // Three failures in a row: the next try waits 0.5, 1, then 2 s, counted from each failure.
  for (const backoff of [500, 1000, 2000]) {
    const spawned = h.workers(1).length;
    h.last(1).exitWith(22);
    assert.equal(h.logged(/^worker 1: its replacement failed; it keeps serving$/).length > 0, true);
    const failedAt = h.clock.now();
    while (h.workers(1).length === spawned) await h.advance(1000);
    assert.ok(h.clock.now() - failedAt >= backoff, `retried ${h.clock.now() - failedAt} ms after a failure with a ${backoff} ms backoff`);
    assert.ok(h.clock.now() - failedAt < backoff + 1000, 'on the first tick after the backoff');
  }
  assert.deepEqual([fat.sent, fat.signals], [[], []], 'the fat worker kept serving');
  h.ready(h.last(1));
  assert.deepEqual(fat.sent, [STOP]);
});

test('harakiri: the kill comes at the deadline, not at the next tick, and the worker is respawned at once', async () => {
  const h = await startMaster(vassalConfig('processes = 1\nharakiri = 2'), { sync: true });
  await allReady(h);
  const w = h.last(1);
  await h.advance(1200);
  const started = h.clock.now();
  h.slot(w, { status: SlotStatus.BUSY, inFlight: 1, requestStartMs: started, method: 'GET', uri: '/slow', heartbeatMs: started });
  await h.advance(1999); // ticks at +1 s and +2 s read the slot
  assert.deepEqual(w.signals, []);
  await h.advance(1);
  assert.deepEqual(w.signals, ['SIGKILL'], 'killed at request start + harakiri');
  assert.equal(h.clock.now() - started, 2000);
  const line = h.logged(/^HARAKIRI ON WORKER 1 /)[0];
  assert.equal(line?.msg, `HARAKIRI ON WORKER 1 (pid ${w.pid}): GET /slow ran for 2.0 s (harakiri 2 s)`);
  assert.equal(line?.cause, 'request');
  w.exitWith(null, 'SIGKILL');
  assert.equal(h.workers(1).length, 2, 'respawned at once');
  const slot = h.master.pool.slots.get(1);
  assert.deepEqual([slot?.lastExitReason, slot?.harakiriBefore], ['harakiri', 1]);
});

test('harakiri of an event-loop worker: judged by its heartbeat, with one beat of slack', async () => {
  const h = await startMaster(vassalConfig('processes = 1\nharakiri = 2'));
  await allReady(h);
  const w = h.last(1);
  const beat = h.clock.now();
  h.slot(w, { status: SlotStatus.BUSY, inFlight: 3, heartbeatMs: beat, requestStartMs: beat - 60_000, method: 'GET', uri: '/spin' });
  await h.advance(2249);
  assert.deepEqual(w.signals, []);
  await h.advance(1);
  assert.deepEqual(w.signals, ['SIGKILL'], 'killed at the last beat + harakiri + one beat (250 ms)');
  assert.match(h.logged(/^HARAKIRI /)[0]?.msg ?? '', /event loop blocked for 2\.3 s \(harakiri 2 s\); oldest request in flight: GET \/spin$/);
});

test('worker-reload-mercy: a retiring worker that does not exit is SIGKILLed exactly at the mercy', async () => {
  const h = await startMaster(vassalConfig('processes = 1\nworker-reload-mercy = 5'));
  await allReady(h);
  const old = h.last(1);
  void h.master.reload();
  h.ready(h.last(1));
  assert.deepEqual(old.sent, [STOP]);
  await h.advance(4999);
  assert.deepEqual(old.signals, []);
  await h.advance(1);
  assert.deepEqual(old.signals, ['SIGKILL']);
  old.exitWith(null, 'SIGKILL');
  assert.equal(h.logged(/^worker 1 \(pid \d+\) stopped \(reload\): killed by signal SIGKILL$/).length, 1);
});

test('stop: every worker is asked, the slow one is killed at its mercy, `exit` is emitted once', async () => {
  const h = await startMaster(vassalConfig('processes = 2\nworker-reload-mercy = 3'));
  await allReady(h);
  const [w1, w2] = [h.last(1), h.last(2)];
  const stopped = h.master.stop('SIGTERM');
  assert.equal(h.master.state, 'stopping');
  assert.deepEqual([w1.sent, w2.sent], [[STOP], [STOP]]);
  assert.equal(h.logged(/^stopping vassal \(SIGTERM\)$/).length, 1);
  w1.exitWith(0);
  void h.master.stop('again');
  await h.advance(2999);
  assert.deepEqual(w2.signals, []);
  assert.equal(h.events.includes('exit:0'), false);
  await h.advance(1);
  assert.deepEqual(w2.signals, ['SIGKILL']);
  w2.exitWith(null, 'SIGKILL');
  await stopped;
  assert.equal(h.master.state, 'dead');
  h.master.destroy(1);
  assert.deepEqual(h.events.filter((e) => e.startsWith('exit')), ['exit:0']);
  assert.equal(h.logged(/^stopping vassal/).length, 1);
  assert.equal(h.logged(/^vassal stopped$/).length, 1);
  assert.equal(h.clock.pending, 0, 'no timer left');
});

test('stop with a short mercy (the emperor is gone) hurries every worker', async () => {
  const h = await startMaster(vassalConfig('processes = 1'));
  await allReady(h);
  const w = h.last(1);
  void h.master.stop('emperor lost', 3000);
  await h.advance(2999);
  assert.deepEqual(w.signals, []);
  await h.advance(1);
  assert.deepEqual(w.signals, ['SIGKILL']);
});

test('cheaper grows the pool when every worker is busy, and never cheaps the busy one', async () => {
  const h = await startMaster(vassalConfig('processes = 4\ncheaper = 1\ncheaper-overload = 1\ncheaper-step = 2'));
  assert.equal(h.launched.length, 1, 'only cheaper-initial (1) starts');
  await allReady(h);
  const busy = h.last(1);
  h.slot(busy, { status: SlotStatus.BUSY, inFlight: 1, requestStartMs: h.clock.now() });
  await h.advance(2000);
  assert.equal(h.logged(/^every worker busy for 2 checks: spawning 2 worker\(s\)$/).length, 1);
  assert.deepEqual(h.launched.map((l) => l.request.id), [1, 2, 3]);
  h.ready(h.last(2));
  h.ready(h.last(3));
  while (h.logged(/cheaped$/).length === 0 && h.clock.now() < 1_800_000_030_000) await h.advance(1000);
  const cheaped = h.logged(/^worker \d \(pid \d+\) cheaped$/);
  assert.equal(cheaped.length, 1);
  assert.notEqual(cheaped[0]?.worker_pid, busy.pid, 'the oldest worker is busy: an idle one is cheaped');
  assert.deepEqual([busy.sent, busy.signals], [[], []]);
  assert.equal(h.master.pool.slots.get(cheaped[0]?.worker as number)?.cheap, true);
});

test('a runtime that learns the pid later (a fork from a template): the worker waits as spawning, and a stop meanwhile reaches it once it is up', async () => {
  const h = await startMaster(vassalConfig('processes = 1\nworker-ready-timeout = 1'), { deferLaunch: true });
  assert.equal(h.launched.length, 0);
  assert.deepEqual([...h.master.pool.procs.values()].map((p) => p.state.kind), ['spawning']);
  await h.advance(5000);
  assert.equal(h.logged(/not ready/).length, 0, 'no ready timeout before it exists');
  h.completeLaunches();
  await h.flush();
  assert.equal(h.logged(/^spawned worker 1 \(pid \d+\)$/).length, 1);
  h.ready(h.last(1));
  assert.deepEqual(h.events.filter((e) => e !== 'heartbeat'), ['accepting', 'ready']);
  // Stopped while its launch is on its way: the stop goes out when it is up.
  const h2 = await startMaster(vassalConfig('processes = 1'), { deferLaunch: true });
  void h2.master.stop('SIGTERM');
  assert.equal(h2.master.state, 'stopping');
  h2.completeLaunches();
  await h2.flush();
  assert.deepEqual(h2.last(1).sent, [STOP]);
  h2.last(1).exitWith(0);
  assert.deepEqual(h2.events, ['exit:0']);
});

test('the master FIFO\'s + and - say why they did nothing', async () => {
  const h = await startMaster(vassalConfig('processes = 2\ncheaper = 1\ncheaper-overload = 3600'));
  assert.equal(h.master.adjustPool(1), 'the vassal is starting');
  await allReady(h);
  assert.equal(h.master.adjustPool(-1), 'only 1 worker(s) run, the fewest cheaper allows');
  assert.equal(h.master.adjustPool(1), undefined);
  assert.equal(h.master.adjustPool(1), 'all 2 workers already run (processes)');
  h.slot(h.last(1), { status: SlotStatus.BUSY, inFlight: 1 });
  await h.advance(1000); // the tick reads the slot
  assert.equal(h.master.adjustPool(-1), 'every worker is busy or starting', 'worker 1 is busy, worker 2 still starting');
  h.slot(h.last(1), { status: SlotStatus.IDLE });
  h.ready(h.last(2));
  await h.advance(1000);
  assert.equal(h.master.adjustPool(-1), undefined);
  assert.equal(h.logged(/^worker 1 \(pid \d+\) cheaped$/).length, 1, 'the oldest idle one');
});

test('a settled master wakes once per `heartbeat` (10 s by default) and beats each time; what a worker writes meanwhile is read on the next tick', async () => {
  const h = await startMaster(vassalConfig('processes = 1'));
  assert.equal(h.master.config.heartbeatMs, 10_000);
  await allReady(h);
  h.slot(h.last(1), { status: SlotStatus.IDLE, accepting: true, requests: 1 });
  await h.advance(1000);
  assert.ok(h.events.includes('loyal'), 'loyal: from here nothing needs a check every second');
  const beats = (): number => h.events.filter((e) => e === 'heartbeat').length;
  await h.advance(10_000); // past the first tick 10 s apart
  const before = beats();
  const timers: number[] = [];
  for (let s = 0; s < 60; s++) {
    await h.advance(1000);
    timers.push(h.clock.pending);
  }
  assert.equal(beats() - before, 6, 'one heartbeat per 10 s');
  assert.ok(timers.every((n) => n === 1), 'one timer, never more');
  const requests = (): number | undefined => [...h.master.pool.procs.values()][0]?.data.requests;
  assert.equal(requests(), 1);
  h.slot(h.last(1), { status: SlotStatus.IDLE, accepting: true, requests: 7 });
  await h.advance(10_000);
  assert.equal(requests(), 7, 'the slot changed: the tick reads it');
  h.slot(h.last(1), { status: SlotStatus.BUSY, accepting: true, inFlight: 1, requests: 7 });
  await h.advance(10_000);
  assert.equal([...h.master.pool.procs.values()][0]?.data.inFlight, 1, 'a busy worker is seen');
  assert.equal(beats() - before, 8, 'and the heartbeat goes on');
});

test('cheap: the master listens on a duplicate of each socket, starts no worker and is ready; a reload that stays cheap watches its new socket; a connection wakes the workers at once', async () => {
  const h = await startMaster(vassalConfig('processes = 2\ncheap = true'));
  assert.deepEqual(h.listened, ['127.0.0.1:8080'], 'listening before ready: no worker will listen before the first connection');
  assert.equal(h.launched.length, 0);
  assert.deepEqual(h.events, ['accepting', 'ready']);
  assert.equal(h.master.state, 'ready');
  h.reloadTo = resolveVassalConfig([parseConfigText('[uwsgi]\nhttp-socket = 127.0.0.1:9090\nmodule = /srv/app.mjs\nprocesses = 2\ncheap = true\n', '/srv/v.ini', 'ini')], { env: {} }).config;
  const outcome = h.master.reload();
  await h.flush();
  assert.equal(await outcome, true);
  await h.flush();
  assert.deepEqual(h.listened, ['127.0.0.1:8080', '127.0.0.1:9090'], 'the new socket is watched (and so listens)');
  assert.deepEqual(h.dups.map((d) => [d.name, d.closed]), [['127.0.0.1:8080', true], ['127.0.0.1:9090', false]]);
  assert.equal(h.launched.length, 0, 'still cheap');
  assert.deepEqual(h.master.sockets.map((s) => s.spec.name), ['127.0.0.1:9090']);

  const watching = h.dups.at(-1);
  watching?.onconnection?.(-104, undefined); // an accept error (ECONNRESET) still means someone knocked
  assert.equal(watching?.closed, true, 'the watch closes its duplicate at the first connection');
  assert.deepEqual(h.launched.map((l) => l.request.id), [1, 2], 'the workers are spawned at once, not on the next tick');
  assert.deepEqual(h.logged(/^cheap mode disabled: a connection is waiting; spawning 2 worker\(s\)$/).map((l) => l.via), ['watch']);
  for (const id of [1, 2]) h.ready(h.last(id));
  await h.advance(5000);
  assert.equal(h.dups.length, 2, 'no new watch while workers run');
});
