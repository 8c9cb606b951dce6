/**
 * Any app behind nginx `fastcgi_pass` with Debian's stock `fastcgi_params`: Python and
 * Node vassals, a connection per request (`fastcgi_keep_conn` off, nginx's default) and
 * kept connections (`fastcgi_keep_conn on` with an upstream `keepalive` pool). The
 * vassals set `manage-script-name`: the stock params send the path as SCRIPT_NAME and
 * no PATH_INFO (docs/nginx.md). Then what the master enforces, over FastCGI: harakiri
 * (logged with the request), max-requests on kept connections, reload-on-rss, cheaper.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, pidIn, startVassal, statsOf, statsUntil, tempDir, waitFor, workersAccepting, type TestVassal, type VassalStatsDoc } from '../helpers/index.js';
import { requireNginx, startNginx, type Nginx } from '../helpers/nginx.js';

/** Waits that span process starts: the shared 2-core machine runs at load 15 at times (as in the other e2e tests). */
const START = { timeoutMs: 30_000 };

const FASTCGI_PARAMS = '/etc/nginx/fastcgi_params';
const NODE_APP = join(FIXTURES, 'apps', 'basic.mjs');
const WSGI_APP = join(FIXTURES, 'apps', 'wsgi_app.py');
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const close = { headers: { connection: 'close' } };

/** Established TCP connections to `port` on 127.0.0.1 (nginx's to the vassal), from /proc/net/tcp. */
function connectionsTo(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'latin1').split('\n').slice(1)
    .filter((line) => {
      const f = line.trim().split(/\s+/);
      return f[2] === `0100007F:${hex}` && f[3] === '01';
    }).length;
}

/**
 * With keep-conn, nginx keeps between 1 and its `keepalive` 4 connections open to the
 * worker after the requests (more may still be closing: waited for); without, the worker
 * closed every one after its END_REQUEST.
 */
async function keptConnections(port: number, keepConn: boolean): Promise<void> {
  if (keepConn) await waitFor(() => { const n = connectionsTo(port); return n >= 1 && n <= 4; }, { message: `1 to 4 kept connections (${connectionsTo(port)})` });
  else await waitFor(() => connectionsTo(port) === 0, { message: 'no connection left open' });
}

/** nginx in front of `v` with fastcgi_pass; kept connections when `keepConn`. */
function nginxFor(t: import('node:test').TestContext, dir: string, v: TestVassal, keepConn: boolean): Promise<Nginx> {
  requireNginx();
  const pass = keepConn ? 'fastcgi_keep_conn on; fastcgi_pass app;' : `fastcgi_pass 127.0.0.1:${v.port};`;
  // nginx closes idle kept connections before the worker's 5 s idle timeout would (docs/nginx.md).
  const upstream = keepConn ? `upstream app { server 127.0.0.1:${v.port}; keepalive 4; keepalive_timeout 4s; }` : '';
  return startNginx(t, dir, `location / { include ${FASTCGI_PARAMS}; ${pass} }`, upstream);
}

test('a WSGI app behind nginx fastcgi_pass, keep-conn off then on: 10 MB streamed, 5 MB posted, HEAD, the environ, a 500 then service', async (t) => {
  for (const keepConn of [false, true]) {
    const dir = tempDir(t);
    const v = await startVassal(t, (port) => `fastcgi-socket = 127.0.0.1:${port}\nwsgi-file = ${WSGI_APP}\nprocesses = 2\nmanage-script-name = true`);
    await workersAccepting(v, 2, START);
    const nginx = await nginxFor(t, dir, v, keepConn);
    const what = keepConn ? 'keep-conn on' : 'keep-conn off';
    const stream = Buffer.from(await (await fetch(`${nginx.url}/stream?mb=10`, close)).arrayBuffer());
    assert.equal(stream.length, 10 * 1024 * 1024, `${what}: ${nginx.errorLog()}`);
    const block = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    assert.equal(sha(stream), sha(Buffer.concat(Array.from({ length: stream.length / 256 }, () => block))));
    const upload = Buffer.alloc(5 * 1024 * 1024);
    for (let i = 0; i < upload.length; i++) upload[i] = (i * 13) % 251;
    assert.equal(await (await fetch(`${nginx.url}/echo`, { method: 'POST', body: upload, ...close })).text(), `${sha(upload)} ${upload.length}`);
    const head = await fetch(`${nginx.url}/`, { method: 'HEAD', ...close });
    assert.equal(head.status, 200);
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    const env = JSON.parse(await (await fetch(`${nginx.url}/environ/caf%C3%A9?q=%20`, close)).text()) as Record<string, string>;
    assert.deepEqual([env.SCRIPT_NAME, env.PATH_INFO, env.REQUEST_URI, env.QUERY_STRING, env.REMOTE_ADDR, env.SERVER_PORT, env.FCGI_ROLE],
      ['', '/environ/caf\u00c3\u00a9', '/environ/caf%C3%A9?q=%20', 'q=%20', '127.0.0.1', String(nginx.port), 'RESPONDER'], what);
    assert.equal((await fetch(`${nginx.url}/raise`, close)).status, 500);
    assert.equal((await fetch(`${nginx.url}/exc-info`, close)).status, 503);
    const pids = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${nginx.url}/?n=${i}`, close);
      assert.equal(r.status, 200);
      pids.add(pidIn(await r.text()));
    }
    // Kept connections stay open between requests; without keep-conn the worker closes each one.
    await keptConnections(v.port, keepConn);
    const doc = await waitFor(async () => {
      const d = await statsOf<VassalStatsDoc>(v.stats);
      return d.workers.reduce((n, w) => n + w.requests, 0) >= 26 ? d : undefined;
    }, { message: 'the requests counted' });
    assert.ok(doc.workers.every((w) => w.respawn_count === 1), `${what}: no worker died`);
    assert.equal(doc.workers.reduce((n, w) => n + w.exceptions, 0), 1);
    assert.doesNotMatch(nginx.errorLog(), /\[(error|crit)\]/, nginx.errorLog());
  }
});

test('a Node app behind nginx fastcgi_pass, keep-conn off then on: hello, 5 MB echoed, HEAD, a throw then service', async (t) => {
  for (const keepConn of [false, true]) {
    const dir = tempDir(t);
    const v = await startVassal(t, (port) => `fastcgi-socket = 127.0.0.1:${port}\nmodule = ${NODE_APP}\nprocesses = 2`);
    const doc = await workersAccepting(v, 2, START);
    const nginx = await nginxFor(t, dir, v, keepConn);
    const hello = await fetch(`${nginx.url}/`, close);
    assert.equal(hello.status, 200, nginx.errorLog());
    assert.match(await hello.text(), /^pid \d+\n$/);
    const upload = Buffer.alloc(5 * 1024 * 1024);
    for (let i = 0; i < upload.length; i++) upload[i] = (i * 31) % 241;
    const echoed = Buffer.from(await (await fetch(`${nginx.url}/echo`, { method: 'POST', body: upload, ...close })).arrayBuffer());
    assert.equal(sha(echoed), sha(upload));
    const head = await fetch(`${nginx.url}/`, { method: 'HEAD', ...close });
    assert.equal(head.status, 200);
    const seen = JSON.parse(await (await fetch(`${nginx.url}/request?x=1`, { headers: { connection: 'close', 'x-forwarded-proto': 'https' } })).text()) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/request?x=1');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal((await fetch(`${nginx.url}/throw`, close)).status, 500);
    const many = await Promise.all(Array.from({ length: 40 }, () => fetch(`${nginx.url}/`, close).then((r) => r.status)));
    assert.deepEqual(new Set(many), new Set([200]));
    await keptConnections(v.port, keepConn);
    const after = await statsOf<VassalStatsDoc>(v.stats);
    assert.deepEqual(after.workers.map((w) => w.pid), doc.workers.map((w) => w.pid), 'no worker died');
    assert.doesNotMatch(nginx.errorLog(), /\[(error|crit)\]/, nginx.errorLog());
  }
});

test('harakiri over FastCGI: a sync worker is killed with its request logged, an event-loop worker ends the request; nginx answers 502, then serves', async (t) => {
  const dir = tempDir(t);
  const python = await startVassal(t, (port) => `fastcgi-socket = 127.0.0.1:${port}\nwsgi-file = ${WSGI_APP}\nprocesses = 1\nharakiri = 2\nmanage-script-name = true`);
  const node = await startVassal(t, (port) => `fastcgi-socket = 127.0.0.1:${port}\nmodule = ${NODE_APP}\nprocesses = 1\nharakiri = 2`);
  const [py] = (await workersAccepting(python, 1, START)).workers;
  await workersAccepting(node, 1, START);
  const pyNginx = await nginxFor(t, join(dir, 'py'), python, true);
  const nodeNginx = await nginxFor(t, join(dir, 'node'), node, true);
  const [slowPy, slowNode] = await Promise.all([fetch(`${pyNginx.url}/sleep?ms=6000`, close), fetch(`${nodeNginx.url}/sleep?ms=6000`, close)]);
  assert.equal(slowPy.status, 502);
  assert.equal(slowNode.status, 502);
  await python.proc.logs.waitFor((l) => new RegExp(`^HARAKIRI ON WORKER 1 \\(pid ${py?.pid}\\): GET /sleep\\?ms=6000 ran for \\d+\\.\\d s \\(harakiri 2 s\\)$`).test(l.msg ?? ''));
  await node.proc.logs.waitFor((l) => /^HARAKIRI: GET \/sleep\?ms=6000 ran for \d+\.\d s \(harakiri 2 s\); its connection is closed$/.test(l.msg ?? ''));
  await statsUntil(python.stats, (d) => d.workers[0]?.accepting === 1 && d.workers[0].pid !== py?.pid, { timeoutMs: 30_000, message: 'the Python worker respawned' });
  assert.equal((await fetch(`${pyNginx.url}/`, close)).status, 200);
  assert.equal((await fetch(`${nodeNginx.url}/`, close)).status, 200);
  assert.equal((await statsOf<VassalStatsDoc>(node.stats)).workers[0]?.harakiri_count, 1);
});

test('max-requests on kept connections: workers are recycled between requests, and no request fails', async (t) => {
  for (const app of [`wsgi-file = ${WSGI_APP}\nmanage-script-name = true`, `module = ${NODE_APP}`]) {
    const dir = tempDir(t);
    const v = await startVassal(t, (port) => `fastcgi-socket = 127.0.0.1:${port}\n${app}\nprocesses = 2\nmax-requests = 5\nmin-worker-lifetime = 0`);
    await workersAccepting(v, 2, START);
    const nginx = await nginxFor(t, dir, v, true);
    const pids = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const r = await fetch(`${nginx.url}/?n=${i}`);
      assert.equal(r.status, 200, `request ${i}: ${nginx.errorLog()}`);
      pids.add(pidIn(await r.text()));
    }
    assert.ok(pids.size >= 6, `${pids.size} worker processes served 40 requests with max-requests 5`);
    await v.proc.logs.waitFor((l) => /served 5 requests \(max-requests 5\); asking to be replaced/.test(l.msg ?? ''));
    // A recycled worker closes its kept connection after a request; nginx may have picked it
    // for the next one the moment it closed (FastCGI has no way to say "closing"): nginx logs
    // it and retries on a new connection (docs/nginx.md). Nothing else goes wrong.
    const errors = nginx.errorLog().split('\n').filter((l) => /\[(error|crit)\]/.test(l));
    assert.deepEqual(errors.filter((l) => !/upstream prematurely closed connection|Connection reset by peer/.test(l)), [], nginx.errorLog());
  }
});

test('reload-on-rss over FastCGI: the fat worker finishes its request, then is replaced', async (t) => {
  const dir = tempDir(t);
  const v = await startVassal(t, (port) => `fastcgi-socket = 127.0.0.1:${port}\nmodule = ${NODE_APP}\nprocesses = 1\nreload-on-rss = 150\nmin-worker-lifetime = 0`);
  const fat = (await workersAccepting(v, 1, START)).workers[0]?.pid;
  const nginx = await nginxFor(t, dir, v, true);
  const grown = await fetch(`${nginx.url}/grow?mb=200`, close);
  assert.equal(grown.status, 200);
  assert.match(await grown.text(), /^grew 200 MB/);
  await v.proc.logs.waitFor((l) => new RegExp(`worker 1 \\(pid ${fat}\\) stopped \\(reload-on-rss\\)`).test(l.msg ?? ''), { timeoutMs: 15_000 });
  const r = await fetch(`${nginx.url}/`, close);
  assert.equal(r.status, 200);
  assert.notEqual(pidIn(await r.text()), fat);
});

test('cheaper over FastCGI: busy workers behind nginx grow the pool', async (t) => {
  const dir = tempDir(t);
  const v = await startVassal(t, (port) => `fastcgi-socket = 127.0.0.1:${port}\nwsgi-file = ${WSGI_APP}\nmanage-script-name = true\nprocesses = 4\ncheaper = 1\ncheaper-overload = 1`);
  await statsUntil(v.stats, (d) => d.workers.filter((w) => w.accepting === 1).length === 1, { timeoutMs: 30_000, message: 'one worker (cheaper = 1)' });
  const nginx = await nginxFor(t, dir, v, true);
  let stop = false;
  const clients = Array.from({ length: 3 }, async () => {
    while (!stop) assert.equal((await fetch(`${nginx.url}/sleep?ms=300`)).status, 200);
  });
  await statsUntil(v.stats, (d) => d.workers.filter((w) => w.pid > 0).length >= 3, { timeoutMs: 30_000, message: 'the pool grown to 3 workers' });
  stop = true;
  await Promise.all(clients);
  await v.proc.logs.waitFor((l) => /^spawned worker \d+ \(pid \d+\)/.test(l.msg ?? '') && l.worker !== 1);
});
