/**
 * The master keeps every worker healthy: harakiri, max-requests, memory limits,
 * limit-as, cpu-affinity, no-orphans, mercy, touch reloads. Real vassals, real workers,
 * asserted through HTTP, stats, logs and /proc.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, utimesSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FIXTURES,
  descendants,
  httpGet,
  isAlive,
  pidIn,
  procStatus,
  serving,
  startVassal,
  statsUntil,
  waitFor,
  workersAccepting,
  type LogLine,
} from '../helpers/index.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');
const node = (port: number, extra: string): string => `http-socket = 127.0.0.1:${port}\nmodule = ${APP}\n${extra}`;
const msg = (re: RegExp) => (l: LogLine): boolean => re.test(l.msg ?? '');

test('harakiri: a worker whose event loop is blocked is killed within harakiri + 1 s and replaced', async (t) => {
  const v = await startVassal(t, (p) => node(p, 'processes = 1\nharakiri = 2'));
  const first = pidIn(await serving(`${v.url}/`));
  await statsUntil(v.stats, (d) => d.workers[0]?.requests === 1 && d.workers[0]?.status === 'idle');
  const started = Date.now();
  const stuck = httpGet(`${v.url}/spin?ms=20000`).catch((err: unknown) => err);
  const line = await v.proc.logs.waitFor(msg(/^HARAKIRI ON WORKER 1 /), { message: 'the harakiri line', timeoutMs: 6000 });
  const elapsed = (line.time as number) - started;
  assert.ok(elapsed >= 2000 && elapsed <= 3000, `killed ${elapsed} ms after the request started (harakiri 2 s)`);
  assert.equal(line.vassal, 'v.ini');
  assert.equal(line.worker, 1);
  assert.equal(line.worker_pid, first);
  assert.equal(line.method, 'GET', v.proc.logs.tail());
  assert.equal(line.uri, '/spin?ms=20000');
  assert.match(line.msg ?? '', /event loop blocked for [23]\.\d s \(harakiri 2 s\); oldest request in flight: GET \/spin\?ms=20000/);
  assert.ok(await stuck instanceof Error, 'the stuck request failed');
  const doc = await statsUntil(v.stats, (d) => d.workers[0]?.pid !== first && d.workers[0]?.accepting === 1);
  assert.equal(doc.workers[0]?.harakiri_count, 1);
  assert.equal(doc.workers[0]?.last_exit_reason, 'harakiri');
  assert.equal(doc.workers[0]?.respawn_count, 2);
  assert.notEqual(pidIn(await serving(`${v.url}/`)), first);
});

test('harakiri-verbose logs the blocked worker\'s JavaScript stack with the request', async (t) => {
  const v = await startVassal(t, (p) => node(p, 'processes = 1\nharakiri = 1\nharakiri-verbose = true'));
  await serving(`${v.url}/`);
  // The probe request must be over, so the spin request is the oldest one in flight.
  await statsUntil(v.stats, (d) => d.workers[0]?.requests === 1 && d.workers[0]?.status === 'idle');
  void httpGet(`${v.url}/spin?ms=20000`).catch(() => {});
  const line = await v.proc.logs.waitFor(msg(/^HARAKIRI ON WORKER 1 /), { timeoutMs: 6000 });
  assert.match(String(line.stack), /at spinHere \(file:\/\/.*basic\.mjs:\d+:\d+\)/);
  assert.match(String(line.stack), /at app \(file:\/\/.*basic\.mjs/);
  assert.equal(line.uri, '/spin?ms=20000');
});

test('harakiri in a Node worker ends only the overdue request; the worker keeps serving', async (t) => {
  const v = await startVassal(t, (p) => node(p, 'processes = 1\nharakiri = 1'));
  const pid = pidIn(await serving(`${v.url}/`));
  const slow = await httpGet(`${v.url}/sleep?ms=8000`).catch((err: unknown) => err);
  assert.ok(slow instanceof Error, 'the overdue request was ended');
  const line = await v.proc.logs.waitFor(msg(/^HARAKIRI: GET \/sleep\?ms=8000 ran for 1\.\d s \(harakiri 1 s\)/));
  assert.equal(line.worker, 1);
  assert.equal(line.pid, pid, 'logged by the worker itself');
  assert.equal(pidIn(await serving(`${v.url}/`)), pid, 'same worker');
  const doc = await statsUntil(v.stats, (d) => d.workers[0]?.harakiri_count === 1);
  assert.equal(doc.workers[0]?.respawn_count, 1);
});

test('max-requests: a worker is replaced after exactly N requests', async (t) => {
  const v = await startVassal(t, (p) => node(p, 'processes = 1\nmax-requests = 5\nmin-worker-lifetime = 0'));
  await serving(`${v.url}/`); // request 1 of the first worker
  const pids = [];
  for (let i = 0; i < 11; i++) pids.push(pidIn((await httpGet(`${v.url}/`)).body));
  const [a, b, c] = [...new Set(pids)];
  assert.deepEqual(pids, [a, a, a, a, b, b, b, b, b, c, c], 'workers served 5, 5 and the rest');
  const doc = await statsUntil(v.stats, (d) => d.workers[0]?.pid === c && d.workers[0]?.requests === 12);
  assert.equal(doc.workers[0]?.last_exit_reason, 'max-requests');
  assert.equal(doc.workers[0]?.respawn_count, 3);
  assert.equal(v.proc.logs.find(msg(/served 5 requests \(max-requests 5\); asking to be replaced/)).length, 2);
});

test('max-requests waits for min-worker-lifetime, and max-requests-delta staggers workers', async (t) => {
  const gated = await startVassal(t, (p) => node(p, 'processes = 1\nmax-requests = 2'));
  const pid = pidIn(await serving(`${gated.url}/`));
  for (let i = 0; i < 5; i++) assert.equal(pidIn((await httpGet(`${gated.url}/`)).body), pid, 'younger than 10 s: not recycled');

  const v = await startVassal(t, (p) => node(p, 'processes = 2\nmax-requests = 3\nmax-requests-delta = 4\nmin-worker-lifetime = 0'));
  await serving(`${v.url}/`);
  for (let i = 0; i < 40; i++) await httpGet(`${v.url}/`);
  const limits = new Map<number, Set<string>>();
  for (const l of v.proc.logs.find(msg(/asking to be replaced/))) {
    const set = limits.get(l.worker ?? 0) ?? new Set();
    set.add(/max-requests (\d+)/.exec(l.msg ?? '')?.[1] ?? '?');
    limits.set(l.worker ?? 0, set);
  }
  assert.deepEqual([...(limits.get(1) ?? [])], ['3']);
  assert.deepEqual([...(limits.get(2) ?? [])], ['7']);
});

test('reload-on-rss: the replacement starts first, then the fat worker finishes and exits', async (t) => {
  const v = await startVassal(t, (p) => node(p, 'processes = 1\nreload-on-rss = 150\nmin-worker-lifetime = 0'));
  const fat = pidIn(await serving(`${v.url}/`));
  assert.match((await httpGet(`${v.url}/grow?mb=200`)).body, /^grew 200 MB/);
  const stopped = await v.proc.logs.waitFor(msg(new RegExp(`worker 1 \\(pid ${fat}\\) stopped \\(reload-on-rss\\)`)), { timeoutMs: 10_000 });
  const decided = v.proc.logs.lines.findIndex(msg(new RegExp(`worker 1 \\(pid ${fat}\\): rss \\d+ MB > 150 MB \\(reload-on-rss\\); replacing it gracefully`)));
  const spawned = v.proc.logs.lines.findIndex((l, i) => i > decided && /spawned worker 1 \(pid \d+\)/.test(l.msg ?? ''));
  const ready = v.proc.logs.lines.findIndex((l, i) => i > spawned && /worker 1 \(pid \d+\) accepting/.test(l.msg ?? ''));
  const gone = v.proc.logs.lines.indexOf(stopped);
  assert.ok(decided >= 0 && decided < spawned && spawned < ready && ready < gone, `order: decided ${decided}, spawned ${spawned}, ready ${ready}, stopped ${gone}`);
  const doc = await statsUntil(v.stats, (d) => d.workers[0]?.pid !== fat && d.workers[0]?.accepting === 1);
  assert.equal(doc.workers[0]?.last_exit_reason, 'reload-on-rss');
  assert.ok((doc.workers[0]?.rss ?? 0) < 150 * 1024 * 1024 || doc.workers[0]?.rss === 0);
});

test('evil-reload-on-rss kills at once and respawns', async (t) => {
  const v = await startVassal(t, (p) => node(p, 'processes = 1\nevil-reload-on-rss = 150'));
  const fat = pidIn(await serving(`${v.url}/`));
  // The master may kill the worker before it answers (its tick can see the RSS while
  // /grow is still allocating): the request's outcome is not what is tested.
  await httpGet(`${v.url}/grow?mb=200`).catch(() => undefined);
  const line = await v.proc.logs.waitFor(msg(new RegExp(`^\\*\\*\\* EVIL RELOAD ON WORKER 1 \\(pid ${fat}\\): rss \\d+ MB > 150 MB`)), { timeoutMs: 5000 });
  assert.equal(line.reason, 'evil-reload-on-rss');
  await v.proc.logs.waitFor(msg(new RegExp(`worker 1 \\(pid ${fat}\\) stopped \\(evil-reload-on-rss\\): killed by signal SIGKILL`)));
  assert.notEqual(pidIn(await serving(`${v.url}/`)), fat);
});

test('limit-as sets RLIMIT_AS on each worker before the app loads; cpu-affinity pins workers round-robin', async (t) => {
  const v = await startVassal(t, (p) => node(p, 'processes = 2\nlimit-as = 2048\ncpu-affinity = 1'));
  await serving(`${v.url}/`);
  const doc = await statsUntil(v.stats, (d) => d.workers.every((w) => w.accepting === 1));
  for (const w of doc.workers) {
    const limits = readFileSync(`/proc/${w.pid}/limits`, 'utf8');
    assert.match(limits, /Max address space\s+2147483648\s+2147483648\s+bytes/, `worker ${w.id}`);
    assert.equal(procStatus(w.pid, 'Cpus_allowed_list'), String((w.id - 1) % 2), `worker ${w.id} pinned`);
  }
  assert.ok(v.proc.logs.find(msg(/spawned worker 2 \(pid \d+\), pinned to CPUs 1/)).length === 1);
  const master = readFileSync(`/proc/${v.proc.pid}/limits`, 'utf8');
  assert.doesNotMatch(master, /Max address space\s+2147483648/, 'the master itself is not limited');
});

test('a Node worker runs under limit-as at the documented minimum (1024 MB)', async (t) => {
  const v = await startVassal(t, (p) => node(p, 'processes = 1\nlimit-as = 1024'));
  assert.match(await serving(`${v.url}/`), /^pid /);
});

test('no-orphans: workers of a master killed with SIGKILL exit within 1 s', async (t) => {
  const v = await startVassal(t, (p) => node(p, 'processes = 2\nno-orphans = true'));
  await serving(`${v.url}/`);
  await statsUntil(v.stats, (d) => d.workers.every((w) => w.accepting === 1));
  const workers = descendants(v.proc.pid);
  assert.equal(workers.length, 2);
  process.kill(v.proc.pid, 'SIGKILL');
  await waitFor(() => workers.every((p) => !isAlive(p)), { timeoutMs: 1000, message: 'workers gone within 1 s' });
});

test('max-worker-lifetime recycles a worker once it has lived that long', async (t) => {
  const v = await startVassal(t, (p) => node(p, 'processes = 1\nmax-worker-lifetime = 2'));
  const first = pidIn(await serving(`${v.url}/`));
  await v.proc.logs.waitFor(msg(new RegExp(`worker 1 \\(pid ${first}\\): running for \\d+ s \\(max-worker-lifetime\\)`)), { timeoutMs: 6000 });
  const doc = await statsUntil(v.stats, (d) => d.workers[0]?.pid !== first && d.workers[0]?.accepting === 1);
  assert.equal(doc.workers[0]?.last_exit_reason, 'max-worker-lifetime');
});

/** An app that stays in its loading while a `hang` file sits beside it, and then serves. */
const HANGING_NODE_APP = `import { existsSync } from 'node:fs';
if (existsSync(new URL('./hang', import.meta.url))) await new Promise((done) => setTimeout(done, 3_600_000));
export default (req, res) => res.end(\`pid \${process.pid}\\n\`);
`;
const HANGING_PYTHON_APP = `import os, time
if os.path.exists(os.path.join(os.path.dirname(__file__), "hang")):
    time.sleep(3600)
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"pid %d\\n" % os.getpid()]
`;

for (const runtime of ['node', 'python'] as const) {
  test(`worker-ready-timeout: a ${runtime} worker stuck loading its app is killed and respawned, and serves once it can load${runtime === 'python' ? ' (lazy-apps)' : ''}`, async (t) => {
    const v = await startVassal(t, (p, dir) => {
      writeFileSync(join(dir, 'hang'), '');
      if (runtime === 'node') writeFileSync(join(dir, 'app.mjs'), HANGING_NODE_APP);
      else writeFileSync(join(dir, 'app.py'), HANGING_PYTHON_APP);
      return `http-socket = 127.0.0.1:${p}\n${runtime === 'node' ? `module = ${join(dir, 'app.mjs')}` : `wsgi-file = ${join(dir, 'app.py')}\nenv = PATH=/usr/bin:/bin\nlazy-apps = true`}\nprocesses = 1\nworker-ready-timeout = 1`;
    });
    const spawned = await v.proc.logs.waitFor(msg(/^spawned worker 1 /), { timeoutMs: 10_000 });
    const line = await v.proc.logs.waitFor(msg(/^worker 1 \(pid \d+\) not ready after 1 s \(worker-ready-timeout\); killing it$/), { timeoutMs: 10_000 });
    assert.equal(line.worker_pid, spawned.worker_pid);
    assert.ok((line.time as number) - (spawned.time as number) >= 1000, 'killed no sooner than the timeout');
    // The line is written just before the SIGKILL: wait for the death it announces.
    await waitFor(() => !isAlive(spawned.worker_pid as number), { timeoutMs: 5000, message: 'the stuck worker is gone' });
    // It is respawned (with backoff) and killed again while the app still cannot load.
    await v.proc.logs.waitFor((l) => msg(/not ready after 1 s/)(l) && l.worker_pid !== spawned.worker_pid, { timeoutMs: 10_000, message: 'the respawned worker killed too' });
    rmSync(join(v.dir, 'hang'));
    const body = await serving(`${v.url}/`, { timeoutMs: 20_000 });
    assert.match(body, /^pid \d+$/m);
    const doc = await statsUntil(v.stats, (d) => d.workers[0]?.accepting === 1);
    assert.equal(doc.workers[0]?.last_exit_reason, 'not-ready');
    assert.ok((doc.workers[0]?.respawn_count ?? 0) >= 3, `respawned after each kill (respawn_count ${doc.workers[0]?.respawn_count})`);
  });
}

test('worker-ready-timeout: a preloaded Python app whose template is stuck importing it: the template is killed and started again, and serves once it can load', async (t) => {
  const v = await startVassal(t, (p, dir) => {
    writeFileSync(join(dir, 'hang'), '');
    writeFileSync(join(dir, 'app.py'), HANGING_PYTHON_APP);
    return `http-socket = 127.0.0.1:${p}\nwsgi-file = ${join(dir, 'app.py')}\nenv = PATH=/usr/bin:/bin\nprocesses = 2\nworker-ready-timeout = 1`;
  });
  const started = await v.proc.logs.waitFor(msg(/^app template of generation 1 started \(pid \d+\)/), { timeoutMs: 10_000 });
  const line = await v.proc.logs.waitFor(msg(/^app template of generation 1 \(pid \d+\) did not load the app within worker-ready-timeout \(1 s\); killing it$/), { timeoutMs: 10_000 });
  assert.equal(line.template_pid, started.template_pid);
  assert.ok((line.time as number) - (started.time as number) >= 1000, 'killed no sooner than the timeout');
  await waitFor(() => !isAlive(started.template_pid as number), { timeoutMs: 5000, message: 'the stuck template is gone' });
  // Both workers asked of it are reported dead (respawned with backoff), through a new template each time.
  await v.proc.logs.waitFor((l) => msg(/^app template of generation 1 started/)(l) && l.template_pid !== started.template_pid, { timeoutMs: 10_000, message: 'a new template' });
  assert.ok(v.proc.logs.find(msg(/^worker [12] \(pid \d+\) died: killed by signal SIGKILL/)).length >= 2, v.proc.logs.tail());
  rmSync(join(v.dir, 'hang'));
  const doc = await workersAccepting(v, 2, { timeoutMs: 30_000 });
  assert.ok(doc.workers.every((w) => (w.respawn_count ?? 0) >= 2), 'respawned after the template was killed');
});

test('worker-reload-mercy: a worker that does not finish in time is killed', async (t) => {
  const v = await startVassal(t, (p) => node(p, 'processes = 1\nworker-reload-mercy = 1'));
  const old = pidIn(await serving(`${v.url}/`));
  const slow = httpGet(`${v.url}/sleep?ms=30000`).catch((err: unknown) => err);
  await statsUntil(v.stats, (d) => d.workers[0]?.status === 'busy' && (d.workers[0]?.requests ?? 0) >= 1); // busy on the new request, not a slot not yet caught up after the first
  process.kill(v.proc.pid, 'SIGHUP');
  const line = await v.proc.logs.waitFor(msg(new RegExp(`worker 1 \\(pid ${old}\\) stopped \\(reload\\): killed by signal SIGKILL`)), { timeoutMs: 6000 });
  const reloadAsked = v.proc.logs.lines.find(msg(/graceful reload: starting generation 2/));
  const waited = (line.time as number) - (reloadAsked?.time as number);
  assert.ok(waited >= 1000 && waited < 3000, `killed ${waited} ms after the reload began (mercy 1 s, plus the new worker's start)`);
  assert.ok(await slow instanceof Error);
});

test('reload-mercy bounds a whole reload and a whole stop, below worker-reload-mercy', async (t) => {
  const v = await startVassal(t, (p) => node(p, 'processes = 1\nworker-reload-mercy = 60\nreload-mercy = 1'));
  const old = pidIn(await serving(`${v.url}/`));
  const slow = httpGet(`${v.url}/sleep?ms=30000`).catch((err: unknown) => err);
  await statsUntil(v.stats, (d) => d.workers[0]?.status === 'busy' && (d.workers[0]?.requests ?? 0) >= 1);
  process.kill(v.proc.pid, 'SIGHUP');
  const line = await v.proc.logs.waitFor(msg(new RegExp(`worker 1 \\(pid ${old}\\) stopped \\(reload\\): killed by signal SIGKILL`)), { timeoutMs: 6000 });
  const reloadAsked = v.proc.logs.lines.find(msg(/graceful reload: starting generation 2/));
  const waited = (line.time as number) - (reloadAsked?.time as number);
  assert.ok(waited >= 1000 && waited < 3000, `killed ${waited} ms after the reload began (reload-mercy 1 s, not worker-reload-mercy 60 s)`);
  assert.ok(await slow instanceof Error);
  // A stop: the request in flight does not hold the vassal for worker-reload-mercy either.
  const fresh = pidIn(await serving(`${v.url}/`));
  const slow2 = httpGet(`${v.url}/sleep?ms=30000`).catch((err: unknown) => err);
  await statsUntil(v.stats, (d) => d.workers[0]?.pid === fresh && d.workers[0]?.status === 'busy' && (d.workers[0]?.requests ?? 0) >= 1);
  v.proc.child.kill('SIGTERM');
  const exit = await v.proc.exited;
  assert.equal(exit.signal, null);
  assert.ok(await slow2 instanceof Error, 'the slow request was cut by the bound');
  assert.equal(v.proc.logs.find(msg(new RegExp(`worker 1 \\(pid ${fresh}\\) stopped .*killed by signal SIGKILL`))).length, 1, v.proc.logs.tail());
});

test('touch-reload reloads gracefully; touch-chain-reload replaces one worker at a time', async (t) => {
  const v = await startVassal(t, (p, dir) => node(p, `processes = 2\ntouch-reload = ${dir}/reload.trigger\ntouch-chain-reload = ${dir}/chain.trigger`));
  writeFileSync(join(v.dir, 'reload.trigger'), '');
  writeFileSync(join(v.dir, 'chain.trigger'), '');
  await serving(`${v.url}/`);
  const gen1 = await statsUntil(v.stats, (d) => d.workers.every((w) => w.accepting === 1));
  const bump = (f: string): void => {
    const later = new Date(Date.now() + 5000);
    utimesSync(join(v.dir, f), later, later);
  };
  bump('reload.trigger');
  await v.proc.logs.waitFor(msg(/reload\.trigger has been touched\.\.\. grace them all/));
  const gen2 = await statsUntil(v.stats, (d) => d.state === 'ready' && d.workers.every((w) => w.accepting === 1 && !gen1.workers.some((o) => o.pid === w.pid)));

  const mark = v.proc.logs.lines.length;
  bump('chain.trigger');
  await v.proc.logs.waitFor(msg(/chain\.trigger has been touched\.\.\. chain reload/));
  await statsUntil(v.stats, (d) => d.state === 'ready' && d.workers.every((w) => w.accepting === 1 && !gen2.workers.some((o) => o.pid === w.pid)));
  await v.proc.logs.waitFor(msg(/reload complete: generation 3/));
  const after = v.proc.logs.lines.slice(mark).map((l) => l.msg ?? '');
  const at = (re: RegExp): number => after.findIndex((m) => re.test(m));
  const oneReady = at(/^worker 1 \(pid \d+\) accepting/);
  const twoSpawned = at(/^spawned worker 2 /);
  assert.ok(at(/^spawned worker 1 /) >= 0 && oneReady > at(/^spawned worker 1 /), 'worker 1 replaced first');
  assert.ok(twoSpawned > oneReady, `worker 2 is replaced only after worker 1's replacement is ready: ${after.join(' | ')}`);
});

test('a reload whose new workers cannot start is abandoned; the old workers keep serving', async (t) => {
  const v = await startVassal(t, (p, dir) => {
    copyFileSync(APP, join(dir, 'app.mjs'));
    return `http-socket = 127.0.0.1:${p}\nmodule = ${dir}/app.mjs\nprocesses = 2\ntouch-chain-reload = ${dir}/chain.trigger`;
  });
  writeFileSync(join(v.dir, 'chain.trigger'), '');
  await serving(`${v.url}/`);
  const before = await statsUntil(v.stats, (d) => d.workers.every((w) => w.accepting === 1));
  writeFileSync(join(v.dir, 'app.mjs'), 'throw new Error("deploy broke the app");\n');
  process.kill(v.proc.pid, 'SIGHUP');
  await v.proc.logs.waitFor(msg(/^reload abandoned: a new worker died or timed out before it was ready; generation 1 keeps serving/), { timeoutMs: 10_000 });
  const later = new Date(Date.now() + 5000);
  utimesSync(join(v.dir, 'chain.trigger'), later, later);
  await v.proc.logs.waitFor(msg(/^chain reload stopped at worker 1: its replacement never became ready; the remaining workers keep serving/), { timeoutMs: 10_000 });
  const after = await statsUntil(v.stats, (d) => d.state === 'ready');
  assert.deepEqual(after.workers.map((w) => w.pid), before.workers.map((w) => w.pid));
  assert.match(await serving(`${v.url}/`), /^pid /);
});

test('graceful and chain reloads under steady load fail no request (keep-alive and new connections)', async (t) => {
  const v = await startVassal(t, (p, dir) => node(p, `processes = 2\ntouch-chain-reload = ${dir}/chain.trigger`));
  writeFileSync(join(v.dir, 'chain.trigger'), '');
  await serving(`${v.url}/`);
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const client = async (keepAlive: boolean): Promise<void> => {
    while (!stop) {
      try {
        const r = await fetch(`${v.url}/`, { headers: keepAlive ? {} : { connection: 'close' }, signal: AbortSignal.timeout(5000) });
        await r.text();
        if (r.status === 200) ok++;
        else failures.push(`status ${r.status}`);
      } catch (err) {
        failures.push(String((err as Error).cause ?? err));
      }
    }
  };
  const clients = [client(true), client(true), client(false), client(false)];
  for (const reload of ['graceful', 'chain'] as const) {
    const before = await statsUntil(v.stats, (d) => d.state === 'ready' && d.workers.every((w) => w.accepting === 1));
    const served = ok;
    if (reload === 'graceful') process.kill(v.proc.pid, 'SIGHUP');
    else {
      const later = new Date(Date.now() + 5000);
      utimesSync(join(v.dir, 'chain.trigger'), later, later);
    }
    await statsUntil(v.stats, (d) => d.state === 'ready' && d.workers.every((w) => w.accepting === 1 && !before.workers.some((o) => o.pid === w.pid)), { timeoutMs: 15_000 });
    await waitFor(() => ok > served + 200, { message: 'load kept flowing' });
  }
  stop = true;
  await Promise.all(clients);
  assert.deepEqual(failures, []);
  assert.ok(ok > 400);
});
