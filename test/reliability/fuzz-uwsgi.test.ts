/**
 * Fuzzing the uwsgi protocol and the Python worker's HTTP path (fast-check): random
 * bytes, mutated, truncated and oversized uwsgi packets, garbage HTTP. Workers of both
 * runtimes never crash (same pid, never respawned) and still answer a well-formed
 * request after each batch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { encodeUwsgiPacket } from '@emperor/vassal';
import { FIXTURES, serving, startVassal, statsUntil, waitFor } from '../helpers/index.js';
import { exchange, nginxVars, uwsgiRequest } from '../helpers/wire.js';
import { record } from '../helpers/record.js';

const NODE_APP = join(FIXTURES, 'apps', 'basic.mjs');
const WSGI_APP = join(FIXTURES, 'apps', 'wsgi_app.py');

const valid = encodeUwsgiPacket(nginxVars('GET', '/?x=1'));

/** Random bytes, valid packets with bytes changed, cut short, or claiming sizes they do not have. */
const uwsgiGarbage = fc.oneof(
  fc.uint8Array({ maxLength: 1024 }).map((b) => Buffer.from(b)),
  fc.tuple(fc.nat(valid.length - 1), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([at, junk]) => {
    const b = Buffer.from(valid);
    Buffer.from(junk).copy(b, at);
    return b;
  }),
  fc.nat(valid.length - 1).map((cut) => valid.subarray(0, cut)),
  fc.integer({ min: 0, max: 0xffff }).map((size) => {
    const b = Buffer.from(valid);
    b.writeUInt16LE(size, 1); // pktsize that lies
    return b;
  }),
  fc.integer({ min: 4097, max: 60_000 }).map((n) => encodeUwsgiPacket([['HTTP_COOKIE', 'c'.repeat(n)], ['REQUEST_METHOD', 'GET']])),
  fc.integer({ min: 1, max: 255 }).map((modifier1) => encodeUwsgiPacket(nginxVars('GET', '/'), modifier1)),
);

async function fuzz(t: import('node:test').TestContext, runtime: 'node' | 'python', protocol: 'uwsgi' | 'http'): Promise<void> {
  const socket = protocol === 'uwsgi' ? 'socket' : 'http-socket';
  const app = runtime === 'node' ? `module = ${NODE_APP}` : `plugin = python3\nwsgi-file = ${WSGI_APP}`;
  const v = await startVassal(t, (p) => `${socket} = 127.0.0.1:${p}\n${app}\nprocesses = 1`);
  const probe = async (): Promise<boolean> =>
    protocol === 'uwsgi' ? (await uwsgiRequest(v.port, nginxVars('GET', '/'))).status === 200 : (await serving(`${v.url}/`)).length >= 0;
  await waitFor(probe, { message: 'the worker answering', timeoutMs: 15_000 });
  const before = await statsUntil(v.stats, (d) => d.workers[0]?.accepting === 1);
  const inputs =
    protocol === 'uwsgi'
      ? fc.sample(uwsgiGarbage, { numRuns: 250, seed: 7 })
      : fc.sample(fc.oneof(fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)), fc.string({ maxLength: 400 }).map((s) => Buffer.from(s))), { numRuns: 250, seed: 7 });
  for (const [i, bytes] of inputs.entries()) {
    await exchange(v.port, bytes, { timeoutMs: 1500 }).catch(() => undefined);
    if (i % 50 === 49) assert.ok(await probe(), `still answering after ${i + 1} inputs`);
  }
  assert.ok(await probe());
  const after = await statsUntil(v.stats, (d) => d.workers[0]?.accepting === 1);
  assert.equal(after.workers[0]?.pid, before.workers[0]?.pid, 'same worker process');
  assert.equal(after.workers[0]?.respawn_count, 1, 'never respawned');
  record({
    area: 'fuzz',
    what: `random bytes${protocol === 'uwsgi' ? ', mutated, truncated, oversized and lying uwsgi packets, unknown modifier1' : ' and garbage text'} on a ${runtime === 'node' ? 'Node' : 'Python'} worker's ${socket}`,
    tries: inputs.length,
    outcome: 'worker never crashed (same pid, no respawn); well-formed requests answered between batches',
  });
}

test('uwsgi packets: a Node worker survives garbage', (t) => fuzz(t, 'node', 'uwsgi'));
test('uwsgi packets: a Python worker survives garbage', (t) => fuzz(t, 'python', 'uwsgi'));
test('HTTP garbage: a Python worker survives it', (t) => fuzz(t, 'python', 'http'));
