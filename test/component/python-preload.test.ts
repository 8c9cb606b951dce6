/**
 * Python workers forked from a preloaded app (the default; `lazy-apps` turns it off), on
 * real processes: one import per generation (counted by the app's own side effect),
 * post-fork hooks and the `uwsgi` module, respawns without an import, reloads with a new
 * template and with a broken one, a killed template, and the memory the sharing saves
 * (PSS, with Django).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, descendants, httpGet, isAlive, parentOf, startVassal, statsOf, statsUntil, waitFor, workersAccepting, type TestVassal, type VassalStatsDoc } from '../helpers/index.js';
import { DEBIAN_PYTHON, requireDjango } from '../helpers/nginx.js';
import { nginxVars, uwsgiRequest } from '../helpers/wire.js';

/** An app that logs each import and each post-fork hook run (pid and worker id) in its directory. */
const APP = `import json, os, time
HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "imports.log"), "a") as f:
    f.write("%d\\n" % os.getpid())
import uwsgi
from uwsgidecorators import postfork

@postfork
def opened():
    with open(os.path.join(HERE, "postfork.log"), "a") as f:
        f.write("%d %d\\n" % (os.getpid(), uwsgi.worker_id()))

def application(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(30)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"pid": os.getpid(), "worker_id": uwsgi.worker_id(), "numproc": uwsgi.numproc,
        "processes": repr(uwsgi.opt.get("processes")), "env": repr(uwsgi.opt.get("env")), "masterpid": uwsgi.masterpid()}).encode()]
`;

function lines(v: TestVassal, name: string): string[] {
  try {
    return readFileSync(join(v.dir, name), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

async function startCounted(t: import('node:test').TestContext, extra = '', processes = 2): Promise<TestVassal> {
  return startVassal(t, (port, d) => {
    writeFileSync(join(d, 'app.py'), APP);
    return `http-socket = 127.0.0.1:${port}\nwsgi-file = ${join(d, 'app.py')}\nprocesses = ${processes}\nenv = A=1\nenv = B=2\n${extra}`;
  });
}

/** The pids of the vassal's processes that are not workers in `doc` (the templates). */
function templatesOf(v: TestVassal, doc: VassalStatsDoc): number[] {
  const workers = new Set(doc.workers.map((w) => w.pid));
  return descendants(v.proc.pid).filter((p) => !workers.has(p));
}

test('one import for every worker: postfork runs in each, the uwsgi module answers, and respawns after harakiri and max-requests do not import again', async (t) => {
  const v = await startCounted(t, 'harakiri = 1\nmax-requests = 3\nmin-worker-lifetime = 0');
  const doc = await workersAccepting(v, 2);
  const [template] = templatesOf(v, doc);
  assert.deepEqual(lines(v, 'imports.log'), [String(template)], 'imported once, in the template');
  const hooks = () => lines(v, 'postfork.log').map((l) => l.split(' ').map(Number) as [number, number]);
  await waitFor(() => hooks().length === 2, { message: 'postfork in both workers' });
  assert.deepEqual(new Set(hooks().map(([pid, id]) => `${pid}:${id}`)), new Set(doc.workers.map((w) => `${w.pid}:${w.id}`)));

  const body = JSON.parse((await httpGet(`${v.url}/`)).body) as Record<string, unknown>;
  const served = doc.workers.find((w) => w.pid === body.pid);
  assert.ok(served, `answered by a worker: ${JSON.stringify(body)}`);
  assert.equal(body.worker_id, served.id);
  assert.equal(body.numproc, 2);
  assert.equal(body.processes, "b'2'", 'option values are bytes, as uWSGI gives them');
  assert.equal(body.env, "[b'A=1', b'B=2']", 'a repeated option is a list');
  assert.equal(body.masterpid, doc.pid);

  // harakiri: the worker is killed; its replacement is forked, not imported.
  void httpGet(`${v.url}/sleep`).catch(() => undefined);
  await v.proc.logs.waitFor((l) => /^HARAKIRI ON WORKER \d/.test(l.msg ?? ''), { timeoutMs: 6000 });
  // max-requests: recycled after 3 requests, as many times as the requests ask.
  for (let i = 0; i < 8; i++) await httpGet(`${v.url}/`);
  const after = await statsUntil(v.stats, (d) => d.workers.every((w) => w.status === 'idle' && w.accepting === 1)
    && d.workers.some((w) => w.last_exit_reason === 'max-requests'), { timeoutMs: 15_000 });
  assert.ok(after.workers.reduce((n, w) => n + w.respawn_count, 0) >= 4, 'respawned after harakiri and max-requests');
  assert.deepEqual(lines(v, 'imports.log'), [String(template)], 'still the one import');
  // Every process spawned so far ran the hook (one may be writing it now: a recycle's replacement).
  await waitFor(async () => {
    const d = await statsOf<VassalStatsDoc>(v.stats);
    return hooks().length === d.workers.reduce((n, w) => n + w.respawn_count, 0);
  }, { message: 'postfork in every fork' });
  assert.ok(hooks().length >= 4);
  await waitFor(async () => (await statsOf<VassalStatsDoc>(v.stats)).workers.every((w) => parentOf(w.pid) === template), { message: 'every worker a child of the template' });

  // A reload imports the new code once, in a new template; the old one goes with its workers.
  process.kill(doc.pid, 'SIGHUP');
  await v.proc.logs.waitFor((l) => /^reload complete: generation 2 serving/.test(l.msg ?? ''), { timeoutMs: 15_000 });
  await waitFor(() => lines(v, 'imports.log').length === 2, { message: 'a second import' });
  await waitFor(() => !isAlive(template as number), { message: 'the old template exits after its last worker', timeoutMs: 10_000 });
});

test('reload with a broken import: one error naming the file, the reload abandoned, the old workers keep serving', async (t) => {
  const v = await startCounted(t);
  const doc = await workersAccepting(v, 2);
  const pids = doc.workers.map((w) => w.pid).sort();
  writeFileSync(join(v.dir, 'app.py'), `${APP}\ndef broken(:\n`);
  process.kill(doc.pid, 'SIGHUP');
  const abandoned = await v.proc.logs.waitFor((l) => /^reload abandoned/.test(l.msg ?? ''), { timeoutMs: 15_000 });
  const cause = v.proc.logs.find((l) => /^cannot load app .*app\.py: SyntaxError/.test(l.msg ?? ''));
  assert.equal(cause.length, 1, v.proc.logs.tail());
  assert.equal(cause[0]?.template, 2);
  assert.ok((cause[0]?.time as number) <= (abandoned.time as number));
  const still = await statsOf<VassalStatsDoc>(v.stats);
  assert.deepEqual(still.workers.map((w) => w.pid).sort(), pids, 'the same workers');
  for (let i = 0; i < 4; i++) assert.ok(pids.includes(Number(JSON.parse((await httpGet(`${v.url}/`)).body).pid)));
  // Fixed: the next reload goes through.
  writeFileSync(join(v.dir, 'app.py'), APP);
  process.kill(doc.pid, 'SIGHUP');
  await v.proc.logs.waitFor((l) => /^reload complete: generation 3 serving/.test(l.msg ?? ''), { timeoutMs: 15_000 });
});

test('a template killed with SIGKILL: none of its workers survives it; a new template imports the app and forks them again', async (t) => {
  const v = await startCounted(t, '', 3);
  const doc = await workersAccepting(v, 3);
  const [template] = templatesOf(v, doc);
  const old = doc.workers.map((w) => w.pid);
  process.kill(template as number, 'SIGKILL');
  await waitFor(() => old.every((p) => !isAlive(p)), { timeoutMs: 2000, message: 'every worker of the dead template gone' });
  await v.proc.logs.waitFor((l) => /^the app template of generation 1 \(pid \d+\) died: killed by signal SIGKILL; its 3 worker\(s\) die with it/.test(l.msg ?? ''));
  const fresh = await statsUntil(v.stats, (d) => d.workers.every((w) => w.accepting === 1 && !old.includes(w.pid)), { timeoutMs: 15_000 });
  assert.equal(lines(v, 'imports.log').length, 2);
  assert.notEqual(templatesOf(v, fresh)[0], template);
});

test('lazy-apps: each worker imports the app, then runs its postfork hooks', async (t) => {
  const v = await startCounted(t, 'lazy-apps = true');
  const doc = await workersAccepting(v, 2);
  assert.deepEqual(templatesOf(v, doc), [], 'no template');
  assert.deepEqual(lines(v, 'imports.log').sort(), doc.workers.map((w) => String(w.pid)).sort());
  await waitFor(() => lines(v, 'postfork.log').length === 2, { message: 'postfork in both workers' });
  assert.deepEqual(new Set(lines(v, 'postfork.log')), new Set(doc.workers.map((w) => `${w.pid} ${w.id}`)));
});

/** PSS of `pid` in bytes (/proc/PID/smaps_rollup). */
function pssOf(pid: number): number {
  return Number(/^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1]) * 1024;
}

test('Django, 4 workers: a forked worker shares its pages (PSS well below RSS), and the vassal costs less than with lazy-apps', async (t) => {
  requireDjango();
  const totals: Record<string, number> = {};
  for (const [mode, option] of [['preload', ''], ['lazy-apps', 'lazy-apps = true']] as const) {
    const v = await startVassal(t, (port, d) => {
      const project = join(d, 'project');
      mkdirSync(project);
      execFileSync(DEBIAN_PYTHON, ['-m', 'django', 'startproject', 'mysite', project], { stdio: 'ignore' });
      appendFileSync(join(project, 'mysite', 'settings.py'), "\nALLOWED_HOSTS = ['*']\n");
      return `http-socket = 127.0.0.1:${port}\nchdir = ${project}\nmodule = mysite.wsgi:application\nprocesses = 4\nenv = PATH=/usr/bin:/bin\n${option}`;
    });
    await workersAccepting(v, 4, { timeoutMs: 30_000 });
    // Warm every worker up: each serves a few requests (a 404 page renders a template).
    for (let i = 0; i < 16; i++) await httpGet(`${v.url}/nowhere`);
    const doc = await statsUntil(v.stats, (d) => d.workers.every((w) => w.pss > 0));
    if (mode === 'preload') {
      for (const w of doc.workers) assert.ok(w.pss < w.rss * 0.6, `worker ${w.id}: pss ${w.pss} not well below rss ${w.rss}`);
    }
    totals[mode] = descendants(v.proc.pid).reduce((sum, pid) => sum + pssOf(pid), 0);
    const stopped = v.proc.exited;
    process.kill(v.proc.pid, 'SIGTERM');
    await stopped;
  }
  const { preload = 0, 'lazy-apps': lazy = 0 } = totals;
  assert.ok(preload < lazy * 0.8, `total PSS of the workers (and template): preload ${(preload / 2 ** 20).toFixed(1)} MiB, lazy-apps ${(lazy / 2 ** 20).toFixed(1)} MiB`);
});

/** Whether the build made the C accelerator (scripts/build-python.mjs) for the Python the workers run. */
function speedupsBuilt(): boolean {
  const suffix = execFileSync('python3', ['-c', 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))'], { encoding: 'utf8' }).trim();
  return existsSync(join(ROOT, 'packages', 'vassal', 'python', 'emperor_worker', `_speedups${suffix}`));
}

test('the "app loaded" line says which request path runs: the C accelerator where it is built, pure Python with EMPEROR_PY_SPEEDUPS=0 (preload and lazy-apps); both serve uwsgi packets', async (t) => {
  const built = speedupsBuilt();
  for (const [option, env] of [['', {}], ['lazy-apps = true', {}], ['', { EMPEROR_PY_SPEEDUPS: '0' }], ['lazy-apps = true', { EMPEROR_PY_SPEEDUPS: '0' }]] as const) {
    const v = await startVassal(t, (port, d) => {
      writeFileSync(join(d, 'app.py'), APP);
      return `socket = 127.0.0.1:${port}\nwsgi-file = ${join(d, 'app.py')}\nprocesses = 1\n${option}`;
    }, { env });
    const line = await v.proc.logs.waitFor((l) => /^app loaded/.test(l.msg ?? ''), { timeoutMs: 15_000 });
    const off = 'EMPEROR_PY_SPEEDUPS' in env;
    assert.equal(line.speedups, built && !off, `${option} ${JSON.stringify(env)}: ${line.raw}`);
    if (off) assert.equal(line.speedups_off, 'EMPEROR_PY_SPEEDUPS=0');
    await workersAccepting(v, 1);
    const answer = await uwsgiRequest(v.port, nginxVars('GET', '/x?y=1', { HTTPS: 'on' }));
    assert.equal(answer.statusLine, 'HTTP/1.1 200 OK');
    assert.equal((JSON.parse(answer.body.toString()) as { numproc: number }).numproc, 1);
    v.proc.child.kill('SIGTERM');
    await v.proc.exited;
  }
});

test('concurrent new connections spread over idle workers: a worker serves the connection it took before it takes another', async (t) => {
  // Each request holds its worker 0.3 s. A worker that parked a new connection (its request
  // not there yet at accept) and went back to the wait took the next ones too before its
  // idle peers woke, and served them one after the other (measured: 4 at once on 4 workers
  // all landed on 1 or 2). Fresh connections each round (Connection: close).
  const v = await startVassal(t, (port, d) => {
    writeFileSync(join(d, 'app.py'), 'import os, time\ndef application(environ, start_response):\n    time.sleep(0.3)\n    start_response("200 OK", [("Content-Type", "text/plain")])\n    return [str(os.getpid()).encode()]\n');
    return `http-socket = 127.0.0.1:${port}\nwsgi-file = ${join(d, 'app.py')}\nprocesses = 4\ndisable-logging = true`;
  });
  await workersAccepting(v, 4);
  const rounds: number[] = [];
  for (let i = 0; i < 8; i++) {
    const pids = await Promise.all(Array.from({ length: 4 }, async () => (await httpGet(`${v.url}/`)).body));
    rounds.push(new Set(pids).size);
  }
  // Which worker wins each race is the kernel's: most rounds reach 3 or 4 workers, not all.
  const spread = rounds.filter((n) => n >= 3).length;
  assert.ok(spread >= 4, `distinct workers per round of 4 concurrent requests: ${rounds.join(' ')}`);
});
