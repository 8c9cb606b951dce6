/**
 * Fuzzing FastCGI (fast-check) against running workers of both runtimes: random bytes,
 * valid requests with bytes changed, cut short, with record and name-value lengths that
 * lie, params over buffer-size, random record sequences (any type, id, padding), and
 * slow senders trickling requests byte by byte or stalling mid-head. A worker never
 * crashes (same pid, never respawned) and answers a well-formed request after each batch
 * and while slow senders hold connections.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import fc from 'fast-check';
import { encodeRecord, encodeRequest } from '@emperor/vassal';
import { FIXTURES, startVassal, statsUntil, waitFor } from '../helpers/index.js';
import { exchange, fastcgiParams, fastcgiRequest } from '../helpers/wire.js';
import { record } from '../helpers/record.js';

const NODE_APP = join(FIXTURES, 'apps', 'basic.mjs');
const WSGI_APP = join(FIXTURES, 'apps', 'wsgi_app.py');

const valid = encodeRequest(fastcgiParams('POST', '/echo', { CONTENT_LENGTH: '11' }), Buffer.from('hello world'), { keepConn: true, stdinRecord: 4 });

/** Random bytes, valid requests mutated, cut short, or with lengths that lie; oversized params; random records. */
const garbage = fc.oneof(
  fc.uint8Array({ maxLength: 1024 }).map((b) => Buffer.from(b)),
  fc.tuple(fc.nat(valid.length - 1), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([at, junk]) => {
    const b = Buffer.from(valid);
    Buffer.from(junk).copy(b, at);
    return b;
  }),
  fc.nat(valid.length - 1).map((cut) => valid.subarray(0, cut)),
  fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 255 })).map(([which, length, padding]) => {
    const b = Buffer.from(valid);
    const at = [0, 16, b.indexOf(Buffer.from([1, 4, 0, 1])), b.length - 8][which] ?? 0;
    b.writeUInt16BE(length, at + 4); // a record length that lies
    b[at + 6] = padding;
    return b;
  }),
  fc.integer({ min: 0x80, max: 0xffffffff }).map((n) => {
    const pairs = Buffer.concat([Buffer.from([0x80 | (n >>> 24), (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff, 1]), Buffer.from('AB')]);
    return Buffer.concat([encodeRecord(1, 1, Buffer.from([0, 1, 0, 0, 0, 0, 0, 0])), encodeRecord(4, 1, pairs), encodeRecord(4, 1)]); // a name length that lies
  }),
  fc.integer({ min: 4097, max: 60_000 }).map((n) => encodeRequest([['HTTP_COOKIE', 'c'.repeat(n)], ['REQUEST_METHOD', 'GET']])),
  fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 3 }), fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 255 })), { maxLength: 12 })
    .map((records) => Buffer.concat(records.map(([type, id, content, padding]) => encodeRecord(type, id, Buffer.from(content), padding)))),
  fc.array(fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 200 })), { maxLength: 10 })
    .map((pairs) => encodeRequest(pairs, Buffer.alloc(0), { keepConn: true })),
);

/** Sends `data` a byte every `stepMs`; resolves with what came back once the worker closes (or `holdMs` passed). */
function trickle(port: number, data: Buffer, stepMs: number, holdMs: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let stopped = false;
    const done = (): void => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(done, holdMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', done);
    socket.on('error', done);
    socket.on('connect', async () => {
      for (let i = 0; i < data.length && !stopped; i++) {
        socket.write(data.subarray(i, i + 1));
        await delay(stepMs);
      }
    });
  });
}

async function fuzz(t: TestContext, runtime: 'node' | 'python'): Promise<void> {
  const app = runtime === 'node' ? `module = ${NODE_APP}` : `plugin = python3\nwsgi-file = ${WSGI_APP}`;
  const v = await startVassal(t, (p) => `fastcgi-socket = 127.0.0.1:${p}\n${app}\nprocesses = 1\nmanage-script-name = true`);
  const probe = async (): Promise<boolean> => (await fastcgiRequest(v.port, fastcgiParams('GET', '/'))).status === 200;
  await waitFor(probe, { message: 'the worker answering', timeoutMs: 15_000 });
  const before = await statsUntil(v.stats, (d) => d.workers[0]?.accepting === 1);
  const inputs = fc.sample(garbage, { numRuns: 300, seed: 18 });
  for (const [i, bytes] of inputs.entries()) {
    await exchange(v.port, bytes, { timeoutMs: 3000 }).catch(() => undefined);
    if (i % 50 === 49) assert.ok(await probe(), `still answering after ${i + 1} inputs`);
  }
  // Slow senders: whole requests a byte every 3 ms (within socket-timeout, 4 s), and heads
  // that stall halfway; the worker answers others meanwhile, and closes the stalled ones
  // socket-timeout after their first byte.
  const whole = encodeRequest(fastcgiParams('GET', '/'));
  const slow = [0, 1, 2].map(() => trickle(v.port, whole, 3, 10_000));
  const stalled = [0, 1].map(() => trickle(v.port, whole.subarray(0, 60), 3, 10_000));
  for (let i = 0; i < 5; i++) assert.ok(await probe(), 'answered while slow senders hold connections');
  for (const answer of await Promise.all(slow)) assert.match(answer.toString('latin1'), /Status: 200 OK/, 'a slow request is served once whole');
  for (const answer of await Promise.all(stalled)) assert.equal(answer.length, 0, 'a stalled head is closed without an answer');
  await v.proc.logs.waitFor((l) => /^FastCGI from 127\.0\.0\.1:\d+: request head not complete 4 s after its first byte/.test(l.msg ?? ''), { message: 'the stalled head logged' });
  assert.ok(await probe());
  const after = await statsUntil(v.stats, (d) => d.workers[0]?.accepting === 1);
  assert.equal(after.workers[0]?.pid, before.workers[0]?.pid, 'same worker process');
  assert.equal(after.workers[0]?.respawn_count, 1, 'never respawned');
  record({
    area: 'fuzz',
    what: `random bytes, mutated, truncated and lying FastCGI records and name-value lengths, params over buffer-size, random record sequences, slow and stalled senders on a ${runtime === 'node' ? 'Node' : 'Python'} worker's fastcgi-socket`,
    tries: inputs.length + slow.length + stalled.length,
    outcome: 'worker never crashed (same pid, no respawn); well-formed requests answered between batches and beside slow senders; stalled heads closed after socket-timeout with one line',
  });
}

test('FastCGI records: a Node worker survives garbage and slow senders', (t) => fuzz(t, 'node'));
test('FastCGI records: a Python worker survives garbage and slow senders', (t) => fuzz(t, 'python'));

// The name-value encoder is the clients' (tests, bench); a request built by it always parses.
test('FastCGI name-value pairs of any strings round-trip through a worker', async (t) => {
  const v = await startVassal(t, (p) => `fastcgi-socket = 127.0.0.1:${p}\nmodule = ${NODE_APP}\nprocesses = 1`);
  await waitFor(async () => (await fastcgiRequest(v.port, fastcgiParams('GET', '/'))).status === 200, { message: 'the worker answering', timeoutMs: 15_000 });
  const values = fc.sample(fc.string({ minLength: 1, maxLength: 300 }).filter((s) => !/[\r\n\0]/.test(s)), { numRuns: 40, seed: 3 });
  for (const value of values) {
    const r = await fastcgiRequest(v.port, fastcgiParams('GET', '/request', { HTTP_X_FUZZ: Buffer.from(value, 'utf8').toString('latin1') }));
    assert.equal(r.status, 200);
    assert.equal(Buffer.from((JSON.parse(r.body.toString()) as { headers: Record<string, string> }).headers['x-fuzz'] ?? '', 'latin1').toString('utf8'), value.trim());
  }
});
