/**
 * Chaos, bounded to about a minute on 127.0.0.1: under load, SIGKILL random workers and
 * vassal masters, touch, delete and recreate vassal files, write garbage into one. At the
 * end the emperor is alive, every vassal runs its restored file within 5 s (a graceful
 * reload each), no process is orphaned, and the emperor's file descriptors and memory are
 * back where they started (within 20 MB of RSS).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, descendants, freePort, httpGet, isAlive, serving, spawnEmperor, statsOf, tempDir, waitFor, writeAtomic, type EmperorStatsDoc } from '../helpers/index.js';
import { record } from '../helpers/record.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');
const DURATION_MS = Number(process.env.CHAOS_MS ?? 50_000);
/** From the last restore to every vassal running its restored file (a graceful reload each). */
const RECOVERY_MS = 5000;

const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
const rssOf = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

/** Live processes whose command line starts with `emperor` and names one of `tag`'s vassals. */
function ours(tag: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || !isAlive(Number(name))) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(tag)) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

test('chaos: killed workers and masters, touched, deleted, recreated and garbled files; everything recovers', async (t) => {
  const dir = tempDir(t);
  const tag = `chaos${randomBytes(3).toString('hex')}`;
  const names = ['a', 'b', 'c'].map((n) => `${tag}-${n}.ini`);
  const ports = new Map<string, number>();
  const good = new Map<string, string>();
  for (const name of names) {
    const port = await freePort();
    ports.set(name, port);
    good.set(name, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 2\nstats = %d%n.stats\n`);
    writeFileSync(join(dir, name), good.get(name) as string);
  }
  const emperorStats = join(dir, 'emperor.stats');
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-stats', emperorStats, '--emperor-freq', '1']);
  for (const port of ports.values()) await serving(`http://127.0.0.1:${port}/`);
  const settled = async (): Promise<EmperorStatsDoc> =>
    waitFor(async () => {
      const s = await statsOf<EmperorStatsDoc>(emperorStats);
      return s.vassals.length === names.length && s.vassals.every((v) => v.state === 'ready' && v.ready === 1) ? s : undefined;
    }, { timeoutMs: 30_000, message: 'every vassal ready' });
  await settled();
  // Let the emperor warm up before taking its baseline.
  for (let i = 0; i < 20; i++) await statsOf<EmperorStatsDoc>(emperorStats);
  const fds0 = fdCount(emperor.pid);
  const rss0 = rssOf(emperor.pid);

  // Load: one client per vassal, counting answers (failures are expected while masters die).
  let stop = false;
  let answered = 0;
  const clients = [...ports.values()].map(async (port) => {
    while (!stop) {
      try {
        if ((await httpGet(`http://127.0.0.1:${port}/`)).status === 200) answered++;
      } catch {
        // a killed worker or master, a deleted file: the chaos we asked for
      }
    }
  });

  const counts: Record<string, number> = {};
  const random = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;
  /** Restores a vassal file's good content after `ms`; the test awaits them all before its checks. */
  const restores: Promise<void>[] = [];
  const restoreLater = (name: string, ms: number): void => {
    restores.push(new Promise((resolve) => setTimeout(() => {
      writeAtomic(join(dir, name), good.get(name) as string);
      resolve();
    }, ms)));
  };
  const actions: Record<string, () => void> = {
    'SIGKILL a worker': () => {
      const workers = names.flatMap((n) => ours(`emperor worker`).filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(n)));
      if (workers.length > 0) process.kill(random(workers), 'SIGKILL');
    },
    'SIGKILL a vassal master': () => {
      const masters = ours(`emperor vassal ${tag}`);
      if (masters.length > 0) process.kill(random(masters), 'SIGKILL');
    },
    'touch a vassal file': () => {
      const when = new Date(Date.now() + Math.random() * 100_000);
      utimesSync(join(dir, random(names)), when, when);
    },
    'delete and recreate a vassal file': () => {
      const name = random(names);
      unlinkSync(join(dir, name));
      restoreLater(name, 300 + Math.random() * 1500);
    },
    'write garbage into a vassal file, then restore it': () => {
      const name = random(names);
      writeFileSync(join(dir, name), randomBytes(200));
      restoreLater(name, 500 + Math.random() * 1500);
    },
  };
  const end = Date.now() + DURATION_MS;
  while (Date.now() < end) {
    const [what, act] = random(Object.entries(actions));
    try {
      act();
      counts[what] = (counts[what] ?? 0) + 1;
    } catch {
      // the file or process vanished under us: another action got there first
    }
    await new Promise((r) => setTimeout(r, 300 + Math.random() * 700));
  }
  stop = true;
  await Promise.all(clients);

  // Let the delayed restores land, then put every file back as it was (a change, so a
  // throttled vassal is retried at once, as an operator's fix would).
  await Promise.all(restores);
  for (const name of names) writeAtomic(join(dir, name), `${good.get(name)}; restored\n`);
  const restoredAt = Date.now();
  // The clock runs from the restore until every vassal runs the restored file: ready, with
  // that file's mtime as its last_mod, and serving. A 200 alone could come from the
  // generation before the restore, which keeps serving while the new one starts.
  const mtimes = new Map(names.map((name) => [name, Math.floor(statSync(join(dir, name)).mtimeMs / 1000)]));
  assert.ok(isAlive(emperor.pid), 'the emperor is alive');
  const final = await waitFor(async () => {
    const s = await statsOf<EmperorStatsDoc>(emperorStats);
    const current = s.vassals.length === names.length && s.vassals.every((v) => v.state === 'ready' && v.ready === 1 && v.last_mod === mtimes.get(v.id));
    return current ? s : undefined;
  }, { timeoutMs: RECOVERY_MS, message: `every vassal ready on its restored file within ${RECOVERY_MS} ms` });
  for (const [name, port] of ports) {
    await waitFor(async () => (await httpGet(`http://127.0.0.1:${port}/`)).status === 200, { timeoutMs: 2000, message: `${name} serving` });
  }
  const recovery = Date.now() - restoredAt;
  assert.ok(recovery <= RECOVERY_MS, `running the restored files ${recovery} ms after they were written`);

  // No orphans: every live process of ours descends from the emperor (a worker of a
  // killed master may take up to a second to die).
  const orphans = (): number[] => {
    const tree = new Set(descendants(emperor.pid));
    return ours(tag).filter((p) => !tree.has(p));
  };
  await waitFor(() => orphans().length === 0, { timeoutMs: 5000, message: `no orphans (left: ${orphans().join(',')})` });

  // File descriptors and memory back.
  for (let i = 0; i < 20; i++) await statsOf<EmperorStatsDoc>(emperorStats);
  const fds1 = await waitFor(() => (fdCount(emperor.pid) <= fds0 ? fdCount(emperor.pid) : undefined), { timeoutMs: 15_000, message: `emperor fds back to ${fds0} (now ${fdCount(emperor.pid)})` });
  const rss1 = rssOf(emperor.pid);
  assert.ok(rss1 - rss0 < 20 * 1024 * 1024, `emperor RSS grew ${((rss1 - rss0) / 1024 / 1024).toFixed(1)} MB`);

  const summary = Object.entries(counts).map(([k, n]) => `${k} ×${n}`).join(', ');
  record({
    area: 'chaos',
    what: `${Math.round(DURATION_MS / 1000)} s under load with 3 vassals × 2 workers: ${summary}`,
    tries: Object.values(counts).reduce((a, b) => a + b, 0),
    outcome: `emperor alive; every vassal running its restored file ${recovery} ms after it was written; ${answered} requests answered during the run; no orphans; emperor fds ${fds0} → ${fds1}; emperor RSS ${(rss0 / 1024 / 1024).toFixed(1)} → ${(rss1 / 1024 / 1024).toFixed(1)} MB; respawns ${final.vassals.map((v) => v.respawns).join('/')}`,
  });
});
