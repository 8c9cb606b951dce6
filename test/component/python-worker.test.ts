/**
 * The Python WSGI worker (packages/vassal/python/emperor_worker/) run by a standalone
 * vassal: PEP 3333, HTTP/1.1 on http-socket, the uwsgi protocol on socket, failures,
 * limits and interpreters. nginx and Django are in test/e2e/nginx-python.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ROOT, descendants, freePort, httpGet, isAlive, procStatus, serving, spawnNode, statsOf, statsUntil, startVassal, tempDir, waitFor, workersAccepting, type TestVassal, type VassalStatsDoc } from '../helpers/index.js';
import { exchange, nginxVars, parseResponse, uwsgiRequest } from '../helpers/wire.js';
import { DEBIAN_PYTHON } from '../helpers/nginx.js';

const APP = join(FIXTURES, 'apps', 'wsgi_app.py');

function pythonVassal(t: import('node:test').TestContext, extra = '', processes = 1): Promise<TestVassal> {
  return startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\nwsgi-file = ${APP}\nprocesses = ${processes}\n${extra}`);
}

async function ready(v: TestVassal, processes = 1): Promise<VassalStatsDoc> {
  return workersAccepting(v, processes);
}

/** The expected bytes of /stream?mb=N: byte i is i % 256. */
function streamSha(bytes: number): string {
  const block = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const hash = createHash('sha256');
  for (let sent = 0; sent < bytes; sent += 256) hash.update(block.subarray(0, Math.min(256, bytes - sent)));
  return hash.digest('hex');
}

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

function raw(text: string): Buffer {
  return Buffer.from(text.replaceAll('\n', '\r\n'), 'latin1');
}

for (const [label, env] of [
  ['python3 on PATH', ''],
  ["Debian's /usr/bin/python3", 'env = PATH=/usr/bin:/bin'],
] as const) {
  test(`PEP 3333 environ and the interpreter it runs on (${label})`, async (t) => {
    const v = await pythonVassal(t, `${env}\nenv = GREETING=hi`);
    await ready(v);
    const r = await httpGet(`${v.url}/environ%20x?a=1&b=%C3%A9`, { headers: { 'x-custom': 'yes', 'x_sneaky': 'no' } });
    assert.equal(r.status, 200);
    const e = JSON.parse(r.body) as Record<string, unknown>;
    assert.equal(e.REQUEST_METHOD, 'GET');
    assert.equal(e.SCRIPT_NAME, '');
    assert.equal(e.PATH_INFO, '/environ x');
    assert.equal(e.QUERY_STRING, 'a=1&b=%C3%A9');
    assert.equal(e.REQUEST_URI, '/environ%20x?a=1&b=%C3%A9');
    assert.equal(e.SERVER_PROTOCOL, 'HTTP/1.1');
    assert.equal(e.SERVER_NAME, '127.0.0.1');
    assert.equal(e.SERVER_PORT, String(v.port));
    assert.equal(e.REMOTE_ADDR, '127.0.0.1');
    assert.match(String(e.REMOTE_PORT), /^\d+$/);
    assert.equal(e.HTTP_X_CUSTOM, 'yes');
    assert.equal(e.HTTP_X_SNEAKY, undefined, 'header names with underscores are dropped, as nginx does');
    assert.deepEqual(e['wsgi.version'], [1, 0]);
    assert.equal(e['wsgi.url_scheme'], 'http');
    assert.equal(e['wsgi.multithread'], false);
    assert.equal(e['wsgi.multiprocess'], true);
    assert.equal(e['wsgi.run_once'], false);
    assert.equal(e.input_type, 'Input');
    assert.equal(e.errors_type, 'ErrorStream');
    assert.equal(e.has_file_wrapper, true);
    assert.deepEqual(e.leaked, [], 'the supervision variables are removed before the app loads');
    assert.equal(e.os_env_greeting, 'hi');
    assert.equal(e.cwd, v.dir);
    const line = await v.proc.logs.waitFor((l) => /^python interpreter: /.test(l.msg ?? ''));
    if (env === '') {
      assert.match(line.msg ?? '', /from PATH/);
    } else {
      assert.match(line.msg ?? '', /^python interpreter: \/usr\/bin\/python3 \(Python 3\.\d+\.\d+, from PATH\)/);
    }
  });
}

/** Modules the app below has of its own, each named like one of the worker package's. */
const LOOKALIKES = ['server', 'log', 'worker', 'channel', 'connection', 'scoreboard', 'contract', 'request_log', 'protocols'];

for (const [label, env] of [
  ['python3 on PATH', ''],
  ["Debian's /usr/bin/python3", 'env = PATH=/usr/bin:/bin'],
] as const) {
  test(`the app's sys.path and imports: pythonpath, then its directory; nothing of the worker's shadows the app's modules or the standard library (${label})`, async (t) => {
    const v = await startVassal(t, (port, d) => {
      mkdirSync(join(d, 'lib'));
      writeFileSync(join(d, 'lib', 'helper.py'), 'WHERE = "lib"\n');
      for (const name of LOOKALIKES.slice(0, -1)) writeFileSync(join(d, `${name}.py`), `WHERE = "app"\n`);
      mkdirSync(join(d, 'protocols'));
      writeFileSync(join(d, 'protocols', '__init__.py'), 'WHERE = "app"\n');
      // Named like a Django project's wsgi.py, loaded as `module = wsgi`.
      writeFileSync(join(d, 'wsgi.py'), [
        'import http.client, importlib, json, logging, sys, wsgiref.util',
        'import helper',
        `MINE = {name: getattr(importlib.import_module(name), "WHERE", None) for name in ${JSON.stringify(LOOKALIKES)}}`,
        'logging.getLogger("app").addHandler(logging.NullHandler())',
        'def application(environ, start_response):',
        '    start_response("200 OK", [("Content-Type", "application/json")])',
        '    return [json.dumps({"path": sys.path, "mine": MINE, "helper": helper.WHERE, "uri": wsgiref.util.request_uri(environ),',
        '        "stdlib": [http.client.__file__, wsgiref.util.__file__, logging.__file__]}).encode()]',
        '',
      ].join('\n'));
      return `http-socket = 127.0.0.1:${port}\nchdir = ${d}\nmodule = wsgi:application\npythonpath = ${join(d, 'lib')}\n${env}`;
    });
    const got = JSON.parse(await serving(`${v.url}/x?y=1`)) as { path: string[]; mine: Record<string, string>; helper: string; uri: string; stdlib: string[] };
    assert.deepEqual(got.mine, Object.fromEntries(LOOKALIKES.map((name) => [name, 'app'])), 'each name is the app\'s own module');
    assert.equal(got.helper, 'lib');
    assert.equal(got.uri, `http://127.0.0.1:${v.port}/x?y=1`);
    assert.deepEqual(got.path.slice(0, 2), [join(v.dir, 'lib'), v.dir], 'pythonpath first, then the app\'s directory');
    const ours = join(ROOT, 'packages', 'vassal', 'python');
    const shims = join(ours, 'emperor_worker', 'shims');
    assert.deepEqual(got.path.filter((p) => p.startsWith(ours) && p !== shims), [], 'the worker\'s directory is not on the app\'s sys.path');
    assert.equal(got.path.at(-1), shims, 'only the uwsgi shims, last, where any module of the app\'s wins');
    for (const file of got.stdlib) assert.match(file, /\/python3\.\d+\/(http|wsgiref|logging)\/[a-z_]+\.py$/, 'from the standard library');
  });
}

test('the worker package unreadable by the vassal\'s user: one clear error naming it, not a ModuleNotFoundError per worker', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async (t) => {
  // The launcher readable, the package beside it not (a umask of 077 when it was installed).
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const copy = join(dir, 'emperor');
  try {
    execFileSync('cp', ['-al', ROOT, copy], { stdio: 'ignore' }); // hard links: instant on one filesystem
  } catch {
    execFileSync('cp', ['-a', ROOT, copy], { stdio: 'ignore' });
  }
  chmodSync(join(copy, 'packages', 'vassal', 'python', 'emperor_worker'), 0o700); // a directory: not shared with ROOT
  const port = await freePort();
  const file = join(dir, 'a.ini');
  writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nwsgi-file = ${APP}\nuid = nobody\ngid = nogroup\n`);
  const proc = spawnNode(t, join(copy, 'packages', 'cli', 'dist', 'bin', 'emperor.js'), ['--ini', file]);
  // The first error decides (a master that spawned workers anyway would respawn them forever).
  const error = await proc.logs.waitFor((l) => (l.level ?? 0) >= 50, { timeoutMs: 15_000 });
  assert.equal(error.code, 'ERR_PRIVILEGE', proc.logs.tail());
  assert.match(String(error.msg), /^uid 65534 cannot read Emperor's worker code .*\/packages\/vassal\/python\/emperor_worker \(EACCES\); install Emperor where every vassal user can read it/);
  const exit = await proc.exited;
  assert.notEqual(exit.code, 0);
  assert.equal(proc.logs.find((l) => (l.level ?? 0) >= 50).length, 1, proc.logs.tail());
  assert.equal(proc.logs.find((l) => /ModuleNotFoundError|spawned worker/.test(String(l.msg))).length, 0, proc.logs.tail());
});

test('http-socket: keep-alive and pipelining, HEAD, HTTP/1.0, chunked bodies, Expect: 100-continue, header limit', async (t) => {
  const v = await pythonVassal(t, 'buffer-size = 4096');
  await ready(v);
  // Three pipelined requests on one connection, the last one closing it.
  const three = await exchange(v.port, raw('GET /?1 HTTP/1.1\nHost: a\n\nGET /?2 HTTP/1.1\nHost: a\n\nGET /?3 HTTP/1.1\nHost: a\nConnection: close\n\n'));
  const answers = three.toString('latin1').split('HTTP/1.1 200 OK').slice(1);
  assert.equal(answers.length, 3, three.toString('latin1'));
  assert.equal(new Set(answers.map((a) => /pid (\d+)/.exec(a)?.[1])).size, 1, 'one connection, one worker');
  assert.match(answers[2] ?? '', /Connection: close/);
  assert.doesNotMatch(answers[0] ?? '', /Connection: close/);

  const head = parseResponse(await exchange(v.port, raw('HEAD / HTTP/1.1\nHost: a\nConnection: close\n\n')));
  assert.equal(head.status, 200);
  assert.match(head.headers['content-length'] ?? '', /^\d+$/);
  assert.equal(head.body.length, 0, 'HEAD has no body');

  // HTTP/1.0 and a body of unknown length: no chunking, the end of the body is the close.
  const old = parseResponse(await exchange(v.port, raw('GET /stream?mb=0.25 HTTP/1.0\n\n')));
  assert.equal(old.status, 200);
  assert.equal(old.headers['transfer-encoding'], undefined);
  assert.equal(old.headers.connection, 'close');
  assert.equal(sha(old.body), streamSha(262144));
  // HTTP/1.1 and unknown length: chunked.
  const chunkedOut = parseResponse(await exchange(v.port, raw('GET /stream?mb=0.001 HTTP/1.1\nHost: a\nConnection: close\n\n')));
  assert.equal(chunkedOut.headers['transfer-encoding'], 'chunked');

  const chunkedIn = parseResponse(
    await exchange(v.port, raw('POST /echo HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nConnection: close\n\n5\nhello\n6;ext=1\n world\n0\nX-Trailer: 1\n\n')),
  );
  assert.equal(chunkedIn.body.toString(), `${sha('hello world')} 11`);
  const lines = parseResponse(await exchange(v.port, raw('POST /echo-lines HTTP/1.1\nHost: a\nContent-Length: 12\nConnection: close\n\none\ntwo\nthree')));
  assert.equal(lines.body.toString(), '3 lines 12 bytes');

  // Expect: 100-continue: the interim response comes before the client sends the body.
  const continued = await new Promise<string>((resolve, reject) => {
    const s = connect(v.port, '127.0.0.1', () => s.write(raw('POST /echo HTTP/1.1\nHost: a\nContent-Length: 4\nExpect: 100-continue\nConnection: close\n\n')));
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      if (got === 'HTTP/1.1 100 Continue\r\n\r\n') s.write('body');
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
  assert.match(continued, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/);
  assert.ok(continued.endsWith(`${sha('body')} 4`));

  const big = parseResponse(await exchange(v.port, raw(`GET / HTTP/1.1\nHost: a\nX-Big: ${'x'.repeat(5000)}\n\n`)));
  assert.equal(big.status, 431, 'a head larger than buffer-size');
  for (const path of ['/bad-header', '/hop-by-hop']) {
    const refused = parseResponse(await exchange(v.port, raw(`GET ${path} HTTP/1.1\nHost: a\n\n`)));
    assert.equal(refused.status, 500, `${path}: start_response refuses it`);
    assert.equal(refused.headers['set-cookie'], undefined);
  }
  const no = parseResponse(await exchange(v.port, raw('GET /status?code=204 HTTP/1.1\nHost: a\nConnection: close\n\n')));
  assert.equal(no.status, 204);
  assert.equal(no.headers['content-length'], undefined, '204 has no body and no length');
  assert.equal(no.headers['transfer-encoding'], undefined);
  const bad = parseResponse(await exchange(v.port, raw('GARBAGE\n\n')));
  assert.equal(bad.status, 400);
  assert.match((await httpGet(`${v.url}/`)).body, /^pid \d+/, 'still serving');
  assert.equal(v.proc.logs.find((l) => /bad HTTP request from 127\.0\.0\.1:\d+: request head larger than buffer-size/.test(l.msg ?? '')).length, 1);
});

test('a 10 MB streamed body and a file arrive intact, a 5 MB POST body too', async (t) => {
  const v = await pythonVassal(t);
  await ready(v);
  const close = { headers: { connection: 'close' } };
  const res = await fetch(`${v.url}/stream?mb=10`, close);
  assert.equal(res.headers.get('transfer-encoding'), 'chunked');
  assert.equal(sha(Buffer.from(await res.arrayBuffer())), streamSha(10 * 1024 * 1024));
  const upload = Buffer.alloc(5 * 1024 * 1024);
  for (let i = 0; i < upload.length; i++) upload[i] = (i * 7) % 253;
  const echoed = await fetch(`${v.url}/echo`, { method: 'POST', body: upload, ...close });
  assert.equal(await echoed.text(), `${sha(upload)} ${upload.length}`);
  const file = join(v.dir, 'blob.bin');
  writeFileSync(file, upload.subarray(0, 3 * 1024 * 1024 + 17));
  const viaWrapper = await fetch(`${v.url}/file?path=${encodeURIComponent(file)}`, close);
  assert.equal(viaWrapper.headers.get('content-length'), String(3 * 1024 * 1024 + 17), 'a regular file gets its length');
  assert.equal(sha(Buffer.from(await viaWrapper.arrayBuffer())), sha(upload.subarray(0, 3 * 1024 * 1024 + 17)));
});

test('exceptions: a 500, logged with the traceback, counted in stats; close() is always called; exc_info; the worker stays', async (t) => {
  const v = await pythonVassal(t);
  const before = await ready(v);
  const pid = before.workers[0]?.pid;
  const r = await httpGet(`${v.url}/raise`);
  assert.equal(r.status, 500);
  assert.equal(r.body, 'Internal Server Error\n');
  const logged = await v.proc.logs.waitFor((l) => /^exception in GET \/raise: RuntimeError: boom from \/raise/.test(l.msg ?? ''));
  assert.match((logged.err as { stack?: string }).stack ?? '', /wsgi_app\.py", line \d+, in application/);
  assert.equal(logged.level, 50);
  // An exception after the headers: the response is cut (no last chunk) and the connection closed.
  const late = (await exchange(v.port, raw('GET /raise-late HTTP/1.1\nHost: a\n\n'))).toString('latin1');
  assert.match(late, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nc\r\nfirst chunk\n\r\n$/, 'no terminating 0-chunk');
  // close() runs even when the iterable raises.
  const closing = (await exchange(v.port, raw('GET /closing HTTP/1.1\nHost: a\n\n'))).toString('latin1');
  assert.ok(closing.endsWith('9\r\npart one\n\r\n'), closing);
  await v.proc.logs.waitFor((l) => l.msg === 'close called' && l.stream === 'wsgi.errors');
  const handled = await httpGet(`${v.url}/exc-info`);
  assert.equal(handled.status, 503, 'start_response with exc_info replaces the status before anything was sent');
  assert.equal(handled.body, 'handled\n');
  const next = await httpGet(`${v.url}/`);
  assert.equal(next.body, `pid ${pid}\n`, 'the next request is served by the same process');
  const doc = await waitFor(async () => {
    const d = await statsOf<VassalStatsDoc>(v.stats);
    return d.workers[0]?.exceptions === 3 && d.workers[0].requests >= 5 ? d : undefined;
  }, { message: 'exceptions = 3 in stats' });
  assert.equal(doc.workers[0]?.pid, pid);
  assert.equal(doc.workers[0]?.respawn_count, 1);
  assert.equal((doc.workers[0] as unknown as { runtime: string }).runtime, 'python');
  await httpGet(`${v.url}/errors`);
  await v.proc.logs.waitFor((l) => l.msg === 'first line to wsgi.errors' && l.level === 40);
  await v.proc.logs.waitFor((l) => l.msg === 'second line');
});

test('an exception past the app (close() raising, an exception that cannot be printed) still ends the request once: a 500 or a closed connection, one error line with the traceback, counted, logged, idle', async (t) => {
  const v = await pythonVassal(t);
  const before = await ready(v);
  const pid = before.workers[0]?.pid;
  // The response went out, then close() raised: the connection closes (keep-alive was asked for).
  const late = (await exchange(v.port, raw('GET /close-raises HTTP/1.1\nHost: a\n\n'), { keepOpen: true })).toString('latin1');
  assert.match(late, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nsent before close\n$/, late);
  // Nothing was sent yet: a 500.
  const early = (await exchange(v.port, raw('GET /raise-unprintable HTTP/1.1\nHost: a\n\n'), { keepOpen: true })).toString('latin1');
  assert.match(early, /^HTTP\/1\.1 500 Internal Server Error\r\n[^]*Connection: close\r\n\r\nInternal Server Error\n$/, early);
  const closeLine = await v.proc.logs.waitFor((l) => l.raw.includes('GET /close-raises =>'), { message: 'the request log line of /close-raises' });
  assert.match(closeLine.raw, /\(HTTP\/1\.1 200\)/);
  const earlyLine = await v.proc.logs.waitFor((l) => l.raw.includes('GET /raise-unprintable =>'), { message: 'the request log line of /raise-unprintable' });
  assert.match(earlyLine.raw, /\(HTTP\/1\.1 500\)/);
  for (const uri of ['/close-raises', '/raise-unprintable']) {
    const errors = v.proc.logs.lines.filter((l) => (l.level ?? 0) >= 50 && (l.msg ?? '').includes(`GET ${uri}`));
    assert.equal(errors.length, 1, `one error line for ${uri}: ${JSON.stringify(errors.map((l) => l.msg))}`);
    assert.match(errors[0]?.msg ?? '', /Unprintable: <exception str\(\) failed>/);
    assert.match((errors[0]?.err as { stack?: string } | undefined)?.stack ?? '', /wsgi_app\.py", line \d+, in (close|application)/);
  }
  assert.equal(v.proc.logs.lines.filter((l) => /internal error/.test(l.msg ?? '')).length, 0, 'no internal error');
  const doc = await statsUntil(v.stats, (d) => d.workers[0]?.requests === 2 && d.workers[0].status === 'idle', { message: '2 requests, idle' });
  assert.equal(doc.workers[0]?.exceptions, 2);
  assert.equal(doc.workers[0]?.pid, pid, 'the worker stays');
  assert.equal((await httpGet(`${v.url}/`)).body, `pid ${pid}\n`);
});

test('100 concurrent keep-alive clients on http-socket are all answered', async (t) => {
  const v = await pythonVassal(t, '', 2);
  await ready(v, 2);
  const agent = new Agent({ keepAlive: true, maxSockets: 100 });
  t.after(() => agent.destroy());
  const get = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request(`${v.url}/`, { agent }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`status ${res.statusCode}`))));
      });
      req.setTimeout(20_000, () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end();
    });
  const bodies = await Promise.all(
    Array.from({ length: 100 }, async () => {
      const out: string[] = [];
      for (let i = 0; i < 5; i++) out.push(await get());
      return out;
    }),
  );
  agent.destroy(); // before the vassal stops: its workers let idle keep-alive connections end on their own
  const all = bodies.flat();
  assert.equal(all.length, 500);
  assert.ok(all.every((b) => /^pid \d+\n$/.test(b)));
});

test('uwsgi protocol: raw HTTP response, HTTPS flag, and malformed packets close only their connection', async (t) => {
  const v = await startVassal(t, (port) => `socket = 127.0.0.1:${port}\nwsgi-file = ${APP}\nbuffer-size = 4096`);
  const doc = await ready(v);
  const pid = doc.workers[0]?.pid;
  const ok = await uwsgiRequest(v.port, nginxVars('GET', '/environ?x=%20', { HTTPS: 'on', SERVER_PROTOCOL: 'HTTP/1.0' }));
  assert.equal(ok.statusLine, 'HTTP/1.0 200 OK', 'the status line carries SERVER_PROTOCOL');
  assert.equal(ok.headers['transfer-encoding'], undefined);
  const e = JSON.parse(ok.body.toString()) as Record<string, unknown>;
  assert.equal(e['wsgi.url_scheme'], 'https');
  assert.equal(e.PATH_INFO, '/environ');
  assert.equal(e.QUERY_STRING, 'x=%20');
  assert.equal(e.REMOTE_ADDR, '10.1.2.3');
  assert.equal(e.SERVER_NAME, 'example.test');
  const body = Buffer.from('x'.repeat(100_000));
  const posted = await uwsgiRequest(v.port, nginxVars('POST', '/echo', { CONTENT_LENGTH: String(body.length) }), body);
  assert.equal(posted.body.toString(), `${sha(body)} ${body.length}`);

  const header = (m1: number, size: number, m2 = 0): Buffer => Buffer.from([m1, size & 0xff, size >> 8, m2]);
  const cases: [string, Buffer, RegExp][] = [
    ['garbage', Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), /unavailable modifier requested: 71/],
    ['oversized', Buffer.concat([header(0, 5000), Buffer.alloc(5000, 1)]), /invalid request block size: 5000 \(max 4096/],
    ['truncated', Buffer.concat([header(0, 100), Buffer.alloc(10, 1)]), /truncated packet \(14 of 104 bytes\)/],
    ['null key', Buffer.concat([header(0, 4), Buffer.from([0, 0, 0, 0])]), /uwsgi key cannot be null/],
    ['past the end', Buffer.concat([header(0, 6), Buffer.from([1, 0, 0x41, 200, 0, 0x42])]), /invalid uwsgi request \(current strsize: 200\)/],
  ];
  for (const [name, packet, reason] of cases) {
    const answer = await exchange(v.port, packet);
    assert.equal(answer.length, 0, `${name}: nothing is written back`);
    const line = await v.proc.logs.waitFor((l) => reason.test(l.msg ?? ''), { message: name });
    assert.match(line.msg ?? '', /^uwsgi packet from 127\.0\.0\.1:\d+: .*; connection closed$/);
    assert.equal(v.proc.logs.find((l) => reason.test(l.msg ?? '')).length, 1, `${name}: one log line`);
  }
  const after = await uwsgiRequest(v.port, nginxVars('GET', '/'));
  assert.equal(after.body.toString(), `pid ${pid}\n`, 'the same worker still serves');
  const final = await statsOf<VassalStatsDoc>(v.stats);
  assert.equal(final.workers[0]?.pid, pid);
  assert.equal(final.workers[0]?.respawn_count, 1);
});

test('enable-threads (accepted, no warning): a thread the app starts at import runs while the worker waits for requests (lazy-apps)', async (t) => {
  const v = await startVassal(t, (port, d) => {
    writeFileSync(join(d, 'ticker.py'), [
      'import threading, time',
      'ticks = [0]',
      'def tick():',
      '    while True:',
      '        ticks[0] += 1',
      '        time.sleep(0.01)',
      'threading.Thread(target=tick, daemon=True).start()',
      'def application(environ, start_response):',
      '    start_response("200 OK", [("Content-Type", "text/plain")])',
      '    return [str(ticks[0]).encode()]',
      '',
    ].join('\n'));
    return `http-socket = 127.0.0.1:${port}\nwsgi-file = ${join(d, 'ticker.py')}\nenable-threads = true\nlazy-apps = true\nenv = PATH=/usr/bin:/bin`;
  });
  const first = Number(await serving(`${v.url}/`));
  // Between two requests the worker sits in select(); the thread keeps counting.
  await waitFor(async () => Number((await httpGet(`${v.url}/`)).body) >= first + 20, { message: 'the app\'s thread ticking', timeoutMs: 5000 });
  assert.equal(v.proc.logs.find((l) => /enable-threads/.test(l.msg ?? '')).length, 0, 'no warning about enable-threads');
});

for (const [mode, option] of [['preload', ''], ['lazy-apps', 'lazy-apps = true']] as const) {
test(`an app that cannot load: one error line with the traceback, exit 22, respawned with backoff (${mode})`, async (t) => {
  const v = await startVassal(t, (port, d) => {
    mkdirSync(join(d, 'pkg'));
    writeFileSync(join(d, 'pkg', '__init__.py'), '');
    writeFileSync(join(d, 'pkg', 'broken.py'), 'x = 1\ndef application(environ, start_response:\n    pass\n');
    return `http-socket = 127.0.0.1:${port}\nmodule = pkg.broken:application\n${option}`;
  });
  const deaths = await waitFor(() => {
    const d = v.proc.logs.find((l) => /worker 1 \(pid \d+\) died: exit code 22/.test(l.msg ?? ''));
    return d.length >= 2 ? d : undefined;
  }, { message: 'two deaths with exit code 22', timeoutMs: 15_000 });
  assert.deepEqual(deaths.slice(0, 2).map((d) => d.respawn_in_ms), [500, 1000]);
  const errors = v.proc.logs.find((l) => /^cannot load app pkg\.broken:application: SyntaxError/.test(l.msg ?? ''));
  assert.ok(errors.length >= 2);
  const first = errors[0];
  // Lazy: the worker that imports it; preload: the template of generation 1, whose pid the worker's death line names.
  if (mode === 'lazy-apps') assert.equal(first?.worker, 1);
  else assert.equal(first?.template, 1);
  assert.match((first?.err as { stack?: string }).stack ?? '', /broken\.py", line 2/);
  // Exactly one line per failed start: nothing else from the worker between spawn and death.
  const workerPid = Number(/pid (\d+)/.exec(deaths[0]?.msg ?? '')?.[1]);
  assert.equal(v.proc.logs.find((l) => l.pid === workerPid).length, 1, v.proc.logs.tail());

  const missing = await startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\nmodule = no_such_module_here`);
  const line = await missing.proc.logs.waitFor((l) => /^cannot load app no_such_module_here: ModuleNotFoundError: No module named 'no_such_module_here'/.test(l.msg ?? ''), { timeoutMs: 30_000 });
  assert.equal(line.level, 50);
  const noCallable = await startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\nwsgi-file = ${APP}\ncallable = app`);
  await noCallable.proc.logs.waitFor((l) => /^cannot load app .*wsgi_app\.py: AttributeError: .* has no callable 'app'/.test(l.msg ?? ''), { timeoutMs: 30_000 });
});
}

test('home: the virtual environment runs the app with its own interpreter; a missing one is one clear error', async (t) => {
  const v0 = await startVassal(t, (port, d) => `http-socket = 127.0.0.1:${port}\nwsgi-file = ${APP}\nhome = ${join(d, 'no-venv')}`);
  const exit = await v0.proc.exited;
  assert.equal(exit.code, 69);
  const errors = v0.proc.logs.find((l) => l.level === 50);
  assert.equal(errors.length, 1, v0.proc.logs.tail());
  assert.match(errors[0]?.msg ?? '', /^home .*no-venv: no Python interpreter there \(looked for .*bin\/python3 and .*bin\/python\)/);

  const v = await startVassal(t, (port, d) => {
    execFileSync(DEBIAN_PYTHON, ['-m', 'venv', '--without-pip', join(d, 'venv')]);
    return `http-socket = 127.0.0.1:${port}\nwsgi-file = ${APP}\nvirtualenv = ${join(d, 'venv')}`;
  });
  await ready(v);
  const line = await v.proc.logs.waitFor((l) => /^python interpreter: /.test(l.msg ?? ''));
  assert.match(line.msg ?? '', new RegExp(`^python interpreter: ${join(v.dir, 'venv', 'bin', 'python3')} \\(Python 3\\.\\d+\\.\\d+, from home\\)`));
  const e = JSON.parse((await httpGet(`${v.url}/environ`)).body) as Record<string, unknown>;
  assert.equal(e.REQUEST_METHOD, 'GET');
});

test('limit-as: an allocation past the limit is a MemoryError, a 500, and the worker stays; cpu-affinity pins workers', async (t) => {
  const v = await pythonVassal(t, 'limit-as = 256\ncpu-affinity = 1', 2);
  const doc = await ready(v, 2);
  const [w1, w2] = doc.workers;
  assert.equal(procStatus(w1?.pid ?? 0, 'Cpus_allowed_list'), '0');
  assert.equal(procStatus(w2?.pid ?? 0, 'Cpus_allowed_list'), '1');
  const small = await httpGet(`${v.url}/alloc?mb=8`);
  assert.equal(small.body, `allocated ${8 * 1024 * 1024}\n`);
  const big = await httpGet(`${v.url}/alloc?mb=512`);
  assert.equal(big.status, 500);
  await v.proc.logs.waitFor((l) => /^exception in GET \/alloc\?mb=512: MemoryError/.test(l.msg ?? ''));
  const after = await statsOf<VassalStatsDoc>(v.stats);
  assert.deepEqual(after.workers.map((w) => w.pid), [w1?.pid, w2?.pid], 'no worker died');
  assert.match((await httpGet(`${v.url}/`)).body, /^pid \d+/);
});

for (const [mode, option] of [['preload', ''], ['lazy-apps', 'lazy-apps = true']] as const) {
test(`graceful reload: the request in flight finishes, the old worker exits 0 (${mode})`, async (t) => {
  const v = await pythonVassal(t, option);
  const doc = await ready(v);
  const oldPid = doc.workers[0]?.pid ?? 0;
  const slow = httpGet(`${v.url}/sleep?ms=1500`);
  await waitFor(async () => (await statsOf<VassalStatsDoc>(v.stats)).workers[0]?.status === 'busy', { message: 'worker busy' });
  process.kill(doc.pid, 'SIGHUP');
  const r = await slow;
  assert.equal(r.status, 200);
  assert.equal(r.body, `slept in ${oldPid}\n`);
  const stopped = await v.proc.logs.waitFor((l) => new RegExp(`worker 1 \\(pid ${oldPid}\\) stopped \\(reload\\): exit code 0`).test(l.msg ?? ''));
  assert.ok(stopped);
  const fresh = await workersAccepting(v, 1);
  assert.notEqual(fresh.workers[0]?.pid, oldPid);
  assert.match((await httpGet(`${v.url}/`)).body, new RegExp(`^pid ${fresh.workers[0]?.pid}`));
});

test(`harakiri on a sync Python worker: killed at the deadline from its request start, the Python stack logged (${mode})`, async (t) => {
  const v = await pythonVassal(t, `harakiri = 1\nharakiri-verbose = true\n${option}`);
  const doc = await ready(v);
  const first = doc.workers[0]?.pid;
  const started = Date.now();
  const stuck = httpGet(`${v.url}/sleep?ms=20000`).catch((err: unknown) => err);
  const line = await v.proc.logs.waitFor((l) => /^HARAKIRI ON WORKER 1 /.test(l.msg ?? ''), { timeoutMs: 6000 });
  const elapsed = (line.time as number) - started;
  assert.ok(elapsed >= 1000 && elapsed <= 2200, `killed ${elapsed} ms after the request started (harakiri 1 s)`);
  assert.match(line.msg ?? '', /GET \/sleep\?ms=20000 ran for 1\.\d s \(harakiri 1 s\)/);
  // faulthandler's dump: the frame of the app that was sleeping.
  assert.match(String(line.stack), /File ".*wsgi_app\.py", line \d+ in application/);
  assert.ok((await stuck) instanceof Error, 'the stuck request failed');
  const after = await workersAccepting(v, 1);
  assert.notEqual(after.workers[0]?.pid, first);
  assert.equal(after.workers[0]?.harakiri_count, 1);
});

test(`max-requests recycles a Python worker after exactly N requests (${mode})`, async (t) => {
  const v = await pythonVassal(t, `max-requests = 4\nmin-worker-lifetime = 0\n${option}`);
  await ready(v);
  const pids: number[] = [];
  for (let i = 0; i < 9; i++) pids.push(Number(/pid (\d+)/.exec((await httpGet(`${v.url}/`)).body)?.[1]));
  const [a, b, c] = [...new Set(pids)];
  assert.deepEqual(pids, [a, a, a, a, b, b, b, b, c], 'each process served 4');
  const doc = await waitFor(async () => {
    const d = await statsOf<VassalStatsDoc>(v.stats);
    return d.workers[0]?.pid === c && d.workers[0]?.requests === 9 ? d : undefined;
  }, { message: 'stats after two recycles' });
  assert.equal(doc.workers[0]?.last_exit_reason, 'max-requests');
  assert.equal(doc.workers[0]?.respawn_count, 3);
  assert.equal(v.proc.logs.find((l) => /^served 4 requests \(max-requests 4\); asking to be replaced$/.test(l.msg ?? '')).length, 2);
});
}

test('a unix http-socket; workers (and their template) of a master killed with SIGKILL are gone within 1 s', async (t) => {
  const v = await startVassal(t, (_port, d) => `http-socket = ${join(d, 'app.sock')}\nwsgi-file = ${APP}\nprocesses = 2`);
  const doc = await ready(v, 2);
  const get = (path: string): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const req = request({ socketPath: join(v.dir, 'app.sock'), path, headers: { host: 'unix.test:8000', connection: 'close' } }, (res) => {
        let data = '';
        res.on('data', (c: Buffer) => (data += c.toString()));
        res.on('end', () => resolve(data));
      });
      req.on('error', reject);
      req.end();
    });
  const e = JSON.parse(await get('/environ')) as Record<string, unknown>;
  assert.equal(e.SERVER_NAME, 'unix.test');
  assert.equal(e.SERVER_PORT, '8000');
  assert.equal(e.REMOTE_ADDR, '');
  const workers = doc.workers.map((w) => w.pid);
  const all = descendants(v.proc.pid);
  assert.equal(all.length, 3, 'the template and its two workers');
  assert.ok(workers.every((p) => all.includes(p)));
  // SIGINT and SIGHUP (a terminal, a session ending) do not stop a worker: the master decides.
  for (const pid of workers) {
    process.kill(pid, 'SIGINT');
    process.kill(pid, 'SIGHUP');
  }
  // Both processes still answer (a dead one never would).
  const answered = new Set<number>();
  await waitFor(async () => {
    answered.add(Number(/pid (\d+)/.exec(await get('/'))?.[1]));
    return workers.every((p) => answered.has(p));
  }, { message: `answers from both ${workers.join(', ')}` });
  process.kill(v.proc.pid, 'SIGKILL');
  await waitFor(() => all.every((p) => !isAlive(p)), { timeoutMs: 1000, message: 'template and workers gone within 1 s' });
});

/** A client that sent some bytes and nothing more: what came back, and when the server closed it. */
interface StalledClient {
  readonly got: () => string;
  /** Resolves with the ms from the write to the close. */
  readonly closed: Promise<number>;
}

/** Connects to `port` and sends `bytes`; resolves once they are written, with the close to come. */
async function stalledClient(t: import('node:test').TestContext, port: number, bytes: string): Promise<StalledClient> {
  const s = connect(port, '127.0.0.1');
  t.after(() => s.destroy());
  s.on('error', () => {});
  let got = '';
  s.on('data', (c: Buffer) => (got += c.toString('latin1')));
  await new Promise<void>((resolve) => s.once('connect', () => resolve()));
  const started = Date.now();
  const closed = new Promise<number>((resolve) => s.on('close', () => resolve(Date.now() - started)));
  await new Promise<void>((resolve) => s.write(bytes, () => resolve()));
  return { got: () => got, closed };
}

test('a client that stops mid-head holds no worker (408 after 4 s); one that stops mid-body holds it for at most socket-timeout (4 s)', async (t) => {
  const v = await pythonVassal(t);
  await ready(v);
  const stalled = (bytes: string): Promise<StalledClient> => stalledClient(t, v.port, bytes);

  // Mid-head: the worker is free at once (the one worker answers the next client), and the
  // stalled connection is answered 408 and closed 4 s after its first byte.
  const head = await stalled('GET / HTTP/1.1\r\nHost: a\r\n'); // and never the blank line
  const t0 = Date.now();
  assert.equal((await httpGet(`${v.url}/`)).status, 200, 'the next client is served');
  assert.ok(Date.now() - t0 < 2000, `served at once, not after the stalled head (${Date.now() - t0} ms)`);
  const headClosedMs = await head.closed;
  assert.match(head.got(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.ok(headClosedMs >= 3500 && headClosedMs < 8000, `the stalled head closed after ${headClosedMs} ms`);
  await v.proc.logs.waitFor((l) => /^HTTP request from 127\.0\.0\.1:\d+: request head not complete 4 s after its first byte \(25 bytes\); connection closed$/.test(l.msg ?? ''), { message: 'one log line' });

  // Mid-body: the request is the app's now, reading its body; each read waits at most 4 s.
  const body = await stalled('POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc');
  const bodyClosedMs = await body.closed;
  assert.ok(bodyClosedMs >= 3500 && bodyClosedMs < 9000, `the stalled body closed after ${bodyClosedMs} ms`);
  assert.equal((await httpGet(`${v.url}/`)).status, 200, 'and the worker serves again');
});

test('socket-timeout sets how long a client may stall: a Python head (408) and body, and a Node worker\'s uwsgi packet', async (t) => {
  /** Sends `bytes` and never more; resolves with what came back and when the worker closed it. */
  const stall = async (port: number, bytes: string): Promise<{ got: string; closedMs: number }> => {
    const client = await stalledClient(t, port, bytes);
    const closedMs = await client.closed;
    return { got: client.got(), closedMs };
  };
  const py = await pythonVassal(t, 'socket-timeout = 1');
  await ready(py);
  const head = await stall(py.port, 'GET / HTTP/1.1\r\nHost: a\r\n');
  assert.match(head.got, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.ok(head.closedMs >= 900 && head.closedMs < 3000, `the stalled head closed after ${head.closedMs} ms (socket-timeout 1 s, default 4)`);
  await py.proc.logs.waitFor((l) => /request head not complete 1 s after its first byte \(25 bytes\); connection closed$/.test(l.msg ?? ''));
  const body = await stall(py.port, 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc');
  assert.ok(body.closedMs >= 900 && body.closedMs < 3000, `the stalled body closed after ${body.closedMs} ms`);
  assert.equal((await httpGet(`${py.url}/`)).status, 200, 'the worker serves again');

  const node = await startVassal(t, (port) => `socket = 127.0.0.1:${port}\nmodule = ${join(FIXTURES, 'apps', 'basic.mjs')}\nsocket-timeout = 1`);
  await node.proc.logs.waitFor((l) => /^vassal ready/.test(l.msg ?? ''), { timeoutMs: 15_000 });
  const packet = await stall(node.port, '\x00\x40\x00\x00abc'); // a 64-byte block that never comes
  assert.equal(packet.got, '');
  assert.ok(packet.closedMs >= 900 && packet.closedMs < 3000, `the stalled packet closed after ${packet.closedMs} ms`);
  await node.proc.logs.waitFor((l) => /^uwsgi packet from 127\.0\.0\.1:\d+: no whole packet within 1 s \(7 bytes received\); connection closed$/.test(l.msg ?? ''));
});

test('threads: one worker serves that many requests at once; keep-alive and pipelining go on through the loop; each request counted and logged once', async (t) => {
  const v = await pythonVassal(t, 'threads = 3');
  await ready(v);
  const env = JSON.parse((await httpGet(`${v.url}/environ`)).body) as Record<string, unknown>;
  assert.equal(env['wsgi.multithread'], true);
  // Three requests overlap in the one worker; a fourth waits for a free thread.
  const answers = await Promise.all([1, 2, 3, 4].map(() => httpGet(`${v.url}/overlap?ms=800`)));
  for (const a of answers) assert.equal(a.status, 200);
  const most = Math.max(...answers.map((a) => Number(/at most (\d+) at once/.exec(a.body)?.[1])));
  assert.equal(most, 3, `the app saw at most ${most} requests at once (threads = 3)`);
  // The slot counts what is in flight: three slow requests show as 3 (within the 1 s the
  // slot may lag, docs/stats.md, so the requests last longer than that).
  const slow = [1, 2, 3].map(() => httpGet(`${v.url}/sleep?ms=3000`));
  await statsUntil(v.stats, (d) => (d.workers[0] as { in_flight?: number } | undefined)?.in_flight === 3, { message: 'in_flight 3' });
  await Promise.all(slow);
  // Keep-alive: a connection goes back to the loop between its requests.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const ports = new Set<number>();
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((resolve, reject) => {
      request(`${v.url}/sleep?ms=10`, { agent }, (res) => {
        ports.add(res.socket.localPort ?? 0);
        res.resume();
        res.on('end', () => resolve());
      }).on('error', reject).end();
    });
  }
  assert.equal(ports.size, 1, 'three requests on one keep-alive connection');
  // Pipelined: two requests in one write, answered in order.
  const piped = (await exchange(v.port, raw('GET /sleep?ms=10 HTTP/1.1\nHost: a\n\nGET /status?code=204 HTTP/1.1\nHost: a\nConnection: close\n\n'))).toString('latin1');
  assert.match(piped, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nslept in \d+\nHTTP\/1\.1 204 /);
  // An exception in a thread is a 500 and is counted; the worker stays.
  assert.equal((await httpGet(`${v.url}/raise`)).status, 500);
  const total = 1 + 4 + 3 + 3 + 2 + 1;
  const doc = await statsUntil(v.stats, (d) => d.workers[0]?.requests === total, { message: `${total} requests counted` });
  assert.equal(doc.workers[0]?.exceptions, 1);
  assert.equal(doc.workers[0]?.respawn_count, 1, 'one worker process all along');
  await waitFor(() => v.proc.logs.find((l) => /^\[pid: \d+\|app: 0\|req: \d+\/\d+\] /.test(l.raw)).length === total, { message: `${total} request lines` });
});

test('threads: harakiri times the oldest request in flight and ends the worker with all of them', async (t) => {
  const v = await pythonVassal(t, 'threads = 2\nharakiri = 2');
  const doc = await ready(v);
  const first = doc.workers[0]?.pid;
  const started = Date.now();
  const a = httpGet(`${v.url}/sleep?ms=20000&n=a`).catch((err: unknown) => err);
  await statsUntil(v.stats, (d) => (d.workers[0] as { in_flight?: number } | undefined)?.in_flight === 1, { message: 'a in flight' });
  // b starts at least 1 s after a (counted from a's start, not from when the stats showed
  // it), so the two harakiri deadlines differ by that much.
  await waitFor(() => Date.now() - started >= 1000, { message: '1 s since a started', timeoutMs: 5000, intervalMs: 20 });
  const b = httpGet(`${v.url}/sleep?ms=20000&n=b`).catch((err: unknown) => err);
  const line = await v.proc.logs.waitFor((l) => /^HARAKIRI ON WORKER 1 /.test(l.msg ?? ''), { timeoutMs: 8000 });
  const elapsed = (line.time as number) - started;
  assert.ok(elapsed >= 2000 && elapsed < 2900, `killed ${elapsed} ms after the oldest request started (harakiri 2 s)`);
  assert.match(line.msg ?? '', /GET \/sleep\?ms=20000&n=a ran for 2\.\d s/);
  assert.ok((await a) instanceof Error && (await b) instanceof Error, 'both requests in flight ended with the worker');
  const after = await workersAccepting(v, 1);
  assert.notEqual(after.workers[0]?.pid, first);
});

test('threads: a graceful reload lets the requests of every thread finish', async (t) => {
  const v = await pythonVassal(t, 'threads = 2');
  const doc = await ready(v);
  const oldPid = doc.workers[0]?.pid ?? 0;
  // Longer than the 1 s the slot may lag (docs/stats.md), so both show in flight first.
  const slow = [httpGet(`${v.url}/sleep?ms=3000`), httpGet(`${v.url}/sleep?ms=3000`)];
  await statsUntil(v.stats, (d) => (d.workers[0] as { in_flight?: number } | undefined)?.in_flight === 2, { message: 'two in flight' });
  process.kill(doc.pid, 'SIGHUP');
  for (const r of await Promise.all(slow)) {
    assert.equal(r.status, 200);
    assert.equal(r.body, `slept in ${oldPid}\n`);
  }
  await v.proc.logs.waitFor((l) => new RegExp(`worker 1 \\(pid ${oldPid}\\) stopped \\(reload\\): exit code 0`).test(l.msg ?? ''));
});

test('threads: max-requests counts the requests of every thread, and the replacement takes over', async (t) => {
  const v = await pythonVassal(t, 'threads = 2\nmax-requests = 4\nmin-worker-lifetime = 0');
  await ready(v);
  // Two at a time: the first process serves exactly 4, the next one the rest.
  const pids: number[] = [];
  for (let i = 0; i < 4; i++) {
    const pair = await Promise.all([httpGet(`${v.url}/overlap?ms=50`), httpGet(`${v.url}/overlap?ms=50`)]);
    for (const r of pair) {
      assert.equal(r.status, 200);
      pids.push(Number(/in (\d+)$/.exec(r.body.trim())?.[1]));
    }
  }
  const counts = [...pids.reduce((m, p) => m.set(p, (m.get(p) ?? 0) + 1), new Map<number, number>()).values()];
  assert.deepEqual(counts, [4, 4], `each process served 4 (${pids.join(' ')})`);
  assert.equal(v.proc.logs.find((l) => /^served 4 requests \(max-requests 4\); asking to be replaced$/.test(l.msg ?? '')).length >= 1, true);
  const doc = await statsUntil(v.stats, (d) => d.workers[0]?.requests === 8 && d.workers[0]?.last_exit_reason === 'max-requests', { message: 'stats after the recycle' });
  assert.ok((doc.workers[0]?.respawn_count ?? 0) >= 2);
});

test('threads: keep-alive clients that keep every thread busy do not starve a connection waiting to be accepted', async (t) => {
  const v = await pythonVassal(t, 'threads = 2');
  await ready(v);
  // Six keep-alive clients for two threads, each asking again as soon as answered: some
  // of them always have a request waiting. A worker that served its held connections
  // first would leave a new connection in the listen queue for as long as they go on.
  let stop = false;
  let served = 0;
  const hammers = Array.from({ length: 6 }, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    while (!stop) {
      await new Promise<void>((resolve, reject) => {
        const req = request(`${v.url}/sleep?ms=20`, { agent }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end();
      });
      served += 1;
    }
    agent.destroy();
  });
  t.after(() => { stop = true; });
  await waitFor(() => served >= 30, { message: 'the six clients running' });
  const newcomer = await httpGet(`${v.url}/`, { signal: AbortSignal.timeout(5000) }).catch((err: unknown) => err);
  const stillRunning = !stop;
  stop = true;
  await Promise.all(hammers);
  assert.ok(!(newcomer instanceof Error), `the new connection was answered while the others went on (${String(newcomer)})`);
  assert.equal((newcomer as { status: number }).status, 200);
  assert.ok(stillRunning);
});

test('threads: a worker whose threads are all taken sleeps while a connection waits (it does not spin on the listener)', async (t) => {
  const v = await pythonVassal(t, 'threads = 2');
  const doc = await ready(v);
  const pid = doc.workers[0]?.pid as number;
  const slow = [httpGet(`${v.url}/sleep?ms=4000`), httpGet(`${v.url}/sleep?ms=4000`)];
  await statsUntil(v.stats, (d) => (d.workers[0] as { in_flight?: number } | undefined)?.in_flight === 2, { message: 'both threads taken' });
  const third = httpGet(`${v.url}/`); // waits: no thread is free
  /** utime + stime of the worker, in clock ticks (1/100 s). */
  const ticks = (): number => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  };
  // The CPU sample spans the wait itself: from the third request queued to the slow ones answered.
  const before = ticks();
  const since = Date.now();
  const slowAnswers = await Promise.all(slow);
  const used = Math.round(((ticks() - before) * 10 * 100) / Math.max(1, Date.now() - since)); // ticks are 10 ms
  assert.ok(used < 30, `the worker used ${used}% of a core while waiting (a spinning loop uses about 100%)`);
  for (const r of [...slowAnswers, await third]) assert.equal(r.status, 200);
});

test('threads over the uwsgi protocol (nginx uwsgi_pass): packets are served at once, each on its thread', async (t) => {
  const v = await startVassal(t, (port) => `socket = 127.0.0.1:${port}\nwsgi-file = ${APP}\nthreads = 3\nenv = PATH=/usr/bin:/bin`);
  await ready(v);
  const answers = await Promise.all([1, 2, 3].map(() => uwsgiRequest(v.port, nginxVars('GET', '/overlap?ms=600'))));
  for (const a of answers) assert.equal(a.statusLine, 'HTTP/1.1 200 OK');
  const most = Math.max(...answers.map((a) => Number(/at most (\d+) at once/.exec(a.body.toString())?.[1])));
  assert.equal(most, 3, `the app saw at most ${most} requests at once`);
  // A malformed packet still closes only its own connection.
  const bad = await exchange(v.port, Buffer.from([0, 8, 0, 0, 0, 0, 1, 0, 120, 0, 0, 0]));
  assert.equal(bad.length, 0);
  assert.equal((await uwsgiRequest(v.port, nginxVars('GET', '/'))).statusLine, 'HTTP/1.1 200 OK');
});

for (const [mode, option] of [['preload', ''], ['lazy-apps', 'lazy-apps = true']] as const) {
test(`ps tells a Python worker's vassal (command line) and that it is a worker (process name); the app's sys.argv does not show them (${mode})`, async (t) => {
  const v = await startVassal(t, (port, d) => {
    writeFileSync(join(d, 'argv.py'), 'import sys\ndef application(environ, start_response):\n    start_response("200 OK", [("Content-Type", "text/plain")])\n    return [repr(sys.argv).encode()]\n');
    return `http-socket = 127.0.0.1:${port}\nwsgi-file = ${join(d, 'argv.py')}\nprocesses = 2\nenv = PATH=/usr/bin:/bin\n${option}`;
  });
  const doc = await ready(v, 2);
  for (const w of doc.workers) {
    const argv = readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    // A forked worker keeps its template's command line; its process name says which worker it is.
    assert.deepEqual(argv.slice(-2), ['vassal=v.ini', mode === 'lazy-apps' ? `worker=${w.id}` : 'template=1'], argv.join(' '));
    // The process name (15 bytes at most): `emperor worker N` cut short.
    assert.equal(readFileSync(`/proc/${w.pid}/comm`, 'utf8').trimEnd(), 'emperor worker');
  }
  assert.equal((await httpGet(`${v.url}/`)).body, `['${join(v.dir, 'argv.py')}']`);
});
}
