/**
 * The crash-loop policy of a vassal handle, driven by hand: a fake master process and a
 * fake clock, so every delay is asserted exactly (uWSGI core/emperor.c throttles by
 * scan granularity; we promise doubling from emperor-throttle to emperor-max-throttle).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ExitCode } from '@emperor/protocol';
import { Vassal, heartbeatOverdue, nextHeartbeatCheck, type VassalFile } from '@emperor/emperor';
import { FakeChild, ManualClock } from '../../helpers/fakes.js';

const file: VassalFile = {
  name: 'shop.ini', path: '/d/shop.ini', format: 'ini', monitor: '/d', uid: 0, gid: 0,
  fingerprint: { dev: 1, ino: 1, mtimeMs: 1, size: 1, hash: 'a' },
};

function setup(healthyMs = 30_000) {
  const clock = new ManualClock();
  const spawned: FakeChild[] = [];
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s).msg as string) });
  const vassal = new Vassal(file, {
    spawn: () => {
      const child = new FakeChild(clock);
      spawned.push(child);
      return child;
    },
    logger,
    throttleMs: 1000,
    maxThrottleMs: 8000,
    healthyMs,
    clock,
  });
  const last = (): FakeChild => spawned.at(-1) as FakeChild;
  return { clock, spawned, vassal, lines, last };
}

test('quick deaths: delays double from emperor-throttle to emperor-max-throttle, then cursed and retried at the max, never abandoned', () => {
  const { clock, spawned, vassal, lines, last } = setup();
  vassal.start();
  const delays: number[] = [];
  const states: string[] = [];
  for (let i = 0; i < 7; i++) {
    clock.advance(200); // dies 200 ms after each start
    last().exitWith(ExitCode.UNAVAILABLE);
    states.push(vassal.state);
    delays.push(clock.nextIn ?? -1);
    const before = spawned.length;
    clock.advance(delays.at(-1) as number);
    assert.equal(spawned.length, before + 1, `respawned after ${delays.at(-1)} ms`);
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 8000, 8000, 8000]);
  assert.deepEqual(states, ['throttled', 'throttled', 'throttled', 'cursed', 'cursed', 'cursed', 'cursed']);
  assert.equal(vassal.backoff.failures, 7);
  assert.equal(vassal.respawns, 7);
  assert.ok(vassal.cursedAt > 0);
  assert.equal(lines.filter((l) => /cursed after \d+ failures in a row, retrying every 8\.0 s/.test(l)).length, 4, lines.join('\n'));
});

test('a vassal that stays up for the healthy period is forgiven: the next death starts from emperor-throttle again', () => {
  const { clock, vassal, lines, last } = setup(30_000);
  vassal.start();
  for (let i = 0; i < 4; i++) {
    clock.advance(100);
    last().exitWith(1);
    clock.advance(clock.nextIn as number);
  }
  assert.equal(vassal.state, 'starting');
  assert.equal(vassal.backoff.cursed, true);
  clock.advance(29_999);
  assert.equal(vassal.backoff.failures, 4, 'not yet');
  clock.advance(1);
  assert.equal(vassal.backoff.failures, 0, 'forgiven at 30 s of uptime');
  assert.equal(vassal.cursedAt, 0);
  assert.ok(lines.some((l) => /has run for 30 s; its failure streak of 4 is forgiven/.test(l)));
  last().exitWith(1);
  assert.equal(vassal.state, 'throttled');
  assert.equal(clock.nextIn, 0, 'a death after a healthy run respawns at once');
});

test('stop: the master is asked over IPC and SIGKILLed exactly when the mercy runs out', async () => {
  const { clock, vassal, last } = setup();
  vassal.start();
  const master = last();
  const stopped = vassal.stop(5000);
  assert.equal(vassal.state, 'stopping');
  assert.deepEqual(master.sent, [{ v: 1, type: 'stop' }]);
  clock.advance(4999);
  assert.deepEqual(master.signals, []);
  clock.advance(1);
  assert.deepEqual(master.signals, ['SIGKILL']);
  await stopped;
  assert.equal(vassal.state, 'dead');
});

test('an invalid file is not a crash loop: no respawn until the file changes', () => {
  const { clock, spawned, vassal, last } = setup();
  vassal.start();
  clock.advance(50);
  last().exitWith(ExitCode.CONFIG);
  assert.equal(vassal.state, 'config-error');
  assert.equal(clock.nextIn, undefined, 'no timer armed');
  clock.advance(600_000);
  assert.equal(spawned.length, 1);
  vassal.reload({ ...file, fingerprint: { ...file.fingerprint, hash: 'b' } });
  assert.equal(spawned.length, 2, 'the changed file is tried at once');
  assert.equal(vassal.backoff.failures, 0);
});

test('emperor-required-heartbeat is checked when the first master can be overdue, and a required period later at the latest', () => {
  assert.equal(nextHeartbeatCheck([], 50_000, 30_000), 80_000, 'no master: a heartbeat arriving now is overdue at 80 001 at the earliest');
  assert.equal(nextHeartbeatCheck([0, 0], 50_000, 30_000), 80_000, 'none has sent one yet');
  assert.equal(nextHeartbeatCheck([45_000, 0, 41_000], 50_000, 30_000), 71_001, 'the oldest heartbeat is overdue 30 s + 1 ms after it');
  assert.ok(heartbeatOverdue(41_000, 71_001, 30_000) && !heartbeatOverdue(41_000, 71_000, 30_000), 'exactly when it is overdue');
  assert.equal(nextHeartbeatCheck([10_000, 48_000], 50_000, 30_000), 78_001, 'one already overdue (not killed: stopping) does not make the timer spin');
});

test('emperor-required-heartbeat: counted from the first heartbeat; a silent master is killed once and respawned', () => {
  assert.equal(heartbeatOverdue(0, 10_000_000, 30_000), false, 'no heartbeat yet: never judged');
  assert.equal(heartbeatOverdue(1_000, 31_000, 30_000), false);
  assert.equal(heartbeatOverdue(1_000, 31_001, 30_000), true);
  assert.equal(heartbeatOverdue(1_000, 99_999, 0), false, '0 = off');

  const { clock, spawned, vassal, lines, last } = setup();
  vassal.start();
  const master = last();
  clock.advance(60_000);
  assert.equal(vassal.checkHeartbeat(30_000), false, 'no heartbeat ever: left alone');
  master.say({ v: 1, type: 'heartbeat' });
  assert.equal(vassal.lastHeartbeat, clock.now());
  clock.advance(30_000);
  assert.equal(vassal.checkHeartbeat(30_000), false);
  clock.advance(1);
  assert.equal(vassal.checkHeartbeat(30_000), true);
  assert.equal(vassal.checkHeartbeat(30_000), false, 'killed once');
  assert.deepEqual(master.signals, ['SIGKILL']);
  assert.equal(lines.filter((l) => /sent no heartbeat in the last 30 s/.test(l)).length, 1);
  return new Promise<void>((resolve) => {
    queueMicrotask(() => {
      assert.equal(vassal.state, 'throttled');
      clock.advance(clock.nextIn as number);
      assert.equal(spawned.length, 2, 'respawned');
      resolve();
    });
  });
});
