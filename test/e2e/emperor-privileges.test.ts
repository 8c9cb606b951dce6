/**
 * End to end: the emperor's own `uid`/`gid`/`cap` (issue 22). The uWSGI emperor.ini of
 * the issue runs as written: the emperor drops to a user of its own keeping only
 * CAP_SETUID and CAP_SETGID, vassals run as their owners with no capabilities at all, and
 * `stats` answers. Every claim is read from /proc/PID/status of the real processes. Needs
 * root (to add users and start as root, as systemd does).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { capabilityNumber, parseCapabilities } from '@emperor/config';
import {
  FIXTURES,
  ROOT,
  descendants,
  freePort,
  isAlive,
  parentOf,
  pidIn,
  procStatus,
  serving,
  spawnEmperor,
  spawnProcess,
  statsOf,
  tempDir,
  waitFor,
  type EmperorStatsDoc,
  type Spawned,
} from '../helpers/index.js';

const skip = process.getuid?.() !== 0 ? 'needs root' : false;
const NODE_APP = join(FIXTURES, 'apps', 'basic.mjs');
const WSGI_APP = join(FIXTURES, 'apps', 'wsgi_app.py');
const EMPEROR_BIN = join(ROOT, 'packages', 'cli', 'dist', 'bundle', 'emperor.js');
const LISTENER = join(FIXTURES, 'bin', 'notify-listener.py');
const WWW_DATA = 33;
const DAEMON = 1;
/** CAP_SETGID (6) and CAP_SETUID (7). */
const SETGID_SETUID = 0xc0n;
const CAP_FIELDS = ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'] as const;

type Caps = Record<(typeof CAP_FIELDS)[number], bigint>;

function capsOf(pid: number): Caps {
  const out = {} as Caps;
  for (const field of CAP_FIELDS) out[field] = BigInt(`0x${procStatus(pid, field) ?? 'x'}`);
  return out;
}

/** The capability sets of a process that `user` starts without `cap` (`su USER -c 'grep Cap /proc/self/status'`). */
function plainUserCaps(user: string): Caps {
  const text = execFileSync('setpriv', ['--reuid', user, '--regid', user, '--init-groups', '--', 'grep', '^Cap', '/proc/self/status'], { encoding: 'utf8' });
  const out = {} as Caps;
  for (const field of CAP_FIELDS) out[field] = BigInt(`0x${new RegExp(`^${field}:\\s*([0-9a-f]+)`, 'm').exec(text)?.[1] ?? 'x'}`);
  return out;
}

const ids = (pid: number): string => `${procStatus(pid, 'Uid')?.split(/\s+/).join(' ')} / ${procStatus(pid, 'Gid')?.split(/\s+/).join(' ')}`;

/** A system user and group of our own, as `useradd --system` makes a `uwsgi` user; removed after the test. */
function addUser(t: TestContext, name: string): { uid: number; gid: number } {
  execFileSync('useradd', ['--system', '--no-create-home', '--user-group', '--shell', '/usr/sbin/nologin', name], { stdio: 'ignore' });
  t.after(() => execFileSync('userdel', ['--force', name], { stdio: 'ignore' }));
  const id = (flag: string): number => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** Asserts `pid` and every descendant run as uid/gid with the capabilities of a plain process of that user. */
function assertPlain(pid: number, uid: number, gid: number, plain: Caps, what: string): void {
  for (const p of [pid, ...descendants(pid)]) {
    assert.equal(ids(p), `${uid} ${uid} ${uid} ${uid} / ${gid} ${gid} ${gid} ${gid}`, `${what}: ids of ${p}`);
    const caps = capsOf(p);
    assert.deepEqual(
      { inh: caps.CapInh, prm: caps.CapPrm, eff: caps.CapEff, amb: caps.CapAmb, bnd: caps.CapBnd },
      { inh: 0n, prm: 0n, eff: 0n, amb: 0n, bnd: plain.CapBnd },
      `${what}: capabilities of ${p} (${readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ')})`,
    );
  }
}

interface Setup {
  readonly dir: string;
  readonly run: string;
  readonly vassals: string;
  readonly stats: string;
  readonly pidfile: string;
  readonly ini: string;
}

/**
 * The issue's layout: /etc/uwsgi.ini, /etc/uwsgi.d, /run/uwsgi owned by root (mode 0755),
 * so the emperor's user could create nothing there: the stats socket and the pidfile can
 * only be there because they were made before the drop.
 */
function layout(t: TestContext, emperorIni: (s: Omit<Setup, 'ini'>) => string): Setup {
  const dir = tempDir(t, 'emperor-priv-');
  chmodSync(dir, 0o755);
  const run = join(dir, 'run', 'uwsgi');
  mkdirSync(run, { recursive: true, mode: 0o755 });
  chmodSync(join(dir, 'run'), 0o755);
  const vassals = join(dir, 'uwsgi.d');
  mkdirSync(vassals, { mode: 0o755 });
  const base = { dir, run, vassals, stats: join(run, 'stats.sock'), pidfile: join(run, 'uwsgi.pid') };
  const ini = join(dir, 'uwsgi.ini');
  writeFileSync(ini, emperorIni(base), { mode: 0o600 }); // root's: the dropped emperor never reads it
  return { ...base, ini };
}

function vassal(setup: Setup, name: string, text: string, owner?: number): string {
  const path = join(setup.vassals, name);
  writeFileSync(path, text);
  if (owner !== undefined) chownSync(path, owner, owner);
  return path;
}

/** The emperor proper: the launcher's one child named `emperor`. */
async function emperorOf(launcher: Spawned): Promise<number> {
  return waitFor(() => descendants(launcher.pid).find((p) => parentOf(p) === launcher.pid && readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'emperor'), {
    message: `the emperor under launcher ${launcher.pid} (${launcher.logs.tail(5)})`,
    timeoutMs: 30_000,
  });
}

async function vassalDoc(stats: string, id: string, predicate: (v: EmperorStatsDoc['vassals'][number]) => boolean, message: string) {
  return waitFor(async () => {
    const v = (await statsOf<EmperorStatsDoc>(stats)).vassals.find((x) => x.id === id);
    return v !== undefined && predicate(v) ? v : undefined;
  }, { message: `${id}: ${message}`, timeoutMs: 30_000 });
}

test('the issue\'s uWSGI emperor.ini runs as written: the emperor as its user with setgid,setuid only, tyrant vassals as their owners with no capabilities, stats answering', { skip }, async (t) => {
  const user = `empu${process.pid}`;
  const me = addUser(t, user);
  const [nodePort, pyPort] = [await freePort(), await freePort()];
  const setup = layout(t, (s) => [
    '[uwsgi]',
    `uid = ${user}`,
    `gid = ${user}`,
    `pidfile = ${s.pidfile}`,
    `emperor = ${s.vassals}`,
    `stats = ${s.stats}`,
    'emperor-tyrant = true',
    'cap = setgid,setuid',
    'plugins = python3',
    'emperor-freq = 1',
  ].join('\n'));
  vassal(setup, 'shop.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:${nodePort}\nmodule = ${NODE_APP}\nprocesses = 2\n`, DAEMON);
  // A Python vassal: root's PATH starts with pyenv shims under /root (mode 0700), which www-data cannot run.
  vassal(setup, 'blog.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:${pyPort}\nwsgi-file = ${WSGI_APP}\nprocesses = 1\n`, WWW_DATA);
  const launcher = spawnEmperor(t, ['--ini', setup.ini]);

  const shop = await vassalDoc(setup.stats, 'shop.ini', (v) => v.ready === 1, 'ready');
  const blog = await vassalDoc(setup.stats, 'blog.ini', (v) => v.ready === 1, 'ready');
  await serving(`http://127.0.0.1:${nodePort}/`);
  await serving(`http://127.0.0.1:${pyPort}/`);
  const emperor = await emperorOf(launcher);

  // The emperor: the configured user, its groups, and exactly setgid + setuid.
  assert.equal(ids(emperor), `${me.uid} ${me.uid} ${me.uid} ${me.uid} / ${me.gid} ${me.gid} ${me.gid} ${me.gid}`);
  const caps = capsOf(emperor);
  assert.deepEqual([caps.CapEff, caps.CapPrm, caps.CapInh, caps.CapAmb], [SETGID_SETUID, SETGID_SETUID, SETGID_SETUID, SETGID_SETUID]);
  assert.equal(caps.CapBnd, capsOf(process.pid).CapBnd, 'the bounding set is left as it was');
  // The launcher (the pid systemd or the terminal knows) dropped too, and kept nothing.
  assert.equal(ids(launcher.pid), `${me.uid} ${me.uid} ${me.uid} ${me.uid} / ${me.gid} ${me.gid} ${me.gid} ${me.gid}`);
  assert.deepEqual([capsOf(launcher.pid).CapEff, capsOf(launcher.pid).CapPrm, capsOf(launcher.pid).CapAmb], [0n, 0n, 0n]);

  // Vassals: the files' owners, no capabilities, the bounding set of a plain process of that user.
  assertPlain(shop.pid, DAEMON, DAEMON, plainUserCaps('daemon'), 'shop.ini (daemon)');
  assertPlain(blog.pid, WWW_DATA, WWW_DATA, plainUserCaps('www-data'), 'blog.ini (www-data)');
  assert.equal(descendants(shop.pid).length, 2);
  const python = launcher.logs.find((l) => l.vassal === 'blog.ini' && /^python interpreter: /.test(l.msg ?? ''))[0];
  assert.match(python?.msg ?? '', /^python interpreter: \/usr\/bin\/python3 \(Python 3\.\d+\.\d+, from PATH; skipped \/root\/.*: uid 33 \(www-data\) cannot search or execute them\)$/);

  // stats answers at the address written, from the emperor proper; made by root, given to the emperor's user.
  const doc = await statsOf<EmperorStatsDoc & { uid: number }>(setup.stats);
  assert.equal(doc.pid, emperor);
  assert.equal(doc.uid, me.uid);
  const sock = statSync(setup.stats);
  assert.deepEqual([sock.isSocket(), sock.uid, sock.mode & 0o777], [true, me.uid, 0o600]);
  assert.equal(statSync(setup.run).uid, 0, 'the directory stays root\'s');
  assert.equal(readFileSync(setup.pidfile, 'utf8'), `${launcher.pid}\n`, 'the pidfile names the process signals reach');
  assert.equal(launcher.logs.find((l) => l.level !== undefined && l.level >= 50).length, 0, launcher.logs.tail());
  assert.equal(launcher.logs.find((l) => l.option === 'plugins' && l.level === 40).length, 1, 'plugins is named once');

  // SIGUSR1 opens no inspector in the emperor (which holds CAP_SETUID) or the launcher.
  process.kill(emperor, 'SIGUSR1');
  process.kill(launcher.pid, 'SIGUSR1');
  await launcher.logs.waitFor((l) => l.pid === emperor && /^SIGUSR1: 2 vassal\(s\); the inspector stays off/.test(l.msg ?? ''), { message: 'the emperor\'s SIGUSR1 line' });
  await launcher.logs.waitFor((l) => l.pid === launcher.pid && /^SIGUSR1 ignored by the launcher/.test(l.msg ?? ''), { message: 'the launcher\'s SIGUSR1 line' });
  assert.equal(launcher.logs.find((l) => /Debugger listening/.test(l.raw)).length, 0);

  // Signals to the launcher reach the emperor: SIGHUP reloads every vassal (new workers).
  const oldWorkers = descendants(shop.pid);
  process.kill(launcher.pid, 'SIGHUP');
  await waitFor(() => { const now = descendants(shop.pid); return now.length === 2 && now.every((p) => !oldWorkers.includes(p)) ? now : undefined; }, { message: 'shop.ini reloaded its workers', timeoutMs: 30_000 });
  assertPlain(shop.pid, DAEMON, DAEMON, plainUserCaps('daemon'), 'shop.ini after a reload');

  // SIGTERM to the launcher: everything stops in order, exit 0.
  const tree = [launcher.pid, ...descendants(launcher.pid)];
  process.kill(launcher.pid, 'SIGTERM');
  assert.deepEqual(await launcher.exited, { code: 0, signal: null });
  for (const p of tree) await waitFor(() => !isAlive(p), { message: `process ${p} gone`, timeoutMs: 15_000 });
  assert.ok(existsSync(setup.pidfile), 'in a directory only root may change, the pidfile stays (as uWSGI\'s does after a drop)');
});

test('without tyrant mode, each vassal\'s uid; masters bind as their user (no port below 1024, chown-socket only to themselves); a hung master of another user is still killed', { skip }, async (t) => {
  const user = `empv${process.pid}`;
  const me = addUser(t, user);
  const [p1, p2] = [await freePort(), await freePort()];
  const setup = layout(t, (s) => `[uwsgi]\nuid = ${user}\ncap = setgid,setuid\nemperor = ${s.vassals}\nemperor-stats = ${s.stats}\nemperor-required-heartbeat = 2\n`);
  vassal(setup, 'www.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:${p1}\nmodule = ${NODE_APP}\nuid = www-data\ngid = www-data\nheartbeat = 1\n`);
  vassal(setup, 'own.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:${p2}\nmodule = ${NODE_APP}\n`);
  vassal(setup, 'low.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:81\nmodule = ${NODE_APP}\nuid = www-data\n`);
  const sockets = join(setup.dir, 'sockets');
  mkdirSync(sockets, { mode: 0o755 });
  chownSync(sockets, WWW_DATA, WWW_DATA);
  vassal(setup, 'chown.ini', `[uwsgi]\nsocket = ${join(sockets, 'app.sock')}\nmodule = ${NODE_APP}\nuid = www-data\nchown-socket = daemon\n`);
  vassal(setup, 'root.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:${await freePort()}\nmodule = ${NODE_APP}\nuid = root\n`);
  const launcher = spawnEmperor(t, ['--ini', setup.ini]);
  const root = await vassalDoc(setup.stats, 'root.ini', (v) => v.state === 'config-error', 'refused');
  assert.match(root.last_error, /root\.ini: refused: its uid\/gid ask to run it as root \(uid 0 gid 0\).*never starts a vassal as root/);
  // (Containers often lower net.ipv4.ip_unprivileged_port_start, and then anyone may bind port 81.)
  if (Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')) > 81) {
    const low = await launcher.logs.waitFor((l) => l.vassal === 'low.ini' && l.code === 'ERR_SOCKET_BIND', { message: 'low.ini cannot bind', timeoutMs: 30_000 });
    assert.match(low.msg ?? '', /low\.ini:2: http-socket: 127\.0\.0\.1:81: cannot bind: permission denied \(ports below 1024 need root\)/);
  }
  const chown = await launcher.logs.waitFor((l) => l.vassal === 'chown.ini' && l.code === 'ERR_SOCKET_BIND', { message: 'chown.ini cannot chown', timeoutMs: 30_000 });
  assert.match(chown.msg ?? '', /chown\.ini:2: socket: .*app\.sock: cannot set owner or mode: EPERM/);
  // Ready, and heartbeating (emperor-required-heartbeat counts from the first heartbeat).
  const www = await vassalDoc(setup.stats, 'www.ini', (v) => v.ready === 1 && v.last_heartbeat > 0, 'ready and heartbeating');
  const own = await vassalDoc(setup.stats, 'own.ini', (v) => v.ready === 1, 'ready');
  assertPlain(www.pid, WWW_DATA, WWW_DATA, plainUserCaps('www-data'), 'www.ini (uid = www-data)');
  assertPlain(own.pid, me.uid, me.gid, plainUserCaps(user), 'own.ini (no uid: the emperor\'s user)');
  assert.equal(pidIn(await serving(`http://127.0.0.1:${p1}/`)) > 0, true);

  // Stop the www-data master: its heartbeats stop, and the emperor (not root, no
  // CAP_KILL) must SIGKILL a process of another user.
  process.kill(www.pid, 'SIGSTOP');
  const killed = await launcher.logs.waitFor((l) => l.vassal === 'www.ini' && /sent no heartbeat/.test(l.msg ?? ''), { message: 'the heartbeat kill', timeoutMs: 15_000 });
  assert.match(killed.msg ?? '', new RegExp(`killing master pid ${www.pid}`));
  await waitFor(() => !isAlive(www.pid), { message: `master ${www.pid} killed` });
  const again = await vassalDoc(setup.stats, 'www.ini', (v) => v.ready === 1 && v.pid !== www.pid, 'respawned');
  assertPlain(again.pid, WWW_DATA, WWW_DATA, plainUserCaps('www-data'), 'www.ini respawned');

  // The launcher killed outright: the emperor gets its parent-death signal (SIGTERM) and
  // stops every vassal, those of other users included.
  const tree = descendants(launcher.pid);
  process.kill(launcher.pid, 'SIGKILL');
  for (const p of tree) await waitFor(() => !isAlive(p), { message: `process ${p} gone after the launcher's SIGKILL`, timeoutMs: 15_000 });
  assert.ok(launcher.logs.find((l) => l.msg === 'emperor stopped').length === 1, launcher.logs.tail());
});

test('without cap, the dropped emperor runs vassals as itself only: another uid is refused once, with the file, the users and the fix', { skip }, async (t) => {
  const user = `empw${process.pid}`;
  const me = addUser(t, user);
  const [p1, p2] = [await freePort(), await freePort()];
  const setup = layout(t, (s) => `[uwsgi]\nuid = ${user}\ngid = ${user}\nemperor = ${s.vassals}\nemperor-stats = ${s.stats}\nemperor-freq = 1\n`);
  vassal(setup, 'other.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:${p1}\nmodule = ${NODE_APP}\nuid = www-data\n`);
  vassal(setup, 'mine.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:${p2}\nmodule = ${NODE_APP}\n`);
  const launcher = spawnEmperor(t, ['--ini', setup.ini]);
  const mine = await vassalDoc(setup.stats, 'mine.ini', (v) => v.ready === 1, 'ready');
  const emperor = await emperorOf(launcher);
  assert.deepEqual([capsOf(emperor).CapEff, capsOf(emperor).CapPrm, capsOf(emperor).CapAmb], [0n, 0n, 0n], 'no cap: no capabilities');
  assertPlain(mine.pid, me.uid, me.gid, plainUserCaps(user), 'mine.ini');
  const other = await vassalDoc(setup.stats, 'other.ini', (v) => v.state === 'config-error', 'refused');
  const expected = `${join(setup.vassals, 'other.ini')}: refused: its uid/gid ask to run it as www-data (uid 33 gid 33), but the emperor runs as ${user} (uid ${me.uid} gid ${me.gid}) ` +
    `without the setuid and setgid capabilities, so it can start vassals only as ${user}. Add cap = setgid,setuid next to uid in the emperor's configuration, or remove uid and gid from this vassal`;
  assert.equal(other.last_error, expected);
  assert.equal(other.pid, -1);
  // Later scans (a new file, and the rescans while it starts) do not say it again.
  const p3 = await freePort();
  vassal(setup, 'later.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:${p3}\nmodule = ${NODE_APP}\n`);
  await vassalDoc(setup.stats, 'later.ini', (v) => v.ready === 1, 'ready');
  const said = launcher.logs.find((l) => l.code === 'ERR_PRIVILEGE');
  assert.equal(said.length, 1, launcher.logs.tail());
  assert.equal(said[0]?.msg, expected);
  assert.equal(said[0]?.file, join(setup.vassals, 'other.ini'));

  // Fixed in the file: the vassal starts at once.
  vassal(setup, 'other.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:${p1}\nmodule = ${NODE_APP}\n`);
  await vassalDoc(setup.stats, 'other.ini', (v) => v.ready === 1, 'started once its uid was removed');
});

test('as the shipped unit runs it (User=, AmbientCapabilities=, CapabilityBoundingSet=, NoNewPrivileges= applied with setpriv), the shipped emperor.ini starts tyrant vassals as their owners; sd_notify READY=1 arrives', { skip }, async (t) => {
  // The unit and the ini as shipped; only paths and the user's name are changed.
  const unit = readFileSync(join(ROOT, 'docs', 'systemd', 'emperor.service'), 'utf8');
  const setting = (name: string): string[] => new RegExp(`^${name}=(.*)$`, 'm').exec(unit)?.[1]?.trim().split(/\s+/) ?? [];
  const capNames = (name: string): string[] => setting(name).map((c) => c.replace(/^CAP_/, '').toLowerCase());
  const bounding = capNames('CapabilityBoundingSet');
  const ambient = capNames('AmbientCapabilities');
  assert.deepEqual(bounding, ['setuid', 'setgid'], 'the unit limits the bounding set to what cap needs');
  assert.deepEqual(ambient, ['setuid', 'setgid']);
  assert.deepEqual([setting('User'), setting('NoNewPrivileges'), setting('NotifyAccess')], [['emperor'], ['yes'], ['all']]);
  const shipped = readFileSync(join(ROOT, 'docs', 'systemd', 'emperor.ini'), 'utf8');
  assert.match(shipped, /^uid = emperor$/m);
  assert.match(shipped, /^cap = setgid,setuid$/m);
  const user = `empx${process.pid}`;
  const me = addUser(t, user);
  const port = await freePort();
  const setup = layout(t, (s) => shipped
    .replaceAll('/etc/emperor.d', s.vassals)
    .replaceAll('/run/emperor', s.run)
    .replace(/^uid = .*$/m, `uid = ${user}`)
    .replace(/^gid = .*$/m, `gid = ${user}`));
  chmodSync(setup.ini, 0o644);
  chownSync(setup.run, me.uid, me.gid); // RuntimeDirectory= belongs to User=
  const stats = /^emperor-stats = (\S+)$/m.exec(readFileSync(setup.ini, 'utf8'))?.[1] ?? '';
  assert.ok(stats.startsWith(setup.run), stats);
  vassal(setup, 'app.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${NODE_APP}\n`, WWW_DATA);
  vassal(setup, 'root.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:${await freePort()}\nmodule = ${NODE_APP}\n`);

  const notify = `@emperor-priv-${process.pid}`;
  const listener = spawn('python3', [LISTENER, notify], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => listener.kill('SIGKILL'));
  let heard = '';
  listener.stdout.setEncoding('utf8').on('data', (chunk: string) => { heard += chunk; });
  await waitFor(() => heard.includes('listening'), { message: 'the notify listener' });

  // What systemd does for such a unit: bounding set, no_new_privs, then the user with the ambient capabilities.
  const plus = (names: string[]): string => names.map((c) => `+${c}`).join(',');
  const emperor = spawnProcess(t, 'setpriv', [
    '--bounding-set', `-all,${plus(bounding)}`, '--no-new-privs',
    '--reuid', user, '--regid', user, '--init-groups', '--inh-caps', plus(ambient), '--ambient-caps', plus(ambient),
    '--', process.execPath, EMPEROR_BIN, '--ini', setup.ini,
  ], { env: { NOTIFY_SOCKET: notify } });
  const app = await vassalDoc(stats, 'app.ini', (v) => v.ready === 1, 'ready');
  await serving(`http://127.0.0.1:${port}/`);
  const names = parseCapabilities({ file: 'emperor.service', line: 0, name: 'CapabilityBoundingSet', value: bounding.join(',') });
  const unitBounding = names.reduce((mask, name) => mask | (1n << BigInt(capabilityNumber(name))), 0n);
  assertPlain(app.pid, WWW_DATA, WWW_DATA, { ...plainUserCaps('www-data'), CapBnd: unitBounding }, 'app.ini under the unit');
  assert.equal(procStatus(app.pid, 'NoNewPrivs'), '1');
  // No launcher: the process systemd starts is the emperor, as its user, with exactly these two.
  assert.equal(ids(emperor.pid), `${me.uid} ${me.uid} ${me.uid} ${me.uid} / ${me.gid} ${me.gid} ${me.gid} ${me.gid}`);
  assert.deepEqual([capsOf(emperor.pid).CapEff, capsOf(emperor.pid).CapBnd], [SETGID_SETUID, unitBounding]);
  assert.equal(emperor.logs.find((l) => l.level !== undefined && l.level >= 40 && l.code !== 'ERR_TYRANT').length, 0, emperor.logs.tail());
  // Tyrant mode still refuses a root-owned file.
  await emperor.logs.waitFor((l) => l.code === 'ERR_TYRANT' && /root\.ini: refused/.test(l.msg ?? ''), { message: 'root.ini refused', timeoutMs: 30_000 });
  // READY=1 reaches the notify socket from systemd-notify run by a non-root emperor,
  // with its own pid (not the unit's main pid): hence NotifyAccess=all.
  const ready = await waitFor(() => heard.split('\n').filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { pid: number; fields: Record<string, string> })
    .find((n) => n.fields.READY === '1'), { message: `READY=1 (heard: ${heard})`, timeoutMs: 30_000 });
  assert.notEqual(ready.pid, emperor.pid);
  assert.ok(ready.pid > 0);
  emperor.child.kill('SIGTERM');
  assert.deepEqual(await emperor.exited, { code: 0, signal: null });
});
