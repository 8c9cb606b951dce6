/**
 * End to end: the crash-loop policy with a real master that cannot start, and
 * `emperor-required-heartbeat` with a real master that stops answering.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FIXTURES,
  freePort,
  isAlive,
  serving,
  spawnEmperor,
  statsOf,
  tempDir,
  waitFor,
  type EmperorStatsDoc,
} from '../helpers/index.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');

test('a vassal that keeps dying: delays double to emperor-max-throttle, it is cursed, still retried, and recovers', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  // The port is taken: the master exits 69 on every attempt.
  const blocker = createServer().listen(port, '127.0.0.1');
  t.after(() => blocker.close());
  writeFileSync(join(dir, 'busy.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\n`);
  const stats = join(dir, 'emperor.stats');
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-stats', stats, '--emperor-throttle', '200', '--emperor-max-throttle', '800']);

  const cursed = await waitFor(async () => {
    const doc = await statsOf<EmperorStatsDoc>(stats);
    const v = doc.vassals[0];
    return v?.state === 'cursed' && doc.blacklist[0] !== undefined && doc.blacklist[0].attempt >= 4 ? doc : undefined;
  }, { message: 'cursed after four failures', timeoutMs: 15_000 });
  assert.ok((cursed.vassals[0]?.cursed ?? 0) > 0, 'cursed timestamp in stats');
  assert.equal(cursed.blacklist[0]?.throttle_level, 800);
  assert.match(cursed.vassals[0]?.last_error ?? '', /exit code 69/);
  const curseLine = emperor.logs.find((l) => /vassal busy\.ini master died: .*; cursed after 3 failures in a row, retrying every 0\.8 s/.test(l.msg ?? ''));
  assert.equal(curseLine.length, 1, emperor.logs.tail());

  // Spawn times: 200, 400, 800, 800 ms apart at least (a timer, never a busy loop).
  const starts = emperor.logs.find((l) => l.msg?.startsWith('vassal busy.ini started') === true).map((l) => l.time as number);
  const gaps = starts.slice(1, 5).map((at, i) => at - (starts[i] as number));
  const expected = [200, 400, 800, 800];
  // The lower bound is the policy; the upper one only catches a lost timer (a gap also holds
  // a master's start and death, which a busy 2-core machine stretches past a second).
  gaps.forEach((gap, i) => assert.ok(gap >= (expected[i] as number) && gap < (expected[i] as number) + 3000, `gap ${i}: ${gaps.join(', ')} ms`));

  // Still retried at the maximum interval: once the port is free it comes up.
  await new Promise<void>((resolve) => blocker.close(() => resolve()));
  await serving(`http://127.0.0.1:${port}/`);
  const ready = await waitFor(async () => {
    const doc = await statsOf<EmperorStatsDoc>(stats);
    return doc.vassals[0]?.state === 'ready' ? doc : undefined;
  }, { message: 'ready' });
  assert.ok((ready.vassals[0]?.respawns ?? 0) >= 4);
});

test('emperor-required-heartbeat: a master that stops heartbeating is killed and respawned, with one log line', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  writeFileSync(join(dir, 'hb.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nheartbeat = 1\n`);
  const stats = join(dir, 'emperor.stats');
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-stats', stats, '--emperor-required-heartbeat', '2']);
  const alive = await waitFor(async () => {
    const v = (await statsOf<EmperorStatsDoc>(stats)).vassals[0];
    return v !== undefined && v.last_heartbeat > 0 && v.ready === 1 ? v : undefined;
  }, { message: 'a first heartbeat' });
  process.kill(alive.pid, 'SIGSTOP'); // hung: no heartbeat, no reply to anything
  const respawned = await waitFor(async () => {
    const v = (await statsOf<EmperorStatsDoc>(stats)).vassals[0];
    return v !== undefined && v.pid !== alive.pid && v.ready === 1 ? v : undefined;
  }, { message: 'a new master', timeoutMs: 15_000 });
  assert.ok(!isAlive(alive.pid), 'the hung master was killed');
  const lines = emperor.logs.find((l) => /^vassal hb\.ini sent no heartbeat in the last 2 s \(emperor-required-heartbeat\); killing master pid \d+/.test(l.msg ?? ''));
  assert.equal(lines.length, 1, emperor.logs.tail());
  assert.match(lines[0]?.msg ?? '', new RegExp(`master pid ${alive.pid} `));
  assert.notEqual(respawned.pid, alive.pid);
  await serving(`http://127.0.0.1:${port}/`);
});
