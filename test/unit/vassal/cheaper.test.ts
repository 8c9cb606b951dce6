import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cheaperCheck, initialCheaperState, type CheaperConfig, type CheaperPool, type CheaperState, type CheaperWorker } from '@emperor/vassal';

const T0 = 1_800_000_000_000;
const base: CheaperConfig = {
  processes: 8, cheaper: 2, cheaperInitial: 2, cheaperStep: 1, cheaperAlgo: 'spare', cheaperOverload: 3,
  cheaperBusyness: { max: 50, min: 25, multiplier: 10, penalty: 2, verbose: false, backlogAlert: 33, backlogMultiplier: 3, backlogStep: 1, backlogNonzeroMs: 60_000 },
  cheaperRssLimitSoftBytes: 0, cheaperRssLimitHardBytes: 0, idleMs: 0, dieOnIdle: false, cheap: false,
};
const w = (id: number, busy: boolean, runningTimeUs = 0, rss = 50e6): CheaperWorker => ({ id, pid: 1000 + id, busy, runningTimeUs, rss });
const pool = (active: CheaperWorker[], over: Partial<CheaperPool> = {}): CheaperPool => ({ active, cheaped: 8 - active.length, backlog: 0, lastRequestEndMs: T0, ...over });

/** Runs one check per second over `pools`, returning the deltas. */
function run(config: CheaperConfig, pools: CheaperPool[], start = initialCheaperState(config, T0), from = T0): { deltas: number[]; state: CheaperState } {
  let state = start;
  const deltas: number[] = [];
  pools.forEach((p, i) => {
    const [next, d] = cheaperCheck(state, p, config, from + (i + 1) * 1000);
    state = next;
    deltas.push(d.delta);
  });
  return { deltas, state };
}

test('spare: spawns `cheaper-step` workers after more than `cheaper-overload` checks with every worker busy', () => {
  const allBusy = pool([w(1, true), w(2, true)]);
  assert.deepEqual(run(base, [allBusy, allBusy, allBusy, allBusy, allBusy]).deltas, [0, 0, 0, 1, 0]);
  assert.deepEqual(run({ ...base, cheaperStep: 3 }, [allBusy, allBusy, allBusy, allBusy]).deltas, [0, 0, 0, 3]);
  assert.deepEqual(run({ ...base, cheaperStep: 0 }, [allBusy, allBusy, allBusy, allBusy]).deltas, [0, 0, 0, 1], 'step 0 behaves as 1');
  assert.deepEqual(run(base, [allBusy, allBusy, allBusy, { ...allBusy, cheaped: 0 }]).deltas, [0, 0, 0, 0], 'nothing left to spawn');
});

test('spare: one idle worker is the stable state; a surplus is cheaped one per `cheaper-overload` checks, down to `cheaper`', () => {
  const oneIdle = pool([w(1, true), w(2, true), w(3, false)]);
  assert.deepEqual(run(base, Array(6).fill(oneIdle)).deltas, [0, 0, 0, 0, 0, 0]);
  const surplus = pool([w(1, false), w(2, false), w(3, false), w(4, true)]);
  assert.deepEqual(run(base, Array(6).fill(surplus)).deltas, [0, 0, -1, 0, 0, -1]);
  const atMin = pool([w(1, false), w(2, false)]);
  assert.deepEqual(run(base, Array(6).fill(atMin)).deltas, [0, 0, 0, 0, 0, 0], 'never below cheaper');
});

test('spare: an idle worker between busy checks resets the overload count gradually', () => {
  const busy = pool([w(1, true), w(2, true)]);
  const calm = pool([w(1, true), w(2, false)]);
  assert.deepEqual(run(base, [busy, busy, busy, calm, busy, busy]).deltas, [0, 0, 0, 0, 0, 1]);
});

test('backlog: follows the listen queue against `cheaper-overload`', () => {
  const c = { ...base, cheaperAlgo: 'backlog' as const, cheaperStep: 2 };
  const three = [w(1, true), w(2, true), w(3, true)];
  assert.deepEqual(run(c, [pool(three, { backlog: 4 }), pool(three, { backlog: 3 }), pool(three, { backlog: 2 }), pool([w(1, false), w(2, false)], { backlog: 0 })]).deltas, [2, 0, -1, 0]);
});

test('busyness: spawns above max, cheaps below min only after overload × multiplier seconds', () => {
  const c = { ...base, cheaperAlgo: 'busyness' as const, cheaperOverload: 2 };
  // 2 workers each serving 1.8 s of every 2 s: 90% busy.
  const hot = (i: number) => pool([w(1, true, i * 1_800_000), w(2, true, i * 1_800_000)]);
  const r = run(c, [hot(0), hot(1), hot(1)]);
  assert.deepEqual(r.deltas, [0, 0, 1], 'spawned at the first evaluation (2 s after the first check) above 50%');
  // Then quiet: 3 workers, no time served since the evaluation at 3 s (1.8 s each by then).
  const quiet = pool([w(1, false, 1_800_000), w(2, false, 1_800_000), w(3, false, 0)]);
  const q = run(c, Array(24).fill(quiet), r.state, T0 + 3000);
  const firstCheap = q.deltas.indexOf(-1) + 4; // seconds after T0 (checks at 4 s, 5 s, ...)
  assert.equal(firstCheap, 23, 'the first cheap waits until 2 s × multiplier 10 = 20 s after the spawn at 3 s');
  assert.equal(q.deltas.filter((d) => d === -1).length, 1, 'and the next one waits as long again');
});

test('busyness: a worker busy on one long request counts as 100% busy', () => {
  const c = { ...base, cheaperAlgo: 'busyness' as const, cheaperOverload: 1 };
  const stuck = pool([w(1, true, 0), w(2, true, 0)]);
  assert.deepEqual(run(c, [stuck, stuck]).deltas, [0, 1]);
});

test('busyness: an evaluation that changes nothing carries its figures for cheaper-busyness-verbose', () => {
  const c = { ...base, cheaperAlgo: 'busyness' as const, cheaperOverload: 1 };
  // 2 workers each serving 0.4 s of every 1 s: 40%, between min 25% and max 50%.
  let state = initialCheaperState(c, T0);
  const notes: (string | undefined)[] = [];
  for (let i = 1; i <= 3; i++) {
    const [next, d] = cheaperCheck(state, pool([w(1, false, i * 400_000), w(2, false, i * 400_000)]), c, T0 + i * 1000);
    state = next;
    assert.equal(d.delta, 0);
    notes.push(d.note);
  }
  assert.equal(notes[0], undefined, 'the first check only starts the clock');
  assert.match(notes[1] ?? '', /^\[busyness\] 1s average busyness is at 0% /, 'the first evaluation only records running times');
  assert.equal(notes[2], '[busyness] 1s average busyness is at 40% (2 running, 6 cheap; cheap below 25%, spawn above 50%)');
  const [, spawn] = cheaperCheck(state, pool([w(1, true, 3 * 400_000 + 900_000), w(2, true, 3 * 400_000 + 900_000)]), c, T0 + 4000);
  assert.equal(spawn.delta, 1);
  assert.equal(spawn.note, undefined, 'an action is logged by its own line');
});

test('busyness: a long listen queue spawns emergency workers at once', () => {
  const c = { ...base, cheaperAlgo: 'busyness' as const };
  assert.deepEqual(run(c, [pool([w(1, false), w(2, false)], { backlog: 40 })]).deltas, [1]);
});

test('rss limits: over the hard limit one worker is cheaped; over the soft limit none is spawned', () => {
  const fat = pool([w(1, true, 0, 300e6), w(2, true, 0, 300e6), w(3, true, 0, 300e6)]);
  const [, hard] = cheaperCheck(initialCheaperState(base, T0), fat, { ...base, cheaperRssLimitHardBytes: 800e6 }, T0 + 1000);
  assert.equal(hard.delta, -1);
  assert.equal(hard.reason, 'rss-limit-hard');
  assert.deepEqual(run({ ...base, cheaperRssLimitSoftBytes: 800e6 }, Array(5).fill(fat)).deltas, [0, 0, 0, 0, 0]);
});

test('idle: no request for `idle` seconds stops every worker (cheap mode); any sign of traffic spawns them again', () => {
  // A large cheaper-overload keeps spare from cheaping the surplus itself, to isolate `idle`.
  const c = { ...base, idleMs: 5000, cheaper: 2, cheaperInitial: 4, cheaperOverload: 100 };
  const quiet = (over: Partial<CheaperPool> = {}) => pool([w(1, false), w(2, false), w(3, false), w(4, false)], { lastRequestEndMs: T0, ...over });
  const r = run(c, [quiet(), quiet(), quiet(), quiet(), quiet()]);
  assert.deepEqual(r.deltas, [0, 0, 0, 0, -4]);
  assert.ok(r.state.idleSince > 0);
  const cheap = (over: Partial<CheaperPool> = {}) => pool([], { lastRequestEndMs: T0, ...over });
  assert.deepEqual(run(c, [cheap(), cheap()], r.state).deltas, [0, 0], 'stays cheap while quiet');
  assert.deepEqual(run(c, [cheap({ backlog: 1 })], r.state).deltas, [4], 'a waiting connection wakes cheaper-initial workers');
  assert.deepEqual(run(c, [quiet({ lastRequestEndMs: T0 + 1000 })], r.state).deltas, [0], 'a request finished by a stopping worker wakes nothing more');
});

test('idle without cheaper stops every worker and wakes `processes` of them', () => {
  const c = { ...base, cheaper: 0, cheaperInitial: 8, processes: 3, idleMs: 2000 };
  const three = pool([w(1, false), w(2, false), w(3, false)], { cheaped: 0 });
  const r = run(c, [three, three]);
  assert.deepEqual(r.deltas, [0, -3]);
  assert.deepEqual(run(c, [pool([], { cheaped: 3, backlog: 2 })], r.state).deltas, [3]);
});

test('idle with die-on-idle: the decision is to exit, not to stop the workers', () => {
  const c = { ...base, cheaper: 0, cheaperInitial: 8, processes: 2, idleMs: 2000, dieOnIdle: true };
  const two = pool([w(1, false), w(2, false)], { cheaped: 0 });
  const [, first] = cheaperCheck(initialCheaperState(c, T0), two, c, T0 + 1000);
  assert.equal(first.reason, '');
  const [state, d] = cheaperCheck(initialCheaperState(c, T0), two, c, T0 + 2000);
  assert.equal(d.reason, 'die-on-idle');
  assert.equal(d.delta, 0);
  assert.match(d.message, /^workers have been inactive for more than 2 seconds \(\d+-\d+\)$/);
  assert.ok(state.idleSince > 0);
  const [, busy] = cheaperCheck(initialCheaperState(c, T0), pool([w(1, true), w(2, false)], { cheaped: 0 }), c, T0 + 9000);
  assert.equal(busy.reason, '', 'never while a request is in flight');
});

test('cheap: the state starts in cheap mode; the first sign of traffic wakes the workers, and without idle it never cheaps them all again', () => {
  const c = { ...base, cheaper: 0, cheaperInitial: 3, processes: 3, cheap: true };
  const start = initialCheaperState(c, T0);
  assert.equal(start.idleSince, T0);
  const none = pool([], { cheaped: 3, lastRequestEndMs: 0 });
  assert.deepEqual(run(c, [none, none, none], start).deltas, [0, 0, 0], 'quiet: stays cheap');
  const r = run(c, [none, { ...none, backlog: 1 }], start);
  assert.deepEqual(r.deltas, [0, 3]);
  assert.equal(r.state.idleSince, 0);
  const quiet = pool([w(1, false), w(2, false), w(3, false)], { cheaped: 0, lastRequestEndMs: 0 });
  assert.deepEqual(run(c, Array(10).fill(quiet), r.state, T0 + 2000).deltas, Array(10).fill(0));
  assert.equal(initialCheaperState(base, T0).idleSince, 0, 'without cheap: not cheap');
});
