/**
 * Garbage on the wire against the Python ASGI worker (test/fixtures/apps/asgi_app.py):
 * random bytes, mutated, truncated and oversized HTTP requests on http-socket, mutated
 * uwsgi packets, broken WebSocket frames after a good handshake, and slow senders. The
 * worker never crashes (same pid, no respawn) and keeps answering real requests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import { encodeUwsgiPacket } from '@emperor/vassal';
import { FIXTURES, httpGet, startVassal, statsUntil, waitFor, workersAccepting, type TestVassal } from '../helpers/index.js';
import { exchange as send, nginxVars, fuzzExchange, httpMutations } from '../helpers/wire.js';
import { OP, WsClient, clientFrame } from '../helpers/websocket.js';
import { record } from '../helpers/record.js';

const APPS = join(FIXTURES, 'apps');

const REQUEST = 'POST /echo?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello';

async function asgi(t: import('node:test').TestContext, sockets: string): Promise<{ v: TestVassal; pid: number | undefined }> {
  const v = await startVassal(t, (p) => `${sockets.replaceAll('PORT', String(p))}\npythonpath = ${APPS}\nasgi = asgi_app:app\nprocesses = 1`);
  const doc = await workersAccepting(v, 1);
  return { v, pid: doc.workers[0]?.pid };
}

async function sameWorker(v: TestVassal, pid: number | undefined): Promise<void> {
  const after = await statsUntil(v.stats, (d) => d.workers[0]?.accepting === 1);
  assert.equal(after.workers[0]?.pid, pid, 'same worker process');
  assert.equal(after.workers[0]?.respawn_count, 1, 'never respawned');
}

test('random bytes, mutated HTTP requests and uwsgi packets never take an ASGI worker down', async (t) => {
  const { v, pid } = await asgi(t, 'http-socket = 127.0.0.1:PORT');
  const inputs = fc.sample(
    fc.oneof(
      ...httpMutations(REQUEST, 100),
      fc.nat(60).map((cut) => Buffer.from(`POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n0\r\n\r\n`.slice(0, 60 + cut), 'latin1')),
    ),
    { numRuns: 300, seed: 21 },
  );
  let answered = 0;
  for (const bytes of inputs) if ((await fuzzExchange(v.port, bytes)).startsWith('HTTP/1.1')) answered++;
  assert.equal((await httpGet(`${v.url}/`)).status, 200);
  await sameWorker(v, pid);
  record({ area: 'fuzz', what: 'random bytes, mutated, truncated and oversized HTTP requests, broken chunked bodies on a Python ASGI http-socket', tries: inputs.length, outcome: `worker never crashed (same pid, no respawn); ${answered} got an HTTP answer, the rest a closed connection` });

  const u = await asgi(t, 'socket = 127.0.0.1:PORT');
  const packet = encodeUwsgiPacket(nginxVars('POST', '/echo', { CONTENT_LENGTH: '5' }));
  const packets = fc.sample(
    fc.oneof(
      fc.uint8Array({ maxLength: 1024 }),
      fc.tuple(fc.nat(packet.length), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([at, junk]) => {
        const b = Buffer.from(packet);
        b.set(junk.subarray(0, b.length - at), at);
        return b;
      }),
      fc.nat(packet.length).map((cut) => packet.subarray(0, cut)),
    ),
    { numRuns: 200, seed: 22 },
  );
  for (const bytes of packets) await fuzzExchange(u.v.port, bytes);
  await sameWorker(u.v, u.pid);
  record({ area: 'fuzz', what: 'random, mutated and truncated uwsgi packets on a Python ASGI socket', tries: packets.length, outcome: 'worker never crashed (same pid, no respawn)' });
});

test('broken WebSocket frames after a good handshake: the session closes, the worker never does', async (t) => {
  const { v, pid } = await asgi(t, 'http-socket = 127.0.0.1:PORT\nwebsockets-max-size = 4');
  const good = Buffer.concat([clientFrame(OP.TEXT, 'hello'), clientFrame(OP.BINARY, Buffer.alloc(300), { fin: false }), clientFrame(OP.CONT, 'end'), clientFrame(OP.PING, 'p')]);
  const inputs = fc.sample(
    fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 512 }),
      fc.tuple(fc.nat(good.length - 1), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([at, junk]) => {
        const b = Buffer.from(good);
        b.set(junk.subarray(0, b.length - at), at);
        return b;
      }),
      fc.nat(good.length).map((cut) => good.subarray(0, cut)),
      fc.integer({ min: 0, max: 15 }).map((op) => clientFrame(op, 'x')),
    ),
    { numRuns: 150, seed: 23 },
  );
  let closedByServer = 0;
  for (const bytes of inputs) {
    const c = await WsClient.open(v.port, '/ws');
    assert.equal(c.status, 101);
    // The bytes, then the client's FIN: the worker reads them all, answers what it must
    // (echoes, a pong, a close frame with its code) and closes.
    c.socket.end(Buffer.from(bytes));
    await waitFor(() => c.closed, { message: 'the worker closing the session' });
    if (c.frames.some((f) => f.opcode === OP.CLOSE && f.payload.length >= 2 && f.payload.readUInt16BE(0) !== 1006)) closedByServer++;
  }
  const echo = await WsClient.open(v.port, '/ws');
  echo.sendText('still here');
  assert.equal((await echo.next()).payload.toString(), 'still here');
  echo.end();
  await sameWorker(v, pid);
  record({ area: 'fuzz', what: 'broken WebSocket frames (random, mutated, truncated, reserved opcodes, over websockets-max-size) on a Python ASGI http-socket', tries: inputs.length, outcome: `worker never crashed (same pid, no respawn); ${closedByServer} sessions closed by the server with a close code, the others by the client` });
});

test('slow senders do not stop an ASGI worker from serving others; a stalled head is answered 408', async (t) => {
  const { v, pid } = await asgi(t, 'http-socket = 127.0.0.1:PORT');
  const slow = Array.from({ length: 30 }, () => {
    const s = connect(v.port, '127.0.0.1');
    s.on('error', () => {});
    s.write('GET / HTTP/1.1\r\nHost: x\r\n');
    const timer = setInterval(() => s.write('X'), 100);
    return { s, timer };
  });
  t.after(() => slow.forEach(({ s, timer }) => { clearInterval(timer); s.destroy(); }));
  let served = 0;
  await waitFor(async () => {
    if ((await httpGet(`${v.url}/`)).status === 200) served++;
    return served >= 20;
  }, { message: '20 requests served beside 30 slow senders', intervalMs: 20, timeoutMs: 15_000 });
  slow.forEach(({ s, timer }) => { clearInterval(timer); s.destroy(); });
  const t0 = Date.now();
  const answer = (await send(v.port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n'), { keepOpen: true, timeoutMs: 15_000 })).toString('latin1');
  const ms = Date.now() - t0;
  assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.ok(ms >= 3500, `closed after the 4 s socket-timeout, not before (${ms} ms)`);
  await v.proc.logs.waitFor((l) => /request head not complete 4 s after its first byte \(\d+ bytes\); connection closed$/.test(l.msg ?? ''));
  await sameWorker(v, pid);
  record({ area: 'fuzz', what: 'slow senders (30 connections trickling a request head a byte every 100 ms) on one Python ASGI worker\'s http-socket', tries: 30, outcome: `${served} normal requests served meanwhile; a stalled head answered 408 after ${(ms / 1000).toFixed(1)} s, with one log line` });
});
