/**
 * The pool's transitions as a pure function: `step(pool, event, now)` leaves the pool it
 * is given as it was, says what to do as commands, and after every wake-up at its own
 * next deadline has nothing overdue (the master's one timer never spins).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EMPTY_SLOT,
  SlotStatus,
  createPool,
  heartbeatDue,
  isSettled,
  masterState,
  nextDeadline,
  nextSettledTick,
  settledTick,
  statusOf,
  step,
  type Pool,
  type PoolCommand,
  type PoolEvent,
} from '@emperor/vassal';
import { vassalConfig } from './master-harness.js';

const T0 = 1_800_000_000_000;

/** Steps through `events`, checking each step leaves its input pool untouched; answers spawns like the master does. */
class Driver {
  pool: Pool;
  now = T0;
  readonly commands: PoolCommand[] = [];
  #pid = 500;
  /** Answer `spawn` commands at once (the master's synchronous runtimes); false leaves them outstanding. */
  autoSpawn = true;

  constructor(body: string) {
    this.pool = createPool(vassalConfig(body), T0);
  }

  feed(event: PoolEvent): PoolCommand[] {
    const before = structuredClone(this.pool);
    const { pool, commands } = step(this.pool, event, this.now);
    assert.deepEqual(this.pool, before, `step(${event.type}) left its input as it was`);
    this.pool = pool;
    this.commands.push(...commands);
    for (const c of commands) {
      if (c.type === 'spawn' && this.autoSpawn) this.feed({ type: 'spawned', key: c.key, pid: this.#pid++, spawnedAt: this.now, sync: false });
    }
    return [...commands];
  }

  /** Moves to the pool's next deadline and wakes it (a tick when the tick is due). */
  wake(): PoolCommand[] {
    const at = nextDeadline(this.pool);
    assert.ok(at !== undefined, 'a deadline is armed');
    this.now = Math.max(this.now, at);
    const tick = this.pool.nextTickAt !== undefined && this.now >= this.pool.nextTickAt;
    const out = this.feed(tick ? { type: 'tick', readings: new Map(), mtimes: new Map(), backlog: 0 } : { type: 'deadline', readings: new Map() });
    const after = nextDeadline(this.pool);
    assert.ok(after === undefined || after > this.now, `nothing overdue after the wake at ${this.now - T0} (next ${after === undefined ? '-' : after - T0})`);
    return out;
  }

  key(id: number): number {
    return this.pool.slots.get(id)?.current as number;
  }
}

test('start: the first generation is asked for in order, cheap ids wait, the cheaper line follows; the tick is armed', () => {
  const d = new Driver('processes = 3\ncheaper = 1\ncheaper-initial = 2');
  d.autoSpawn = false;
  const out = d.feed({ type: 'start', uid: 1000, mtimes: new Map() });
  assert.deepEqual(out.map((c) => (c.type === 'spawn' ? `spawn ${c.id}` : c.type === 'log' ? c.msg : c.type)), [
    'spawn 1', 'spawn 2', 'cheaper: spare, 1 to 3 workers, starting with 2',
  ]);
  assert.deepEqual([...d.pool.slots.values()].map((s) => s.cheap), [false, false, true]);
  assert.deepEqual([...d.pool.procs.values()].map((p) => p.state.kind), ['spawning', 'spawning']);
  assert.equal(nextDeadline(d.pool), T0 + 1000, 'the tick');
  assert.equal(masterState(d.pool), 'starting');
  assert.equal(statusOf(d.pool, d.pool.slots.get(3) as never), 'cheap');
});

test('a process stopped or killed while its spawn is outstanding gets its stop or SIGKILL when it is reported spawned', () => {
  const d = new Driver('processes = 2');
  d.autoSpawn = false;
  d.feed({ type: 'start', uid: undefined, mtimes: new Map() });
  const [k1, k2] = [d.key(1), d.key(2)];
  const stop = d.feed({ type: 'stop', reason: 'SIGTERM' });
  assert.deepEqual(stop.filter((c) => c.type === 'stop' || c.type === 'signal'), [], 'no child to signal yet');
  assert.deepEqual(d.feed({ type: 'spawned', key: k1, pid: 41, spawnedAt: d.now, sync: false }).filter((c) => c.type === 'stop'), [{ type: 'stop', key: k1 }]);
  d.feed({ type: 'destroy', code: 0 });
  assert.deepEqual(d.feed({ type: 'spawned', key: k2, pid: 42, spawnedAt: d.now, sync: false }).filter((c) => c.type === 'signal'), [{ type: 'signal', key: k2, signal: 'SIGKILL' }]);
  assert.equal(masterState(d.pool), 'dead');
  assert.equal(nextDeadline(d.pool), undefined);
});

test('coinciding deadlines (tick, ready timeout, respawn, mercy) are all handled by one wake-up', () => {
  const d = new Driver('processes = 3\nworker-ready-timeout = 1\nworker-reload-mercy = 1');
  d.feed({ type: 'start', uid: undefined, mtimes: new Map() });
  // Worker 1 ready; worker 2 dies (respawn in 0.5 s); worker 3 never gets ready.
  d.feed({ type: 'message', key: d.key(1), message: { v: 1, type: 'ready' } });
  d.now += 500;
  d.feed({ type: 'exit', key: d.key(2), exit: { code: 1, signal: null }, final: undefined });
  assert.equal(d.pool.slots.get(2)?.respawnAt, T0 + 1000);
  const out = d.wake(); // T0 + 1000: the tick, worker 3's ready timeout, worker 2's respawn
  assert.equal(d.now, T0 + 1000);
  assert.ok(out.some((c) => c.type === 'signal' && c.signal === 'SIGKILL'), 'worker 3 killed');
  assert.ok(out.some((c) => c.type === 'spawn' && c.id === 2), 'worker 2 respawned');
  assert.equal(d.pool.nextTickAt, T0 + 2000);
  for (let i = 0; i < 5; i++) d.wake();
});

test('the tick slows to 10 s once nothing needs a check every second, and comes back to 1 s with a reload', () => {
  const d = new Driver('processes = 1');
  d.feed({ type: 'start', uid: undefined, mtimes: new Map() });
  d.feed({ type: 'message', key: d.key(1), message: { v: 1, type: 'ready' } });
  d.wake();
  assert.equal(d.pool.nextTickAt, d.now + 1000, 'not loyal yet: every second');
  const data = { ...EMPTY_SLOT, pid: d.pool.procs.get(d.key(1))?.pid ?? 0, status: SlotStatus.IDLE, accepting: true, requests: 1 };
  d.now = d.pool.nextTickAt as number;
  const out = d.feed({ type: 'tick', readings: new Map([[d.key(1), data]]), mtimes: new Map(), backlog: 0 });
  assert.ok(out.some((c) => c.type === 'emit' && c.event === 'loyal'));
  const at = d.pool.nextTickAt as number;
  assert.ok(at % 10_000 === 0 && at >= d.now + 5000 && at <= d.now + 15_000, `on the 10 s grid, 5 to 15 s away: ${at - d.now}`);
  assert.ok(isSettled(d.pool), 'settled: ready, loyal, nothing to watch, nobody busy');
  const settled = settledTick(d.pool, at);
  assert.deepEqual(settled.commands, [{ type: 'emit', event: 'heartbeat' }], 'the heartbeat rides the settled tick');
  assert.equal(settled.pool.nextTickAt, at + 10_000);
  assert.equal(settled.pool.lastBeat, at);
  assert.deepEqual(settledTick(settled.pool, at + 5000).commands, [], 'not due 5 s later');
  d.feed({ type: 'reload', kind: 'graceful', reread: false, ticket: 7 });
  assert.equal(d.pool.nextTickAt, d.now + 1000);
  assert.equal(masterState(d.pool), 'reloading');
  assert.deepEqual(d.commands.at(-1), { type: 'prepare-reload', reread: false });
});

test('settled ticks land on a grid shared by every master, and the heartbeat never waits more than `heartbeat` + 0.5 s', () => {
  assert.equal(nextSettledTick(1_800_000_004_999, 10_000), 1_800_000_010_000);
  assert.equal(nextSettledTick(1_800_000_005_000, 10_000), 1_800_000_010_000, 'half an interval away is enough');
  assert.equal(nextSettledTick(1_800_000_005_001, 10_000), 1_800_000_020_000, 'closer than that: the grid point after');
  assert.equal(nextSettledTick(1_800_000_010_000, 10_000), 1_800_000_020_000, 'on the grid: one interval on');
  const pool = { config: vassalConfig('processes = 1'), lastBeat: 1_000_000 };
  assert.equal(heartbeatDue(pool, 1_009_499, 1_019_499), true, 'the tick after would leave 19.5 s without one: beat now');
  assert.equal(heartbeatDue(pool, 1_004_000, 1_010_000), false, 'the next tick is soon enough');
  assert.equal(heartbeatDue(pool, 1_009_500, 1_010_500), true, '10 s less half a tick since the last');
});

test('a reload asked for while stopping is refused; one asked for while starting is queued (both answered at once)', () => {
  const d = new Driver('processes = 1');
  d.feed({ type: 'start', uid: undefined, mtimes: new Map() });
  assert.deepEqual(d.feed({ type: 'reload', kind: 'chain', reread: true, ticket: 1 }), [{ type: 'settle', ticket: 1, ok: true }]);
  assert.deepEqual(d.pool.queuedReload, { kind: 'chain', reread: true });
  d.feed({ type: 'stop', reason: 'q' });
  assert.equal(d.pool.queuedReload, undefined);
  assert.deepEqual(d.feed({ type: 'reload', kind: 'graceful', reread: true, ticket: 2 }), [{ type: 'settle', ticket: 2, ok: false }]);
});

test('cheap: no worker at start, the vassal is ready at once; a waiting connection spawns them; a reload in cheap mode stays cheap', () => {
  const d = new Driver('processes = 2\ncheap = true');
  const out = d.feed({ type: 'start', uid: undefined, mtimes: new Map() });
  assert.deepEqual(out.filter((c) => c.type !== 'log' || /cheap/.test(c.msg)).map((c) => (c.type === 'log' ? c.msg : c.type === 'emit' ? `emit ${c.event}` : c.type)), [
    'cheap mode enabled: waiting for socket connection...', 'emit accepting', 'vassal ready: cheap, no worker until a connection waits on http://127.0.0.1:8080', 'emit ready',
  ]);
  assert.equal(d.pool.procs.size, 0);
  assert.deepEqual([...d.pool.slots.values()].map((s) => statusOf(d.pool, s)), ['cheap', 'cheap']);
  assert.equal(masterState(d.pool), 'ready');
  for (let i = 0; i < 3; i++) d.wake();
  assert.equal(d.pool.procs.size, 0, 'quiet: still cheap');
  assert.equal(d.pool.nextTickAt, d.now + 1000, 'unwatched, cheap mode looks for a connection every second');
  d.feed({ type: 'watching' });
  d.wake();
  const at = d.pool.nextTickAt as number;
  assert.ok(at % 10_000 === 0 && at - d.now >= 5000, `watched (and never used, so never loyal): the settled grid, ${at - d.now} ms away`);
  assert.ok(isSettled(d.pool));

  // A touch reload while cheap: the new config still says cheap, so no worker starts.
  d.feed({ type: 'reload', kind: 'graceful', reread: true, ticket: 1 });
  const reloaded = d.feed({ type: 'reload-prepared', config: vassalConfig('processes = 3\ncheap = true'), mtimes: new Map() });
  assert.ok(!reloaded.some((c) => c.type === 'spawn'), 'no spawn');
  assert.ok(reloaded.some((c) => c.type === 'settle' && c.ok));
  assert.equal(masterState(d.pool), 'ready');
  assert.deepEqual([...d.pool.slots.values()].map((s) => statusOf(d.pool, s)), ['cheap', 'cheap', 'cheap']);

  assert.equal(d.pool.nextTickAt, d.now + 1000, 'the reload began a new cheap mode, not watched yet: every second');
  d.now += 200;
  const woke = d.feed({ type: 'connection' });
  assert.deepEqual(woke.filter((c) => c.type === 'spawn').map((c) => (c.type === 'spawn' ? c.id : 0)), [1, 2, 3], 'the watch wakes it between ticks');
  assert.ok(woke.some((c) => c.type === 'log' && c.msg === 'cheap mode disabled: a connection is waiting; spawning 3 worker(s)' && c.fields?.via === 'watch'));
  // Without idle it does not go back to cheap mode, however quiet.
  for (const key of d.pool.procs.keys()) d.feed({ type: 'message', key, message: { v: 1, type: 'ready' } });
  for (let i = 0; i < 5; i++) d.wake();
  assert.equal(d.pool.procs.size, 3);
});

test('cheap with cheaper: the first connection spawns cheaper-initial workers; a reload of a woken vassal replaces its workers', () => {
  const d = new Driver('processes = 4\ncheaper = 1\ncheaper-initial = 2\ncheap = true');
  assert.ok(!d.feed({ type: 'start', uid: undefined, mtimes: new Map() }).some((c) => c.type === 'spawn'));
  d.now = d.pool.nextTickAt as number;
  const woke = d.feed({ type: 'tick', readings: new Map(), mtimes: new Map(), backlog: 3 });
  assert.deepEqual(woke.filter((c) => c.type === 'spawn').map((c) => (c.type === 'spawn' ? c.id : 0)), [1, 2]);
  assert.ok(woke.some((c) => c.type === 'log' && c.fields?.via === 'tick'), 'without a watch, the tick found it');
  for (const key of d.pool.procs.keys()) d.feed({ type: 'message', key, message: { v: 1, type: 'ready' } });
  d.feed({ type: 'reload', kind: 'graceful', reread: true, ticket: 2 });
  const reloaded = d.feed({ type: 'reload-prepared', config: vassalConfig('processes = 4\ncheaper = 1\ncheaper-initial = 2\ncheap = true'), mtimes: new Map() });
  assert.deepEqual(reloaded.filter((c) => c.type === 'spawn').map((c) => (c.type === 'spawn' ? c.id : 0)), [1, 2], 'the running ids are replaced, not cheaped');
});

test('cheap: a connection the watch takes while a reload is being prepared wakes the workers on the tick after it, not never', () => {
  const d = new Driver('processes = 1\ncheap = true');
  d.feed({ type: 'start', uid: undefined, mtimes: new Map() });
  d.feed({ type: 'watching' });
  d.feed({ type: 'reload', kind: 'graceful', reread: true, ticket: 1 });
  const out = d.feed({ type: 'connection' });
  assert.ok(!out.some((c) => c.type === 'spawn'), 'not while reloading');
  assert.equal(d.pool.cheapWatchedAt, 0, 'the watch is spent: the tick looks again every second');
  d.feed({ type: 'reload-prepared', config: vassalConfig('processes = 1\ncheap = true'), mtimes: new Map() });
  assert.equal(d.pool.nextTickAt, d.now + 1000);
  d.now = d.pool.nextTickAt as number;
  const woke = d.feed({ type: 'tick', readings: new Map(), mtimes: new Map(), backlog: 1 });
  assert.deepEqual(woke.filter((c) => c.type === 'spawn').map((c) => (c.type === 'spawn' ? c.id : 0)), [1]);
});
