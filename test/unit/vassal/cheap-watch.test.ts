/**
 * Cheap mode's watch (cheap-watch.ts) on fake duplicate handles: one duplicate set per
 * arming, closed on disarm (even when it arrives late), a failed listen closes them all,
 * the first connection closes them before it wakes the pool; inherited sockets are not
 * watched. The real descriptors and the relay are in test/component/cheaper.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CheapWatch, SocketBindError, type BoundSocket, type DupHandle } from '@emperor/vassal';

interface Fake extends DupHandle {
  backlog: number | undefined;
  closed: boolean;
}

const socket = (name: string, kind: 'tcp' | 'fd' = 'tcp'): BoundSocket => ({
  spec: {
    file: 'v.ini', line: 3, option: 'http-socket', name, protocol: 'http',
    address: kind === 'fd' ? { kind: 'fd', fd: 0 } : { kind: 'tcp', host: '127.0.0.1', port: 8080 },
  },
  fd: 10, inode: 1, tcp: true, close: () => {},
});

function harness(listenResult = 0) {
  const made: Fake[] = [];
  const asked: string[][] = [];
  let release: (() => void) | undefined;
  let hold = false;
  const woke: number[] = [];
  const watch = new CheapWatch({
    dup: async (sockets) => {
      asked.push(sockets.map((s) => s.spec.name));
      if (hold) await new Promise<void>((resolve) => (release = resolve));
      return sockets.map(() => {
        const h: Fake = {
          fd: 100 + made.length, backlog: undefined, closed: false, onconnection: null,
          listen(backlog) {
            h.backlog = backlog;
            return listenResult;
          },
          close() {
            h.closed = true;
          },
        };
        made.push(h);
        return h;
      });
    },
    onConnection: () => woke.push(made.filter((h) => !h.closed).length),
    logger: { info: () => {}, warn: () => {} } as never,
  });
  return { watch, made, asked, woke, holdNext: () => (hold = true), release: () => release?.() };
}

test('cheap watch: armed once however often asked; listens on every duplicate; the first connection closes them all, then wakes', async () => {
  const h = harness();
  await Promise.all([h.watch.arm([socket('a'), socket('b')], 64), h.watch.arm([socket('a'), socket('b')], 64)]);
  await h.watch.arm([socket('a'), socket('b')], 64);
  assert.deepEqual(h.asked, [['a', 'b']], 'one set of duplicates');
  assert.deepEqual(h.made.map((m) => m.backlog), [64, 64]);
  assert.equal(h.watch.watching, true);
  h.made[1]?.onconnection?.(-104, undefined); // an accept error still means a client knocked
  assert.deepEqual(h.woke, [0], 'every duplicate closed before the pool is woken');
  assert.equal(h.watch.watching, false);
  await h.watch.arm([socket('a')], 64);
  assert.equal(h.asked.length, 2, 'a new cheap mode gets new duplicates');
});

test('cheap watch: a disarm while the duplicates are on their way closes them when they come', async () => {
  const h = harness();
  h.holdNext();
  const arming = h.watch.arm([socket('a')], 16);
  h.watch.disarm();
  h.release();
  await arming;
  assert.equal(h.made.length, 1);
  assert.equal(h.made[0]?.closed, true);
  assert.equal(h.made[0]?.backlog, undefined, 'never listened');
  assert.equal(h.watch.watching, false);
});

test('cheap watch: a failed listen rejects with the socket named and leaves nothing open; inherited sockets are not watched', async () => {
  const h = harness(-98);
  await assert.rejects(h.watch.arm([socket('127.0.0.1:8080')], 16), (err: unknown) => {
    assert.ok(err instanceof SocketBindError);
    assert.equal(err.message, 'v.ini:3: http-socket: 127.0.0.1:8080: cannot listen: EADDRINUSE');
    return true;
  });
  assert.ok(h.made.every((m) => m.closed));
  assert.equal(h.watch.watching, false);
  const g = harness();
  await g.watch.arm([socket('fd://0', 'fd')], 16);
  assert.deepEqual(g.asked, [], 'no address to relay to: left to the tick');
});
