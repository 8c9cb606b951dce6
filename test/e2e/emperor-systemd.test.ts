/**
 * End to end: the emperor speaks sd_notify on NOTIFY_SOCKET. A small Python listener
 * stands in for systemd: it binds the datagram socket (abstract or a path) and prints
 * every message with the sender's pid from SCM_CREDENTIALS.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findExecutable } from '@emperor/process';
import {
  FIXTURES,
  freePort,
  spawnEmperor,
  statsOf,
  tempDir,
  waitFor,
  type EmperorStatsDoc,
} from '../helpers/index.js';

const LISTENER = join(FIXTURES, 'bin', 'notify-listener.py');
const APP = join(FIXTURES, 'apps', 'basic.mjs');
const skip = findExecutable('systemd-notify') === undefined || findExecutable('python3') === undefined ? 'needs systemd-notify and python3' : false;

interface Notification {
  readonly pid: number;
  readonly fields: Record<string, string>;
  /** monotonic seconds */
  readonly at: number;
}

/** Starts the listener on `address` and collects what it receives (BARRIER=1 round trips left out). */
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

function ini(port: number): string {
  return `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 1\n`;
}

test('READY=1 once the vassals are spawned, STATUS= with counts, RELOADING=1 and READY=1 on SIGHUP, STOPPING=1', { skip }, async (t) => {
  const dir = tempDir(t);
  const address = `@emperor-test-${process.pid}-${Date.now()}`;
  const seen = await listen(t, address);
  writeFileSync(join(dir, 'a.ini'), ini(await freePort()));
  writeFileSync(join(dir, 'b.ini'), ini(await freePort()));
  writeFileSync(join(dir, 'bad.ini'), '[uwsgi]\nharakiri = ten\n');
  const stats = join(dir, 'emperor.stats');
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-stats', stats], { env: { NOTIFY_SOCKET: address } });

  const ready = await waitFor(() => seen.find((n) => n.fields.READY === '1'), { message: 'READY=1' });
  assert.equal(ready.pid, emperor.pid, 'sent with the emperor\'s pid, as NotifyAccess=main needs');
  assert.match(ready.fields.STATUS ?? '', /^3 vassals: 3 starting$/);
  await waitFor(() => seen.find((n) => n.fields.STATUS === '3 vassals: 2 ready, 1 config-error'), {
    message: `STATUS with the settled counts (seen: ${JSON.stringify(seen.map((n) => n.fields))})`,
    timeoutMs: 15_000,
  });
  // Masters do not get the notification socket.
  const doc = await statsOf<EmperorStatsDoc>(stats);
  const master = doc.vassals.find((v) => v.id === 'a.ini')?.pid ?? 0;
  assert.ok(master > 0);
  assert.ok(!readFileSync(`/proc/${master}/environ`, 'latin1').split('\0').some((e) => e.startsWith('NOTIFY_SOCKET=')));

  const before = seen.length;
  emperor.child.kill('SIGHUP');
  const reloading = await waitFor(() => seen.slice(before).find((n) => n.fields.RELOADING === '1'), { message: 'RELOADING=1' });
  const usec = BigInt(reloading.fields.MONOTONIC_USEC ?? '0');
  // CLOCK_MONOTONIC in µs, the clock the listener's time.monotonic() reads.
  assert.ok(usec > 0n && Math.abs(Number(usec) / 1e6 - reloading.at) < 2, `MONOTONIC_USEC ${usec} near ${reloading.at} s`);
  const reloaded = await waitFor(() => seen.slice(seen.indexOf(reloading) + 1).find((n) => n.fields.READY === '1'), {
    message: 'READY=1 after the reload',
    timeoutMs: 15_000,
  });
  // READY=1 once no vassal is still reloading (bad.ini, tried again by the SIGHUP, may
  // still be starting), then the counts settle again.
  assert.doesNotMatch(reloaded.fields.STATUS ?? '', /reloading/);
  await waitFor(() => seen.slice(seen.indexOf(reloaded)).find((n) => n.fields.STATUS === '3 vassals: 2 ready, 1 config-error'), {
    message: 'the counts settled after the reload',
  });

  emperor.child.kill('SIGTERM');
  assert.deepEqual(await emperor.exited, { code: 0, signal: null });
  const stopping = seen.find((n) => n.fields.STOPPING === '1');
  assert.ok(stopping, JSON.stringify(seen.map((n) => n.fields)));
  assert.equal(stopping.pid, emperor.pid);
  assert.ok(seen.indexOf(stopping) > seen.indexOf(reloaded), 'in order');
});

test('WATCHDOG=1 every half WATCHDOG_USEC, on a socket path', { skip }, async (t) => {
  const dir = tempDir(t);
  const address = join(tempDir(t), 'notify.sock');
  const seen = await listen(t, address);
  spawnEmperor(t, ['--emperor', dir], { env: { NOTIFY_SOCKET: address, WATCHDOG_USEC: '600000', WATCHDOG_PID: '' } });
  await waitFor(() => seen.filter((n) => n.fields.WATCHDOG === '1').length >= 4, { message: 'four WATCHDOG=1', timeoutMs: 5000 });
  const times = seen.filter((n) => n.fields.WATCHDOG === '1').map((n) => n.at);
  const gaps = times.slice(2).map((at, i) => at - (times[i + 1] as number));
  // systemd's requirement is that no gap reaches WATCHDOG_USEC (600 ms). The pace is half
  // of it, but pings that a busy machine held back leave close together: the lower bound
  // only tells a timer from a loop.
  const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
  assert.ok(mean > 0.1, `not sent in a loop: ${gaps.join(', ')}`);
  assert.ok(Math.max(...gaps) < 0.6, `every gap under WATCHDOG_USEC: ${gaps.join(', ')}`);
  assert.ok(seen.some((n) => n.fields.READY === '1'));
});
