/**
 * The Node worker's parts that decide without I/O: when the slot is written and what it
 * says, when max-requests recycles, how a stop ends, the harakiri line. Time is passed in
 * or faked; the writer, the sockets and the master are fakes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@emperor/process/logger';
import type { WorkerToMaster } from '@emperor/protocol';
import { SlotStatus, type SlotData } from '@emperor/vassal';
import { BUSY_PUBLISH_MS, IDLE_PUBLISH_MS, SlotPublisher, slotStatus } from '@emperor/vassal/node-worker/slot';
import { Lifecycle, recycleDue } from '@emperor/vassal/node-worker/lifecycle';
import { harakiriMessage } from '@emperor/vassal/node-worker/harakiri';
import type { Serving } from '@emperor/vassal/node-worker/protocols/index';

interface Fake {
  readonly slot: SlotPublisher;
  readonly writes: SlotData[];
  readonly timers: Array<{ fn: () => void; ms: number }>;
  clock: number;
}

function fakeSlot(harakiriMs = 0): Fake {
  const fake = { writes: [] as SlotData[], timers: [] as Array<{ fn: () => void; ms: number }>, clock: 1_000_000 } as Fake;
  (fake as { slot: SlotPublisher }).slot = new SlotPublisher({ write: (d) => fake.writes.push(d) }, {
    harakiriMs,
    heartbeatIntervalMs: 250,
    onWriteError: (err) => assert.fail(err),
    now: () => fake.clock,
    schedule: (fn, ms) => fake.timers.push({ fn, ms }),
  });
  return fake;
}

const request = (method: string, url: string): IncomingMessage => ({ method, url }) as IncomingMessage;
const response = (): ServerResponse & { headers: Record<string, string> } => {
  const headers: Record<string, string> = {};
  return { headersSent: false, headers, setHeader: (k: string, v: string) => (headers[k] = v) } as unknown as ServerResponse & { headers: Record<string, string> };
};
const quiet = (lines: string[] = []): Logger => ({ info: (_: unknown, m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: () => {} }) as unknown as Logger;

test('slotStatus: starting, then busy or idle by the requests in flight, stopping above all', () => {
  assert.equal(slotStatus('starting', 0), SlotStatus.STARTING);
  assert.equal(slotStatus('starting', 3), SlotStatus.STARTING);
  assert.equal(slotStatus('serving', 0), SlotStatus.IDLE);
  assert.equal(slotStatus('serving', 1), SlotStatus.BUSY);
  assert.equal(slotStatus('stopping', 1), SlotStatus.STOPPING);
});

test('slot: the request that makes an idle worker busy is written at once, with its method, URI and start', () => {
  const f = fakeSlot();
  f.slot.markServing();
  f.slot.publish();
  f.clock += BUSY_PUBLISH_MS;
  const a = request('GET', '/slow');
  f.slot.requestStarted(a, response(), f.clock);
  assert.equal(f.writes.length, 2);
  assert.deepEqual(
    { status: f.writes[1]?.status, inFlight: f.writes[1]?.inFlight, method: f.writes[1]?.method, uri: f.writes[1]?.uri, start: f.writes[1]?.requestStartMs },
    { status: SlotStatus.BUSY, inFlight: 1, method: 'GET', uri: '/slow', start: f.clock },
  );
  // A second request while busy is not written; the oldest stays the one shown.
  f.slot.requestStarted(request('POST', '/other'), response(), f.clock + 5);
  assert.equal(f.writes.length, 2);
  f.slot.publish();
  assert.equal(f.writes[2]?.uri, '/slow');
  assert.equal(f.writes[2]?.inFlight, 2);
});

test('slot: busy within a millisecond of a write, and idle within 100 ms, wait for the catch-up write', () => {
  const f = fakeSlot();
  f.slot.markServing();
  f.slot.publish(); // at clock
  const a = request('GET', '/a');
  f.slot.requestStarted(a, response(), f.clock); // 0 ms after the write
  assert.equal(f.writes.length, 1, 'not written again within BUSY_PUBLISH_MS');
  assert.equal(f.timers.length, 1, 'the catch-up write is armed');
  assert.equal(f.timers[0]?.ms, 250);
  const n = f.slot.requestEnded(a, 1500, 120, f.clock + IDLE_PUBLISH_MS - 1);
  assert.equal(n, 1);
  assert.equal(f.writes.length, 1, 'idle within IDLE_PUBLISH_MS of the last write: not written');
  assert.equal(f.timers.length, 1, 'the armed catch-up is not armed twice');
  f.clock += 250;
  f.timers.shift()?.fn();
  assert.equal(f.writes.length, 1 + 1);
  assert.deepEqual(
    { status: f.writes[1]?.status, requests: f.writes[1]?.requests, tx: f.writes[1]?.txBytes, rt: f.writes[1]?.runningTimeUs, heartbeat: f.writes[1]?.heartbeatMs },
    { status: SlotStatus.IDLE, requests: 1, tx: 120, rt: 1500, heartbeat: f.clock },
  );
  assert.equal(f.timers.length, 0, 'idle: nothing armed, the worker sleeps');
  // Ending a request 100 ms or more after the last write is written at once.
  const b = request('GET', '/b');
  f.clock += 10;
  f.slot.requestStarted(b, response(), f.clock);
  assert.equal(f.writes.length, 3);
  f.slot.requestEnded(b, 500, 10, f.clock + IDLE_PUBLISH_MS);
  assert.equal(f.writes.length, 4);
  assert.equal(f.writes[3]?.status, SlotStatus.IDLE);
  assert.equal(f.writes[3]?.avgRtUs, (1500 + 500) / 2, "uWSGI's running average");
});

test('slot: with harakiri, a request start is written even right after the heartbeat write (the harakiri line names it)', () => {
  const f = fakeSlot(1000);
  f.slot.markServing();
  f.slot.publish(); // the heartbeat interval's write, in the same millisecond as the request
  f.slot.requestStarted(request('GET', '/spin'), response(), f.clock);
  assert.equal(f.writes.length, 2);
  assert.deepEqual({ status: f.writes[1]?.status, uri: f.writes[1]?.uri, start: f.writes[1]?.requestStartMs }, { status: SlotStatus.BUSY, uri: '/spin', start: f.clock });
});

test('slot: a write asked for by a stats read does not hold back the next request start (issue 17)', () => {
  const f = fakeSlot();
  f.slot.markServing();
  f.slot.publishRequested(); // at clock: the master's publish
  assert.equal(f.writes.length, 1);
  f.slot.requestStarted(request('GET', '/spin'), response(), f.clock); // 0 ms after it
  assert.equal(f.writes.length, 2, 'written at once: a request that blocks the event loop is in the slot');
  assert.equal(f.writes[1]?.uri, '/spin');
});

test('slot: with harakiri no catch-up timer is armed (the heartbeat interval writes instead)', () => {
  const f = fakeSlot(2000);
  f.slot.markServing();
  f.slot.requestStarted(request('GET', '/'), response(), f.clock + 10);
  f.slot.changed();
  assert.equal(f.timers.length, 0);
});

test('slot: a stop that came during start-up is not undone when the sockets listen', () => {
  const f = fakeSlot();
  f.slot.markStopping();
  f.slot.markServing();
  assert.equal(f.slot.phase, 'stopping');
  f.slot.publish();
  assert.equal(f.writes[0]?.status, SlotStatus.STOPPING);
});

test('recycleDue: max-requests reached, and only after min-worker-lifetime; 0 is off', () => {
  assert.equal(recycleDue(5, 5, 60_000, 60_000), true);
  assert.equal(recycleDue(4, 5, 60_000, 60_000), false);
  assert.equal(recycleDue(5, 5, 59_999, 60_000), false);
  assert.equal(recycleDue(1_000, 0, 60_000, 0), false);
});

function fakeLifecycle(maxRequests: number, minWorkerLifetimeMs = 0) {
  const f = fakeSlot();
  const sent: WorkerToMaster[] = [];
  const lines: string[] = [];
  let stopped = 0;
  let closes = 0;
  let finishClose: () => void = () => {};
  const serving: Serving = {
    servers: [],
    close: () => {
      closes += 1;
      return new Promise<void>((resolve) => (finishClose = resolve));
    },
  };
  const lifecycle = new Lifecycle({
    slot: f.slot, logger: quiet(lines), maxRequests, minWorkerLifetimeMs, startedAtMs: Date.now(), send: (m) => sent.push(m),
    reopenLogs: () => lines.push('reopened'), onStopped: () => (stopped += 1),
  });
  f.slot.markServing();
  f.slot.accepting = true;
  lifecycle.served(serving);
  return { f, lifecycle, sent, lines, stopped: () => stopped, closes: () => closes, finishClose: () => finishClose() };
}

test('max-requests: the request that reaches it stops accepting and asks for a replacement, once', () => {
  const t = fakeLifecycle(2);
  const res = response();
  const inFlight = request('GET', '/still-running');
  t.f.slot.requestStarted(inFlight, res, t.f.clock);
  for (let i = 0; i < 2; i++) {
    t.f.slot.requestEnded(request('GET', '/'), 10, 10, t.f.clock);
    t.lifecycle.requestEnded();
  }
  assert.equal(t.lifecycle.state, 'recycling');
  assert.equal(t.lifecycle.draining, true);
  assert.deepEqual(t.sent, [{ v: 1, type: 'recycle', reason: 'max-requests' }]);
  assert.deepEqual(t.lines, ['served 2 requests (max-requests 2); asking to be replaced']);
  assert.equal(t.closes(), 1);
  assert.equal(t.f.slot.accepting, false);
  assert.equal(res.headers.connection, 'close', 'the response in flight closes its connection');
  t.f.slot.requestEnded(request('GET', '/'), 10, 10, t.f.clock);
  t.lifecycle.requestEnded();
  assert.equal(t.sent.length, 1, 'asked once');
});

test('max-requests waits for min-worker-lifetime', () => {
  const t = fakeLifecycle(1, 60_000);
  t.f.slot.requestEnded(request('GET', '/'), 10, 10, t.f.clock);
  t.lifecycle.requestEnded();
  assert.equal(t.lifecycle.state, 'serving');
  assert.deepEqual(t.sent, []);
});

test('stop: stopping shows in the slot at once; done only when every connection ended; a second stop changes nothing', async () => {
  const t = fakeLifecycle(0);
  t.lifecycle.onMessage({ v: 1, type: 'stop' });
  assert.equal(t.lifecycle.state, 'stopping');
  assert.equal(t.f.writes.at(-1)?.status, SlotStatus.STOPPING);
  assert.equal(t.f.writes.at(-1)?.accepting, false);
  t.lifecycle.stop();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(t.stopped(), 0, 'connections still open');
  t.finishClose();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(t.stopped(), 1);
  assert.equal(t.closes(), 1);
});

test('stop after a recycle waits for the same drain; messages it does not understand are logged and ignored', async () => {
  const t = fakeLifecycle(1);
  t.f.slot.requestEnded(request('GET', '/'), 10, 10, t.f.clock);
  t.lifecycle.requestEnded();
  t.lifecycle.onMessage({ v: 1, type: 'reopen-logs' });
  t.lifecycle.onMessage({ v: 99, type: 'dance' });
  assert.equal(t.lines[1], 'reopened');
  assert.equal(t.lines.length, 3);
  t.lifecycle.stop();
  assert.equal(t.closes(), 1, 'closed once');
  t.finishClose();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(t.stopped(), 1);
});

test('the harakiri line names the request, how long it ran and the limit', () => {
  assert.equal(harakiriMessage('GET', '/sleep?ms=8000', 1049, 1000), 'HARAKIRI: GET /sleep?ms=8000 ran for 1.0 s (harakiri 1 s); its connection is closed');
  assert.equal(harakiriMessage(undefined, undefined, 2500, 2500), 'HARAKIRI: ? ? ran for 2.5 s (harakiri 2.5 s); its connection is closed');
});
