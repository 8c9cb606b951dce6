import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INITIAL_BACKOFF, nextBackoff, type BackoffOptions } from '@emperor/process';
import { vassalBackoff } from '@emperor/emperor';

const opts: BackoffOptions = { initialMs: 1000, maxMs: 8000, healthyMs: 30_000, curseAfter: 4 };

test('quick deaths double the delay up to the maximum and then curse', () => {
  let s = INITIAL_BACKOFF;
  const seen: [number, boolean][] = [];
  let now = 1_000_000;
  for (let i = 0; i < 6; i++) {
    now += 500;
    s = nextBackoff(s, 200, now, opts);
    seen.push([s.delayMs, s.cursed]);
  }
  assert.deepEqual(seen, [
    [1000, false],
    [2000, false],
    [4000, false],
    [8000, true],
    [8000, true],
    [8000, true],
  ]);
  assert.equal(s.failures, 6);
  assert.equal(s.firstFailureAt, 1_000_500);
  assert.equal(s.lastFailureAt, now);
});

test('a death after a healthy run resets the streak and respawns at once', () => {
  let s = INITIAL_BACKOFF;
  for (let i = 0; i < 5; i++) s = nextBackoff(s, 10, i, opts);
  assert.ok(s.cursed);
  s = nextBackoff(s, 30_000, 100, opts);
  assert.deepEqual(s, { failures: 0, delayMs: 0, cursed: false, firstFailureAt: 0, lastFailureAt: 100 });
  s = nextBackoff(s, 10, 200, opts);
  assert.equal(s.delayMs, 1000);
  assert.equal(s.failures, 1);
});

test('the vassal backoff curses exactly when emperor-max-throttle is reached', () => {
  const v = vassalBackoff(1000, 180_000);
  let s = INITIAL_BACKOFF;
  const delays: number[] = [];
  while (!s.cursed) {
    s = nextBackoff(s, 0, 0, v);
    delays.push(s.delayMs);
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 180000]);
});
