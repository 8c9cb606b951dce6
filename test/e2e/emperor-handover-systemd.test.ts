/**
 * End to end: the handover under systemd (issue 19), with a notification socket as the
 * sd_notify tests use (a Python listener stands in for systemd) and a stand-in
 * `systemctl` on PATH answering `list-jobs` as systemd would during a restart or a stop.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findExecutable } from '@emperor/process';
import { FIXTURES, descendants, freePort, isAlive, serving, spawnEmperor, statsOf, tempDir, waitFor, type EmperorStatsDoc } from '../helpers/index.js';

const LISTENER = join(FIXTURES, 'bin', 'notify-listener.py');
const APP = join(FIXTURES, 'apps', 'basic.mjs');
const skip = findExecutable('systemd-notify') === undefined || findExecutable('python3') === undefined ? 'needs systemd-notify and python3' : false;

interface Notification {
  readonly pid: number;
  readonly fields: Record<string, string>;
}

async function listen(t: TestContext, address: string): Promise<Notification[]> {
  const child = spawn('python3', [LISTENER, address], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  const seen: Notification[] = [];
  let ready = false;
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'listening') ready = true;
      else if (line !== '') {
        const n = JSON.parse(line) as Notification;
        if (n.fields.BARRIER === undefined) seen.push(n);
      }
    }
  });
  await waitFor(() => ready, { message: `the listener on ${address}` });
  return seen;
}

/** A vassal, a runtime dir, a notify socket, and a `systemctl` whose list-jobs prints `jobs` (a file the test writes). */
async function unit(t: TestContext): Promise<{ dir: string; run: string; url: string; env: NodeJS.ProcessEnv; jobs: string; seen: Notification[] }> {
  const dir = tempDir(t);
  const vassals = join(dir, 'vassals.d');
  mkdirSync(vassals);
  const port = await freePort();
  writeFileSync(join(vassals, 'app.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 1\n`);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const jobs = join(dir, 'jobs');
  writeFileSync(jobs, '');
  writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\n[ "$1" = list-jobs ] && cat ${jobs}\n`);
  chmodSync(join(bin, 'systemctl'), 0o755);
  const address = `@emperor-handover-test-${process.pid}-${Date.now()}`;
  const seen = await listen(t, address);
  return {
    dir,
    run: join(dir, 'run'),
    url: `http://127.0.0.1:${port}/`,
    jobs,
    seen,
    env: { NOTIFY_SOCKET: address, INVOCATION_ID: 'test', EMPEROR_SYSTEMD_UNIT: 'emperor-test.service', PATH: `${bin}:${process.env.PATH ?? ''}` },
  };
}

function emperorArgs(u: { dir: string; run: string }, stats: string): string[] {
  return ['--emperor', join(u.dir, 'vassals.d'), '--emperor-runtime-dir', u.run, '--emperor-stats', stats];
}

async function readyMaster(stats: string): Promise<EmperorStatsDoc> {
  return waitFor(async () => {
    const doc = await statsOf<EmperorStatsDoc>(stats);
    return doc.vassals[0]?.state === 'ready' ? doc : undefined;
  }, { timeoutMs: 20_000, message: 'the vassal ready' });
}

test('emperor upgrade under systemd: the old emperor says MAINPID= the new pid, the new one READY=1', { skip }, async (t) => {
  const u = await unit(t);
  const stats = join(u.dir, 'emperor.stats');
  const old = spawnEmperor(t, emperorArgs(u, stats), { env: u.env });
  await readyMaster(stats);
  await waitFor(() => u.seen.find((n) => n.fields.READY === '1'), { message: 'READY=1' });
  const upgrade = spawnEmperor(t, ['upgrade', '--runtime-dir', u.run]);
  assert.deepEqual(await upgrade.exited, { code: 0, signal: null }, upgrade.logs.tail());
  const newPid = Number(/pid (\d+)/.exec(upgrade.stdout())?.[1]);
  t.after(async () => {
    if (!isAlive(newPid)) return;
    process.kill(newPid, 'SIGTERM');
    await waitFor(() => !isAlive(newPid), { timeoutMs: 20_000, message: 'the new emperor stopped' });
  });
  const main = await waitFor(() => u.seen.find((n) => n.fields.MAINPID !== undefined), { message: 'MAINPID=' });
  assert.equal(main.fields.MAINPID, String(newPid));
  assert.deepEqual(await old.exited, { code: 0, signal: null });
  const ready = await waitFor(() => u.seen.slice(u.seen.indexOf(main)).find((n) => n.fields.READY === '1'), { message: 'READY=1 from the new emperor' });
  assert.match(ready.fields.STATUS ?? '', /^1 vassal: 1 (ready|starting)$/);
  assert.equal((await readyMaster(stats)).pid, newPid);
  await serving(u.url);
});

test('SIGTERM during systemctl restart hands the vassals over; during systemctl stop it stops them', { skip }, async (t) => {
  const u = await unit(t);
  const stats1 = join(u.dir, 'emperor1.stats');
  const first = spawnEmperor(t, emperorArgs(u, stats1), { env: u.env });
  const master = (await readyMaster(stats1)).vassals[0]?.pid ?? 0;
  const workers = descendants(master);
  t.after(() => {
    for (const pid of [master, ...workers]) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  // systemctl restart: the job is a restart while its stop half runs.
  writeFileSync(u.jobs, '1234 emperor-test.service restart running\n');
  first.child.kill('SIGTERM');
  assert.deepEqual(await first.exited, { code: 0, signal: null });
  assert.ok(first.logs.lines.some((l) => l.msg === 'SIGTERM during a restart of this unit: handing the vassals over to the next emperor'));
  assert.ok(isAlive(master) && workers.every(isAlive), 'the master and its workers outlive the emperor');
  await serving(u.url);

  // systemd starts the unit again: the new emperor adopts the master.
  writeFileSync(u.jobs, '');
  const stats2 = join(u.dir, 'emperor2.stats');
  const second = spawnEmperor(t, emperorArgs(u, stats2), { env: u.env });
  assert.equal((await readyMaster(stats2)).vassals[0]?.pid, master);

  // systemctl stop: no restart job (another unit's does not count): every vassal stops gracefully.
  writeFileSync(u.jobs, '99 other.service restart running\n1235 emperor-test.service stop running\n');
  second.child.kill('SIGTERM');
  assert.deepEqual(await second.exited, { code: 0, signal: null });
  assert.ok(second.logs.lines.some((l) => l.msg === 'stopping vassal app.ini'));
  await waitFor(() => !isAlive(master) && !workers.some(isAlive), { message: 'the master and its workers stopped' });
  assert.ok(u.seen.some((n) => n.fields.STOPPING === '1'));
});
