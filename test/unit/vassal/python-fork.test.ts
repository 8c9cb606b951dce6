/**
 * The master side of preloaded Python workers (runtimes/python-fork.ts) on fakes: a
 * FakeChild plays the template process, the test speaks its side of the channel
 * (`loaded`, `forked`, `worker-exit`, `from-worker`) and reads what the master asked of
 * it. Forks, respawns without a new template, a template's death, reloads that work and
 * reloads whose new template cannot import the app.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText, resolveVassalConfig, type VassalConfig } from '@emperor/config';
import { parseMasterToTemplate, type MasterToTemplate } from '@emperor/protocol';
import { GONE_KILL_AFTER_MS, pythonRuntime, type LaunchRequest } from '@emperor/vassal';
import { FakeChild } from '../../helpers/fakes.js';
import { startMaster, type Harness } from './master-harness.js';

function pythonConfig(body = ''): VassalConfig {
  const text = `[uwsgi]\nhttp-socket = 127.0.0.1:8080\nmodule = app:application\nprocesses = 2\n${body}`;
  return resolveVassalConfig([parseConfigText(text, '/srv/v.ini', 'ini')], { env: {} }).config;
}

interface Templates {
  readonly spawned: { child: FakeChild; request: LaunchRequest; generation: number }[];
  /** Pids the fake /proc still shows alive. */
  readonly alive: Set<number>;
  readonly signals: [number, NodeJS.Signals][];
}

async function start(config: VassalConfig): Promise<{ h: Harness; t: Templates }> {
  const t: Templates = { spawned: [], alive: new Set(), signals: [] };
  const h = await startMaster(config, {
    python: (clock, logger) => ({
      ...pythonRuntime('/nonexistent/emperor-worker.py', logger, {
        spawnTemplate: (request, generation) => {
          const child = new FakeChild(clock);
          t.spawned.push({ child, request, generation });
          return child;
        },
        processToken: (pid) => (t.alive.has(pid) ? `start-${pid}` : undefined),
        signal: (pid, signal) => {
          t.signals.push([pid, signal]);
          return t.alive.has(pid);
        },
      }),
      code: [process.execPath],
      prepare: () => {},
    }),
  });
  await h.flush();
  return { h, t };
}

/** What the master sent template `n` (0-based), parsed. */
function sent(t: Templates, n: number): MasterToTemplate[] {
  return (t.spawned[n]?.child.sent ?? []).map(parseMasterToTemplate);
}

function forks(t: Templates, n: number): Extract<MasterToTemplate, { type: 'fork' }>[] {
  return sent(t, n).filter((m): m is Extract<MasterToTemplate, { type: 'fork' }> => m.type === 'fork');
}

/** The template answers every fork not answered yet with a pid (alive in the fake /proc) and, with `ready`, the worker's `ready`. */
async function fork(h: Harness, t: Templates, n: number, pids: number[], ready = true): Promise<void> {
  const template = t.spawned[n]?.child as FakeChild;
  const asks = forks(t, n).slice(-pids.length);
  asks.forEach((m, i) => {
    const pid = pids[i] as number;
    t.alive.add(pid);
    template.say({ v: 1, type: 'forked', id: m.id, pid });
  });
  await h.flush();
  if (ready) for (const m of asks) template.say({ v: 1, type: 'from-worker', id: m.id, message: { v: 1, type: 'ready' } });
  await h.flush();
}

function exitOf(h: Harness, t: Templates, n: number, pid: number, code: number | null, signal: string | null = null): void {
  void h;
  const template = t.spawned[n]?.child as FakeChild;
  t.alive.delete(pid);
  template.say({ v: 1, type: 'worker-exit', id: idOfPid(t, n, pid), pid, code, signal });
}

/** The fork id the template answered with `pid`. */
const answered = new Map<string, number>();
function idOfPid(t: Templates, n: number, pid: number): number {
  const id = answered.get(`${n}:${pid}`);
  assert.ok(id !== undefined, `no fork answered with pid ${pid}`);
  return id;
}

/** Like {@link fork}, remembering which id got which pid. */
async function forkAll(h: Harness, t: Templates, n: number, pids: number[], ready = true): Promise<void> {
  forks(t, n).slice(-pids.length).forEach((m, i) => answered.set(`${n}:${pids[i]}`, m.id));
  await fork(h, t, n, pids, ready);
}

test('one template imports the app; each worker is a fork of it; its messages, signals and exits go through the template', async () => {
  const { h, t } = await start(pythonConfig('worker-reload-mercy = 2'));
  assert.equal(t.spawned.length, 1);
  assert.equal(t.spawned[0]?.generation, 1);
  assert.deepEqual(sent(t, 0), [], 'no fork before the app is loaded');
  assert.equal(h.master.pool.procs.size, 2);
  assert.ok([...h.master.pool.procs.values()].every((p) => p.state.kind === 'spawning'));

  t.spawned[0]?.child.say({ v: 1, type: 'loaded' });
  await h.flush();
  const asked = forks(t, 0);
  assert.deepEqual(asked.map((m) => (m.spec as { id: number }).id), [1, 2]);
  assert.deepEqual(asked.map((m) => m.limitAsBytes), [0, 0]);
  await forkAll(h, t, 0, [501, 502]);
  assert.deepEqual(h.events, ['accepting', 'ready']);
  assert.deepEqual([...h.master.pool.procs.values()].map((p) => [p.pid, p.state.kind]), [[501, 'ready'], [502, 'ready']]);

  // A signal to a worker goes to its pid; the template reports its exit; the respawn is
  // a fork of the same template (no new import).
  exitOf(h, t, 0, 501, null, 'SIGKILL');
  await h.flush();
  await h.advance(500);
  assert.equal(t.spawned.length, 1, 'no second template');
  assert.equal(forks(t, 0).length, 3, 'worker 1 forked again from the same template');
  assert.equal(h.logged(/worker 1 \(pid 501\) died: killed by signal SIGKILL/).length, 1);

  // stop: the stop message reaches each worker through the template
  const stopping = h.master.stop();
  await h.flush();
  const relayed = sent(t, 0).filter((m) => m.type === 'to-worker');
  assert.ok(relayed.some((m) => m.type === 'to-worker' && m.message.type === 'stop'));
  await forkAll(h, t, 0, [503], false);
  // The mercy runs out: SIGKILL to each pid.
  await h.advance(2000);
  assert.deepEqual(t.signals.filter(([, s]) => s === 'SIGKILL').map(([pid]) => pid).sort(), [502, 503]);
  for (const pid of [502, 503]) exitOf(h, t, 0, pid, null, 'SIGKILL');
  await h.flush();
  await stopping;
  assert.ok(sent(t, 0).some((m) => m.type === 'stop'), 'the template is told to go once its workers are gone');
});

test('a template that dies takes its workers with it: each exit is reported once /proc shows the pid gone, then a new template', async () => {
  const { h, t } = await start(pythonConfig());
  t.spawned[0]?.child.say({ v: 1, type: 'loaded' });
  await h.flush();
  await forkAll(h, t, 0, [601, 602]);
  t.spawned[0]?.child.exitWith(null, 'SIGKILL');
  await h.flush();
  assert.equal(h.logged(/app template of generation 1 \(pid \d+\) died: killed by signal SIGKILL; its 2 worker\(s\) die with it/).length, 1);
  // 601 is gone at once; 602 lingers (the kernel has not delivered its pdeathsig yet).
  t.alive.delete(601);
  await h.advance(20);
  assert.equal(h.logged(/worker 1 \(pid 601\) died: killed by signal SIGKILL/).length, 1);
  assert.equal(h.logged(/worker 2 \(pid 602\) died/).length, 0, 'not reported while /proc still shows it');
  await h.advance(GONE_KILL_AFTER_MS);
  assert.ok(t.signals.some(([pid, s]) => pid === 602 && s === 'SIGKILL'), 'a worker that outlives its template is killed by pid');
  t.alive.delete(602);
  await h.advance(20);
  assert.equal(h.logged(/worker 2 \(pid 602\) died: killed by signal SIGKILL/).length, 1);
  // Respawned with backoff, from a new template that imports the app again.
  await h.advance(1000);
  assert.equal(t.spawned.length, 2);
  t.spawned[1]?.child.say({ v: 1, type: 'loaded' });
  await h.flush();
  assert.equal(forks(t, 1).length, 2);
});

test('reload: a new template for the new generation; the old one goes once its last worker exited', async () => {
  const { h, t } = await start(pythonConfig());
  t.spawned[0]?.child.say({ v: 1, type: 'loaded' });
  await h.flush();
  await forkAll(h, t, 0, [701, 702]);
  const reloaded = h.master.reload('graceful');
  await h.flush();
  assert.equal(t.spawned.length, 2);
  assert.equal(t.spawned[1]?.generation, 2);
  t.spawned[1]?.child.say({ v: 1, type: 'loaded' });
  await h.flush();
  await forkAll(h, t, 1, [711, 712]);
  assert.equal(await reloaded, true);
  const stops = sent(t, 0).filter((m) => m.type === 'to-worker' && m.message.type === 'stop');
  assert.equal(stops.length, 2, 'the old workers are asked to stop through their template');
  assert.ok(!sent(t, 0).some((m) => m.type === 'stop'));
  exitOf(h, t, 0, 701, 0);
  await h.flush();
  assert.ok(!sent(t, 0).some((m) => m.type === 'stop'), 'kept while one of its workers lives');
  exitOf(h, t, 0, 702, 0);
  await h.flush();
  assert.ok(sent(t, 0).some((m) => m.type === 'stop'));
  assert.ok(!sent(t, 1).some((m) => m.type === 'stop'));
  // A respawn now forks from generation 2's template.
  exitOf(h, t, 1, 711, 1);
  await h.advance(500);
  assert.equal(forks(t, 1).length, 3);
});

test('reload whose new template cannot import the app: abandoned, the old workers serve on, respawns fork from the old template', async () => {
  const { h, t } = await start(pythonConfig());
  t.spawned[0]?.child.say({ v: 1, type: 'loaded' });
  await h.flush();
  await forkAll(h, t, 0, [801, 802]);
  const reloaded = h.master.reload('graceful');
  await h.flush();
  assert.equal(t.spawned[1]?.generation, 2);
  t.spawned[1]?.child.exitWith(22);
  await h.flush();
  assert.equal(await reloaded, false);
  assert.equal(h.logged(/^reload abandoned: .*generation 1 keeps serving/).length, 1);
  assert.ok(!sent(t, 0).some((m) => m.type === 'to-worker' || m.type === 'stop'), 'the old workers and their template are left alone');
  assert.deepEqual([...h.master.pool.procs.values()].map((p) => [p.pid, p.state.kind]), [[801, 'ready'], [802, 'ready']]);
  // A crash of an old worker respawns from the serving template, not from the broken one.
  exitOf(h, t, 0, 801, 1);
  await h.advance(500);
  assert.equal(t.spawned.length, 2, 'no template started for the abandoned generation');
  assert.equal(forks(t, 0).length, 3);
  assert.equal((forks(t, 0)[2]?.spec as { generation: number }).generation, 1);
});

test('a template that cannot import the app at start: its workers die with its exit code and are respawned with backoff', async () => {
  const { h, t } = await start(pythonConfig('processes = 1'));
  t.spawned[0]?.child.exitWith(22);
  await h.flush();
  await h.flush();
  assert.equal(h.logged(/^worker 1 \(pid \d+\) died: exit code 22 .*respawning in 0\.5 s/).length, 1, JSON.stringify(h.lines.map((l) => l.msg)));
  await h.advance(500);
  assert.equal(t.spawned.length, 2);
});

test('a fork the template cannot make (fork() failed) is ERR_APP_TEMPLATE, one line, retried later; a template that never loads is killed at worker-ready-timeout', async () => {
  const { h, t } = await start(pythonConfig('processes = 1\nworker-ready-timeout = 5'));
  t.spawned[0]?.child.say({ v: 1, type: 'loaded' });
  await h.flush();
  const [ask] = forks(t, 0);
  t.spawned[0]?.child.say({ v: 1, type: 'fork-failed', id: ask?.id, reason: 'fork: [Errno 11] Resource temporarily unavailable' });
  await h.flush();
  await h.flush();
  const lines = h.logged(/^cannot spawn worker 1: the app template of generation 1 \(pid \d+\) could not fork: fork: \[Errno 11\]/);
  assert.equal(lines.length, 1);
  assert.equal((lines[0]?.err as { code?: string } | undefined)?.code, 'ERR_APP_TEMPLATE');
  await h.advance(30_000);
  assert.equal(forks(t, 0).length, 2, 'asked again after 30 s');

  const slow = await start(pythonConfig('processes = 1\nworker-ready-timeout = 5'));
  await slow.h.advance(5000);
  assert.deepEqual(slow.t.spawned[0]?.child.signals, ['SIGKILL']);
  assert.equal(slow.h.logged(/^app template of generation 1 \(pid \d+\) did not load the app within worker-ready-timeout \(5 s\); killing it/).length, 1);
  await slow.h.flush();
  assert.equal(slow.h.logged(/^worker 1 \(pid \d+\) died: killed by signal SIGKILL/).length, 1);
});

test('a worker\'s ready that comes in the same read as its forked (before the launch settles) is not lost', async () => {
  const { h, t } = await start(pythonConfig('processes = 1'));
  t.spawned[0]?.child.say({ v: 1, type: 'loaded' });
  await h.flush();
  const [ask] = forks(t, 0);
  assert.ok(ask !== undefined);
  const template = t.spawned[0]?.child as FakeChild;
  t.alive.add(601);
  // Back to back, as two lines of one chunk: no promise continuation runs in between.
  template.say({ v: 1, type: 'forked', id: ask.id, pid: 601 });
  template.say({ v: 1, type: 'from-worker', id: ask.id, message: { v: 1, type: 'ready' } });
  await h.flush();
  await h.flush();
  assert.deepEqual([...h.master.pool.procs.values()].map((p) => [p.pid, p.state.kind]), [[601, 'ready']]);
  assert.deepEqual(h.events, ['accepting', 'ready']);
});
