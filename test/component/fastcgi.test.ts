/**
 * FastCGI on the wire, against vassals of both runtimes run standalone: `cgi-fcgi`
 * (libfcgi-bin) for whole requests, and raw records for what front ends rarely send:
 * FCGI_GET_VALUES, unknown management records, refused roles, FCGI_KEEP_CONN and its
 * idle timeout, a second request while one is in flight, FCGI_ABORT_REQUEST, params over
 * buffer-size, padding, and STDOUT records of at most 65535 bytes. Each refusal is one
 * log line; the worker keeps serving. The params are nginx's stock fastcgi_params (the
 * path in SCRIPT_NAME), so the vassals set manage-script-name, as docs/nginx.md says.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import {
  FCGI_ABORT_REQUEST, FCGI_BEGIN_REQUEST, FCGI_END_REQUEST, FCGI_FILTER, FCGI_GET_VALUES, FCGI_GET_VALUES_RESULT, FCGI_PARAMS, FCGI_STDIN,
  FCGI_STDOUT, FCGI_UNKNOWN_TYPE, decodeNameValuePairs, decodeRecords, encodeNameValuePairs, encodeRecord, encodeRequest,
} from '@emperor/vassal';
import { FIXTURES, pidIn, startVassal, statsOf, waitFor, workersAccepting, type TestVassal, type VassalStatsDoc } from '../helpers/index.js';
import { FastcgiConnection, cgiFcgi, exchange, fastcgiParams, fastcgiRequest, parseCgiResponse } from '../helpers/wire.js';

const RUNTIMES = {
  node: `module = ${join(FIXTURES, 'apps', 'basic.mjs')}`,
  python: `plugin = python3\nwsgi-file = ${join(FIXTURES, 'apps', 'wsgi_app.py')}`,
} as const;
type Runtime = keyof typeof RUNTIMES;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function fastcgiVassal(t: TestContext, runtime: Runtime, extra = ''): Promise<TestVassal & { unix: string }> {
  let unix = '';
  const v = await startVassal(t, (port, dir) => {
    unix = join(dir, 'app.sock');
    return `fastcgi-socket = 127.0.0.1:${port}\nfastcgi-socket = ${unix}\nchmod-socket = 660\n${RUNTIMES[runtime]}\nprocesses = 2\nbuffer-size = 4096\nmanage-script-name = true\n${extra}`;
  });
  await workersAccepting(v, 2);
  return { ...v, unix };
}

for (const runtime of Object.keys(RUNTIMES) as Runtime[]) {
  test(`${runtime}: cgi-fcgi gets CGI responses over TCP and a unix socket; stats say proto fastcgi; one request line each`, async (t) => {
    const v = await fastcgiVassal(t, runtime);
    const doc = await statsOf<VassalStatsDoc>(v.stats);
    assert.deepEqual(doc.sockets.map((s) => [s.name, s.proto]), [[`127.0.0.1:${v.port}`, 'fastcgi'], [v.unix, 'fastcgi']]);
    assert.equal(statSync(v.unix).mode & 0o777, 0o660, 'chmod-socket');
    const env = { REQUEST_METHOD: 'GET', SCRIPT_NAME: '', PATH_INFO: '/', REQUEST_URI: '/cgi-fcgi-hello', QUERY_STRING: '', SERVER_PROTOCOL: 'HTTP/1.1', REMOTE_ADDR: '10.9.8.7' };
    for (const target of [v.port, v.unix]) {
      const r = await cgiFcgi(target, env);
      assert.equal(r.cgiStatus, 200);
      assert.match(r.headers.status ?? '', /^200 OK$/);
      assert.match(r.body.toString(), /^pid \d+\n$/);
      assert.ok(doc.workers.some((w) => w.pid === pidIn(r.body.toString())), 'answered by a worker');
      assert.equal(r.headers.connection, undefined, 'no hop-by-hop header in a CGI response');
    }
    const upload = Buffer.alloc(300_000);
    for (let i = 0; i < upload.length; i++) upload[i] = (i * 7) % 253;
    const posted = await cgiFcgi(v.port, { ...env, REQUEST_METHOD: 'POST', PATH_INFO: '/echo', REQUEST_URI: '/echo', CONTENT_LENGTH: String(upload.length) }, upload);
    assert.equal(posted.cgiStatus, 200);
    assert.equal(posted.body.toString().trim(), runtime === 'node' ? posted.body.toString().trim() : `${sha(upload)} ${upload.length}`);
    if (runtime === 'node') assert.equal(sha(posted.body), sha(upload));
    await v.proc.logs.waitFor((l) => /^\[pid: \d+\|app: 0\|req: \d+\/\d+\] 10\.9\.8\.7 .* GET \/cgi-fcgi-hello => generated \d+ bytes/.test(l.raw), { message: 'the request line' });
  });

  test(`${runtime}: FCGI_GET_VALUES, FCGI_UNKNOWN_TYPE and FCGI_UNKNOWN_ROLE are answered without the app`, async (t) => {
    const v = await fastcgiVassal(t, runtime);
    const query = encodeRecord(FCGI_GET_VALUES, 0, encodeNameValuePairs([['FCGI_MAX_CONNS', ''], ['FCGI_MAX_REQS', ''], ['FCGI_MPXS_CONNS', ''], ['FCGI_OTHER', '']]));
    const conn = await FastcgiConnection.open(v.port);
    t.after(() => conn.close());
    conn.write(Buffer.concat([query, encodeRecord(77, 0, Buffer.from('x'))]));
    const records = await waitFor(() => {
      const got = decodeRecords(conn.received).records;
      return got.length >= 2 ? got : undefined;
    }, { message: 'two answers' });
    assert.equal(records[0]?.type, FCGI_GET_VALUES_RESULT);
    const values = decodeNameValuePairs(records[0]?.content ?? Buffer.alloc(0));
    assert.ok(typeof values !== 'string');
    assert.deepEqual([...values], [['FCGI_MAX_CONNS', '1024'], ['FCGI_MAX_REQS', runtime === 'python' ? '2' : '1024'], ['FCGI_MPXS_CONNS', '0']]);
    assert.deepEqual([records[1]?.type, records[1]?.requestId, records[1]?.content[0]], [FCGI_UNKNOWN_TYPE, 0, 77]);
    // The connection stays: a request on it is served.
    conn.write(encodeRequest(fastcgiParams('GET', '/'), Buffer.alloc(0), { keepConn: true }));
    assert.equal((await conn.response()).status, 200);
    // A filter is refused, and the connection closes when the front end did not ask to keep it.
    const filter = parseCgiResponse(await exchange(v.port, encodeRequest(fastcgiParams('GET', '/'), Buffer.from('data'), { role: FCGI_FILTER, requestId: 5 }), { keepOpen: true }), 5);
    assert.deepEqual(filter.records.map((r) => [r.type, r.requestId, r.content.toString('hex')]), [[FCGI_END_REQUEST, 5, '0000000003000000']]);
  });

  test(`${runtime}: FCGI_KEEP_CONN serves requests one after the other on one connection, then closes it when idle`, async (t) => {
    const v = await fastcgiVassal(t, runtime);
    const conn = await FastcgiConnection.open(v.port);
    t.after(() => conn.close());
    const pids = new Set<number>();
    for (let i = 1; i <= 5; i++) {
      conn.write(encodeRequest(fastcgiParams('GET', `/?n=${i}`), Buffer.alloc(0), { keepConn: true, requestId: i % 2 === 0 ? 1 : 2 }));
      const r = await conn.response(i % 2 === 0 ? 1 : 2);
      assert.equal(r.status, 200);
      assert.equal(r.protocolStatus, 0, 'FCGI_REQUEST_COMPLETE');
      pids.add(pidIn(r.body.toString()));
    }
    assert.equal(pids.size, 1, 'one worker served the connection');
    assert.equal(conn.closed, false);
    await conn.closedByPeer(10_000); // the idle timeout (5 s)
    // Without FCGI_KEEP_CONN the worker closes the connection after END_REQUEST.
    const once = await FastcgiConnection.open(v.port);
    t.after(() => once.close());
    once.write(encodeRequest(fastcgiParams('GET', '/')));
    assert.equal((await once.response()).status, 200);
    await once.closedByPeer(3000);
  });

  test(`${runtime}: a second BEGIN_REQUEST while one is in flight gets FCGI_CANT_MPX_CONN; the first is answered`, async (t) => {
    const v = await fastcgiVassal(t, runtime);
    const conn = await FastcgiConnection.open(v.port);
    t.after(() => conn.close());
    // One write, so the second BEGIN_REQUEST is in the worker's hands while the first is
    // in flight. Sent apart, a sync (Python) worker that read the first request before the
    // second arrived sees the second only after the first's END_REQUEST: it is then the
    // connection's next request and is served (seen under load: protocol status 0).
    conn.write(Buffer.concat([
      encodeRequest(fastcgiParams('GET', '/sleep?ms=300'), Buffer.alloc(0), { keepConn: true, requestId: 1 }),
      encodeRequest(fastcgiParams('GET', '/'), Buffer.alloc(0), { keepConn: true, requestId: 2 }),
    ]));
    const refused = await conn.response(2);
    assert.equal(refused.protocolStatus, 1, 'FCGI_CANT_MPX_CONN');
    assert.equal(refused.records.filter((r) => r.requestId === 2 && r.type === FCGI_STDOUT).length, 0);
    const first = await conn.response(1);
    assert.equal(first.status, 200);
    assert.match(first.body.toString(), /^slept/);
    // The connection still serves.
    conn.write(encodeRequest(fastcgiParams('GET', '/'), Buffer.alloc(0), { keepConn: true, requestId: 2 }));
    assert.equal((await conn.response(2)).status, 200);
  });

  test(`${runtime}: params over buffer-size, a bad version and a head cut short are one log line each; the workers stay`, async (t) => {
    const v = await fastcgiVassal(t, runtime);
    const before = (await statsOf<VassalStatsDoc>(v.stats)).workers.map((w) => w.pid);
    const big = encodeRequest(fastcgiParams('GET', '/', { HTTP_COOKIE: 'c'.repeat(5000) }));
    assert.equal((await exchange(v.port, big, { keepOpen: true })).length, 0, 'nothing written back');
    await v.proc.logs.waitFor((l) => /^FastCGI from 127\.0\.0\.1:\d+: params of request 1 larger than buffer-size \(4096 bytes\); connection closed$/.test(l.msg ?? ''));
    assert.equal((await exchange(v.port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), { keepOpen: true })).length, 0);
    await v.proc.logs.waitFor((l) => /^FastCGI from 127\.0\.0\.1:\d+: unsupported FastCGI version 71 \(type 69, at byte 0; only 1 exists\); connection closed$/.test(l.msg ?? ''));
    await exchange(v.port, encodeRequest(fastcgiParams('GET', '/')).subarray(0, 40));
    await v.proc.logs.waitFor((l) => /^FastCGI from 127\.0\.0\.1:\d+: the front end closed the connection in the middle of a record or request head \(\d+ bytes\); connection closed$/.test(l.msg ?? ''));
    // A front end that connects and leaves without a byte is not an error.
    await exchange(v.port, Buffer.alloc(0));
    // Padding on every record and a body in 1-byte records are read alike.
    const padded = await fastcgiRequest(v.port, fastcgiParams('POST', '/echo', { CONTENT_LENGTH: '5' }), Buffer.from('hello'), { padding: 255, stdinRecord: 1 });
    assert.equal(padded.status, 200);
    assert.match(padded.body.toString(), runtime === 'node' ? /^hello$/ : /^[0-9a-f]{64} 5$/);
    const after = (await statsOf<VassalStatsDoc>(v.stats)).workers;
    assert.deepEqual(after.map((w) => w.pid), before, 'no worker died');
    assert.equal(v.proc.logs.find((l) => /^FastCGI from/.test(l.msg ?? '')).length, 3, 'one line per refusal');
  });

  test(`${runtime}: a big body streamed back in STDOUT records of at most 65535 bytes`, async (t) => {
    const v = await fastcgiVassal(t, runtime);
    const size = 2 * 1024 * 1024;
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i++) body[i] = i % 256;
    const r = runtime === 'python'
      ? await fastcgiRequest(v.port, fastcgiParams('GET', '/stream?mb=2'))
      : await fastcgiRequest(v.port, fastcgiParams('POST', '/echo', { CONTENT_LENGTH: String(size) }), body);
    const stdout = r.records.filter((rec) => rec.type === FCGI_STDOUT);
    assert.ok(stdout.every((rec) => rec.content.length <= 65535));
    assert.ok(stdout.length > 32, `${stdout.length} records`);
    assert.equal(stdout.at(-1)?.content.length, 0, 'an empty STDOUT ends the stream');
    assert.equal(r.records.at(-1)?.type, FCGI_END_REQUEST);
    assert.equal(r.body.length, size);
    assert.equal(sha(r.body), sha(body));
  });
}

test('node: the request the app sees (URL from REQUEST_URI, headers, the client from REMOTE_ADDR, HTTPS), and a body without CONTENT_LENGTH', async (t) => {
  const v = await fastcgiVassal(t, 'node');
  const r = await fastcgiRequest(v.port, fastcgiParams('GET', '/request?x=%20y', { HTTPS: 'on', HTTP_X_THING: 'one', REMOTE_ADDR: '192.0.2.9', REMOTE_PORT: '5555', HTTP_CONTENT_LENGTH: '9' }));
  const seen = JSON.parse(r.body.toString()) as { url: string; headers: Record<string, string>; remoteAddress: string; remotePort: number; encrypted: boolean; httpVersion: string };
  assert.equal(seen.url, '/request?x=%20y');
  assert.equal(seen.headers['x-thing'], 'one');
  assert.equal(seen.headers['content-length'], undefined, "lighttpd's HTTP_CONTENT_LENGTH is not the body's framing");
  assert.deepEqual([seen.remoteAddress, seen.remotePort, seen.encrypted, seen.httpVersion], ['192.0.2.9', 5555, true, '1.1']);
  // A front end streaming a body of unknown length: no CONTENT_LENGTH, STDIN records until the empty one.
  const streamed = await fastcgiRequest(v.port, fastcgiParams('POST', '/echo'), Buffer.from('no length given'), { stdinRecord: 4 });
  assert.equal(streamed.body.toString(), 'no length given');
  // An app that sets Transfer-Encoding itself: the front end gets the body un-chunked.
  const chunked = await fastcgiRequest(v.port, fastcgiParams('GET', '/te-chunked'));
  assert.equal(chunked.headers['transfer-encoding'], undefined);
  assert.equal(chunked.body.toString(), 'one two');
});

test('node: FCGI_ABORT_REQUEST ends the request at once: END_REQUEST, no response, the connection kept', async (t) => {
  const v = await fastcgiVassal(t, 'node');
  const conn = await FastcgiConnection.open(v.port);
  t.after(() => conn.close());
  conn.write(encodeRequest(fastcgiParams('GET', '/sleep?ms=3000'), Buffer.alloc(0), { keepConn: true }));
  await waitFor(async () => (await statsOf<VassalStatsDoc>(v.stats)).workers.some((w) => w.status === 'busy'), { message: 'the request running' });
  conn.write(encodeRecord(FCGI_ABORT_REQUEST, 1));
  const aborted = await conn.response(1, 2500);
  assert.equal(aborted.protocolStatus, 0);
  assert.equal(aborted.records.filter((r) => r.type === FCGI_STDOUT).length, 0, 'the app never answered');
  conn.write(encodeRequest(fastcgiParams('GET', '/'), Buffer.alloc(0), { keepConn: true }));
  assert.equal((await conn.response(1)).status, 200);
});

test('python: FCGI_ABORT_REQUEST while the app reads its body ends the request; the front end closing ends it too', async (t) => {
  const v = await fastcgiVassal(t, 'python');
  const head = encodeRequest(fastcgiParams('POST', '/echo', { CONTENT_LENGTH: '100' })).subarray(0, -8); // without the empty STDIN
  const raw = await exchange(v.port, [head, encodeRecord(FCGI_STDIN, 1, Buffer.from('part of it')), encodeRecord(FCGI_ABORT_REQUEST, 1)], { keepOpen: true });
  assert.equal(raw.length, 0, 'the connection closed');
  await v.proc.logs.waitFor((l) => /^POST \/echo: client .* went away: the front end aborted the request \(FCGI_ABORT_REQUEST\)$/.test(l.msg ?? ''));
  await exchange(v.port, [head, encodeRecord(FCGI_STDIN, 1, Buffer.from('part'))]);
  await v.proc.logs.waitFor((l) => /^POST \/echo: client .* went away: the front end closed the connection in the middle of the request body$/.test(l.msg ?? ''));
  assert.equal((await fastcgiRequest(v.port, fastcgiParams('GET', '/'))).status, 200);
});

test('python: the environ from the params; FCGI_ROLE; an authorizer gets no body', async (t) => {
  const v = await fastcgiVassal(t, 'python');
  const r = await fastcgiRequest(v.port, fastcgiParams('GET', '/environ/x?q=1', { HTTPS: 'on' }));
  const env = JSON.parse(r.body.toString()) as Record<string, string>;
  assert.deepEqual([env.SCRIPT_NAME, env.PATH_INFO, env.QUERY_STRING, env.REQUEST_URI, env.REMOTE_ADDR, env['wsgi.url_scheme'], env.FCGI_ROLE],
    ['', '/environ/x', 'q=1', '/environ/x?q=1', '10.1.2.3', 'https', 'RESPONDER'], "nginx's stock params: the path in SCRIPT_NAME, split by manage-script-name");
  const auth = await fastcgiRequest(v.port, fastcgiParams('GET', '/environ', { SCRIPT_NAME: '' }).filter(([k]) => k !== 'SCRIPT_NAME').concat([['PATH_INFO', '/environ']]), Buffer.alloc(0), { role: 2 });
  assert.equal(JSON.parse(auth.body.toString()).FCGI_ROLE, 'AUTHORIZER');
  // A head of BEGIN_REQUEST and PARAMS only (an authorizer's) is served without a STDIN stream.
  const bare = Buffer.concat([
    encodeRecord(FCGI_BEGIN_REQUEST, 3, Buffer.from([0, 2, 0, 0, 0, 0, 0, 0])),
    encodeRecord(FCGI_PARAMS, 3, encodeNameValuePairs([['REQUEST_METHOD', 'GET'], ['PATH_INFO', '/']])),
    encodeRecord(FCGI_PARAMS, 3),
  ]);
  assert.equal(parseCgiResponse(await exchange(v.port, bare, { keepOpen: true }), 3).status, 200);
});
