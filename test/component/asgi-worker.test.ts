/**
 * The Python ASGI worker (packages/vassal/python/emperor_worker/asgi/) run by a standalone
 * vassal, with a plain ASGI app (test/fixtures/apps/asgi_app.py): lifespan, HTTP/1.1 on
 * http-socket, the uwsgi protocol, many requests per worker under `async`, harakiri, a
 * blocked event loop, WebSockets. FastAPI and nginx are in test/e2e/nginx-asgi.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, descendants, httpGet, isAlive, startVassal, statsOf, statsUntil, waitFor, workersAccepting, type LogLine, type TestVassal, type VassalStatsDoc } from '../helpers/index.js';
import { exchange, nginxVars, parseResponse, uwsgiRequest } from '../helpers/wire.js';
import { OP, WsClient, clientFrame, closePayload } from '../helpers/websocket.js';

const APPS = join(FIXTURES, 'apps');

function asgiVassal(t: import('node:test').TestContext, extra = '', processes = 1): Promise<TestVassal> {
  return startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\npythonpath = ${APPS}\nasgi = asgi_app:app\nprocesses = ${processes}\n${extra}`);
}

/** `workersAccepting`, with the vassal's last log lines when it times out. */
function accepting(v: TestVassal, count: number): Promise<VassalStatsDoc> {
  return workersAccepting(v, count).catch((err: Error) => {
    throw new Error(`${err.message}\nthe vassal's last lines:\n${v.proc.logs.tail()}`);
  });
}

const msg = (re: RegExp) => (l: LogLine): boolean => re.test(l.msg ?? l.raw);

function raw(text: string): Buffer {
  return Buffer.from(text.replaceAll('\n', '\r\n'), 'latin1');
}

for (const [label, extra] of [['preloaded and forked', ''], ['lazy-apps', 'lazy-apps = true']] as const) {
  test(`ASGI app (${label}): lifespan state in every scope, keep-alive, pipelining, request log`, async (t) => {
    const v = await asgiVassal(t, extra);
    await accepting(v, 1);
    const r = await httpGet(`${v.url}/hello`);
    assert.equal(r.status, 200);
    const body = JSON.parse(r.body) as { state: Record<string, string>; path: string; http_version: string };
    assert.deepEqual(body.state, { started: 'yes' });
    assert.equal(body.path, '/hello');
    assert.equal(body.http_version, '1.1');
    // Three pipelined requests on one connection, answered in order; the last closes it.
    const out = (await exchange(v.port, raw('GET /a HTTP/1.1\nHost: x\n\nGET /stream?n=2 HTTP/1.1\nHost: x\n\nGET /c HTTP/1.1\nHost: x\nConnection: close\n\n'))).toString('latin1');
    const heads = [...out.matchAll(/HTTP\/1\.1 200 OK/g)];
    assert.equal(heads.length, 3, out);
    assert.ok(out.indexOf('"path": "/a"') < out.indexOf('chunk 0') && out.indexOf('chunk 1') < out.indexOf('"path": "/c"'), out);
    assert.match(out, /Transfer-Encoding: chunked\r\n[\s\S]*\r\n8\r\nchunk 0\n\r\n8\r\nchunk 1\n\r\n0\r\n\r\n/);
    assert.match(out, /Connection: close\r\n/);
    // The request log line, as for WSGI.
    await v.proc.logs.waitFor(msg(/^\[pid: \d+\|app: 0\|req: \d+\/\d+\] 127\.0\.0\.1 \(\) \{\d+ vars in \d+ bytes\} \[.*\] GET \/stream\?n=2 => generated \d+ bytes in \d+ msecs \(HTTP\/1\.1 200\) 3 headers/));
  });
}

test('ASGI request bodies: Content-Length, chunked, 100-continue, and an unread body drained for keep-alive', async (t) => {
  const v = await asgiVassal(t);
  await accepting(v, 1);
  const big = Buffer.alloc(300_000, 'z');
  const one = parseResponse(await exchange(v.port, [raw(`POST /echo HTTP/1.1\nHost: x\nContent-Length: ${big.length}\nConnection: close\n\n`), big]));
  assert.equal(one.status, 200);
  assert.equal(one.body.length, big.length);
  assert.equal(one.headers['content-length'], String(big.length));
  const chunked = parseResponse(await exchange(v.port, raw('POST /echo HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nConnection: close\n\n3\nabc\n4;ext=1\ndefg\n0\nTrailer: x\n\n')));
  assert.equal(chunked.body.toString(), 'abcdefg');
  assert.equal(JSON.parse(chunked.headers['x-meta'] ?? '{}').length, 7);
  // 100-continue is sent when the app first reads the body, then the body comes.
  const out = await exchange(v.port, [raw('POST /echo HTTP/1.1\nHost: x\nExpect: 100-continue\nContent-Length: 5\nConnection: close\n\n'), Buffer.from('hello')]);
  assert.match(out.toString('latin1'), /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[\s\S]*hello$/);
  // 204 and 304 carry no body, whatever the app sends; the connection stays usable.
  const statuses = (await exchange(v.port, raw('GET /status?code=204 HTTP/1.1\nHost: x\n\nGET /status?code=304 HTTP/1.1\nHost: x\n\nHEAD /status?code=200 HTTP/1.1\nHost: x\nConnection: close\n\n'))).toString('latin1');
  assert.match(statuses, /^HTTP\/1\.1 204 No Content\r\n(?:[^\r]+\r\n)*\r\nHTTP\/1\.1 304 Not Modified\r\n(?:[^\r]+\r\n)*\r\nHTTP\/1\.1 200 OK\r\n(?:[^\r]+\r\n)*\r\n$/, statuses);
  assert.match(statuses, /Content-Length: 2\r\n/, 'HEAD announces the body it does not send');
  // A body the app does not read is drained: the next request on the connection is served.
  const two = (await exchange(v.port, raw('POST /x HTTP/1.1\nHost: x\nContent-Length: 4\n\nabcdGET /y HTTP/1.1\nHost: x\nConnection: close\n\n'))).toString('latin1');
  assert.match(two, /"path": "\/x"[\s\S]*"path": "\/y"/);
});

test('ASGI app failures: 500 before the head (one line with the traceback), a cut connection after it; the worker goes on', async (t) => {
  const v = await asgiVassal(t);
  const [w] = (await accepting(v, 1)).workers;
  const r = await httpGet(`${v.url}/fail`);
  assert.equal(r.status, 500);
  const line = await v.proc.logs.waitFor(msg(/^exception in GET \/fail: ValueError: the app failed on purpose/));
  assert.match(line.raw, /asgi_app\.py/);
  const late = await exchange(v.port, raw('GET /fail-late HTTP/1.1\nHost: x\n\n'));
  assert.match(late.toString('latin1'), /^HTTP\/1\.1 200 OK\r\n/);
  assert.doesNotMatch(late.toString('latin1'), /0\r\n\r\n$/, 'the chunked body is not ended as if complete');
  const after = await httpGet(`${v.url}/ok`);
  assert.equal(after.status, 200);
  const doc = await statsUntil(v.stats, (d) => (d.workers[0]?.exceptions ?? 0) >= 2);
  assert.equal(doc.workers[0]?.pid, w?.pid, 'the same worker');
});

test('ASGI over the uwsgi protocol (socket =): the app answers nginx-style packets, the connection closes after', async (t) => {
  const v = await startVassal(t, (port) => `socket = 127.0.0.1:${port}\npythonpath = ${APPS}\nasgi = asgi_app:app\n`);
  await accepting(v, 1);
  const r = await uwsgiRequest(v.port, nginxVars('GET', '/via-uwsgi?x=1'));
  assert.equal(r.statusLine, 'HTTP/1.1 200 OK');
  assert.equal((JSON.parse(r.body.toString()) as { path: string }).path, '/via-uwsgi');
  const posted = await uwsgiRequest(v.port, nginxVars('POST', '/echo', { CONTENT_LENGTH: '6' }), Buffer.from('abcdef'));
  assert.equal(posted.body.toString(), 'abcdef');
  const bad = await exchange(v.port, Buffer.from([1, 0, 0, 0]));
  assert.equal(bad.length, 0);
  await v.proc.logs.waitFor(msg(/^uwsgi packet from 127\.0\.0\.1:\d+: unavailable modifier requested: 1/));
});

test('many requests at once per worker, at most `async`; the slot counts them in flight', async (t) => {
  const v = await asgiVassal(t, 'async = 4');
  await accepting(v, 1);
  let most = 0;
  let done = false;
  const watch = (async () => {
    while (!done) {
      const d = await statsOf<VassalStatsDoc & { workers: { in_flight: number }[] }>(v.stats);
      most = Math.max(most, d.workers[0]?.in_flight ?? 0);
    }
  })();
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => httpGet(`${v.url}/sleep?s=0.6&i=${i}`, { headers: { connection: 'close' } })));
  done = true;
  await watch;
  assert.deepEqual(answers.map((a) => a.status), Array(10).fill(200));
  assert.equal(most, 4, 'four in flight at the most, seen in the slot');
});

test('harakiri cancels the overdue request (504, one line with method and URI); the worker keeps serving', async (t) => {
  const v = await asgiVassal(t, 'harakiri = 1');
  const [w] = (await accepting(v, 1)).workers;
  const slowOne = httpGet(`${v.url}/sleep?s=30`);
  const quick = await httpGet(`${v.url}/quick`);
  assert.equal(quick.status, 200, 'served while the other request waits');
  const r = await slowOne;
  assert.equal(r.status, 504);
  await v.proc.logs.waitFor(msg(/^HARAKIRI: GET \/sleep\?s=30 ran for 1\.\d s \(harakiri 1 s\); cancelled, 504 sent/));
  const doc = await statsUntil(v.stats, (d) => d.workers[0]?.harakiri_count === 1);
  assert.equal(doc.workers[0]?.pid, w?.pid, 'not killed');
});

test('a blocked event loop is caught by its heartbeat: killed, its Python stack logged (harakiri-verbose), replaced', async (t) => {
  const v = await asgiVassal(t, 'harakiri = 1\nharakiri-verbose = true');
  const [w] = (await accepting(v, 1)).workers;
  void httpGet(`${v.url}/block?s=30`).catch(() => undefined);
  const line = await v.proc.logs.waitFor(msg(/^HARAKIRI ON WORKER 1 /), { timeoutMs: 8000 });
  assert.match(line.msg ?? '', /event loop blocked/);
  await v.proc.logs.waitFor((l) => /asgi_app\.py/.test(l.raw) && /line \d+ in app/.test(l.raw), { message: 'the Python stack with the blocking frame' });
  await waitFor(() => !isAlive(w?.pid ?? 0));
  const doc = await accepting(v, 1);
  assert.notEqual(doc.workers[0]?.pid, w?.pid, 'replaced');
  assert.equal((await httpGet(`${v.url}/`)).status, 200);
});

test('a failed lifespan startup is a failed worker start: one line, respawned with backoff', async (t) => {
  const v = await asgiVassal(t, 'env = ASGI_FAIL_STARTUP=1');
  await v.proc.logs.waitFor(msg(/^ASGI lifespan startup failed: no database at startup$/), { timeoutMs: 15_000 });
  await v.proc.logs.waitFor(msg(/exit code 22/), { timeoutMs: 15_000 });
  const doc = await statsOf<VassalStatsDoc>(v.stats);
  assert.notEqual(doc.workers[0]?.status, 'idle');
});

test('an async def app under module = is detected as ASGI; a WSGI app under module = stays WSGI', async (t) => {
  const v = await startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\npythonpath = ${APPS}\nmodule = asgi_app:app\n`);
  await accepting(v, 1);
  assert.deepEqual((JSON.parse((await httpGet(`${v.url}/`)).body) as { state: unknown }).state, { started: 'yes' });
});

test('WebSockets: handshake, echo, fragmentation, ping/pong, close codes, the size limit', async (t) => {
  const v = await asgiVassal(t, 'websockets-max-size = 1');
  await accepting(v, 1);
  const c = await WsClient.open(v.port, '/ws', { 'Sec-WebSocket-Protocol': 'chat, other' });
  assert.equal(c.status, 101);
  assert.match(c.head, /Sec-WebSocket-Protocol: chat/);
  c.sendText('hello');
  assert.deepEqual(await c.next(), { fin: true, opcode: OP.TEXT, payload: Buffer.from('hello') });
  // A message in three fragments with a ping between them: the pong first, then the whole message.
  c.send(Buffer.concat([clientFrame(OP.BINARY, 'ab', { fin: false }), clientFrame(OP.PING, 'p?'), clientFrame(OP.CONT, 'cd', { fin: false }), clientFrame(OP.CONT, 'e')]));
  assert.deepEqual(await c.next(), { fin: true, opcode: OP.PONG, payload: Buffer.from('p?') });
  assert.deepEqual(await c.next(), { fin: true, opcode: OP.BINARY, payload: Buffer.from('abcde') });
  // The app closes with a code of its own; the client's close is awaited.
  c.sendText('close:4001');
  const close = await c.next();
  assert.equal([close.opcode, WsClient.code(close)].join(), [OP.CLOSE, 4001].join());
  c.send(clientFrame(OP.CLOSE, closePayload(4001)));
  await waitFor(() => c.closed);
  // A message over websockets-max-size (1 KB): 1009. An unmasked frame: 1002. Bad UTF-8: 1007.
  for (const [frame, code] of [
    [clientFrame(OP.BINARY, Buffer.alloc(1025)), 1009],
    [clientFrame(OP.TEXT, 'x', { masked: false }), 1002],
    [clientFrame(OP.TEXT, Buffer.from([0xff, 0xfe])), 1007],
    [clientFrame(OP.CLOSE, closePayload(1005)), 1002],
  ] as const) {
    const b = await WsClient.open(v.port, '/ws');
    b.send(frame);
    const f = await b.next();
    assert.equal([f.opcode, WsClient.code(f)].join(), [OP.CLOSE, code].join());
    await waitFor(() => b.closed);
  }
  await v.proc.logs.waitFor(msg(/^WebSocket from 127\.0\.0\.1:\d+: message of more than 1024 bytes \(websockets-max-size\); closed with 1009/));
  // A bad handshake: 426 with the version served.
  const old = await WsClient.open(v.port, '/ws', { 'Sec-WebSocket-Version': '8' });
  assert.equal(old.status, 426);
  assert.match(old.head, /Sec-WebSocket-Version: 13/);
  old.end();
  // Still serving HTTP.
  assert.equal((await httpGet(`${v.url}/`)).status, 200);
});

test('a graceful reload closes open WebSockets with 1001 and runs the lifespan shutdown', async (t) => {
  const w = await startVassal(t, (port, dir) => `http-socket = 127.0.0.1:${port}\npythonpath = ${APPS}\nasgi = asgi_app:app\ntouch-reload = ${join(dir, 'reload')}\n`);
  await accepting(w, 1);
  const sockets = await Promise.all([WsClient.open(w.port, '/ws'), WsClient.open(w.port, '/ws')]);
  for (const s of sockets) {
    s.sendText('before');
    assert.equal((await s.next()).payload.toString(), 'before');
  }
  // The stats count the open sessions (and each is a request in flight).
  await statsUntil(w.stats, (d) => {
    const worker = d.workers[0] as unknown as { websockets: number; in_flight: number } | undefined;
    return worker?.websockets === 2 && worker.in_flight === 2;
  }, { message: 'two WebSocket sessions in the stats' });
  writeFileSync(join(w.dir, 'reload'), String(Date.now()));
  for (const s of sockets) {
    const f = await s.next(15_000);
    assert.equal([f.opcode, WsClient.code(f)].join(), [OP.CLOSE, 1001].join());
    s.send(clientFrame(OP.CLOSE, closePayload(1001)));
    await waitFor(() => s.closed);
  }
  assert.equal((await httpGet(`${w.url}/`)).status, 200);
  await statsUntil(w.stats, (d) => (d.workers[0] as unknown as { websockets: number } | undefined)?.websockets === 0, { message: 'no session left in the stats' });
});

test('max-requests recycles an ASGI worker after exactly N requests', async (t) => {
  const v = await asgiVassal(t, 'max-requests = 4\nmin-worker-lifetime = 0');
  await accepting(v, 1);
  const pids: number[] = [];
  for (let i = 0; i < 9; i++) pids.push((JSON.parse((await httpGet(`${v.url}/`)).body) as { pid: number }).pid);
  const [a, b, c] = [...new Set(pids)];
  assert.deepEqual(pids, [a, a, a, a, b, b, b, b, c], 'each process served 4');
  const doc = await statsUntil(v.stats, (d) => d.workers[0]?.pid === c && d.workers[0]?.requests === 9, { message: 'stats after two recycles' });
  assert.equal(doc.workers[0]?.last_exit_reason, 'max-requests');
  assert.equal(v.proc.logs.find(msg(/^served 4 requests \(max-requests 4\); asking to be replaced$/)).length, 2);
});

test('a unix http-socket; ASGI workers of a master killed with SIGKILL are gone within 1 s', async (t) => {
  const v = await startVassal(t, (_port, d) => `http-socket = ${join(d, 'app.sock')}\npythonpath = ${APPS}\nasgi = asgi_app:app\nprocesses = 2`);
  const doc = await accepting(v, 2);
  const out = await exchange(join(v.dir, 'app.sock'), raw('GET /unix HTTP/1.1\nHost: unix.test:8000\nConnection: close\n\n'));
  assert.equal((JSON.parse(parseResponse(out).body.toString()) as { path: string }).path, '/unix');
  const all = descendants(v.proc.pid);
  assert.ok(doc.workers.every((w) => all.includes(w.pid)));
  process.kill(v.proc.pid, 'SIGKILL');
  await waitFor(() => all.every((p) => !isAlive(p)), { timeoutMs: 1000, message: 'template and workers gone within 1 s' });
});
