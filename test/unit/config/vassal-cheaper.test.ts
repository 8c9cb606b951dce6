import { test } from 'node:test';
import assert from 'node:assert/strict';
import { config, rejects, SHOP, vassal } from './helpers.js';

test('cheaper must be lower than processes', () => {
  rejects('processes = 4\ncheaper = 4\n', `${SHOP}:5: cheaper: must be lower than processes (4), got "4"`);
  rejects('cheaper = 2\n', `${SHOP}:4: cheaper: must be lower than processes (1), got "2"`);
  const c = config('processes = 8\ncheaper = 2\ncheaper-step = 2\ncheaper-algo = busyness\ncheaper-overload = 5\ncheaper-busyness-max = 70\ncheaper-busyness-min = 20\ncheaper-busyness-verbose\n');
  assert.deepEqual([c.processes, c.cheaper, c.cheaperInitial, c.cheaperStep, c.cheaperAlgo, c.cheaperOverload], [8, 2, 2, 2, 'busyness', 5]);
  assert.deepEqual([c.cheaperBusyness.max, c.cheaperBusyness.min, c.cheaperBusyness.verbose], [70, 20, true]);
});

test('cheaper-initial defaults to cheaper; outside [cheaper, processes] it is clamped with a warning', () => {
  assert.equal(config('processes = 8\ncheaper = 2\ncheaper-initial = 5\n').cheaperInitial, 5);
  const high = vassal('processes = 8\ncheaper = 2\ncheaper-initial = 9\n');
  assert.equal(high.config.cheaperInitial, 8);
  assert.deepEqual(high.warnings, [
    { file: SHOP, line: 6, code: 'no-effect', option: 'cheaper-initial', message: '9 is outside [cheaper, processes] = [2, 8]; using 8' },
  ]);
  const low = vassal('processes = 8\ncheaper = 2\ncheaper-initial = 1\n');
  assert.equal(low.config.cheaperInitial, 2);
  assert.equal(low.warnings[0]?.message, '1 is outside [cheaper, processes] = [2, 8]; using 2');
});

test('without cheaper every worker starts and cheaper tuning has no effect', () => {
  const result = vassal('processes = 4\ncheaper-initial = 2\ncheaper-step = 2\ncheaper-step = 3\nidle = 60\n');
  assert.equal(result.config.cheaperInitial, 4);
  assert.equal(result.config.idleMs, 60_000);
  assert.deepEqual(result.warnings.map((w) => [w.line, w.option, w.message]), [
    [5, 'cheaper-initial', 'has no effect without cheaper'],
    [6, 'cheaper-step', 'has no effect without cheaper'],
  ]);
});

test('busyness tuning only applies to cheaper-algo = busyness; min must not exceed max', () => {
  const result = vassal('processes = 4\ncheaper = 1\ncheaper-busyness-max = 60\n');
  assert.deepEqual(result.warnings.map((w) => [w.option, w.code, w.message]), [
    ['cheaper-busyness-max', 'no-effect', 'applies to cheaper-algo = busyness only, not spare'],
  ]);
  rejects('processes = 4\ncheaper = 1\ncheaper-algo = busyness\ncheaper-busyness-min = 60\n',
    `${SHOP}:7: cheaper-busyness-min: must be <= cheaper-busyness-max (50), got "60"`);
});

test('cheaper-algo must be one we implement', () => {
  assert.equal(config('processes = 2\ncheaper = 1\ncheaper-algo = backlog\n').cheaperAlgo, 'backlog');
  rejects('processes = 2\ncheaper = 1\ncheaper-algo = spare2\n', `${SHOP}:6: cheaper-algo: expected one of spare, backlog, busyness, got "spare2"`);
  rejects('cheaper-step = 0\n', `${SHOP}:4: cheaper-step: must be >= 1, got "0"`);
});
