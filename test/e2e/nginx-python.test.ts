/**
 * The deployments this project grew out of: real nginx in front of vassals over the
 * uwsgi protocol (`uwsgi_pass` with the stock `uwsgi_params`), a real Django project
 * made by `django-admin startproject`, and the same protocol served by Node workers.
 * nginx and Django come from Debian (`.ci/run` installs them); without them these
 * tests fail with the apt-get command to run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DJANGO_PASSWORD, cookiesOf, makeDjangoProject } from '../helpers/django.js';
import { FIXTURES, startVassal, statsOf, tempDir, waitFor, workersAccepting, type VassalStatsDoc } from '../helpers/index.js';
import { UWSGI_PARAMS, requireNginx, startNginx } from '../helpers/nginx.js';
import { exchange } from '../helpers/wire.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const PASSWORD = DJANGO_PASSWORD;

test('Django behind nginx uwsgi_pass (2 workers of 2 threads): the admin logs in; static files come from disk through nginx', async (t) => {
  requireNginx();
  const dir = tempDir(t);
  const { project, publicDir } = makeDjangoProject(dir);
  const v = await startVassal(
    t,
    (port) => `socket = 127.0.0.1:${port}\nchdir = ${project}\nmodule = mysite.wsgi:application\nprocesses = 2\nthreads = 2\nenv = PATH=/usr/bin:/bin\nenv = DJANGO_SETTINGS_MODULE=mysite.settings`,
  );
  await workersAccepting(v, 2);
  const nginx = await startNginx(
    t,
    dir,
    `root ${publicDir};
    location / { try_files $uri @app; }
    location @app { include ${UWSGI_PARAMS}; uwsgi_pass 127.0.0.1:${v.port}; }`,
  );
  const site = nginx.url;
  const noRedirect = { redirect: 'manual' as const, headers: { connection: 'close' } };

  const login = await fetch(`${site}/admin/login/?next=/admin/`, noRedirect);
  assert.equal(login.status, 200, nginx.errorLog());
  const html = await login.text();
  assert.match(html, /Django administration/);
  const csrfCookie = cookiesOf(login).get('csrftoken');
  const csrfToken = /name="csrfmiddlewaretoken" value="([^"]+)"/.exec(html)?.[1];
  assert.ok(csrfCookie && csrfToken, 'the login form carries a CSRF cookie and token');

  const wrong = await fetch(`${site}/admin/login/?next=/admin/`, {
    ...noRedirect,
    method: 'POST',
    headers: { connection: 'close', cookie: `csrftoken=${csrfCookie}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrfmiddlewaretoken: csrfToken, username: 'admin', password: 'wrong', next: '/admin/' }).toString(),
  });
  assert.equal(wrong.status, 200, 'a wrong password shows the form again');

  const posted = await fetch(`${site}/admin/login/?next=/admin/`, {
    ...noRedirect,
    method: 'POST',
    headers: { connection: 'close', cookie: `csrftoken=${csrfCookie}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrfmiddlewaretoken: csrfToken, username: 'admin', password: PASSWORD, next: '/admin/' }).toString(),
  });
  assert.equal(posted.status, 302, await posted.text());
  assert.equal(posted.headers.get('location'), '/admin/');
  const session = cookiesOf(posted).get('sessionid');
  assert.ok(session, 'a session cookie');
  const admin = await fetch(`${site}/admin/`, { ...noRedirect, headers: { connection: 'close', cookie: `csrftoken=${csrfCookie}; sessionid=${session}` } });
  assert.equal(admin.status, 200);
  assert.match(await admin.text(), /Site administration/);
  const anonymous = await fetch(`${site}/admin/`, noRedirect);
  assert.equal(anonymous.status, 302, 'without the session the admin redirects to the login');

  // Static files: nginx serves them from disk (its file headers), Django never sees them.
  const cssPath = join(publicDir, 'static', 'admin', 'css', 'base.css');
  const css = await fetch(`${site}/static/admin/css/base.css`, noRedirect);
  assert.equal(css.status, 200);
  assert.match(css.headers.get('server') ?? '', /^nginx/);
  assert.ok(css.headers.get('etag'), 'nginx sends an ETag for files');
  assert.equal(css.headers.get('accept-ranges'), 'bytes');
  assert.equal(await css.text(), readFileSync(cssPath, 'utf8'));
  // Settled: two reads in a row count the same requests (with threads, a request that
  // ended at the moment of a read may show only in the next one).
  let served = -1;
  await waitFor(async () => {
    const now = (await statsOf<VassalStatsDoc>(v.stats)).workers.reduce((n, w) => n + w.requests, 0);
    const same = now === served;
    served = now;
    return same;
  }, { message: 'stats settled' });
  // With the vassal stopped the files are still served, and the app's paths are 502.
  v.proc.child.kill('SIGTERM');
  assert.equal((await v.proc.exited).code, 0);
  assert.equal((await fetch(`${site}/static/admin/css/base.css`, noRedirect)).status, 200);
  assert.equal((await fetch(`${site}/admin/login/`, noRedirect)).status, 502);
});

test('a WSGI app behind nginx: 10 MB streamed and 5 MB posted intact, HEAD, a 500 then service', async (t) => {
  requireNginx();
  const dir = tempDir(t);
  const v = await startVassal(t, (port) => `socket = 127.0.0.1:${port}\nwsgi-file = ${join(FIXTURES, 'apps', 'wsgi_app.py')}\nprocesses = 2`);
  await workersAccepting(v, 2);
  const nginx = await startNginx(t, dir, `location / { include ${UWSGI_PARAMS}; uwsgi_pass 127.0.0.1:${v.port}; }`);
  const close = { headers: { connection: 'close' } };
  const stream = Buffer.from(await (await fetch(`${nginx.url}/stream?mb=10`, close)).arrayBuffer());
  const block = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  assert.equal(stream.length, 10 * 1024 * 1024, nginx.errorLog());
  assert.equal(sha(stream), sha(Buffer.concat(Array.from({ length: stream.length / 256 }, () => block))));
  const upload = Buffer.alloc(5 * 1024 * 1024);
  for (let i = 0; i < upload.length; i++) upload[i] = (i * 13) % 251;
  const echoed = await fetch(`${nginx.url}/echo`, { method: 'POST', body: upload, ...close });
  assert.equal(await echoed.text(), `${sha(upload)} ${upload.length}`);
  const head = await fetch(`${nginx.url}/`, { method: 'HEAD', ...close });
  assert.equal(head.status, 200);
  assert.equal((await head.arrayBuffer()).byteLength, 0);
  const env = JSON.parse(await (await fetch(`${nginx.url}/environ/caf%C3%A9?q=%20`, close)).text()) as Record<string, string>;
  assert.equal(env.PATH_INFO, '/environ/caf\u00c3\u00a9', 'PATH_INFO as nginx sends it: decoded, bytes as latin-1');
  assert.equal(env.REQUEST_URI, '/environ/caf%C3%A9?q=%20');
  assert.equal(env.QUERY_STRING, 'q=%20');
  assert.equal(env.REMOTE_ADDR, '127.0.0.1');
  assert.equal(env.SERVER_PORT, String(nginx.port));
  assert.equal((await fetch(`${nginx.url}/raise`, close)).status, 500);
  assert.equal((await fetch(`${nginx.url}/`, close)).status, 200);
  const doc = await waitFor(async () => {
    const d = await statsOf<VassalStatsDoc>(v.stats);
    return d.workers.reduce((n, w) => n + w.exceptions, 0) === 1 ? d : undefined;
  }, { message: 'one exception in stats' });
  assert.ok(doc.workers.every((w) => w.respawn_count === 1));
});

test('a Node app behind nginx uwsgi_pass: the uwsgi protocol in Node workers', async (t) => {
  requireNginx();
  const dir = tempDir(t);
  const v = await startVassal(t, (port) => `socket = 127.0.0.1:${port}\nmodule = ${join(FIXTURES, 'apps', 'basic.mjs')}\nprocesses = 2\nbuffer-size = 4096`);
  const doc = await workersAccepting(v, 2);
  const pids = doc.workers.map((w) => w.pid);
  const nginx = await startNginx(t, dir, `location / { include ${UWSGI_PARAMS}; uwsgi_pass 127.0.0.1:${v.port}; }`);
  const close = { headers: { connection: 'close' } };
  const hello = await fetch(`${nginx.url}/`, close);
  assert.equal(hello.status, 200, nginx.errorLog());
  assert.match(await hello.text(), /^pid \d+\n$/);
  const upload = Buffer.alloc(5 * 1024 * 1024);
  for (let i = 0; i < upload.length; i++) upload[i] = (i * 31) % 241;
  const echoed = Buffer.from(await (await fetch(`${nginx.url}/echo`, { method: 'POST', body: upload, ...close })).arrayBuffer());
  assert.equal(sha(echoed), sha(upload));
  const head = await fetch(`${nginx.url}/`, { method: 'HEAD', ...close });
  assert.equal(head.status, 200);
  assert.equal((await fetch(`${nginx.url}/env?k=NO_SUCH_VAR`, close)).status, 200);
  assert.equal((await fetch(`${nginx.url}/throw`, close)).status, 500);
  assert.equal((await fetch(`${nginx.url}/`, close)).status, 200);
  // Garbage and an oversized packet straight at the socket: one line each, workers stay.
  assert.equal((await exchange(v.port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))).length, 0);
  assert.equal((await exchange(v.port, Buffer.concat([Buffer.from([0, 0x88, 0x13, 0]), Buffer.alloc(5000, 65)]))).length, 0);
  await v.proc.logs.waitFor((l) => /^uwsgi packet from 127\.0\.0\.1:\d+: unavailable modifier requested: 71/.test(l.msg ?? ''));
  await v.proc.logs.waitFor((l) => /^uwsgi packet from 127\.0\.0\.1:\d+: invalid request block size: 5000 \(max 4096/.test(l.msg ?? ''));
  assert.equal((await fetch(`${nginx.url}/`, close)).status, 200);
  const after = await statsOf<VassalStatsDoc>(v.stats);
  assert.deepEqual(after.workers.map((w) => w.pid), pids, 'no worker died');
});
