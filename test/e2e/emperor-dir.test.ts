/**
 * End to end: the built `emperor` on a temporary directory of vassal files, asserted
 * through HTTP, the stats sockets, the logs and /proc.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, renameSync, unlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import {
  FIXTURES,
  ROOT,
  descendants,
  freePort,
  httpGet,
  isAlive,
  spawnEmperor,
  spawnNode,
  statsOf,
  tempDir,
  waitFor,
  writeAtomic,
  type EmperorStatsDoc,
  type VassalStatsDoc,
} from '../helpers/index.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');

function ini(port: number, extra = ''): string {
  return `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 2\nstats = %d%n.stats\n${extra}`;
}

function xml(port: number, workers: number): string {
  return `<uwsgi>\n  <http-socket>127.0.0.1:${port}</http-socket>\n  <module>${APP}</module>\n  <workers>${workers}</workers>\n  <master/>\n  <stats>%d%n.stats</stats>\n</uwsgi>\n`;
}

async function serving(port: number, path = '/'): Promise<string> {
  return waitFor(async () => {
    const r = await httpGet(`http://127.0.0.1:${port}${path}`);
    return r.status === 200 ? r.body : undefined;
  }, { message: `HTTP 200 on port ${port}`, timeoutMs: 15_000 });
}

async function workersOf(statsPath: string, count: number): Promise<VassalStatsDoc> {
  return waitFor(async () => {
    const s = await statsOf<VassalStatsDoc>(statsPath);
    return s.workers.length === count && s.workers.every((w) => w.pid > 0 && w.accepting === 1) ? s : undefined;
  }, { message: `${count} accepting workers in ${statsPath}`, timeoutMs: 15_000 });
}

function startEmperor(t: import('node:test').TestContext, dir: string) {
  const emperorStats = join(dir, 'emperor.stats');
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-stats', emperorStats, '--emperor-freq', '1']);
  return { emperor, emperorStats };
}

test('an INI and an XML vassal both serve; stats report their workers and requests', async (t) => {
  const dir = tempDir(t);
  const [p1, p2] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'a.ini'), ini(p1));
  writeFileSync(join(dir, 'b.xml'), xml(p2, 3));
  const { emperorStats } = startEmperor(t, dir);

  await serving(p1);
  await serving(p2);
  const a = await workersOf(join(dir, 'a.stats'), 2);
  const b = await workersOf(join(dir, 'b.stats'), 3);
  assert.equal(new Set(b.workers.map((w) => w.pid)).size, 3);
  assert.deepEqual(b.workers.map((w) => w.id), [1, 2, 3]);
  for (const w of b.workers) assert.ok(descendants(b.pid).includes(w.pid), `worker ${w.pid} is a child of master ${b.pid}`);
  assert.equal(a.sockets[0]?.name, `127.0.0.1:${p1}`);
  assert.equal(a.sockets[0]?.proto, 'http');

  // Every request we make is counted once, by the worker that served it. So far exactly
  // one request reached a.ini: the one that found it serving.
  const total = (s: VassalStatsDoc): number => s.workers.reduce((n, w) => n + w.requests, 0);
  const settled = await waitFor(async () => {
    const s = await statsOf<VassalStatsDoc>(join(dir, 'a.stats'));
    return total(s) === 1 ? s : undefined;
  }, { message: 'the first request counted' });
  const before = total(settled);
  const servedBy = new Map<number, number>();
  for (let i = 0; i < 20; i++) {
    const r = await httpGet(`http://127.0.0.1:${p1}/`);
    assert.equal(r.status, 200);
    const pid = Number(/pid (\d+)/.exec(r.body)?.[1]);
    servedBy.set(pid, (servedBy.get(pid) ?? 0) + 1);
  }
  const after = await waitFor(async () => {
    const s = await statsOf<VassalStatsDoc>(join(dir, 'a.stats'));
    return total(s) === before + 20 ? s : undefined;
  }, { message: '20 more requests in the stats' });
  for (const w of after.workers) {
    const mine = settled.workers.find((x) => x.pid === w.pid)?.requests ?? 0;
    assert.equal(w.requests - mine, servedBy.get(w.pid) ?? 0, `worker ${w.id} counted what it served`);
    assert.ok(w.rss > 10 * 1024 * 1024, `worker rss is real: ${w.rss}`);
    assert.ok(w.vsz > w.rss, `worker vsz is real: ${w.vsz}`);
  }

  const e = await waitFor(async () => {
    const s = await statsOf<EmperorStatsDoc>(emperorStats);
    return s.vassals.length === 2 && s.vassals.every((v) => v.ready === 1 && v.loyal === 1) ? s : undefined;
  }, { message: 'two ready, loyal vassals in the emperor stats' });
  assert.deepEqual(e.vassals.map((v) => [v.id, v.state]), [['a.ini', 'ready'], ['b.xml', 'ready']]);
  assert.equal(e.vassals[0]?.pid, a.pid);
});

test('touch reloads with new worker pids while a client loop sees no failed request', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const file = join(dir, 'a.ini');
  writeFileSync(file, ini(port));
  startEmperor(t, dir);
  await serving(port);
  const before = await workersOf(join(dir, 'a.stats'), 2);
  const oldPids = before.workers.map((w) => w.pid);

  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const loop = (async () => {
    while (!stop) {
      try {
        const r = await httpGet(`http://127.0.0.1:${port}/`);
        if (r.status === 200) ok++;
        else failures.push(`status ${r.status}`);
      } catch (err) {
        failures.push(String((err as Error).cause ?? err));
      }
    }
  })();
  await waitFor(() => ok > 20, { message: 'the client loop running' });
  const now = new Date();
  utimesSync(file, now, new Date(now.getTime() + 1000));
  const after = await waitFor(async () => {
    const s = await statsOf<VassalStatsDoc>(join(dir, 'a.stats'));
    return s.workers.length === 2 && s.workers.every((w) => w.accepting === 1 && !oldPids.includes(w.pid)) ? s : undefined;
  }, { message: 'two new workers after the touch', timeoutMs: 15_000 });
  const served = ok;
  await waitFor(() => ok > served + 20, { message: 'requests served by the new workers' });
  stop = true;
  await loop;
  assert.deepEqual(failures, []);
  assert.equal(after.pid, before.pid, 'the master stays; only workers are replaced');
  for (const pid of oldPids) await waitFor(() => !isAlive(pid), { message: `old worker ${pid} gone` });
});

test('deleting a vassal file closes its port and ends all its processes', async (t) => {
  const dir = tempDir(t);
  const [p1, p2] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'a.ini'), ini(p1));
  writeFileSync(join(dir, 'b.ini'), ini(p2));
  const { emperorStats } = startEmperor(t, dir);
  await serving(p1);
  await serving(p2);
  const a = await workersOf(join(dir, 'a.stats'), 2);
  const pids = [a.pid, ...descendants(a.pid)];
  assert.ok(pids.length >= 3);
  unlinkSync(join(dir, 'a.ini'));
  for (const pid of pids) await waitFor(() => !isAlive(pid), { message: `process ${pid} of a.ini gone` });
  await assert.rejects(httpGet(`http://127.0.0.1:${p1}/`), 'port closed');
  assert.match(await serving(p2), /^pid /, 'the other vassal keeps serving');
  const e = await waitFor(async () => {
    const s = await statsOf<EmperorStatsDoc>(emperorStats);
    return s.vassals.length === 1 ? s : undefined;
  }, { message: 'one vassal left' });
  assert.equal(e.vassals[0]?.id, 'b.ini');
});

test('an unparsable file and an invalid value each give one clear error; the others keep serving', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  writeFileSync(join(dir, 'good.ini'), ini(port));
  const { emperor, emperorStats } = startEmperor(t, dir);
  await serving(port);
  writeFileSync(join(dir, 'broken.xml'), '<uwsgi>\n  <http-socket>127.0.0.1:1</http-socket>\n  <module>x.js</module>\n</uwsgy>\n');
  writeFileSync(join(dir, 'bad.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:1\nmodule = ${APP}\nharakiri = ten\n`);
  const e = await waitFor(async () => {
    const s = await statsOf<EmperorStatsDoc>(emperorStats);
    const states = Object.fromEntries(s.vassals.map((v) => [v.id, v.state]));
    return states['bad.ini'] === 'config-error' && states['broken.xml'] === 'config-error' ? s : undefined;
  }, { message: 'both bad files in config-error' });
  assert.equal(e.vassals.find((v) => v.id === 'good.ini')?.state, 'ready');
  const errors = (name: string) => emperor.logs.find((l) => l.level === 50 && typeof l.msg === 'string' && l.msg.includes(name));
  assert.equal(errors('bad.ini').length, 1, emperor.logs.tail());
  assert.match(errors('bad.ini')[0]?.msg ?? '', /bad\.ini:4: harakiri: .*"ten"/);
  assert.equal(errors('broken.xml').length, 1, emperor.logs.tail());
  assert.match(errors('broken.xml')[0]?.msg ?? '', /broken\.xml:4/);
  // Not a crash loop: no respawn while the file is unchanged.
  const spawned = emperor.logs.find((l) => l.msg?.startsWith('vassal bad.ini started') === true).length;
  assert.match(await serving(port), /^pid /);
  assert.equal(emperor.logs.find((l) => l.msg?.startsWith('vassal bad.ini started') === true).length, spawned);

  // Fixing the file starts the vassal.
  const fixedPort = await freePort();
  writeAtomic(join(dir, 'bad.ini'), ini(fixedPort));
  await serving(fixedPort);
});

test('a vassal file written in two parts is read once, whole: no error for its first half (the settle window)', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-stats', join(dir, 'emperor.stats'), '--emperor-freq', '1'], { env: { EMPEROR_LOG_LEVEL: 'debug' } });
  await statsOf<EmperorStatsDoc>(join(dir, 'emperor.stats'));
  // An editor or scp writing in place: the first half alone has no app (an error). The
  // rest is written once the emperor has seen the first half and put it off.
  const text = ini(port);
  const cut = text.indexOf('module =');
  const fd = openSync(join(dir, 'a.ini'), 'w');
  // Finished in the same tick the emperor's line arrives (it reads the file 100 ms after
  // the last write; a poll could come too late).
  let finished = false;
  const onData = (chunk: Buffer): void => {
    if (finished || !/a\.ini: modified less than 100 ms ago, maybe still being written; read in \d+ ms/.test(chunk.toString())) return;
    finished = true;
    writeSync(fd, text.slice(cut));
    closeSync(fd);
  };
  emperor.child.stderr?.on('data', onData);
  t.after(() => emperor.child.stderr?.off('data', onData));
  writeSync(fd, text.slice(0, cut));
  await waitFor(() => finished, { message: 'the emperor putting off the half-written file', timeoutMs: 10_000 });
  assert.match(await serving(port), /^pid /);
  const e = await statsOf<EmperorStatsDoc>(join(dir, 'emperor.stats'));
  assert.equal(e.vassals.find((v) => v.id === 'a.ini')?.respawns, 0, 'started once, on the whole file');
  assert.deepEqual(emperor.logs.find((l) => (l.level ?? 0) >= 50).map((l) => l.msg), [], 'no error for the half-written file');
  assert.equal(emperor.logs.find((l) => l.msg?.startsWith('vassal a.ini started') === true).length, 1);
});

test('a directory that does not exist yet: one warning, then the emperor-freq rescan starts its vassals once it appears', async (t) => {
  const dir = tempDir(t);
  const later = join(dir, 'later');
  const port = await freePort();
  const emperor = spawnEmperor(t, ['--emperor', later, '--emperor-freq', '1']);
  await emperor.logs.waitFor((l) => l.level === 40 && /^watching .*later failed \(ENOENT.*rescanning every 1 s$/.test(l.msg ?? ''), { message: 'the watch failure, once' });
  mkdirSync(later);
  writeAtomic(join(later, 'a.ini'), ini(port));
  assert.match(await serving(port), /^pid /);
  assert.equal(emperor.logs.find((l) => l.level === 40).length, 1, 'one warning, not one per rescan');
  // The watch has started on the new directory: a second file is picked up as well.
  const port2 = await freePort();
  writeAtomic(join(later, 'b.ini'), ini(port2));
  assert.match(await serving(port2), /^pid /);
});

test('a worker killed with SIGKILL is replaced', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  writeFileSync(join(dir, 'a.ini'), ini(port));
  startEmperor(t, dir);
  await serving(port);
  const before = await workersOf(join(dir, 'a.stats'), 2);
  const victim = before.workers[0];
  assert.ok(victim);
  process.kill(victim.pid, 'SIGKILL');
  const after = await waitFor(async () => {
    const s = await statsOf<VassalStatsDoc>(join(dir, 'a.stats'));
    const w = s.workers.find((x) => x.id === victim.id);
    return w && w.pid !== victim.pid && w.accepting === 1 ? s : undefined;
  }, { message: `worker ${victim.id} respawned` });
  const w = after.workers.find((x) => x.id === victim.id);
  assert.equal(w?.respawn_count, 2);
  assert.equal(w?.last_exit_reason, 'crash');
  assert.equal(after.workers.find((x) => x.id !== victim.id)?.pid, before.workers[1]?.pid, 'the other worker was left alone');
  await serving(port);
});

test('the emperor killed with SIGKILL leaves no process behind within 5 s', async (t) => {
  const dir = tempDir(t);
  const [p1, p2] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'a.ini'), ini(p1));
  writeFileSync(join(dir, 'b.xml'), xml(p2, 2));
  const { emperor } = startEmperor(t, dir);
  await workersOf(join(dir, 'a.stats'), 2);
  await workersOf(join(dir, 'b.stats'), 2);
  const tree = descendants(emperor.pid);
  assert.ok(tree.length >= 6, `2 masters and 4 workers, got ${tree.length}`);
  process.kill(emperor.pid, 'SIGKILL');
  const deadline = Date.now() + 5000;
  await waitFor(() => tree.every((pid) => !isAlive(pid)), { timeoutMs: 5000, message: `no survivors of ${tree.join(',')}` });
  assert.ok(Date.now() <= deadline);
});

test('no-orphans: a master running as another user and its workers exit within 1 s of the emperor\'s death', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const port = await freePort();
  // A master that drops privileges loses pdeathsig; it learns of the emperor's death from its IPC channel.
  writeFileSync(join(dir, 'a.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 2\nuid = nobody\ngid = nogroup\nno-orphans = true\n`);
  const { emperor } = startEmperor(t, dir);
  await serving(port);
  await waitFor(() => descendants(emperor.pid).length === 3, { message: 'a master and two workers' });
  const tree = descendants(emperor.pid);
  process.kill(emperor.pid, 'SIGKILL');
  await waitFor(() => tree.every((pid) => !isAlive(pid)), { timeoutMs: 1000, message: `no survivors of ${tree.join(',')} after 1 s` });
});

test('SIGTERM stops every vassal gracefully and exits 0; SIGHUP reloads every vassal', async (t) => {
  const dir = tempDir(t);
  const [p1, p2] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'a.ini'), ini(p1));
  writeFileSync(join(dir, 'b.xml'), xml(p2, 1));
  const { emperor } = startEmperor(t, dir);
  const a = await workersOf(join(dir, 'a.stats'), 2);
  const b = await workersOf(join(dir, 'b.stats'), 1);
  emperor.child.kill('SIGHUP');
  for (const [stats, before] of [[join(dir, 'a.stats'), a], [join(dir, 'b.stats'), b]] as const) {
    await waitFor(async () => {
      const s = await statsOf<VassalStatsDoc>(stats);
      return s.workers.every((w) => w.accepting === 1 && !before.workers.some((o) => o.pid === w.pid)) ? s : undefined;
    }, { message: `new workers in ${stats} after SIGHUP` });
  }
  // A slow request in flight when SIGTERM arrives still completes.
  const slow = httpGet(`http://127.0.0.1:${p1}/sleep?ms=1500`);
  await waitFor(async () => (await statsOf<VassalStatsDoc>(join(dir, 'a.stats'))).workers.some((w) => w.status === 'busy'), { message: 'a busy worker' });
  const tree = descendants(emperor.pid);
  emperor.child.kill('SIGTERM');
  assert.match((await slow).body, /^slept 1500/);
  const exit = await emperor.exited;
  assert.deepEqual(exit, { code: 0, signal: null });
  for (const pid of tree) assert.ok(!isAlive(pid), `process ${pid} ended`);
});

test('a renamed file stops the old vassal and starts the new one', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  writeFileSync(join(dir, 'shop.ini'), ini(port));
  const { emperorStats } = startEmperor(t, dir);
  const old = await workersOf(join(dir, 'shop.stats'), 2);
  renameSync(join(dir, 'shop.ini'), join(dir, 'store.ini'));
  const e = await waitFor(async () => {
    const s = await statsOf<EmperorStatsDoc>(emperorStats);
    return s.vassals.length === 1 && s.vassals[0]?.id === 'store.ini' && s.vassals[0].ready === 1 ? s : undefined;
  }, { message: 'store.ini ready and shop.ini gone', timeoutMs: 20_000 });
  assert.notEqual(e.vassals[0]?.pid, old.pid);
  assert.ok(!isAlive(old.pid));
  await serving(port);
});

test('a master that keeps dying is respawned with a growing delay, never in a busy loop', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  // The port is taken by another process: the master cannot bind and exits each time.
  const blocker = (await import('node:net')).createServer().listen(port, '127.0.0.1');
  t.after(() => blocker.close());
  writeFileSync(join(dir, 'busy.ini'), ini(port));
  const { emperor, emperorStats } = startEmperor(t, dir);
  const e = await waitFor(async () => {
    const s = await statsOf<EmperorStatsDoc>(emperorStats);
    const b = s.blacklist.find((x) => x.id === 'busy.ini');
    return b && b.attempt >= 2 ? s : undefined;
  }, { message: 'two failed attempts', timeoutMs: 15_000 });
  assert.equal(e.blacklist[0]?.throttle_level, 2000);
  const starts = emperor.logs.find((l) => l.msg?.startsWith('vassal busy.ini started') === true);
  assert.ok(starts.length >= 2 && starts.length <= 3, `spawned ${starts.length} times in ~3 s`);
  const bindError = emperor.logs.find((l) => l.level === 50 && /busy\.ini:2: http-socket: 127\.0\.0\.1:\d+: cannot bind: address already in use/.test(l.msg ?? ''));
  assert.ok(bindError.length >= 1, emperor.logs.tail());
  const death = emperor.logs.find((l) => /vassal busy\.ini master died: exit code 69/.test(l.msg ?? ''));
  assert.ok(death.length >= 1, emperor.logs.tail());
});

test('vassals run as their uid and gid, with the user\'s groups', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const port = await freePort();
  writeFileSync(join(dir, 'a.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 1\nuid = nobody\ngid = nogroup\nstats = 127.0.0.1:${await freePort()}\n`);
  const { emperorStats } = startEmperor(t, dir);
  await serving(port);
  const e = await statsOf<EmperorStatsDoc>(emperorStats);
  const master = e.vassals[0]?.pid ?? 0;
  const { procStatus } = await import('../helpers/index.js');
  for (const pid of [master, ...descendants(master)]) {
    assert.match(procStatus(pid, 'Uid') ?? '', /^65534\s+65534\s+65534\s+65534$/, `uid of ${pid}`);
    assert.match(procStatus(pid, 'Gid') ?? '', /^65534\s+65534\s+65534\s+65534$/, `gid of ${pid}`);
  }
});

test('Emperor installed where the vassal\'s user cannot read it: one clear error, not "Cannot find module"', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async (t) => {
  // A home directory of mode 0700 (Debian 12 and later) holding the checkout: root runs
  // the emperor from it, but a vassal that drops to `nobody` cannot read its files.
  const home = tempDir(t);
  chmodSync(home, 0o700);
  const copy = join(home, 'emperor');
  try {
    execFileSync('cp', ['-al', ROOT, copy], { stdio: 'ignore' }); // hard links: instant on one filesystem
  } catch {
    execFileSync('cp', ['-a', ROOT, copy], { stdio: 'ignore' });
  }
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const port = await freePort();
  const file = join(dir, 'a.ini');
  writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nuid = nobody\ngid = nogroup\n`);
  const proc = spawnNode(t, join(copy, 'packages', 'cli', 'dist', 'bin', 'emperor.js'), ['--ini', file]);
  const exit = await proc.exited;
  assert.notEqual(exit.code, 0);
  const errors = proc.logs.find((l) => (l.level ?? 0) >= 50);
  assert.equal(errors.length, 1, proc.logs.tail());
  assert.equal(errors[0]?.code, 'ERR_PRIVILEGE');
  assert.match(String(errors[0]?.msg), /^uid 65534 cannot read Emperor's worker code .*worker-main\.js \(EACCES\); install Emperor where every vassal user can read it/);
  assert.equal(proc.logs.find((l) => /Cannot find module/.test(String(l.msg))).length, 0, proc.logs.tail());
});
