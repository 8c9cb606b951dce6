/**
 * The handover's pieces (issue 19): the master's link and the emperor's control server
 * over a real unix socket in a temp dir, the adopted master's handle, the lease store
 * and runtime directory checks, and telling a systemd restart from a stop.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { AdoptedMaster, ControlServer, Emperor, LeaseStore, prepareRuntimeDir, restartPending, unitOfCgroup, type AdoptionFlags } from '@emperor/emperor';
import { CONTROL_VERSION, IpcMessageError, parseMasterHandshake, parseMasterLease, type EmperorToMaster, type MasterLease } from '@emperor/protocol';
import { JsonLines, createLogger, randomHex, type Logger } from '@emperor/process';
import { EmperorLink } from '@emperor/vassal';
import { FakeChild, ManualClock } from '../../helpers/fakes.js';
import { resolveEmperorConfig } from '@emperor/config';
import { tempDir, waitFor } from '../../helpers/index.js';

function capture(): { logger: Logger; lines: { msg: string; code?: string }[] } {
  const lines: { msg: string; code?: string }[] = [];
  const logger = createLogger({}, { destination: { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) } });
  return { logger, lines };
}

function lease(control: string, secret = randomHex(32), adoptTimeoutMs = 60_000): MasterLease {
  return { v: CONTROL_VERSION, vassal: 'shop.ini', control, secret, adoptTimeoutMs, bindWaitMs: 0 };
}

/** A control server whose only lease is `secret` for shop.ini's master `pid`. */
async function server(t: TestContext, path: string, secret: string, pid: number) {
  const adopted: { vassal: string; pid: number; channel: JsonLines; flags: AdoptionFlags }[] = [];
  const log = capture();
  const control = await ControlServer.listen({
    path,
    logger: log.logger,
    adoptTimeoutMs: 30_000,
    lookup: (vassal, claimed) => (vassal === 'shop.ini' && claimed === pid ? { secret } : { refused: `no lease for ${vassal} pid ${claimed}` }),
    onAdopt: (vassal, claimedPid, channel, flags) => adopted.push({ vassal, pid: claimedPid, channel, flags }),
    adminKey: randomHex(32),
    onUpgrade: () => Promise.resolve(1),
  });
  t.after(() => control.close());
  return { control, adopted, log };
}

function link(l: MasterLease | undefined, options: { pid?: number; clock?: ManualClock; noOrphans?: boolean } = {}) {
  const log = capture();
  const received: EmperorToMaster[] = [];
  const abandoned: string[] = [];
  const ipc: unknown[] = [];
  const emperorLink = new EmperorLink({
    lease: l,
    logger: log.logger,
    noOrphans: options.noOrphans ?? false,
    flags: () => ({ ready: true, accepting: true, loyal: false }),
    sendIpc: (m) => ipc.push(m) > 0,
    onMessage: (m) => received.push(m),
    onAbandoned: (reason, why) => abandoned.push(`${reason}: ${why}`),
    pid: options.pid ?? 4242,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  return { link: emperorLink, log, received, abandoned, ipc };
}

test('an orphaned master and the emperor holding its lease prove it to each other; then messages flow both ways', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'control.sock');
  const secret = randomHex(32);
  const s = await server(t, path, secret, 4242);
  assert.equal((statSync(path).mode & 0o777).toString(8), '666', 'masters of any user may connect');
  const m = link(lease(path, secret));
  t.after(() => m.link.close());
  m.link.send({ v: 1, type: 'heartbeat' });
  assert.equal(m.ipc.length, 1, 'over IPC while the spawning emperor lives');
  m.link.lost();
  assert.equal(m.link.state === 'handshake' || m.link.state === 'orphaned', true);
  await waitFor(() => m.link.state === 'adopted', { message: 'adopted' });
  const [adoption] = s.adopted;
  assert.ok(adoption);
  assert.deepEqual([adoption.vassal, adoption.pid, adoption.flags], ['shop.ini', 4242, { ready: true, accepting: true, loyal: false }]);
  const got: unknown[] = [];
  adoption.channel.on('message', (raw) => got.push(raw));
  m.link.send({ v: 1, type: 'heartbeat' });
  adoption.channel.send({ v: 1, type: 'reload' });
  await waitFor(() => got.length === 1 && m.received.length === 1, { message: 'a message each way' });
  assert.deepEqual(got, [{ v: 1, type: 'heartbeat' }]);
  assert.deepEqual(m.received, [{ v: 1, type: 'reload' }]);
  assert.equal(m.ipc.length, 1, 'no longer over IPC');
  // The emperor goes again: the master is orphaned again and knocks again.
  adoption.channel.close();
  await waitFor(() => s.adopted.length === 2, { message: 'adopted again' });
  assert.deepEqual(m.abandoned, []);
});

test('a master does not let an emperor that cannot prove its lease adopt it, nor an emperor a master that cannot', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'control.sock');
  // A fake emperor: listens where the master looks, but holds another secret.
  const s = await server(t, path, randomHex(32), 4242);
  const m = link(lease(path, randomHex(32)));
  t.after(() => m.link.close());
  m.link.lost();
  const forged = await waitFor(() => m.log.lines.find((l) => /could not prove it holds this vassal's lease/.test(l.msg)), { message: 'the master refuses' });
  assert.equal(forged.code, 'ERR_CONTROL_AUTH');
  assert.notEqual(m.link.state, 'adopted');
  assert.deepEqual(s.adopted, []);
  // And the other way: a peer that is not the master named fails the emperor's check.
  const other = link(lease(path, randomHex(32)), { pid: 999 });
  t.after(() => other.link.close());
  other.link.lost();
  const refused = await waitFor(() => s.log.lines.find((l) => /pid 999/.test(l.msg)), { message: 'the emperor refuses' });
  assert.equal(refused.msg, 'control socket: refused a peer claiming to be the master (pid 999) of vassal shop.ini: no lease for shop.ini pid 999');
  assert.equal(refused.code, 'ERR_CONTROL_AUTH');
  await waitFor(() => other.log.lines.some((l) => /refused to adopt this vassal: no lease for shop.ini pid 999; retrying$/.test(l.msg)), { message: 'the master hears why' });
});

test('no emperor within emperor-adopt-timeout: the master is told to stop, once; without a lease, or with no-orphans, at once', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock();
  const m = link(lease(join(dir, 'nobody-listens.sock'), randomHex(32), 5000), { clock });
  t.after(() => m.link.close());
  m.link.lost();
  await waitFor(() => m.log.lines.some((l) => /^no emperor answers on .* yet/.test(l.msg)), { message: 'first attempt failed' });
  clock.advance(4999);
  assert.deepEqual(m.abandoned, []);
  clock.advance(1);
  assert.deepEqual(m.abandoned, ['no-emperor: no emperor adopted this vassal within 5 s (emperor-adopt-timeout)']);
  assert.equal(m.link.state, 'closed');
  assert.equal(clock.pending, 0, 'no retry left armed');
  const none = link(undefined);
  none.link.lost();
  assert.deepEqual(none.abandoned, ['emperor-lost: lost connection with the emperor']);
  const strict = link(lease('/nonexistent.sock'), { noOrphans: true });
  strict.link.lost();
  assert.deepEqual(strict.abandoned, ['emperor-lost: lost connection with the emperor (no-orphans)']);
});

test('an upgrade request needs the admin key; hostile input is refused and logged, never crashes the server', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'control.sock');
  const s = await server(t, path, randomHex(32), 1);
  const talk = (text: string): Promise<string> =>
    new Promise((resolve) => {
      const socket = createConnection(path);
      let got = '';
      socket.on('data', (c: Buffer) => {
        got += c.toString();
      });
      socket.on('close', () => resolve(got));
      socket.on('error', () => resolve(got));
      socket.write(text);
    });
  assert.match(await talk(`${JSON.stringify({ v: 1, type: 'upgrade', key: randomHex(32) })}\n`), /"type":"refused","reason":"wrong key/);
  assert.match(await talk('not json\n'), /^$/);
  assert.match(await talk(`${JSON.stringify({ v: 7, type: 'hello', vassal: 'x', pid: 1, nonce: randomHex(16) })}\n`), /unsupported control version 7 \(this build speaks 1\)/);
  assert.match(await talk(`${'x'.repeat(70_000)}`), /^$/);
  assert.equal(s.adopted.length, 0);
  assert.ok(s.log.lines.filter((l) => l.code === 'ERR_CONTROL_AUTH').length >= 2);
});

test('an adopted master without a socket: stop signals it, its death is seen by polling its pid, the SIGKILL timer is cleared', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  const pid = child.pid ?? 0;
  const clock = new ManualClock();
  const reaped = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let alive = true;
  const master = new AdoptedMaster(pid, { spawnedAt: 5, clock, alive: () => alive });
  const exits: unknown[] = [];
  master.on('exit', (e) => exits.push(e));
  assert.equal(master.send({ v: 1, type: 'stop' }), false, 'no socket: nothing sent');
  const stopping = master.stop({ message: { v: 1, type: 'stop' }, signal: 'SIGTERM', mercyMs: 1000 });
  await reaped; // SIGTERM reached the real process
  assert.equal(child.signalCode, 'SIGTERM');
  alive = false;
  clock.advance(100);
  assert.deepEqual(await stopping, { code: null, signal: null });
  assert.deepEqual(exits, [{ code: null, signal: null }]);
  assert.equal(master.isDead(), true);
  assert.equal(clock.pending, 0, 'the SIGKILL timer is cleared');
});

test('leases: written 0600 and read back; another version is read as vassal and pid only; junk is removed', (t) => {
  const dir = tempDir(t);
  prepareRuntimeDir(dir, process.getuid?.() ?? 0);
  const store = new LeaseStore(dir);
  const file = { name: 'shop.ini', path: '/etc/emperor.d/shop.ini', format: 'ini' as const, monitor: '/etc/emperor.d', fingerprint: { dev: 1, ino: 2, mtimeMs: 3, size: 4, hash: 'ab' }, uid: 0, gid: 0 };
  store.write({ vassal: 'shop.ini', pid: 10, secret: randomHex(32), file, born: 1, respawns: 2, lastMod: 3, firstRun: 1, lastRun: 4, credentials: undefined });
  store.write({ vassal: 'old/one', pid: 11, secret: randomHex(32), file, born: 1, respawns: 0, lastMod: 3, firstRun: 1, lastRun: 4 }, 0);
  writeFileSync(join(store.dir, 'junk.lease'), 'not json');
  const path = join(store.dir, 'shop.ini.lease');
  assert.equal((statSync(path).mode & 0o777).toString(8), '600');
  const { leases, problems } = store.readAll();
  assert.deepEqual(leases.map((l) => [l.vassal, l.pid, l.v, l.record?.respawns]), [['old/one', 11, 0, undefined], ['shop.ini', 10, 1, 2]]);
  assert.equal(problems.length, 1);
  assert.match(problems[0] ?? '', /junk\.lease: not a lease/);
  assert.equal(store.readAll().problems.length, 0, 'removed');
  store.remove('shop.ini');
  assert.deepEqual(store.readAll().leases.map((l) => l.vassal), ['old/one']);
});

test('the runtime directory must be the emperor\'s alone', (t) => {
  const dir = tempDir(t);
  const open = join(dir, 'open');
  mkdirSync(open, { mode: 0o777 });
  chmodSync(open, 0o777);
  assert.throws(() => prepareRuntimeDir(open, 0), { code: 'ERR_RUNTIME_DIR', message: /is writable by others \(mode 777\)/ });
  const theirs = join(dir, 'theirs');
  mkdirSync(theirs, { mode: 0o755 });
  chownSync(theirs, 65534, 65534);
  assert.throws(() => prepareRuntimeDir(theirs, 0), { code: 'ERR_RUNTIME_DIR', message: /belongs to uid 65534, not to the emperor's uid 0/ });
});

test('systemd: the unit from /proc/self/cgroup, and a restart job told from a stop', () => {
  assert.equal(unitOfCgroup('0::/system.slice/emperor.service\n'), 'emperor.service');
  assert.equal(unitOfCgroup('12:pids:/system.slice/emperor.service/x\n'), 'emperor.service');
  assert.equal(unitOfCgroup('0::/\n'), undefined);
  assert.equal(restartPending('1234 emperor.service restart running\n', 'emperor.service'), true);
  assert.equal(restartPending('1234 emperor.service stop running\n99 other.service restart running\n', 'emperor.service'), false);
  assert.equal(restartPending('', 'emperor.service'), false);
});

test('control messages: the version is checked, the lease parsed strictly', () => {
  assert.throws(() => parseMasterHandshake({ v: 0, type: 'hello', vassal: 'a', pid: 1, nonce: randomHex(16) }), IpcMessageError);
  assert.throws(() => parseMasterHandshake({ v: 1, type: 'hello', vassal: 'a', pid: -1, nonce: randomHex(16) }), /malformed "hello"/);
  assert.throws(() => parseMasterLease({ v: 1, vassal: 'a', control: 'relative.sock', secret: randomHex(32), adoptTimeoutMs: 1, bindWaitMs: 0 }), /lease: malformed/);
  assert.equal(parseMasterLease(lease('/run/emperor/control.sock')).vassal, 'shop.ini');
});

test('shutdown starts nothing: a vassal waiting to respawn dies at once, and its scan does not start it (or another) again', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'ok.ini'), '[uwsgi]\n');
  writeFileSync(join(dir, 'failing.ini'), '[uwsgi]\n');
  const { config } = resolveEmperorConfig([{ file: 'test', format: 'ini', options: [{ name: 'emperor', value: dir, file: 'test', line: 1 }] }]);
  const spawned: string[] = [];
  const clock = new ManualClock();
  const emperor = new Emperor({
    config,
    logger: capture().logger,
    masterEntry: '/nonexistent.js',
    env: {},
    spawnMaster: (file) => {
      spawned.push(file.name);
      if (file.name === 'failing.ini') throw new Error('cannot spawn');
      const child = new FakeChild(clock);
      queueMicrotask(() => child.say({ v: 1, type: 'ready' }));
      return child;
    },
  });
  // The directory source reads files settled for a moment only: wait for both to be tried.
  await emperor.start();
  await waitFor(() => spawned.includes('ok.ini') && spawned.includes('failing.ini'), { message: 'both tried' });
  assert.equal(emperor.vassals.get('failing.ini')?.state, 'throttled');
  const before = spawned.length;
  const stopping = emperor.shutdown();
  for (const vassal of emperor.vassals.values()) (vassal.master as FakeChild | undefined)?.exitWith(0);
  await stopping;
  assert.equal(spawned.length, before, `nothing spawned during the shutdown: ${spawned.join(' ')}`);
});
