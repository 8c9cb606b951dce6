/**
 * End to end: on-demand vassals (`emperor-on-demand-*`, uWSGI core/emperor.c) and `idle`
 * (cheap mode, `die-on-idle`), with the built `emperor` on a temporary directory,
 * asserted through HTTP and uwsgi requests, the emperor's stats, its logs and /proc.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { existsSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FIXTURES,
  descendants,
  freePort,
  httpGet,
  isAlive,
  spawnEmperor,
  statsOf,
  tempDir,
  waitFor,
  type LogLine,
  type Spawned,
} from '../helpers/index.js';
import { nginxVars, uwsgiRequest } from '../helpers/wire.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');
const WSGI_APP = join(FIXTURES, 'apps', 'wsgi_app.py');

interface OnDemandVassal {
  id: string;
  pid: number;
  state: string;
  on_demand: string;
  cold_starts: number;
  last_error: string;
}

function startEmperor(t: import('node:test').TestContext, dir: string, onDemand: string[]): { emperor: Spawned; stats: string } {
  const stats = join(dir, 'emperor.stats');
  const emperor = spawnEmperor(t, ['--emperor', join(dir, 'vassals'), '--emperor-stats', stats, '--emperor-freq', '1', ...onDemand]);
  return { emperor, stats };
}

async function vassalOf(stats: string, id: string, ready: (v: OnDemandVassal) => boolean, message: string): Promise<OnDemandVassal> {
  return waitFor(async () => {
    const doc = await statsOf<{ vassals: OnDemandVassal[] }>(stats);
    const v = doc.vassals.find((x) => x.id === id);
    return v !== undefined && ready(v) ? v : undefined;
  }, { message: `${id}: ${message}`, timeoutMs: 20_000 });
}

/** A request that may start a vassal: on a loaded 2-core host a Node cold start took seconds, so it gets 30 s. */
const coldGet = (url: string) => httpGet(url, { signal: AbortSignal.timeout(30_000) });

const msg = (re: RegExp) => (l: LogLine): boolean => re.test(l.msg ?? '');

test('an on-demand Node vassal over http-socket: no master until the first request; concurrent first requests all answered; die-on-idle returns it to on demand with nothing left running; the next request starts it again', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'vassals'));
  const port = await freePort();
  writeFileSync(join(dir, 'vassals', 'shop.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 2\nidle = 2\ndie-on-idle = true\n`);
  writeFileSync(join(dir, 'vassals', 'shop.ini.socket'), `127.0.0.1:${port}\n`);
  const { emperor, stats } = startEmperor(t, dir, ['--emperor-on-demand-extension', '.socket']);

  const waiting = await vassalOf(stats, 'shop.ini', (v) => v.state === 'on-demand', 'waiting on its socket');
  assert.deepEqual({ pid: waiting.pid, on_demand: waiting.on_demand, cold_starts: waiting.cold_starts }, { pid: -1, on_demand: `127.0.0.1:${port}`, cold_starts: 0 });
  await emperor.logs.waitFor(msg(new RegExp(`^shop\\.ini -> "on demand" instance detected, waiting for connections on socket "127\\.0\\.0\\.1:${port}" \\.\\.\\.$`)));
  assert.deepEqual(descendants(emperor.pid), [], 'no master before the first connection');
  // A change while it waits is noted, and starts nothing (uWSGI's line).
  writeFileSync(join(dir, 'vassals', 'shop.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 2\nidle = 2\ndie-on-idle = true\n# changed\n`);
  await emperor.logs.waitFor(msg(/^updated configuration for "on demand" instance shop\.ini$/));
  assert.deepEqual(descendants(emperor.pid), [], 'still no master');

  // Several first requests at once: the one the emperor accepted is relayed, the others
  // wait in the socket's queue for the workers. None is refused.
  const first = await Promise.all(Array.from({ length: 6 }, () => coldGet(`http://127.0.0.1:${port}/`)));
  for (const r of first) assert.equal(r.status, 200);
  const running = await vassalOf(stats, 'shop.ini', (v) => v.state === 'ready' && v.pid > 0, 'running');
  assert.equal(running.cold_starts, 1);
  const master = running.pid;
  const workers = await waitFor(() => {
    const d = descendants(master);
    return d.length === 2 ? d : undefined;
  }, { message: 'two workers' });

  // idle = 2 with die-on-idle: the master exits, the socket goes back to the emperor.
  await emperor.logs.waitFor(msg(new RegExp(`^shop\\.ini -> back to "on demand" mode, waiting for connections on socket "127\\.0\\.0\\.1:${port}" \\.\\.\\.$`)), { timeoutMs: 15_000 });
  const back = await vassalOf(stats, 'shop.ini', (v) => v.state === 'on-demand', 'back on demand');
  assert.equal(back.pid, -1);
  await waitFor(() => ![master, ...workers].some(isAlive), { message: 'master and workers gone' });
  assert.deepEqual(descendants(emperor.pid), [], 'nothing left running');
  assert.equal(emperor.logs.find(msg(/master died/)).length, 0, 'a voluntary exit is not a crash');

  const again = await coldGet(`http://127.0.0.1:${port}/`);
  assert.equal(again.status, 200, 'the next request cold-starts it and is answered');
  const second = await vassalOf(stats, 'shop.ini', (v) => v.pid > 0 && v.pid !== master, 'started again');
  assert.equal(second.cold_starts, 2);
});

test('an on-demand Python vassal on a unix uwsgi socket (emperor-on-demand-directory); idle without die-on-idle stops every worker and the next request is answered', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'vassals'));
  mkdirSync(join(dir, 'sockets'));
  const path = join(dir, 'sockets', 'blog.socket');
  // The vassal does not name the socket: it serves fd 0 with `protocol` (uWSGI's default, uwsgi).
  writeFileSync(join(dir, 'vassals', 'blog.ini'), `[uwsgi]\nwsgi-file = ${WSGI_APP}\nprocesses = 2\nidle = 2\n`);
  const { emperor, stats } = startEmperor(t, dir, ['--emperor-on-demand-directory', join(dir, 'sockets')]);

  const waiting = await vassalOf(stats, 'blog.ini', (v) => v.state === 'on-demand', 'waiting on its socket');
  assert.equal(waiting.on_demand, path);
  assert.deepEqual(descendants(emperor.pid), []);
  const answers = await Promise.all(Array.from({ length: 4 }, () => uwsgiRequest(path, nginxVars('GET', '/'), undefined, { timeoutMs: 30_000 })));
  for (const a of answers) assert.equal(a.status, 200, 'every first request is answered');
  const running = await vassalOf(stats, 'blog.ini', (v) => v.state === 'ready' && v.pid > 0, 'running');

  const served = new Set(answers.map((a) => Number(/^pid (\d+)/.exec(a.body.toString())?.[1])));
  assert.ok(served.size >= 1 && [...served].every((pid) => pid > 0));
  // Cheap mode: the master stays, its workers go (a Python vassal keeps the interpreter
  // its workers are forked from).
  await emperor.logs.waitFor((l) => l.vassal === 'blog.ini' && l.msg === 'cheap mode enabled: waiting for socket connection...', { timeoutMs: 15_000 });
  await waitFor(() => emperor.logs.find((l) => l.vassal === 'blog.ini' && /^worker \d+ \(pid \d+\) stopped \(cheap\)/.test(l.msg ?? '')).length === 2, { message: 'both workers stopped' });
  assert.ok(![...served].some(isAlive), 'the workers that served are gone');
  assert.ok(isAlive(running.pid));
  const woken = await uwsgiRequest(path, nginxVars('GET', '/'), undefined, { timeoutMs: 30_000 });
  assert.equal(woken.status, 200, 'the connection that ends cheap mode is answered');
  await emperor.logs.waitFor((l) => l.vassal === 'blog.ini' && /^cheap mode disabled: a connection is waiting; spawning 2 worker\(s\)$/.test(l.msg ?? ''));
  const still = await vassalOf(stats, 'blog.ini', (v) => v.pid > 0, 'still running');
  assert.equal(still.pid, running.pid, 'the same master');
  assert.equal(still.cold_starts, 1);
});

test('a bad on-demand socket (a busy port, a missing directory) is one error line naming the file and the socket; the other vassals serve', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'vassals'));
  const busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.after(() => busy.close());
  const busyPort = (busy.address() as net.AddressInfo).port;
  const [goodPort, plainPort] = [await freePort(), await freePort()];
  const file = (name: string): string => join(dir, 'vassals', name);
  writeFileSync(file('taken.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${busyPort}\nmodule = ${APP}\n`);
  writeFileSync(file('taken.ini.socket'), `127.0.0.1:${busyPort}`);
  writeFileSync(file('nodir.ini'), `[uwsgi]\nmodule = ${APP}\nprotocol = http\n`);
  writeFileSync(file('nodir.ini.socket'), join(dir, 'missing', 'nodir.sock'));
  writeFileSync(file('good.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${goodPort}\nmodule = ${APP}\n`);
  writeFileSync(file('good.ini.socket'), `127.0.0.1:${goodPort}`);
  writeFileSync(file('plain.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${plainPort}\nmodule = ${APP}\n`);
  const { emperor, stats } = startEmperor(t, dir, ['--emperor-on-demand-ext', '.socket']);

  const taken = await emperor.logs.waitFor((l) => l.vassal === 'taken.ini' && l.level === 50);
  assert.equal(taken.msg, `${file('taken.ini')}: on-demand socket "127.0.0.1:${busyPort}": cannot bind: address already in use (another process is listening there)`);
  const nodir = await emperor.logs.waitFor((l) => l.vassal === 'nodir.ini' && l.level === 50);
  assert.match(nodir.msg ?? '', new RegExp(`^${file('nodir.ini')}: on-demand socket "${join(dir, 'missing', 'nodir.sock')}": cannot bind: `));
  const v = await vassalOf(stats, 'taken.ini', (x) => x.state === 'config-error', 'refused');
  assert.equal(v.last_error, taken.msg);
  assert.equal((await coldGet(`http://127.0.0.1:${goodPort}/`)).status, 200, 'another on-demand vassal starts');
  assert.equal((await waitFor(async () => (await httpGet(`http://127.0.0.1:${plainPort}/`).catch(() => undefined))?.status)), 200, 'a vassal not on demand serves');
  assert.equal(emperor.logs.find((l) => l.vassal === 'taken.ini' && l.level === 50).length, 1, 'one line, not one per scan');
});

test('an emperor that dies leaves an idle on-demand unix socket behind; the next emperor removes it and binds it again, and its first request is answered', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'vassals'));
  mkdirSync(join(dir, 'sockets'));
  const path = join(dir, 'sockets', 'app.socket');
  writeFileSync(join(dir, 'vassals', 'app.ini'), `[uwsgi]\nmodule = ${APP}\nprotocol = http\n`);
  const first = startEmperor(t, dir, ['--emperor-on-demand-directory', join(dir, 'sockets')]);
  await vassalOf(first.stats, 'app.ini', (v) => v.state === 'on-demand', 'waiting');
  process.kill(first.emperor.pid, 'SIGKILL');
  await first.emperor.exited;
  const second = startEmperor(t, dir, ['--emperor-on-demand-directory', join(dir, 'sockets')]);
  await vassalOf(second.stats, 'app.ini', (v) => v.state === 'on-demand', 'waiting under the next emperor');
  const answer = await new Promise<string>((resolve, reject) => {
    const c = net.connect(path, () => c.write('GET / HTTP/1.0\r\nHost: x\r\n\r\n'));
    let data = '';
    c.on('data', (d) => { data += String(d); });
    c.on('end', () => resolve(data));
    c.on('error', reject);
  });
  assert.match(answer, /^HTTP\/1\.[01] 200/);
  const started = await vassalOf(second.stats, 'app.ini', (v) => v.pid > 0, 'started');
  assert.equal(started.cold_starts, 1);
  // Its file deleted: the vassal stops and its socket file goes.
  unlinkSync(join(dir, 'vassals', 'app.ini'));
  await waitFor(() => !isAlive(started.pid) && !existsSync(path), { message: 'master gone and socket file removed' });
});

test('an on-demand master that crashes: the emperor waits on its socket again, and the next request starts it again (a crash, not an idle exit)', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'vassals'));
  const port = await freePort();
  writeFileSync(join(dir, 'vassals', 'crash.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 2\n`);
  writeFileSync(join(dir, 'vassals', 'crash.ini.socket'), `127.0.0.1:${port}`);
  const { emperor, stats } = startEmperor(t, dir, ['--emperor-on-demand-extension', '.socket', '--emperor-throttle', '10']);
  await vassalOf(stats, 'crash.ini', (v) => v.state === 'on-demand', 'waiting');
  assert.equal((await coldGet(`http://127.0.0.1:${port}/`)).status, 200);
  const running = await vassalOf(stats, 'crash.ini', (v) => v.state === 'ready' && v.pid > 0, 'running');
  process.kill(running.pid, 'SIGKILL');
  await emperor.logs.waitFor(msg(/^vassal crash\.ini master died: /));
  await emperor.logs.waitFor(msg(/^crash\.ini -> back to "on demand" mode, waiting for connections on socket /));
  assert.equal((await vassalOf(stats, 'crash.ini', (v) => v.state === 'on-demand', 'waiting again')).pid, -1);
  assert.equal((await coldGet(`http://127.0.0.1:${port}/`)).status, 200, 'the next request starts it again');
  const again = await vassalOf(stats, 'crash.ini', (v) => v.pid > 0 && v.pid !== running.pid, 'started again');
  assert.equal(again.cold_starts, 2);
});

test('die-on-idle on a vassal that is not on demand: the master exits, is not respawned (state idle), and starts again when its file changes', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'vassals'));
  const port = await freePort();
  const file = join(dir, 'vassals', 'quiet.ini');
  writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nidle = 1\ndie-on-idle = true\n`);
  const { emperor, stats } = startEmperor(t, dir, []);
  const running = await vassalOf(stats, 'quiet.ini', (v) => v.state === 'ready' && v.pid > 0, 'running');
  await emperor.logs.waitFor(msg(/^vassal quiet\.ini stopped for idle \(die-on-idle\); it starts again when its file changes$/), { timeoutMs: 15_000 });
  const idle = await vassalOf(stats, 'quiet.ini', (v) => v.state === 'idle', 'idle');
  assert.deepEqual([idle.pid, idle.on_demand], [-1, '']);
  await waitFor(() => !isAlive(running.pid), { message: 'the master is gone' });
  assert.deepEqual(descendants(emperor.pid), []);
  assert.equal(emperor.logs.find(msg(/master died/)).length, 0, 'not a crash');
  writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nidle = 60\ndie-on-idle = true\n`);
  const again = await vassalOf(stats, 'quiet.ini', (v) => v.state === 'ready' && v.pid > 0, 'started by the file change');
  assert.notEqual(again.pid, running.pid);
  assert.equal((await httpGet(`http://127.0.0.1:${port}/`)).status, 200);
});
