/**
 * `master-fifo`: uWSGI's named pipe of one-letter commands, against a real vassal: the
 * FIFO on disk, each command's effect seen in the stats, the log and /proc, unknown and
 * unsupported commands as one line each, slot switching, and a FIFO that cannot be made.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, descendants, isAlive, serving, startVassal, statsUntil, waitFor, type LogLine } from '../helpers/index.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');
const msg = (re: RegExp) => (l: LogLine): boolean => re.test(l.msg ?? '');

/**
 * Writes commands as `echo cmds > fifo` would, but never blocks the test: a FIFO nobody
 * reads fails with ENXIO at once instead of waiting for a reader.
 */
function send(fifo: string, commands: string | Buffer): void {
  const fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    writeSync(fd, typeof commands === 'string' ? Buffer.from(commands, 'latin1') : commands);
  } finally {
    closeSync(fd);
  }
}

test('master-fifo: each command acts on the running vassal, and says so in the log', async (t) => {
  // cheaper-overload is high enough that the spare algorithm leaves the pool to the FIFO.
  const v = await startVassal(t, (p, dir) => [
    `http-socket = 127.0.0.1:${p}`, `module = ${APP}`, 'processes = 2', 'cheaper = 1', 'cheaper-overload = 3600',
    `pidfile = ${join(dir, 'master.pid')}`, `master-fifo = ${join(dir, 'ctl')}`, `master-fifo = ${join(dir, 'ctl2')}`, 'vacuum = true',
  ].join('\n'));
  const ctl = join(v.dir, 'ctl');
  const ctl2 = join(v.dir, 'ctl2');
  await serving(`${v.url}/`);
  await v.proc.logs.waitFor(msg(/^master FIFO on /), { message: 'the FIFO line' });
  const st = statSync(ctl);
  assert.ok(st.isFIFO(), 'a named pipe');
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(existsSync(ctl2), false, 'the second path waits for its slot');

  // s: one line for the vassal, one per worker.
  send(ctl, 's\n');
  await v.proc.logs.waitFor(msg(/^stats: 1 worker\(s\) running of 2, \d+ requests, listen queue 0$/), { message: 'the stats line' });
  const first = v.proc.logs.find(msg(/^spawned worker 1 /))[0]?.worker_pid;
  await v.proc.logs.waitFor((l) => msg(/^stats: worker 1 \(pid \d+\): (idle|busy), \d+ requests, 0 exceptions, avg [\d.]+ ms, RSS [1-9][\d.]* MB, respawned 1 time\(s\)$/)(l) && l.worker_pid === first);
  await v.proc.logs.waitFor(msg(/^stats: worker 2 \(pid 0\): cheap, 0 requests/));

  // + and -: one worker more, then one less (the oldest idle one).
  send(ctl, '+');
  await statsUntil(v.stats, (d) => d.workers.filter((w) => w.accepting === 1).length === 2, { message: '+ spawned a worker' });
  send(ctl, '+');
  await v.proc.logs.waitFor(msg(/^master FIFO: \+ did nothing: all 2 workers already run \(processes\)$/));
  // The scoreboard shows a finished request within 1 s (docs/stats.md); a busy worker is never cheaped.
  await statsUntil(v.stats, (d) => d.workers.every((w) => w.status === 'idle'), { message: 'both workers idle' });
  send(ctl, '-');
  await v.proc.logs.waitFor(msg(/^worker 1 \(pid \d+\) cheaped$/), { message: '- cheaped the oldest worker' });
  await statsUntil(v.stats, (d) => d.workers.filter((w) => w.pid > 0).length === 1 && d.workers[1]?.pid !== 0);
  send(ctl, '-');
  await v.proc.logs.waitFor(msg(/^master FIFO: - did nothing: only 1 worker\(s\) run, the fewest cheaper allows$/));

  // w reloads the workers with the running config; r re-reads the file.
  writeFileSync(v.file, readFileSync(v.file, 'utf8').replace('processes = 2', 'processes = 3'));
  send(ctl, 'w');
  await v.proc.logs.waitFor(msg(/^graceful reload: starting generation 2 \(2 worker\(s\), the running config: the file is not re-read\)$/));
  await v.proc.logs.waitFor(msg(/^reload complete: generation 2 serving$/));
  assert.equal((await statsUntil(v.stats, () => true)).workers.length, 2, 'w: still the old processes = 2');
  send(ctl, 'r');
  await v.proc.logs.waitFor(msg(/^reload complete: generation 3 serving$/));
  assert.equal((await statsUntil(v.stats, () => true)).workers.length, 3, 'r: the file\'s processes = 3');
  send(ctl, 'c');
  await v.proc.logs.waitFor(msg(/^chain reload: starting generation 4 /));
  await v.proc.logs.waitFor(msg(/^reload complete: generation 4 serving$/));

  // l without logto; P writes the pidfile again.
  send(ctl, 'l');
  await v.proc.logs.waitFor(msg(/^master FIFO l: no logto file to reopen$/));
  rmSync(join(v.dir, 'master.pid'));
  send(ctl, 'P');
  await waitFor(() => existsSync(join(v.dir, 'master.pid')) && readFileSync(join(v.dir, 'master.pid'), 'utf8') === `${v.proc.pid}\n`, { message: 'P rewrote the pidfile' });

  // Unsupported and unknown commands: one line each kind, and the vassal serves on.
  send(ctl, Buffer.from([0x52, 0x78, 0x00, 0xff, 0x0a])); // "R", "x", NUL, 0xff, newline
  await v.proc.logs.waitFor(msg(/^master FIFO: command R is not supported \(brutal reload; use r \(graceful\) or c \(chain\)\)$/));
  await v.proc.logs.waitFor(msg(/^master FIFO: ignored 3 unknown command byte\(s\): x 0x00 0xff$/));
  send(ctl, '7');
  await v.proc.logs.waitFor(msg(/^master FIFO: no slot 7 \(2 master-fifo path\(s\)\); still reading .*ctl$/));
  await serving(`${v.url}/`);

  // 1 switches to the second path; q there stops the vassal, and vacuum removes the FIFO.
  send(ctl, '1');
  await v.proc.logs.waitFor(msg(/^active master FIFO is now .*ctl2$/));
  assert.ok(statSync(ctl2).isFIFO());
  const workers = descendants(v.proc.pid);
  send(ctl2, 'q');
  await v.proc.logs.waitFor(msg(/^stopping vassal \(master FIFO q\)$/));
  assert.deepEqual(await v.proc.exited, { code: 0, signal: null });
  for (const pid of workers) assert.equal(isAlive(pid), false, `worker ${pid} stopped`);
  assert.equal(existsSync(ctl2), false, 'vacuum removed the FIFO');
});

test('master-fifo: Q stops at once; a FIFO that cannot be made is one error line, and the vassal serves', async (t) => {
  const v = await startVassal(t, (p, dir) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprocesses = 1\nmaster-fifo = ${join(dir, 'missing', 'ctl')}`);
  await serving(`${v.url}/`);
  const line = await v.proc.logs.waitFor(msg(/^master-fifo: cannot create .*missing\/ctl: .*No such file or directory.*; the vassal runs without it$/));
  assert.equal(line.option, 'master-fifo');

  const w = await startVassal(t, (p, dir) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprocesses = 1\nmaster-fifo = ${join(dir, 'ctl')}`);
  await serving(`${w.url}/`);
  const workers = descendants(w.proc.pid);
  assert.equal(workers.length, 1);
  // A slow request is in flight: Q does not wait for it.
  void fetch(`${w.url}/sleep?ms=20000`).catch(() => {});
  await statsUntil(w.stats, (d) => d.workers[0]?.status === 'busy');
  send(join(w.dir, 'ctl'), 'Q');
  assert.deepEqual(await w.proc.exited, { code: 0, signal: null });
  await waitFor(() => !isAlive(workers[0] as number), { message: 'the worker killed', timeoutMs: 2000 });
});

test('master-fifo: the FIFO belongs to the vassal\'s user, who may command it', { skip: process.getuid?.() !== 0 ? 'needs root (uid = www-data)' : false }, async (t) => {
  const v = await startVassal(t, (p, dir) => {
    chmodSync(dir, 0o777); // the stats socket is made there by www-data too
    mkdirSync(join(dir, 'run'));
    chmodSync(join(dir, 'run'), 0o777);
    return `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprocesses = 1\nuid = www-data\ngid = www-data\nmaster-fifo = ${join(dir, 'run', 'ctl')}`;
  });
  await serving(`${v.url}/`);
  const ctl = join(v.dir, 'run', 'ctl');
  await waitFor(() => existsSync(ctl), { message: 'the FIFO' });
  const wwwData = Number(execFileSync('id', ['-u', 'www-data'], { encoding: 'utf8' }).trim());
  assert.equal(statSync(ctl).uid, wwwData, 'made after the master dropped to www-data');
  send(ctl, 'r');
  await v.proc.logs.waitFor(msg(/^reload complete: generation 2 serving$/));
});
