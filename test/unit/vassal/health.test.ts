import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EMPTY_SLOT, SlotStatus, checkHealth, cpusForWorker, harakiriDeadline, nextHarakiriDeadline, type HealthConfig, type HealthProc } from '@emperor/vassal';

const MB = 1024 * 1024;
const T0 = 1_800_000_000_000;
const config: HealthConfig = {
  harakiriMs: 3000, minWorkerLifetimeMs: 10_000, maxWorkerLifetimeMs: 0, maxWorkerLifetimeDeltaMs: 0,
  reloadOnRssBytes: 0, reloadOnAsBytes: 0, evilReloadOnRssBytes: 0, evilReloadOnAsBytes: 0,
};

function proc(over: Partial<Omit<HealthProc, 'data'>> & { data?: Partial<HealthProc['data']> } = {}): HealthProc {
  const { data, ...rest } = over;
  return {
    id: 1, pid: 100, sync: true, state: 'ready', spawnedAt: T0, heartbeatIntervalMs: 250, rss: 50 * MB, vsz: 900 * MB, handled: false,
    ...rest,
    data: { ...EMPTY_SLOT, pid: 100, status: SlotStatus.IDLE, heartbeatMs: T0, ...data },
  };
}

test('a sync worker is killed once its request has run for harakiri, not a millisecond before', () => {
  const busy = proc({ data: { status: SlotStatus.BUSY, requestStartMs: T0 + 1000, method: 'GET', uri: '/slow' } });
  assert.equal(harakiriDeadline(busy, 3000), T0 + 4000);
  assert.deepEqual(checkHealth([busy], config, T0 + 3999), []);
  const [action] = checkHealth([busy], config, T0 + 4000);
  assert.deepEqual(action && { kind: action.kind, cause: action.kind === 'harakiri' && action.cause, ranMs: action.kind === 'harakiri' && action.ranMs }, { kind: 'harakiri', cause: 'request', ranMs: 3000 });
});

test('an idle sync worker, a starting one, a stale slot (other pid) and harakiri = 0 are never killed', () => {
  const late = T0 + 60_000;
  assert.deepEqual(checkHealth([proc()], config, late), []);
  assert.deepEqual(checkHealth([proc({ state: 'starting', data: { status: SlotStatus.BUSY, requestStartMs: T0 } })], config, late), []);
  assert.deepEqual(checkHealth([proc({ data: { pid: 99, status: SlotStatus.BUSY, requestStartMs: T0 } })], config, late), []);
  assert.deepEqual(checkHealth([proc({ data: { status: SlotStatus.BUSY, requestStartMs: T0 } })], { ...config, harakiriMs: 0 }, late), []);
  assert.deepEqual(checkHealth([proc({ handled: true, data: { status: SlotStatus.BUSY, requestStartMs: T0 } })], config, late), []);
});

test('an event-loop worker is judged by its heartbeat, with one beat of slack', () => {
  const node = proc({ sync: false, data: { heartbeatMs: T0, inFlight: 5, status: SlotStatus.BUSY, requestStartMs: T0 - 50_000 } });
  // A long request alone does not matter: the worker ends it itself.
  assert.equal(harakiriDeadline(node, 3000), T0 + 3250);
  assert.deepEqual(checkHealth([node], config, T0 + 3249), []);
  const [a] = checkHealth([node], config, T0 + 3250);
  assert.equal(a?.kind, 'harakiri');
  assert.equal(a?.kind === 'harakiri' && a.cause, 'heartbeat');
  assert.equal(a?.kind === 'harakiri' && a.ranMs, 3250);
});

test('a stopping worker stuck in a request still meets harakiri', () => {
  const p = proc({ state: 'stopping', data: { status: SlotStatus.BUSY, requestStartMs: T0 } });
  assert.equal(checkHealth([p], config, T0 + 3000)[0]?.kind, 'harakiri');
});

test('the earliest deadline is found across workers', () => {
  const a = proc({ id: 1, pid: 1, data: { pid: 1, status: SlotStatus.BUSY, requestStartMs: T0 + 500 } });
  const b = proc({ id: 2, pid: 2, sync: false, data: { pid: 2, heartbeatMs: T0 } });
  assert.equal(nextHarakiriDeadline([a, b], 3000), T0 + 3250);
  assert.equal(nextHarakiriDeadline([proc()], 3000), undefined);
});

test('reload-on-rss and reload-on-as recycle gracefully, but only after min-worker-lifetime', () => {
  const fat = proc({ rss: 300 * MB, vsz: 2000 * MB });
  const c = { ...config, reloadOnRssBytes: 200 * MB, reloadOnAsBytes: 1500 * MB };
  assert.deepEqual(checkHealth([fat], c, T0 + 9_999), []);
  const [a] = checkHealth([fat], c, T0 + 10_000);
  assert.deepEqual(a && a.kind === 'recycle' && [a.reason, a.detail], ['reload-on-rss', 'rss 300 MB > 200 MB']);
  const [b] = checkHealth([proc({ vsz: 2000 * MB })], c, T0 + 10_000);
  assert.deepEqual(b && b.kind === 'recycle' && [b.reason, b.detail], ['reload-on-as', 'address space 2000 MB > 1500 MB']);
  assert.deepEqual(checkHealth([proc({ rss: 300 * MB, handled: true })], c, T0 + 20_000), [], 'a replacement is already on its way');
});

test('the evil limits kill at once, without waiting for min-worker-lifetime', () => {
  const c = { ...config, evilReloadOnRssBytes: 200 * MB, reloadOnRssBytes: 100 * MB };
  const [a] = checkHealth([proc({ rss: 300 * MB })], c, T0 + 1);
  assert.deepEqual(a && a.kind === 'evil-kill' && a.reason, 'evil-reload-on-rss');
  const [b] = checkHealth([proc({ vsz: 3000 * MB })], { ...config, evilReloadOnAsBytes: 2000 * MB }, T0 + 1);
  assert.deepEqual(b && b.kind === 'evil-kill' && b.reason, 'evil-reload-on-as');
});

test('max-worker-lifetime recycles worker N after lifetime + (N-1) * delta', () => {
  const c = { ...config, maxWorkerLifetimeMs: 60_000, maxWorkerLifetimeDeltaMs: 30_000 };
  const w1 = proc({ id: 1, pid: 1, data: { pid: 1 } });
  const w2 = proc({ id: 2, pid: 2, data: { pid: 2 } });
  assert.deepEqual(checkHealth([w1, w2], c, T0 + 60_001).map((a) => a.proc.id), [1]);
  assert.deepEqual(checkHealth([w1, w2], c, T0 + 90_001).map((a) => a.proc.id), [1, 2]);
});

test('cpu-affinity assigns CPUs round-robin as uWSGI does', () => {
  assert.deepEqual([1, 2, 3].map((id) => cpusForWorker(id, 1, 2)), [[0], [1], [0]]);
  assert.deepEqual([1, 2, 3].map((id) => cpusForWorker(id, 2, 4)), [[0, 1], [2, 3], [0, 1]]);
  assert.deepEqual(cpusForWorker(2, 3, 4), [3, 0, 1]);
  assert.deepEqual(cpusForWorker(1, 4, 2), [0, 1], 'never more CPUs than the machine has');
  assert.deepEqual(cpusForWorker(1, 0, 2), []);
});
