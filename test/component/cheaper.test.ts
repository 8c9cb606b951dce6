/**
 * Adaptive pools end to end: a real vassal grows under a burst of load and shrinks back
 * when it stops; `idle` shrinks an unused pool and traffic grows it back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { SocketBindError, bindSocket, dupSockets, readTcpListenQueues, type BoundSocket } from '@emperor/vassal';
import { FIXTURES, descendants, freePort, httpGet, serving, startVassal, statsUntil, tempDir, waitFor, type LogLine } from '../helpers/index.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');
const WSGI_APP = join(FIXTURES, 'apps', 'wsgi_app.py');
const msg = (re: RegExp) => (l: LogLine): boolean => re.test(l.msg ?? '');
const running = (d: { workers: { status: string; pid: number }[] }): number => d.workers.filter((w) => w.status !== 'cheap').length;

test('cheaper = 1, workers = 8: the pool grows under a burst and shrinks back to 1 after it', async (t) => {
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nworkers = 8\ncheaper = 1\ncheaper-overload = 1\ncheaper-step = 2`);
  await serving(`${v.url}/`);
  const start = await statsUntil(v.stats, (d) => d.workers.length === 8 && running(d) === 1);
  assert.deepEqual(start.workers.map((w) => w.status).filter((s) => s === 'cheap').length, 7);
  assert.ok(start.workers.slice(1).every((w) => w.pid === 0), 'cheap workers have no process');

  // A burst: 40 clients, each keeping a request in flight for 400 to 750 ms, so every running
  // worker is busy. The durations differ so that the clients fall out of step: in step (all
  // 200 ms), all of them sat between two requests at the same moments, and on a loaded
  // machine the checks saw idle workers at those moments and the pool never reached 5.
  let stop = false;
  let failed = 0;
  const clients = Array.from({ length: 40 }, async (_, i) => {
    while (!stop) await httpGet(`${v.url}/sleep?ms=${400 + 50 * (i % 8)}`).catch(() => failed++);
  });
  // The clients stop whatever happens: left running, they keep this file alive after a failure.
  const grown = await statsUntil(v.stats, (d) => running(d) >= 5, { timeoutMs: 20_000, message: 'the pool grew to 5 or more' }).finally(() => {
    stop = true;
  });
  await Promise.all(clients);
  assert.equal(failed, 0, 'no request failed while the pool grew');
  assert.ok(v.proc.logs.find(msg(/every worker busy for 2 checks: spawning 2 worker\(s\)/)).length >= 2);

  const shrunk = await statsUntil(v.stats, (d) => running(d) === 1, { timeoutMs: 30_000, message: 'back to one worker' });
  assert.equal(shrunk.workers.filter((w) => w.status === 'cheap').length, 7);
  const cheaped = v.proc.logs.find(msg(/^worker \d \(pid \d+\) cheaped$/));
  assert.ok(cheaped.length >= running(grown) - 1, `each extra worker was cheaped (${cheaped.length})`);
  assert.ok(cheaped.every((l) => l.reason === 'spare'));
  // Cheaped workers were idle: their graceful stop logged no killed request.
  assert.equal(v.proc.logs.find(msg(/stopped \(cheap\): killed by signal/)).length, 0);
  assert.match(await serving(`${v.url}/`), /^pid /);
});

test('a worker with a request in flight is never cheaped (uWSGI issue #1702), even when it is the oldest', async (t) => {
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nworkers = 4\ncheaper = 1\ncheaper-overload = 1\ncheaper-step = 2`);
  await serving(`${v.url}/`);
  const one = await statsUntil(v.stats, (d) => running(d) === 1 && d.workers[0]?.accepting === 1);
  const oldest = one.workers[0]?.pid as number;
  // The only worker, so the oldest, takes a long request: every worker is busy, the pool
  // grows by 2, and the spare algorithm then cheaps the surplus idle worker. Oldest first,
  // as uWSGI picks, that would be the busy one.
  let done = false;
  const slow = httpGet(`${v.url}/sleep?ms=12000`, { signal: AbortSignal.timeout(30_000) }).finally(() => { done = true; });
  await v.proc.logs.waitFor(msg(/every worker busy for 2 checks: spawning 2 worker\(s\)/), { timeoutMs: 10_000 });
  const cheaped = await v.proc.logs.waitFor(msg(/^worker \d \(pid \d+\) cheaped$/), { timeoutMs: 10_000, message: 'an idle worker cheaped' });
  assert.equal(done, false, 'the cheaping happened while the long request was in flight');
  assert.notEqual(cheaped.worker_pid, oldest, 'the busy worker was not the one cheaped');
  const during = await statsUntil(v.stats, (d) => running(d) === 2, { timeoutMs: 10_000, message: 'one busy and one idle worker' });
  assert.equal(done, false);
  assert.equal(during.workers.find((w) => w.pid === oldest)?.status, 'busy');
  const answer = await slow;
  assert.equal(answer.status, 200);
  assert.equal(answer.body, `slept 12000 in ${oldest}\n`);
  assert.equal(v.proc.logs.find((l) => l.worker_pid === oldest && /cheaped$/.test(l.msg ?? '')).length, 0, 'never cheaped while its request was in flight');
});

test('idle: cheap mode stops every worker; the next connection is answered and wakes them (uWSGI core/master_checks.c)', async (t) => {
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprocesses = 3\nidle = 2`);
  await serving(`${v.url}/`);
  await statsUntil(v.stats, (d) => running(d) === 3);
  await v.proc.logs.waitFor(msg(/^workers have been inactive for more than 2 seconds \(\d+-\d+\)$/), { timeoutMs: 10_000 });
  await v.proc.logs.waitFor(msg(/^cheap mode enabled: waiting for socket connection\.\.\.$/), { timeoutMs: 5000 });
  const none = await statsUntil(v.stats, (d) => running(d) === 0, { message: 'no worker runs' });
  assert.equal(none.workers.filter((w) => w.status === 'cheap').length, 3);
  const answers = await Promise.all(Array.from({ length: 4 }, () => httpGet(`${v.url}/`)));
  for (const a of answers) assert.equal(a.status, 200, 'answered after cheap mode, never refused');
  await v.proc.logs.waitFor(msg(/^cheap mode disabled: a connection is waiting; spawning 3 worker\(s\)$/), { timeoutMs: 5000 });
  await statsUntil(v.stats, (d) => running(d) === 3 && d.workers.every((w) => w.accepting === 1));
});

test('cheap: a Node vassal starts with no worker; the first connections are answered and spawn them; no warning for the option', async (t) => {
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprocesses = 2\ncheap = true`);
  await v.proc.logs.waitFor(msg(/^vassal ready: cheap, no worker until a connection waits on http:\/\/127\.0\.0\.1:\d+$/), { timeoutMs: 15_000 });
  assert.ok(v.proc.logs.find(msg(/^cheap mode enabled: waiting for socket connection\.\.\.$/)).length === 1);
  assert.deepEqual(v.proc.logs.find((l) => /\bcheap\b/.test(l.msg ?? '') && l.level !== undefined && l.level >= 40), [], 'no warning names cheap');
  const none = await statsUntil(v.stats, (d) => d.workers.length === 2);
  assert.deepEqual(none.workers.map((w) => [w.status, w.pid]), [['cheap', 0], ['cheap', 0]]);
  assert.deepEqual(descendants(v.proc.pid), [], 'the master alone: no worker process');
  const answers = await Promise.all(Array.from({ length: 3 }, () => httpGet(`${v.url}/`)));
  for (const a of answers) assert.equal(a.status, 200, 'the connections that end cheap mode are answered');
  const woke = await v.proc.logs.waitFor(msg(/^cheap mode disabled: a connection is waiting; spawning 2 worker\(s\)$/), { timeoutMs: 5000 });
  assert.equal(woke.via, 'watch', 'woken by the connection itself, not on the next tick');
  await statsUntil(v.stats, (d) => running(d) === 2 && d.workers.every((w) => w.accepting === 1));
});

test('cheap: a Python vassal imports its app only once a connection waits, then forks its workers from it', async (t) => {
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nwsgi-file = ${WSGI_APP}\nprocesses = 2\ncheap = true`);
  await v.proc.logs.waitFor(msg(/^vassal ready: cheap, /), { timeoutMs: 15_000 });
  assert.deepEqual(descendants(v.proc.pid), [], 'no template and no worker before the first connection');
  assert.equal(v.proc.logs.find(msg(/app loaded/)).length, 0, 'the app is not imported yet');
  const first = await httpGet(`${v.url}/`);
  assert.equal(first.status, 200);
  const woke = await v.proc.logs.waitFor(msg(/^cheap mode disabled: a connection is waiting; spawning 2 worker\(s\)$/), { timeoutMs: 5000 });
  assert.equal(woke.via, 'watch');
  const doc = await statsUntil(v.stats, (d) => running(d) === 2 && d.workers.every((w) => w.accepting === 1));
  // Preloaded: the two workers are children of one template, the master's only child.
  await waitFor(() => descendants(v.proc.pid).length === 3, { message: 'a template and its 2 workers' });
  for (const w of doc.workers) assert.ok(descendants(v.proc.pid).includes(w.pid));
});

test('cheap mode\'s watch: a duplicate of a bound socket listens and takes a connection; closed, the socket still listens and queues the next', async (t) => {
  const port = await freePort();
  const bound = await bindSocket(
    { file: 'v.ini', line: 2, name: `127.0.0.1:${port}`, address: { kind: 'tcp', host: '127.0.0.1', port }, protocol: 'http', option: 'http-socket' },
    { mode: undefined, uid: undefined, gid: undefined },
  );
  t.after(() => bound.close(false));
  const [dup] = await dupSockets([bound]);
  assert.ok(dup !== undefined && dup.fd !== bound.fd, 'another descriptor');
  assert.equal(dup.listen(16), 0);
  const took = new Promise<number>((resolve) => {
    dup.onconnection = (status) => {
      dup.close();
      resolve(status);
    };
  });
  const first = net.connect(port, '127.0.0.1');
  t.after(() => first.destroy());
  first.on('error', () => {});
  assert.equal(await took, 0, 'the duplicate accepted the first connection');
  const second = net.connect(port, '127.0.0.1');
  t.after(() => second.destroy());
  await new Promise((resolve, reject) => second.once('connect', resolve).once('error', reject));
  await waitFor(async () => (await readTcpListenQueues(new Set([bound.inode]))).get(bound.inode) === 1, { message: 'the next connection waits in the queue, accepted by nobody' });

  const fd = openSync(join(tempDir(t), 'not-a-socket'), 'w');
  t.after(() => closeSync(fd));
  const fake: BoundSocket = { ...bound, fd, spec: { ...bound.spec, line: 7, name: '127.0.0.1:1' } };
  await assert.rejects(dupSockets([fake]), (err: unknown) => {
    assert.ok(err instanceof SocketBindError);
    assert.match(err.message, /^v\.ini:7: http-socket: 127\.0\.0\.1:1: cannot watch for a connection \(cheap mode\): .+/);
    assert.doesNotMatch(err.message, /\n/, 'one line');
    return true;
  });
});

test('stats read the listen queue from the kernel', async (t) => {
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprocesses = 1\nlisten = 64`);
  await serving(`${v.url}/`);
  const idle = await statsUntil(v.stats, (d) => d.sockets.length === 1);
  assert.equal(idle.sockets[0]?.max_queue, 64);
  assert.equal(idle.sockets[0]?.queue, 0);
  // Block the only worker's event loop; new connections then wait in the kernel's queue.
  void httpGet(`${v.url}/spin?ms=6000`).catch(() => {});
  await statsUntil(v.stats, (d) => d.workers[0]?.status === 'busy' && (d.workers[0]?.requests ?? 0) >= 1); // busy on the new request, not a slot not yet caught up after the first
  const waiting = Array.from({ length: 5 }, () => httpGet(`${v.url}/`).catch(() => undefined));
  const queued = await waitFor(async () => {
    const d = await statsUntil(v.stats, () => true);
    return (d.sockets[0]?.queue ?? 0) >= 5 ? d : undefined;
  }, { message: 'five connections queued', timeoutMs: 5000 });
  assert.ok(queued.listen_queue >= 5, `listen_queue ${queued.listen_queue}`);
  await Promise.all(waiting);
});

test('a full listen queue is logged once per interval, with the socket and its figures', async (t) => {
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprocesses = 1\nlisten = 4`);
  await serving(`${v.url}/`);
  void httpGet(`${v.url}/spin?ms=5000`).catch(() => {});
  await statsUntil(v.stats, (d) => d.workers[0]?.status === 'busy' && (d.workers[0]?.requests ?? 0) >= 1); // busy on the new request, not a slot not yet caught up after the first
  // More connections than the backlog: the kernel queues 5 (backlog + 1), the rest retry their SYN.
  const waiting = Array.from({ length: 8 }, () => httpGet(`${v.url}/`).catch(() => undefined));
  const full = await waitFor(async () => {
    const d = await statsUntil(v.stats, () => true);
    return (d.sockets[0]?.queue ?? 0) >= (d.sockets[0]?.max_queue ?? 1) ? d : undefined;
  }, { message: 'the listen queue full', timeoutMs: 4000 });
  assert.equal(full.sockets[0]?.max_queue, 4);
  const line = new RegExp(`^\\*\\*\\* listen queue of socket "127\\.0\\.0\\.1:${v.port}" full !!! \\(\\d+/4\\) \\*\\*\\* \\(full since \\d+ s; raise processes, cheaper limits or listen\\)$`);
  await v.proc.logs.waitFor(msg(line), { timeoutMs: 2000 });
  // A fresh reading (stats re-read a queue older than 1 s) while still full: no second line within the 10 s interval.
  const loggedAt = Date.now();
  await waitFor(async () => {
    const d = await statsUntil(v.stats, () => true);
    return Date.now() - loggedAt > 1200 && (d.sockets[0]?.queue ?? 0) >= 4 ? d : undefined;
  }, { message: 'a second full reading', timeoutMs: 3000 });
  assert.equal(v.proc.logs.find(msg(line)).length, 1, v.proc.logs.tail());
  await Promise.all(waiting);
});
