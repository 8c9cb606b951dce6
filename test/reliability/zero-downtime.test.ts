/**
 * Zero downtime, measured: failed requests during a graceful reload, a chain reload, an
 * emperor SIGHUP and a touch of the vassal file, each under steady load (keep-alive and
 * new-connection clients at once). Every figure must be zero.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, freePort, serving, spawnEmperor, statsOf, statsUntil, tempDir, waitFor, type EmperorStatsDoc } from '../helpers/index.js';
import { record } from '../helpers/record.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');
const ROUNDS = 3;

/** Steady load: clients in a loop until stopped; counts answers and failures. */
function load(url: string, clients: { keepAlive: number; fresh: number }) {
  let stop = false;
  const counts = { ok: 0, failed: [] as string[] };
  const one = async (keepAlive: boolean): Promise<void> => {
    while (!stop) {
      try {
        const r = await fetch(url, { headers: keepAlive ? {} : { connection: 'close' }, signal: AbortSignal.timeout(10_000) });
        await r.text();
        if (r.status === 200) counts.ok++;
        else counts.failed.push(`status ${r.status}`);
      } catch (err) {
        counts.failed.push(String((err as Error).cause ?? err));
      }
    }
  };
  const running = [...Array(clients.keepAlive).fill(true), ...Array(clients.fresh).fill(false)].map((k: boolean) => one(k));
  return {
    counts,
    async stop(): Promise<void> {
      stop = true;
      await Promise.all(running);
    },
  };
}

test('graceful reloads, chain reloads, emperor SIGHUP and touch under steady load fail no request', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const file = join(dir, 'steady.ini');
  const trigger = join(dir, 'chain.trigger');
  writeFileSync(trigger, '');
  writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 2\nstats = %d%n.stats\ntouch-chain-reload = ${trigger}\n`);
  const emperorStats = join(dir, 'emperor.stats');
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-stats', emperorStats]);
  const url = `http://127.0.0.1:${port}/`;
  await serving(url);
  const stats = join(dir, 'steady.stats');
  const masterPid = (await statsUntil(stats, (d) => d.workers.every((w) => w.accepting === 1))).pid;
  const later = (path: string): void => {
    const when = new Date(Date.now() + 60_000 + Math.random() * 1000);
    utimesSync(path, when, when);
  };
  const kinds: [string, () => void][] = [
    ['graceful reload (SIGHUP to the vassal master)', () => process.kill(masterPid, 'SIGHUP')],
    ['chain reload (touch-chain-reload)', () => later(trigger)],
    ['emperor SIGHUP (every vassal reloads)', () => emperor.child.kill('SIGHUP')],
    ['touch of the vassal file (the emperor reloads it)', () => later(file)],
  ];
  const results: string[] = [];
  for (const [what, trigger_] of kinds) {
    const l = load(url, { keepAlive: 2, fresh: 2 });
    for (let i = 0; i < ROUNDS; i++) {
      const before = await statsUntil(stats, (d) => d.state === 'ready' && d.workers.every((w) => w.accepting === 1));
      const served = l.counts.ok;
      trigger_();
      await statsUntil(stats, (d) => d.state === 'ready' && d.workers.every((w) => w.accepting === 1 && !before.workers.some((o) => o.pid === w.pid)), { timeoutMs: 20_000, message: `${what}: new workers` });
      await waitFor(() => l.counts.ok > served + 100, { message: `${what}: load kept flowing` });
    }
    await l.stop();
    record({ area: 'zero downtime', what: `${what}, under 2 keep-alive + 2 new-connection clients`, tries: ROUNDS, outcome: `${l.counts.ok} requests, ${l.counts.failed.length} failed` });
    results.push(`${what}: ${l.counts.failed.length} failed of ${l.counts.ok + l.counts.failed.length} (${l.counts.failed.slice(0, 3).join('; ')})`);
    assert.deepEqual(l.counts.failed, [], what);
  }
  const e = await statsOf<EmperorStatsDoc>(emperorStats);
  assert.equal(e.vassals[0]?.pid, masterPid, 'the master itself never restarted');
  t.diagnostic(results.join('\n'));
});
