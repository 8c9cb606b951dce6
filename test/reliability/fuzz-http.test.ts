/**
 * Garbage on the wire: random bytes, mutated HTTP requests, oversized headers and slow
 * senders against a Node worker's http-socket. The worker never crashes (same pid, no
 * respawn) and keeps answering real requests throughout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import { FIXTURES, httpGet, serving, startVassal, statsUntil, waitFor } from '../helpers/index.js';
import { record } from '../helpers/record.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');

/** Sends `bytes`, waits for the server to answer or close (at most 2 s), returns what came back. */
function exchange(port: number, bytes: Uint8Array): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    const done = (): void => {
      socket.destroy();
      resolve(got);
    };
    socket.setTimeout(2000, done);
    socket.on('data', (d) => (got += d.toString('latin1')));
    socket.on('error', done);
    socket.on('close', done);
    socket.on('connect', () => socket.end(bytes));
  });
}

const REQUEST = 'GET /echo?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello';

test('random bytes and mutated requests never take a Node worker down', async (t) => {
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprocesses = 1`);
  await serving(`${v.url}/`);
  const before = await statsUntil(v.stats, (d) => d.workers[0]?.accepting === 1);
  const pid = before.workers[0]?.pid;
  const inputs = fc.sample(
    fc.oneof(
      fc.uint8Array({ maxLength: 2048 }),
      fc.string({ maxLength: 300 }).map((s) => new TextEncoder().encode(s)),
      fc.tuple(fc.nat(REQUEST.length), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([at, junk]) => {
        const b = Buffer.from(REQUEST, 'latin1');
        return Buffer.concat([b.subarray(0, at), Buffer.from(junk), b.subarray(at + junk.length)]);
      }),
      fc.nat(REQUEST.length).map((cut) => Buffer.from(REQUEST.slice(0, cut), 'latin1')),
      fc.integer({ min: 1, max: 200 }).map((n) => Buffer.from(`GET / HTTP/1.1\r\n${'X-Big: '.concat('y'.repeat(1000), '\r\n').repeat(n)}\r\n`)),
    ),
    { numRuns: 300, seed: 42 },
  );
  let answered = 0;
  for (const bytes of inputs) if ((await exchange(v.port, bytes)).startsWith('HTTP/1.1')) answered++;
  // Interleaved real traffic still works.
  assert.match((await httpGet(`${v.url}/`)).body, /^pid /);
  const after = await statsUntil(v.stats, (d) => d.workers[0]?.accepting === 1);
  assert.equal(after.workers[0]?.pid, pid, 'same worker process');
  assert.equal(after.workers[0]?.respawn_count, 1, 'never respawned');
  record({ area: 'fuzz', what: 'random bytes, mutated and truncated HTTP requests, oversized headers on a Node http-socket', tries: inputs.length, outcome: `worker never crashed (same pid, no respawn); ${answered} got an HTTP answer (400/431/200), the rest a closed connection` });
});

test('slow senders do not stop a worker from serving others', async (t) => {
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprocesses = 1`);
  await serving(`${v.url}/`);
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
    const r = await httpGet(`${v.url}/`);
    if (r.status === 200) served++;
    return served >= 20;
  }, { message: '20 requests served beside 30 slow senders', intervalMs: 20 });
  record({ area: 'fuzz', what: 'slow senders (30 connections trickling a header byte every 100 ms) on one Node worker', tries: 30, outcome: `${served} normal requests served meanwhile; the worker was not blocked` });
});
