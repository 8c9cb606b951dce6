/**
 * End to end: apps outlive the emperor (issue 19). Three vassals (two Node, one Python
 * WSGI) under steady keep-alive load; the emperor is SIGKILLed and a new one adopts the
 * masters; files change while no emperor runs; no emperor comes back; a user other
 * than the emperor's tries the control socket; a master of an older control version is
 * replaced gracefully.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  EMPEROR_BIN,
  FIXTURES,
  descendants,
  freePort,
  isAlive,
  serving,
  spawnEmperor,
  spawnNode,
  spawnProcess,
  statsOf,
  statsUntil,
  tempDir,
  waitFor,
  type EmperorStatsDoc,
  type Spawned,
} from '../helpers/index.js';
import { steadyLoad } from '../helpers/load.js';

const NODE_APP = join(FIXTURES, 'apps', 'basic.mjs');
const WSGI_APP = join(FIXTURES, 'apps', 'wsgi_app.py');

interface Setup {
  readonly dir: string;
  readonly vassals: string;
  readonly run: string;
  readonly urls: Record<string, string>;
  readonly stats: (name: string) => string;
  readonly emperorStats: string;
  /** Starts an emperor on the setup (a new stats socket path each time, so a dead one's file is not read). */
  emperor(t: TestContext, extra?: readonly string[], env?: NodeJS.ProcessEnv): { proc: Spawned; stats: string };
}

let emperorCount = 0;

/** Three vassals in a fresh directory, and a runtime directory for the control socket. */
async function setup(t: TestContext, adoptTimeout = 60): Promise<Setup> {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const vassals = join(dir, 'vassals.d');
  const run = join(dir, 'run');
  spawnSync('mkdir', ['-p', vassals]);
  const urls: Record<string, string> = {};
  const bodies: Record<string, (port: number) => string> = {
    'shop.ini': (port) => `http-socket = 127.0.0.1:${port}\nmodule = ${NODE_APP}\nprocesses = 2`,
    'blog.ini': (port) => `http-socket = 127.0.0.1:${port}\nwsgi-file = ${WSGI_APP}\nprocesses = 2`,
    'api.ini': (port) => `http-socket = 127.0.0.1:${port}\nmodule = ${NODE_APP}\nprocesses = 1`,
  };
  for (const [name, body] of Object.entries(bodies)) {
    const port = await freePort();
    urls[name] = `http://127.0.0.1:${port}/`;
    writeFileSync(join(vassals, name), `[uwsgi]\n${body(port)}\nstats = ${join(dir, `${name}.stats`)}\n`);
  }
  // Every master and worker is ended by pid after the test, whichever emperor it outlived.
  const masters = new Set<number>();
  t.after(() => {
    for (const pid of masters) {
      for (const p of [pid, ...descendants(pid)]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  });
  const stats = (name: string): string => join(dir, `${name}.stats`);
  return {
    dir,
    vassals,
    run,
    urls,
    stats,
    emperorStats: join(dir, 'emperor.stats'),
    emperor(tc, extra = [], env = {}) {
      const path = join(dir, `emperor-${++emperorCount}.stats`);
      const proc = spawnEmperor(tc, ['--emperor', vassals, '--emperor-runtime-dir', run, '--emperor-adopt-timeout', String(adoptTimeout), '--emperor-stats', path, ...extra], { env });
      // Remember the masters it runs for the cleanup above.
      const timer = setInterval(() => {
        for (const line of proc.logs.lines) {
          const pid = line.master_pid;
          if (typeof pid === 'number') masters.add(pid);
        }
      }, 200);
      timer.unref();
      tc.after(() => clearInterval(timer));
      return { proc, stats: path };
    },
  };
}

/** The emperor's stats once every vassal is ready. */
function allReady(stats: string, count = 3): Promise<EmperorStatsDoc> {
  return waitFor(async () => {
    const doc = await statsOf<EmperorStatsDoc>(stats);
    return doc.vassals.length === count && doc.vassals.every((v) => v.state === 'ready') ? doc : undefined;
  }, { timeoutMs: 30_000, message: `${count} vassals ready on ${stats}` });
}

/** Worker pids of each vassal, from its stats socket, once all its workers accept. */
async function workerPids(s: Setup, names: readonly string[]): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const name of names) {
    const doc = await statsUntil(s.stats(name), (d) => d.workers.length > 0 && d.workers.every((w) => w.accepting === 1 && w.pid > 0), { timeoutMs: 20_000 });
    out.set(name, doc.workers.map((w) => w.pid).sort((a, b) => a - b));
  }
  return out;
}

const NAMES = ['api.ini', 'blog.ini', 'shop.ini'];
const NOBODY = 65534;

test('SIGKILL the emperor under load, start a new one: zero failed requests, the same masters and workers, stats continued', async (t) => {
  const s = await setup(t);
  const first = s.emperor(t);
  const before = await allReady(first.stats);
  const pidsBefore = await workerPids(s, NAMES);
  for (const url of Object.values(s.urls)) await serving(url);
  const load = steadyLoad(Object.values(s.urls));
  await waitFor(() => load.counts.ok > 50, { message: 'load running' });

  process.kill(first.proc.pid, 'SIGKILL');
  await first.proc.exited;
  // Orphaned, the masters keep serving and knock on the control socket.
  await waitFor(() => first.proc.logs.lines.filter((l) => /^lost the emperor; serving on/.test(l.msg ?? '')).length === 3, { message: 'three masters waiting for a new emperor' });
  const served = load.counts.ok;
  await waitFor(() => load.counts.ok > served + 50, { message: 'answers while no emperor runs' });

  const second = s.emperor(t);
  const after = await allReady(second.stats);
  await waitFor(() => second.proc.logs.lines.some((l) => /^adopted 3 vassal\(s\)/.test(l.msg ?? '')), { message: 'adoption logged' });
  const counted = load.counts.ok;
  await waitFor(() => load.counts.ok > counted + 50, { message: 'answers after adoption' });
  const counts = await load.stop();
  t.diagnostic(`SIGKILL + new emperor: ${counts.ok} answers, ${counts.failed.length} failed, longest gap ${counts.longestGapMs.toFixed(1)} ms`);
  assert.deepEqual(counts.failed, []);

  assert.notEqual(after.pid, before.pid);
  for (const v of before.vassals) {
    const a = after.vassals.find((x) => x.id === v.id);
    assert.ok(a, v.id);
    assert.equal(a.pid, v.pid, `${v.id}: the same master`);
    assert.equal(a.respawns, v.respawns);
    assert.equal(a.last_mod, v.last_mod);
    assert.equal((a as unknown as { born: number }).born, (v as unknown as { born: number }).born, `${v.id}: its original born`);
  }
  assert.deepEqual(await workerPids(s, NAMES), pidsBefore, 'the same worker pids');
  for (const [url, pids] of counts.pids) {
    const name = Object.entries(s.urls).find(([, u]) => u === url)?.[0] ?? '';
    const original = pidsBefore.get(name) ?? [];
    assert.ok(pids.size > 0 && [...pids].every((p) => original.includes(p)), `${name}: answered by its original workers only (${[...pids].join(' ')} of ${original.join(' ')})`);
  }

  // The new emperor stops the adopted vassals as its own: gracefully, leases removed.
  process.kill(second.proc.pid, 'SIGTERM');
  assert.deepEqual(await second.proc.exited, { code: 0, signal: null });
  for (const v of before.vassals) assert.equal(isAlive(v.pid), false, `${v.id} master stopped`);
  assert.deepEqual(readdirNames(join(s.run, 'leases')), []);
});

function readdirNames(dir: string): string[] {
  return spawnSync('ls', ['-A', dir], { encoding: 'utf8' }).stdout.split('\n').filter((n) => n !== '');
}

test('files changed while no emperor ran: touched is reloaded, deleted is stopped, added is started, the unchanged one simply adopted', async (t) => {
  const s = await setup(t);
  const first = s.emperor(t);
  const before = await allReady(first.stats);
  const pidsBefore = await workerPids(s, NAMES);
  process.kill(first.proc.pid, 'SIGKILL');
  await first.proc.exited;

  const later = new Date(Date.now() + 5000);
  utimesSync(join(s.vassals, 'shop.ini'), later, later);
  unlinkSync(join(s.vassals, 'api.ini'));
  const port = await freePort();
  writeFileSync(join(s.vassals, 'new.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${NODE_APP}\nprocesses = 1\n`);
  const old = (name: string) => before.vassals.find((v) => v.id === name);

  const second = s.emperor(t);
  const after = await waitFor(async () => {
    const doc = await statsOf<EmperorStatsDoc>(second.stats);
    const ids = doc.vassals.map((v) => v.id).join(',');
    return ids === 'blog.ini,new.ini,shop.ini' && doc.vassals.every((v) => v.state === 'ready') ? doc : undefined;
  }, { timeoutMs: 30_000, message: 'blog, new and shop ready; api gone' });
  await serving(`http://127.0.0.1:${port}/`);
  // api.ini: its adopted master was stopped, gracefully.
  await waitFor(() => !isAlive(old('api.ini')?.pid ?? 0), { message: 'api master gone' });
  assert.ok(second.proc.logs.lines.some((l) => l.msg === 'stopping vassal api.ini'));
  // shop.ini: the same master, reloaded (new workers), one more respawn.
  const shop = after.vassals.find((v) => v.id === 'shop.ini');
  assert.equal(shop?.pid, old('shop.ini')?.pid);
  assert.equal(shop?.respawns, (old('shop.ini')?.respawns ?? 0) + 1);
  await waitFor(async () => {
    const pids = (await workerPids(s, ['shop.ini'])).get('shop.ini') ?? [];
    return pids.length === 2 && pids.every((p) => !(pidsBefore.get('shop.ini') ?? []).includes(p));
  }, { timeoutMs: 30_000, message: 'shop.ini reloaded onto new workers' });
  // blog.ini: adopted as it was.
  const blog = after.vassals.find((v) => v.id === 'blog.ini');
  assert.equal(blog?.pid, old('blog.ini')?.pid);
  assert.equal(blog?.respawns, old('blog.ini')?.respawns);
  assert.deepEqual((await workerPids(s, ['blog.ini'])).get('blog.ini'), pidsBefore.get('blog.ini'));
});

test('no emperor comes back: every master and worker is gone within emperor-adopt-timeout plus the mercy, and said why', async (t) => {
  const s = await setup(t, 2);
  const first = s.emperor(t);
  const doc = await allReady(first.stats);
  const tree = doc.vassals.flatMap((v) => [v.pid, ...descendants(v.pid)]);
  assert.ok(tree.length >= 3 + 5, `masters and workers: ${tree.join(' ')}`);
  process.kill(first.proc.pid, 'SIGKILL');
  await first.proc.exited;
  // The masters outlive the emperor (the old rule killed them within 5 s; here they
  // serve until the timeout)...
  for (const url of Object.values(s.urls)) await serving(url);
  // ... and then stop gracefully: 2 s + the workers' mercy (they are idle: at once).
  await waitFor(() => tree.every((pid) => !isAlive(pid)), { timeoutMs: 2000 + 60_000, message: `every process gone (alive: ${tree.filter(isAlive).join(' ')})` });
  const said = first.proc.logs.lines.filter((l) => /^no emperor adopted this vassal within 2 s \(emperor-adopt-timeout\); stopping gracefully$/.test(l.msg ?? ''));
  assert.equal(said.length, 3);
});

test('emperor-adopt-timeout = 0: the old rule, vassals stop with the emperor', async (t) => {
  const s = await setup(t, 0);
  const first = s.emperor(t);
  const doc = await allReady(first.stats);
  const tree = doc.vassals.flatMap((v) => [v.pid, ...descendants(v.pid)]);
  process.kill(first.proc.pid, 'SIGKILL');
  await waitFor(() => tree.every((pid) => !isAlive(pid)), { timeoutMs: 5000, message: 'every process gone within 5 s' });
  assert.equal(existsSync(join(s.run, 'control.sock')), false, 'no control socket');
});



test('a user other than the emperor\'s cannot use the control socket: no impersonation of a master or of the emperor, refused and logged', async (t) => {
  const s = await setup(t);
  const first = s.emperor(t);
  await allReady(first.stats);
  process.kill(first.proc.pid, 'SIGKILL');
  await first.proc.exited;
  const second = s.emperor(t);
  const doc = await allReady(second.stats);
  const shop = doc.vassals.find((v) => v.id === 'shop.ini');
  assert.ok(shop);
  const control = join(s.run, 'control.sock');
  // A vassal's user (nobody) claims to be shop.ini's master, proves nothing, tries
  // garbage, and tries to put its own socket where the emperor's is.
  const script = join(s.dir, 'intruder.mjs');
  writeFileSync(script, `
import net from 'node:net';
import { randomBytes } from 'node:crypto';
const path = ${JSON.stringify(control)};
const talk = (lines) => new Promise((resolve) => {
  const socket = net.createConnection(path);
  let got = '';
  socket.setEncoding('utf8');
  socket.on('connect', () => { for (const l of lines) socket.write(l + '\\n'); });
  socket.on('data', (c) => {
    got += c;
    const m = /"nonce":"([0-9a-f]+)"/.exec(got);
    if (m && !got.includes('sentproof')) { got += 'sentproof'; socket.write(JSON.stringify({ v: 1, type: 'proof', proof: randomBytes(32).toString('hex'), ready: true, accepting: true, loyal: true }) + '\\n'); }
  });
  socket.on('close', () => resolve(got));
  socket.on('error', (e) => resolve('error ' + e.code));
});
const out = {};
out.impersonate = await talk([JSON.stringify({ v: 1, type: 'hello', vassal: 'shop.ini', pid: ${shop.pid}, nonce: randomBytes(16).toString('hex') })]);
out.garbage = await talk(['{"v":1,"type":"stop"}']);
out.bind = await new Promise((resolve) => {
  const server = net.createServer().listen(path + '.fake', () => resolve('bound'));
  server.on('error', (e) => resolve(e.code));
});
console.log(JSON.stringify(out));
`);
  chmodSync(script, 0o644);
  const intruder = spawnNode(t, script, [], { uid: NOBODY, gid: NOBODY, cwd: '/' });
  assert.deepEqual(await intruder.exited, { code: 0, signal: null });
  const out = JSON.parse(intruder.stdout()) as Record<string, string>;
  assert.match(out.impersonate ?? '', /"type":"refused","reason":"it does not hold that vassal's lease \(wrong proof\)"/);
  assert.match(out.garbage ?? '', /"type":"refused"/);
  assert.equal(out.bind, 'EACCES', 'the runtime directory is the emperor\'s alone');
  const refusals = await waitFor(() => {
    const found = second.proc.logs.lines.filter((l) => l.code === 'ERR_CONTROL_AUTH');
    return found.length >= 2 ? found : undefined;
  }, { message: 'two refusals logged' });
  assert.match(refusals[0]?.msg ?? '', new RegExp(`^control socket: refused a peer claiming to be the master \\(pid ${shop.pid}\\) of vassal shop.ini: it does not hold that vassal's lease \\(wrong proof\\)$`));
  // Nothing changed: the real master is still shop.ini's, and serves.
  const again = await statsOf<EmperorStatsDoc>(second.stats);
  assert.equal(again.vassals.find((v) => v.id === 'shop.ini')?.pid, shop.pid);
  assert.equal(again.vassals.find((v) => v.id === 'shop.ini')?.state, 'ready');
  await serving(s.urls['shop.ini'] ?? '');
});

test('a master of an older control version is replaced gracefully: a new master first, then the old one stops', async (t) => {
  const s = await setup(t);
  const first = s.emperor(t, [], { EMPEROR_CONTROL_VERSION: '0' });
  const before = await allReady(first.stats);
  for (const url of Object.values(s.urls)) await serving(url);
  const load = steadyLoad(Object.values(s.urls));
  await waitFor(() => load.counts.ok > 50, { message: 'load running' });
  process.kill(first.proc.pid, 'SIGKILL');
  await first.proc.exited;

  const second = s.emperor(t);
  for (const name of NAMES) {
    const line = await waitFor(() => second.proc.logs.lines.find((l) => l.msg?.startsWith(`vassal ${name}: its master`)), { message: `${name}: version line` });
    const old = before.vassals.find((v) => v.id === name)?.pid;
    assert.equal(line.msg, `vassal ${name}: its master (pid ${old}) speaks control version 0, this emperor speaks 1: replacing it gracefully (a new master first, then the old one stops)`);
  }
  const after = await allReady(second.stats);
  for (const v of before.vassals) {
    const now = after.vassals.find((x) => x.id === v.id);
    assert.ok(now !== undefined && now.pid !== v.pid, `${v.id}: a new master`);
    await waitFor(() => !isAlive(v.pid), { timeoutMs: 30_000, message: `${v.id}: old master gone` });
  }
  const counted = load.counts.ok;
  await waitFor(() => load.counts.ok > counted + 50, { message: 'answers from the new masters' });
  const counts = await load.stop();
  t.diagnostic(`version replacement: ${counts.ok} answers, ${counts.failed.length} failed, longest gap ${counts.longestGapMs.toFixed(1)} ms`);
  // The old master's new-version successor binds the moment the old one lets go of the port.
  const started = second.proc.logs.lines.filter((l) => /^vassal .* started \(master pid \d+\)$/.test(l.msg ?? ''));
  const stopping = second.proc.logs.lines.filter((l) => /: stopping its old master \(pid \d+\) gracefully$/.test(l.msg ?? ''));
  assert.equal(started.length, 3);
  assert.equal(stopping.length, 3);
  assert.ok(second.proc.logs.lines.indexOf(started[2] as never) < second.proc.logs.lines.indexOf(stopping[0] as never), 'every new master is spawned before the first old one is asked to stop');
});

test('emperor upgrade under load: zero failed requests, a new emperor pid, the same masters and workers', async (t) => {
  const s = await setup(t);
  const first = s.emperor(t);
  const before = await allReady(first.stats);
  const pidsBefore = await workerPids(s, NAMES);
  for (const url of Object.values(s.urls)) await serving(url);
  const load = steadyLoad(Object.values(s.urls));
  await waitFor(() => load.counts.ok > 50, { message: 'load running' });

  const upgrade = spawnEmperor(t, ['upgrade', '--runtime-dir', s.run]);
  assert.deepEqual(await upgrade.exited, { code: 0, signal: null }, upgrade.logs.tail());
  const newPid = Number(/the new emperor is pid (\d+)/.exec(upgrade.stdout())?.[1]);
  assert.ok(newPid > 0 && newPid !== first.proc.pid, upgrade.stdout());
  t.after(async () => {
    if (!isAlive(newPid)) return;
    process.kill(newPid, 'SIGTERM');
    await waitFor(() => !isAlive(newPid), { timeoutMs: 20_000, message: 'the new emperor stopped' });
  });
  assert.deepEqual(await first.proc.exited, { code: 0, signal: null }, 'the old emperor exits 0');
  const after = await waitFor(async () => {
    const doc = await statsOf<EmperorStatsDoc>(first.stats);
    return doc.pid === newPid && doc.vassals.length === 3 && doc.vassals.every((v) => v.state === 'ready') ? doc : undefined;
  }, { timeoutMs: 30_000, message: 'the new emperor\'s stats on the same address' });
  const counted = load.counts.ok;
  await waitFor(() => load.counts.ok > counted + 50, { message: 'answers after the upgrade' });
  const counts = await load.stop();
  t.diagnostic(`emperor upgrade: ${counts.ok} answers, ${counts.failed.length} failed, longest gap ${counts.longestGapMs.toFixed(1)} ms`);
  assert.deepEqual(counts.failed, []);
  for (const v of before.vassals) {
    const a = after.vassals.find((x) => x.id === v.id);
    assert.equal(a?.pid, v.pid, `${v.id}: the same master`);
    assert.equal(a?.respawns, v.respawns);
  }
  assert.deepEqual(await workerPids(s, NAMES), pidsBefore, 'the same worker pids');
  // The upgrade command is refused a wrong key: asked as another user, it cannot read it.
  const denied = spawnEmperor(t, ['upgrade', '--runtime-dir', s.run], { uid: NOBODY, gid: NOBODY, cwd: '/' });
  assert.deepEqual(await denied.exited, { code: 1, signal: null });
  assert.match(denied.child.stderr === null ? '' : denied.logs.tail(), /cannot read .*admin\.key: EACCES/);
});

test('as the shipped unit runs it (the emperor as its own user with setuid,setgid; the master as www-data): the master is adopted, and stopped by the new emperor', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async (t) => {
  const DAEMON = 1;
  const WWW_DATA = 33;
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const vassals = join(dir, 'vassals.d');
  const run = join(dir, 'run');
  spawnSync('mkdir', ['-p', vassals, run]);
  spawnSync('chown', [`${DAEMON}:${DAEMON}`, run]); // RuntimeDirectory= belongs to User=
  const port = await freePort();
  writeFileSync(join(vassals, 'app.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${NODE_APP}\nprocesses = 1\nuid = www-data\ngid = www-data\n`);
  const stats = join(run, 'emperor.stats');
  const emperor = (): Spawned => spawnProcess(t, 'setpriv', [
    '--reuid', String(DAEMON), '--regid', String(DAEMON), '--init-groups', '--inh-caps', '+setuid,+setgid', '--ambient-caps', '+setuid,+setgid',
    '--', process.execPath, EMPEROR_BIN, '--emperor', vassals, '--emperor-stats', stats,
  ], { env: { RUNTIME_DIRECTORY: run } });
  const first = emperor();
  const ready = async (): Promise<EmperorStatsDoc> => waitFor(async () => {
    const doc = await statsOf<EmperorStatsDoc>(stats);
    return doc.vassals[0]?.state === 'ready' ? doc : undefined;
  }, { timeoutMs: 30_000, message: 'app.ini ready' });
  const before = await ready();
  const master = before.vassals[0]?.pid ?? 0;
  const workers = descendants(master);
  t.after(() => {
    for (const pid of [master, ...workers]) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  assert.equal(procStatusUid(master), WWW_DATA);
  process.kill(first.pid, 'SIGKILL');
  await first.exited;
  await serving(`http://127.0.0.1:${port}/`);
  const second = emperor();
  const after = await waitFor(async () => {
    const doc = await statsOf<EmperorStatsDoc>(stats);
    return doc.pid !== before.pid && doc.vassals[0]?.state === 'ready' ? doc : undefined;
  }, { timeoutMs: 30_000, message: 'the new emperor\'s stats' });
  assert.equal(after.vassals[0]?.pid, master, 'adopted');
  second.child.kill('SIGTERM');
  assert.deepEqual(await second.exited, { code: 0, signal: null }, second.logs.tail());
  assert.equal(isAlive(master), false, 'stopped by the emperor that adopted it');
  assert.ok(workers.every((pid) => !isAlive(pid)));
});

function procStatusUid(pid: number): number {
  return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
}
