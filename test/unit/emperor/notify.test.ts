import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Notifier, statusLine, watchdogUsec } from '@emperor/emperor';

/** A send that holds each message until the test releases it. */
function gatedSend() {
  const sent: string[] = [];
  const gates: (() => void)[] = [];
  const send = (message: string) =>
    new Promise<void>((resolve) => {
      sent.push(message);
      gates.push(resolve);
    });
  const release = async (): Promise<void> => {
    gates.shift()?.();
    await new Promise((r) => setImmediate(r));
  };
  return { sent, send, release };
}

test('messages go one at a time, in order; a waiting STATUS= is replaced by a newer one', async () => {
  const { sent, send, release } = gatedSend();
  const notifier = new Notifier({ send, monotonic: () => 123_456n });
  notifier.ready('2 vassals: 2 starting');
  for (let i = 0; i < 50; i++) notifier.status(`2 vassals: ${i} ready`);
  notifier.status('2 vassals: 2 ready');
  notifier.reloading();
  notifier.stopping('2 vassals: 2 ready');
  assert.deepEqual(sent, ['READY=1\nSTATUS=2 vassals: 2 starting'], 'the first is in flight, the rest wait');
  for (let i = 0; i < 4; i++) await release();
  const closed = notifier.close();
  await release();
  await closed;
  assert.deepEqual(sent, [
    'READY=1\nSTATUS=2 vassals: 2 starting',
    'STATUS=2 vassals: 2 ready',
    'RELOADING=1\nMONOTONIC_USEC=123456\nSTATUS=reloading every vassal',
    'STOPPING=1\nSTATUS=stopping: 2 vassals: 2 ready',
  ]);
  notifier.status('after close');
  assert.equal(sent.length, 4, 'nothing after close');
});

test('an unchanged STATUS= is not sent again', async () => {
  const sent: string[] = [];
  const notifier = new Notifier({ send: async (m) => void sent.push(m) });
  notifier.status('1 vassal: 1 ready');
  notifier.status('1 vassal: 1 ready');
  await notifier.close();
  assert.deepEqual(sent, ['STATUS=1 vassal: 1 ready']);
});

test('WATCHDOG_USEC counts only for our pid, and only when it is a positive number', () => {
  assert.equal(watchdogUsec({ WATCHDOG_USEC: '30000000' }, 42), 30_000_000);
  assert.equal(watchdogUsec({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42), 30_000_000);
  assert.equal(watchdogUsec({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '41' }, 42), 0);
  assert.equal(watchdogUsec({ WATCHDOG_USEC: 'soon' }, 42), 0);
  assert.equal(watchdogUsec({}, 42), 0);
});

test('STATUS= lists the vassals by state, in a fixed order, and the files tyrant mode refuses', () => {
  assert.equal(statusLine([], 0), '0 vassals');
  assert.equal(statusLine(['ready'], 0), '1 vassal: 1 ready');
  assert.equal(statusLine(['cursed', 'ready', 'starting', 'ready', 'config-error'], 2), '5 vassals: 2 ready, 1 starting, 1 cursed, 1 config-error; 2 files refused by tyrant mode');
});
