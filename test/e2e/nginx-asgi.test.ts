/**
 * A real FastAPI app (Debian's python3-fastapi, on /usr/bin/python3) as a vassal: its
 * JSON endpoint, a streaming response and a WebSocket echo, served directly on
 * http-socket and behind real nginx (proxy_pass with the Upgrade headers for WebSockets,
 * uwsgi_pass for HTTP), with Debian's websockets library as the client; and a graceful
 * reload and a chain reload under load that fail no request and close open WebSockets
 * with 1001; and Django's ASGIHandler.
 * Debian's FastAPI is 0.92 (Starlette 0.26): its router matches the scope's `path`
 * without `root_path`, as the worker gives it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, httpGet, startVassal, statsUntil, tempDir, waitFor, workersAccepting } from '../helpers/index.js';
import { DEBIAN_PYTHON, UWSGI_PARAMS, requireFastapi, startNginx } from '../helpers/nginx.js';
import { makeDjangoProject } from '../helpers/django.js';

const APPS = join(FIXTURES, 'apps');

/** Runs Debian's websockets client on `url`: sends `messages`, returns the replies and the close code the server sent (after `waitClose`). */
function wsClient(url: string, messages: string[], waitClose = false): Promise<{ replies: string[]; code: number | null }> {
  const script = `
import asyncio, json, sys
import websockets
async def main():
    replies = []
    async with websockets.connect(sys.argv[1], open_timeout=10) as ws:
        for m in json.loads(sys.argv[2]):
            await ws.send(m)
            replies.append(await ws.recv())
        print("open", flush=True)
        if sys.argv[3] == "1":
            try:
                await asyncio.wait_for(ws.recv(), 30)
            except websockets.ConnectionClosed:
                pass
        code = ws.close_code
    print(json.dumps({"replies": replies, "code": code if sys.argv[3] == "1" else None}))
asyncio.run(main())
`;
  return new Promise((resolve, reject) => {
    execFile(DEBIAN_PYTHON, ['-c', script, url, JSON.stringify(messages), waitClose ? '1' : '0'], { timeout: 40_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`websockets client: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { replies: string[]; code: number | null });
    });
  });
}

async function fastapiVassal(t: import('node:test').TestContext, sockets: (port: number) => string, app = 'asgi = fastapi_app:app') {
  requireFastapi();
  return startVassal(t, (port, dir) => `${sockets(port)}\npythonpath = ${APPS}\n${app}\nprocesses = 2\nenv = PATH=/usr/bin:/bin\ntouch-reload = ${join(dir, 'reload')}\ntouch-chain-reload = ${join(dir, 'chain')}\n`);
}

test('FastAPI on http-socket: JSON with lifespan state, a JSON POST, a streaming response, a WebSocket echo (websockets client)', async (t) => {
  const v = await fastapiVassal(t, (port) => `http-socket = 127.0.0.1:${port}`);
  await workersAccepting(v, 2);
  const r = await httpGet(`${v.url}/json?n=3`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.deepEqual(JSON.parse(r.body), { message: 'hello from the lifespan', items: [0, 1, 2] });
  const posted = await fetch(`${v.url}/items`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ b: 2, a: 1 }) });
  assert.deepEqual(await posted.json(), { received: { b: 2, a: 1 }, keys: ['a', 'b'] });
  const invalid = await fetch(`${v.url}/items`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[1' });
  assert.equal(invalid.status, 422);
  const stream = await fetch(`${v.url}/stream?n=4`);
  assert.equal(stream.headers.get('transfer-encoding'), 'chunked');
  assert.equal(await stream.text(), 'line 0\nline 1\nline 2\nline 3\n');
  const ws = await wsClient(`ws://127.0.0.1:${v.port}/ws`, ['one', 'two', 'é'.repeat(1000)]);
  assert.deepEqual(ws.replies, ['one', 'two', 'é'.repeat(1000)]);
});

test('FastAPI behind nginx: proxy_pass (HTTP/1.1 keepalive upstream, WebSockets with Upgrade) and uwsgi_pass', async (t) => {
  const dir = tempDir(t);
  const v = await fastapiVassal(t, (port) => `http-socket = 127.0.0.1:${port}`);
  // Mounted under /uwsgi (the app detected as ASGI): SCRIPT_NAME becomes the scope's root_path, the rest its path.
  const u = await fastapiVassal(t, (port) => `socket = 127.0.0.1:${port}`, 'mount = /uwsgi=fastapi_app:app\nmanage-script-name = true');
  await workersAccepting(v, 2);
  await workersAccepting(u, 2);
  const nginx = await startNginx(t, dir, `
    location /ws { proxy_pass http://asgi; proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; proxy_read_timeout 60s; }
    location /uwsgi/ { include ${UWSGI_PARAMS}; uwsgi_param SCRIPT_NAME /uwsgi; uwsgi_pass 127.0.0.1:${u.port}; }
    location / { proxy_pass http://asgi; proxy_http_version 1.1; proxy_set_header Connection ""; }`,
  `upstream asgi { server 127.0.0.1:${v.port}; keepalive 8; }`);
  for (let i = 0; i < 20; i++) {
    const r = await fetch(`${nginx.url}/json?n=${i}`);
    assert.equal(r.status, 200, nginx.errorLog());
    assert.equal(((await r.json()) as { items: number[] }).items.length, i);
  }
  assert.equal(await (await fetch(`${nginx.url}/stream?n=2`)).text(), 'line 0\nline 1\n');
  const viaUwsgi = await fetch(`${nginx.url}/uwsgi/json?n=2`);
  assert.equal(viaUwsgi.status, 200, nginx.errorLog());
  assert.deepEqual(await viaUwsgi.json(), { message: 'hello from the lifespan', items: [0, 1] });
  const ws = await wsClient(`ws://127.0.0.1:${nginx.port}/ws`, ['through nginx', 'x'.repeat(70_000)]);
  assert.deepEqual(ws.replies, ['through nginx', 'x'.repeat(70_000)]);
});

for (const [what, trigger] of [['a graceful reload', 'reload'], ['a chain reload', 'chain']] as const) {
test(`${what} under load: no HTTP request fails, open WebSockets are closed with 1001`, async (t) => {
  const v = await fastapiVassal(t, (port) => `http-socket = 127.0.0.1:${port}`);
  const before = await workersAccepting(v, 2);
  const sockets = [wsClient(`ws://127.0.0.1:${v.port}/ws`, ['hi'], true), wsClient(`ws://127.0.0.1:${v.port}/ws`, ['hi'], true)];
  // Both sessions are open (each has had its echo) before the reload.
  await statsUntil(v.stats, (d) => d.workers.reduce((n, w) => n + ((w as unknown as { in_flight: number }).in_flight ?? 0), 0) >= 2);
  let stop = false;
  const counts = { ok: 0, failed: [] as string[] };
  const client = async (keepAlive: boolean): Promise<void> => {
    while (!stop) {
      try {
        const r = await fetch(`${v.url}/plain`, { headers: keepAlive ? {} : { connection: 'close' }, signal: AbortSignal.timeout(10_000) });
        if ((await r.text()) === 'Hello, World!' && r.status === 200) counts.ok++;
        else counts.failed.push(`status ${r.status}`);
      } catch (err) {
        counts.failed.push(String((err as Error).cause ?? err));
      }
    }
  };
  const running = [client(true), client(true), client(false)];
  await waitFor(() => counts.ok > 50);
  writeFileSync(join(v.dir, trigger), String(Date.now()));
  const closed = await Promise.all(sockets);
  assert.deepEqual(closed.map((c) => c.code), [1001, 1001]);
  await statsUntil(v.stats, (d) => d.state === 'ready' && d.workers.length === 2 && d.workers.every((w) => w.accepting === 1 && !before.workers.some((o) => o.pid === w.pid)), { timeoutMs: 20_000 });
  const served = counts.ok;
  await waitFor(() => counts.ok > served + 50, { message: 'load kept flowing on the new workers' });
  stop = true;
  await Promise.all(running);
  assert.deepEqual(counts.failed, []);
});
}

test("Django's async stack: a startproject's asgi.py (ASGIHandler, no lifespan) serves the admin as an ASGI vassal", async (t) => {
  const dir = tempDir(t);
  const { project } = makeDjangoProject(dir);
  const v = await startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\nchdir = ${project}\nasgi = mysite.asgi:application\nprocesses = 2\nenv = PATH=/usr/bin:/bin\nenv = DJANGO_SETTINGS_MODULE=mysite.settings`);
  await workersAccepting(v, 2);
  const login = await fetch(`${v.url}/admin/login/?next=/admin/`, { redirect: 'manual' });
  assert.equal(login.status, 200);
  assert.match(await login.text(), /Django administration/);
  assert.ok(login.headers.get('set-cookie')?.includes('csrftoken='), 'the CSRF cookie');
  const admin = await fetch(`${v.url}/admin/`, { redirect: 'manual' });
  assert.equal(admin.status, 302);
  assert.equal(admin.headers.get('location'), '/admin/login/?next=/admin/');
  assert.deepEqual(v.proc.logs.find((l) => /lifespan/.test(l.msg ?? '')), [], 'Django does not speak lifespan: served without it, nothing logged');
});
