/**
 * One vassal run standalone (`emperor --ini FILE`, like `uwsgi --ini`): the Node worker
 * runtime, app shapes, failures, sockets and files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { FIXTURES, ROOT, descendants, freePort, httpGet, isAlive, pidIn, procStatus, serving, spawnEmperor, startVassal, statsOf, tempDir, waitFor, type VassalStatsDoc } from '../helpers/index.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');

const vassal = startVassal;
const ok = (url: string): Promise<string> => serving(url);

test('app shapes: request listener, fetch app, an app that calls listen() itself, and a late listen()', async (t) => {
  const cases: [string, RegExp][] = [
    [APP, /^pid \d+/],
    [join(ROOT, 'examples', 'node-fetch', 'app.mjs'), /^fetch app in pid \d+: \/$/m],
    [join(ROOT, 'examples', 'node-server', 'server.cjs'), /"app":"node-server"/],
    [join(FIXTURES, 'apps', 'listen-late.cjs'), /^late \d+/],
  ];
  for (const [module, expected] of cases) {
    await t.test(module.split('/').slice(-2).join('/'), async (t2) => {
      const v = await vassal(t2, (port) => `http-socket = 127.0.0.1:${port}\nmodule = ${module}\nprocesses = 2`);
      assert.match(await ok(`${v.url}/`), expected);
    });
  }
});

test('node-args reach each Node worker\'s node, before the worker program: V8 takes the heap limit', async (t) => {
  const v = await vassal(t, (port) => `http-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 1\nnode-args = --max-old-space-size=97\nnode-args = --no-warnings`);
  await ok(`${v.url}/`);
  const seen = JSON.parse((await httpGet(`${v.url}/execargv`)).body) as { execArgv: string[]; heapLimit: number };
  assert.deepEqual(seen.execArgv, ['--max-old-space-size=97', '--no-warnings']);
  // 97 MiB of old space plus the young generation; without the flag, V8 allows over 1 GiB here.
  assert.ok(seen.heapLimit < 256 * 1024 * 1024, `heap limit ${seen.heapLimit} bytes`);
});

test('a fetch app receives the request body and method', async (t) => {
  const v = await vassal(t, (port) => `http-socket = 127.0.0.1:${port}\nmodule = ${join(ROOT, 'examples', 'node-fetch', 'app.mjs')}`);
  await ok(`${v.url}/`);
  const r = await httpGet(`${v.url}/x`, { method: 'POST', body: 'hello body' });
  assert.deepEqual(JSON.parse(r.body), { echo: 'hello body', length: 10 });
});

test('an app that calls listen() serves every vassal socket, not the port it asked for', async (t) => {
  const second = await freePort();
  const v = await vassal(t, (port) => `http-socket = 127.0.0.1:${port}\nhttp-socket = 127.0.0.1:${second}\nmodule = ${join(ROOT, 'examples', 'node-server', 'server.cjs')}`);
  assert.match(await ok(`${v.url}/a`), /"url":"\/a"/);
  assert.match(await ok(`http://127.0.0.1:${second}/b`), /"url":"\/b"/);
  await assert.rejects(httpGet('http://127.0.0.1:3000/'), 'nothing listens on the port the app asked for');
});

test('a module that throws at import: one error with its stack, respawns with a growing delay', async (t) => {
  const v = await vassal(t, (port) => `http-socket = 127.0.0.1:${port}\nmodule = ${join(FIXTURES, 'apps', 'throws-at-import.mjs')}`);
  const deaths = await waitFor(() => {
    const d = v.proc.logs.find((l) => /worker 1 \(pid \d+\) died: exit code 22/.test(l.msg ?? ''));
    return d.length >= 3 ? d : undefined;
  }, { message: 'three deaths of worker 1', timeoutMs: 10_000 });
  assert.deepEqual(deaths.slice(0, 3).map((d) => d.respawn_in_ms), [500, 1000, 2000]);
  const loadErrors = v.proc.logs.find((l) => /cannot load app .*throws-at-import\.mjs: this app is broken at import/.test(l.msg ?? ''));
  assert.ok(loadErrors.length >= 3);
  const err = loadErrors[0]?.err as { stack?: string } | undefined;
  assert.match(err?.stack ?? '', /throws-at-import\.mjs:2/);
});

test('an exception in a handler is a 500, counted, and the next request is served', async (t) => {
  const v = await vassal(t, (port) => `http-socket = 127.0.0.1:${port}\nmodule = ${APP}`);
  const stats = v.stats;
  await ok(`${v.url}/`);
  const r = await httpGet(`${v.url}/throw`);
  assert.equal(r.status, 500);
  assert.match(await ok(`${v.url}/`), /^pid /);
  const s = await waitFor(async () => {
    const doc = await statsOf<VassalStatsDoc>(stats);
    return doc.workers[0]?.exceptions === 1 ? doc : undefined;
  }, { message: 'exceptions = 1' });
  assert.equal(s.workers[0]?.respawn_count, 1, 'the worker did not die');
  assert.ok(v.proc.logs.find((l) => /exception in GET \/throw: boom from \/throw/.test(l.msg ?? '')).length === 1);
});

test('the master never accepts: every request is answered by a worker, also while all workers are replaced', async (t) => {
  const v = await vassal(t, (port) => `http-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 2`);
  const stats = v.stats;
  await ok(`${v.url}/`);
  const doc = await statsOf<VassalStatsDoc>(stats);
  const masterPid = doc.pid;
  const answeredBy = new Set<number>();
  const n = 200;
  let reloads = 0;
  const reloader = (async () => {
    while (reloads < 3) {
      process.kill(masterPid, 'SIGHUP');
      reloads++;
      await waitFor(async () => {
        const s = await statsOf<VassalStatsDoc>(stats);
        return s.state === 'ready' && s.workers.every((w) => w.accepting === 1) ? s : undefined;
      }, { message: 'reload finished' });
    }
  })();
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      new Promise<void>((resolve) => setTimeout(resolve, i * 10)).then(() => httpGet(`${v.url}/`).then((r) => r.body)),
    ),
  );
  await reloader;
  for (const body of results) answeredBy.add(Number(/pid (\d+)/.exec(body)?.[1]));
  assert.equal(results.length, n);
  assert.ok(!answeredBy.has(masterPid), 'the master answered nothing');
  assert.ok(answeredBy.size >= 3, `answered by ${answeredBy.size} worker processes across ${reloads} reloads`);
});

test('a unix http-socket gets chmod-socket; vacuum removes it and the pidfile on exit', async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'app.sock');
  const pidfile = join(dir, 'app.pid');
  const file = join(dir, 'v.ini');
  writeFileSync(file, `[uwsgi]\nhttp-socket = ${sock}\nchmod-socket = 660\nmodule = ${APP}\npidfile = ${pidfile}\nvacuum = true\nenv = GREETING=hi there\n`);
  const proc = spawnEmperor(t, ['--ini', file]);
  const body = await waitFor(() => new Promise<string | undefined>((resolve) => {
    const req = request({ socketPath: sock, path: '/env?k=GREETING' }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve(data));
    });
    req.on('error', () => resolve(undefined));
    req.end();
  }), { message: 'an answer on the unix socket' });
  assert.equal(body, 'hi there');
  assert.equal(statSync(sock).mode & 0o777, 0o660);
  assert.equal(readFileSync(pidfile, 'utf8'), `${proc.pid}\n`);
  proc.child.kill('SIGTERM');
  assert.equal((await proc.exited).code, 0);
  assert.ok(!existsSync(sock), 'socket removed');
  assert.ok(!existsSync(pidfile), 'pidfile removed');
});

test('without root, asking for another uid is a clear error', { skip: process.getuid?.() !== 0 ? 'needs root to start as nobody' : false }, async (t) => {
  const v = await vassal(t, (port) => `http-socket = 127.0.0.1:${port}\nmodule = ${APP}\nuid = root`, { uid: 65534, gid: 65534 });
  const exit = await v.proc.exited;
  assert.equal(exit.code, 69);
  const line = v.proc.logs.find((l) => l.level === 50);
  assert.equal(line.length, 1, v.proc.logs.tail());
  assert.match(line[0]?.msg ?? '', /uid root: running as nobody \(uid 65534\); switching user needs root/);
});

test('uid and gid: the workers take the user\'s supplementary groups (initgroups), and none of root\'s', { skip: process.getuid?.() !== 0 ? 'needs root to add a user' : false }, async (t) => {
  // A user of our own with a supplementary group: Debian's stock users have none.
  const name = `emp${process.pid}`;
  const sh = (cmd: string, args: string[]): void => {
    execFileSync(cmd, args, { stdio: 'ignore' });
  };
  sh('groupadd', [`${name}x`]);
  t.after(() => sh('groupdel', [`${name}x`]));
  sh('useradd', ['--system', '--no-create-home', '--user-group', '--groups', `${name}x`, '--shell', '/usr/sbin/nologin', name]);
  t.after(() => sh('userdel', ['--force', name]));
  const gidOf = (group: string): number => Number(execFileSync('getent', ['group', group], { encoding: 'utf8' }).split(':')[2]);
  const [extra, nogroup] = [gidOf(`${name}x`), gidOf('nogroup')];

  // The vassal file's directory is the workers' working directory, and it is root's
  // (mode 0700): a worker could not even start there. The master checks as the user,
  // before its first worker, and stops with one line naming the directory, the user and
  // the fix (exit 69; an emperor respawns it with a growing delay), instead of a worker
  // dying at every respawn.
  const port = await freePort();
  const dir = tempDir(t);
  const file = join(dir, 'v.ini');
  writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nuid = ${name}\ngid = nogroup\n`);
  const refused = spawnEmperor(t, ['--ini', file]);
  assert.equal((await refused.exited).code, 69);
  const errors = refused.logs.find((l) => l.level === 50);
  assert.equal(errors.length, 1, refused.logs.tail());
  assert.match(errors[0]?.msg ?? '', new RegExp(`^the vassal file's directory ${dir}: uid \\d+ \\(${name}\\) cannot enter it \\(the workers start there without chdir\\), and the workers run as that user: give it access \\(chmod, chgrp\\) or set chdir$`));
  assert.equal(errors[0]?.code, 'ERR_PRIVILEGE');
  assert.equal(refused.logs.find((l) => /spawned worker/.test(l.msg ?? '')).length, 0, 'no worker was started');
  chmodSync(dir, 0o755);
  const v = { proc: spawnEmperor(t, ['--ini', file]) };
  const worker = pidIn(await ok(`http://127.0.0.1:${port}/`));
  const groups = (procStatus(worker, 'Groups') ?? '').split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);
  // initgroups(user, gid): the groups listing the user, and the gid asked for (which
  // replaces the user's own primary group, as in uWSGI).
  assert.deepEqual(groups, [extra, nogroup].sort((a, b) => a - b));
  assert.equal(procStatus(worker, 'Gid')?.split(/\s+/)[0], String(nogroup));
  assert.equal(procStatus(worker, 'Uid')?.split(/\s+/)[0], execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  v.proc.child.kill('SIGTERM'); // before the user goes
  assert.equal((await v.proc.exited).code, 0);
});

test('SIGTERM to a standalone vassal ends every worker', async (t) => {
  const v = await vassal(t, (port) => `http-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 3`);
  const stats = v.stats;
  await ok(`${v.url}/`);
  await waitFor(async () => (await statsOf<VassalStatsDoc>(stats)).workers.every((w) => w.accepting === 1), { message: 'workers up' });
  const tree = descendants(v.proc.pid);
  assert.equal(tree.length, 3);
  v.proc.child.kill('SIGTERM');
  assert.equal((await v.proc.exited).code, 0);
  for (const pid of tree) assert.ok(!isAlive(pid));
});

test('a vassal can be run from command-line options alone, like uwsgi --http-socket ... --module ...', async (t) => {
  const port = await freePort();
  const proc = spawnEmperor(t, ['--http-socket', `127.0.0.1:${port}`, '--module', APP, '--processes', '2', '--env', 'GREETING=from flags']);
  assert.equal(await serving(`http://127.0.0.1:${port}/env?k=GREETING`), 'from flags');
  const started = await proc.logs.waitFor((l) => /vassal master started: 2 worker\(s\)/.test(l.msg ?? ''));
  assert.equal(started.vassal, 'command-line');
});
