/**
 * Garbage on the wire: random bytes, mutated HTTP requests and oversized headers against
 * a Node worker's http-socket, and slow senders against both runtimes' http-socket and
 * uwsgi socket. The worker never crashes (same pid, no respawn) and keeps answering real
 * requests throughout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import { encodeUwsgiPacket } from '@emperor/vassal';
import { FIXTURES, httpGet, serving, startVassal, statsUntil, waitFor } from '../helpers/index.js';
import { exchange as send, nginxVars, uwsgiRequest, fuzzExchange, httpMutations } from '../helpers/wire.js';
import { record } from '../helpers/record.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');
const WSGI_APP = join(FIXTURES, 'apps', 'wsgi_app.py');

const REQUEST = 'GET /echo?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello';

test('random bytes and mutated requests never take a Node worker down', async (t) => {
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprocesses = 1`);
  await serving(`${v.url}/`);
  const before = await statsUntil(v.stats, (d) => d.workers[0]?.accepting === 1);
  const pid = before.workers[0]?.pid;
  const inputs = fc.sample(
    fc.oneof(
      ...httpMutations(REQUEST, 200),
    ),
    { numRuns: 300, seed: 42 },
  );
  let answered = 0;
  for (const bytes of inputs) if ((await fuzzExchange(v.port, bytes)).startsWith('HTTP/1.1')) answered++;
  // Interleaved real traffic still works.
  assert.match((await httpGet(`${v.url}/`)).body, /^pid /);
  const after = await statsUntil(v.stats, (d) => d.workers[0]?.accepting === 1);
  assert.equal(after.workers[0]?.pid, pid, 'same worker process');
  assert.equal(after.workers[0]?.respawn_count, 1, 'never respawned');
  record({ area: 'fuzz', what: 'random bytes, mutated and truncated HTTP requests, oversized headers on a Node http-socket', tries: inputs.length, outcome: `worker never crashed (same pid, no respawn); ${answered} got an HTTP answer (400/431/200), the rest a closed connection` });
});

/**
 * Slow senders (slowloris): 30 connections trickling their request head a byte every
 * 100 ms, on a one-worker vassal. The worker keeps serving normal requests meanwhile. A
 * Python worker serves one request at a time, so it never waits inside a request for a
 * head; a head not complete 4 s (socket-timeout) after its first byte is answered 408
 * (HTTP) or closed (uwsgi), with one log line.
 */
async function slowSenders(t: import('node:test').TestContext, runtime: 'node' | 'python', protocol: 'http' | 'uwsgi'): Promise<void> {
  const socket = protocol === 'uwsgi' ? 'socket' : 'http-socket';
  const app = runtime === 'node' ? `module = ${APP}` : `wsgi-file = ${WSGI_APP}`;
  const v = await startVassal(t, (p) => `${socket} = 127.0.0.1:${p}\n${app}\nprocesses = 1`);
  const normal = async (): Promise<boolean> =>
    protocol === 'uwsgi' ? (await uwsgiRequest(v.port, nginxVars('GET', '/'))).status === 200 : (await httpGet(`${v.url}/`)).status === 200;
  await waitFor(normal, { message: 'the worker answering', timeoutMs: 15_000 });
  const packet = encodeUwsgiPacket(nginxVars('GET', '/slow'));
  const slow = Array.from({ length: 30 }, () => {
    const s = connect(v.port, '127.0.0.1');
    s.on('error', () => {});
    let at = 20;
    s.write(protocol === 'uwsgi' ? packet.subarray(0, at) : 'GET / HTTP/1.1\r\nHost: x\r\n');
    const timer = setInterval(() => s.write(protocol === 'uwsgi' ? packet.subarray(at, ++at) : 'X'), 100);
    return { s, timer };
  });
  t.after(() => slow.forEach(({ s, timer }) => { clearInterval(timer); s.destroy(); }));
  let served = 0;
  await waitFor(async () => {
    if (await normal()) served++;
    return served >= 20;
  }, { message: "20 requests served beside 30 slow senders", intervalMs: 20, timeoutMs: 15_000 });
  slow.forEach(({ s, timer }) => { clearInterval(timer); s.destroy(); });
  let stalled = '';
  if (runtime === 'python') {
    // A head that stops coming: answered (HTTP) and closed by the worker, not held.
    const t0 = Date.now();
    const answer = (await send(v.port, protocol === 'uwsgi' ? packet.subarray(0, 30) : Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n'), { keepOpen: true, timeoutMs: 15_000 })).toString('latin1');
    const ms = Date.now() - t0;
    if (protocol === 'http') assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    else assert.equal(answer, '');
    assert.ok(ms >= 3500, `closed after the 4 s socket-timeout, not before (${ms} ms)`);
    await v.proc.logs.waitFor((l) => /request head not complete 4 s after its first byte \(\d+ bytes\); connection closed$/.test(l.msg ?? ''), { message: 'the log line' });
    stalled = `; a stalled head ${protocol === 'http' ? 'answered 408' : 'closed'} after ${(ms / 1000).toFixed(1)} s, with one log line`;
  }
  assert.ok(await normal());
  record({ area: 'fuzz', what: `slow senders (30 connections trickling a request head a byte every 100 ms) on one ${runtime === 'node' ? 'Node' : 'Python'} worker's ${socket}`, tries: 30, outcome: `${served} normal requests served meanwhile; the worker was not blocked${stalled}` });
}

test('slow senders do not stop a Node worker from serving others (http-socket)', (t) => slowSenders(t, 'node', 'http'));
test('slow senders do not stop a Node worker from serving others (uwsgi socket)', (t) => slowSenders(t, 'node', 'uwsgi'));
test('slow senders do not stop a Python worker from serving others; a stalled head is answered 408 (http-socket)', (t) => slowSenders(t, 'python', 'http'));
test('slow senders do not stop a Python worker from serving others; a stalled packet is closed (uwsgi socket)', (t) => slowSenders(t, 'python', 'uwsgi'));
