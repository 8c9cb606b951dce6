/**
 * The deployment issue 18 replaces: lighttpd in front of one Django project over
 * FastCGI, a socket per settings module (`/main.fcgi` and `/admin.fcgi` in
 * `fastcgi.server`), `url.rewrite` rules sending `/admin/...` to `/admin.fcgi/admin/...`
 * and everything else to `/main.fcgi/...`, static files from disk. The vassals mount the
 * app at the root with `manage-script-name`, so the app sees the URLs the user does: its
 * links carry no `.fcgi`. Then lighttpd's `bin-path` mode: lighttpd starts
 * `emperor --ini` itself with the listening socket on stdin. Real lighttpd and Django
 * from Debian (`.ci/run` installs them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DJANGO_PASSWORD, cookiesOf, makeDjangoProject } from '../helpers/django.js';
import { EMPEROR_BIN, FIXTURES, descendants, isAlive, startVassal, statsOf, statsUntil, tempDir, waitFor, workersAccepting, type VassalStatsDoc } from '../helpers/index.js';
import { startLighttpd } from '../helpers/lighttpd.js';

/** Waits that span process starts: the shared 2-core machine runs at load 15 at times (as in the other e2e tests). */
const START = { timeoutMs: 30_000 };

/** The project's two settings modules and the main site's one page. */
const SITE_FILES = {
  'settings_main.py': 'from .settings import *  # noqa\nROOT_URLCONF = "mysite.urls_main"\n',
  'settings_admin.py': 'from .settings import *  # noqa\nROOT_URLCONF = "mysite.urls_admin"\n',
  'urls_admin.py': 'from django.contrib import admin\nfrom django.urls import path\n\nurlpatterns = [path("admin/", admin.site.urls)]\n',
  'urls_main.py': 'from django.urls import path\n\nfrom . import views\n\nurlpatterns = [path("hello/<name>/", views.hello, name="hello")]\n',
  'views.py': [
    'from django.http import HttpResponse',
    'from django.urls import reverse',
    '',
    '',
    'def hello(request, name):',
    '    return HttpResponse("hello %s; self: %s; full path: %s; absolute: %s; SCRIPT_NAME=%r\\n" % (',
    '        name, reverse("hello", args=[name]), request.get_full_path(), request.build_absolute_uri(), request.META["SCRIPT_NAME"]))',
    '',
  ].join('\n'),
};

test('Django behind lighttpd, one socket per settings module and the .fcgi rewrite trick: admin login and an app page, links without .fcgi', async (t) => {
  const dir = tempDir(t);
  const { project, publicDir } = makeDjangoProject(dir, SITE_FILES);
  const vassal = (settings: string) => (_port: number, vdir: string) => [
    `fastcgi-socket = ${join(vdir, `${settings}.socket`)}`,
    'chmod-socket = 666',
    `chdir = ${project}`,
    'mount = /=mysite.wsgi:application',
    'manage-script-name = true',
    'processes = 2',
    'env = PATH=/usr/bin:/bin',
    `env = DJANGO_SETTINGS_MODULE=mysite.settings_${settings}`,
  ].join('\n');
  const main = await startVassal(t, vassal('main'));
  const admin = await startVassal(t, vassal('admin'));
  await Promise.all([workersAccepting(main, 2, START), workersAccepting(admin, 2, START)]);
  const lighttpd = await startLighttpd(t, dir, publicDir, `
fastcgi.server = (
  "/main.fcgi" => (( "socket" => "${join(main.dir, 'main.socket')}", "check-local" => "disable" )),
  "/admin.fcgi" => (( "socket" => "${join(admin.dir, 'admin.socket')}", "check-local" => "disable" )),
)
url.rewrite-once = (
  "^(/static/.*)$" => "$1",
  "^(/admin/.*)$" => "/admin.fcgi$1",
  "^(/.*)$" => "/main.fcgi$1",
)
`);
  const site = lighttpd.url;
  const noRedirect = { redirect: 'manual' as const, headers: { connection: 'close' } };

  // The admin, through /admin.fcgi: its login form and links say /admin/..., never .fcgi.
  const login = await fetch(`${site}/admin/login/?next=/admin/`, noRedirect);
  assert.equal(login.status, 200, lighttpd.errorLog());
  const html = await login.text();
  assert.match(html, /Django administration/);
  assert.match(html, /<form action="\/admin\/login\/\?next=\/admin\/" method="post" id="login-form">/);
  assert.doesNotMatch(html, /\.fcgi/);
  const csrfCookie = cookiesOf(login).get('csrftoken');
  const csrfToken = /name="csrfmiddlewaretoken" value="([^"]+)"/.exec(html)?.[1];
  assert.ok(csrfCookie && csrfToken, 'the login form carries a CSRF cookie and token');
  const posted = await fetch(`${site}/admin/login/?next=/admin/`, {
    ...noRedirect,
    method: 'POST',
    headers: { connection: 'close', cookie: `csrftoken=${csrfCookie}`, 'content-type': 'application/x-www-form-urlencoded', referer: `${site}/admin/login/` },
    body: new URLSearchParams({ csrfmiddlewaretoken: csrfToken, username: 'admin', password: DJANGO_PASSWORD, next: '/admin/' }).toString(),
  });
  assert.equal(posted.status, 302, await posted.text());
  assert.equal(posted.headers.get('location'), '/admin/');
  const session = cookiesOf(posted).get('sessionid');
  assert.ok(session, 'a session cookie');
  const index = await fetch(`${site}/admin/`, { ...noRedirect, headers: { connection: 'close', cookie: `csrftoken=${csrfCookie}; sessionid=${session}` } });
  assert.equal(index.status, 200);
  const page = await index.text();
  assert.match(page, /Site administration/);
  const links = [...page.matchAll(/href="([^"]+)"/g)].map((m) => m[1] ?? '');
  assert.ok(links.some((l) => l === '/admin/auth/user/'), `a link to the users: ${links.join(' ')}`);
  assert.deepEqual(links.filter((l) => l.includes('.fcgi')), [], 'no link carries .fcgi');

  // A page of the app, through /main.fcgi: its own URLs are the ones the user asked for.
  const hello = await fetch(`${site}/hello/caf%C3%A9/?x=1`, noRedirect);
  assert.equal(hello.status, 200, lighttpd.errorLog());
  assert.equal(await hello.text(),
    `hello caf\u00e9; self: /hello/caf%C3%A9/; full path: /hello/caf%C3%A9/?x=1; absolute: ${site}/hello/caf%C3%A9/?x=1; SCRIPT_NAME=''\n`);
  assert.equal((await fetch(`${site}/admin/`, noRedirect)).headers.get('location'), '/admin/login/?next=/admin/', 'anonymous: to the login, without .fcgi');
  assert.equal((await fetch(`${site}/nowhere/`, noRedirect)).status, 404);

  // Static files come from disk through lighttpd; Django never sees them.
  const css = await fetch(`${site}/static/admin/css/base.css`, noRedirect);
  assert.equal(css.status, 200);
  assert.equal(css.headers.get('server')?.startsWith('lighttpd'), true);
  assert.equal(await css.text(), readFileSync(join(publicDir, 'static', 'admin', 'css', 'base.css'), 'utf8'));

  // Each vassal logged its requests with the URI the user asked for.
  await admin.proc.logs.waitFor((l) => /\] 127\.0\.0\.1 .* POST \/admin\/login\/\?next=\/admin\/ => generated \d+ bytes .*\(HTTP\/1\.1 302\)/.test(l.raw), { message: 'the login POST logged' });
  await main.proc.logs.waitFor((l) => /\] 127\.0\.0\.1 .* GET \/hello\/caf%C3%A9\/\?x=1 => generated \d+ bytes .*\(HTTP\/1\.1 200\)/.test(l.raw), { message: 'the app page logged' });
  const doc = await statsOf<VassalStatsDoc>(main.stats);
  assert.deepEqual(doc.sockets.map((s) => s.proto), ['fastcgi']);
  assert.ok(doc.workers.every((w) => w.respawn_count === 1 && w.exceptions === 0));
});

test("lighttpd's bin-path mode: lighttpd starts emperor --ini with the socket on stdin, found by itself or named fd://0; lighttpd's stop ends it all", async (t) => {
  const dir = tempDir(t);
  const docroot = join(dir, 'www');
  const python = join(dir, 'python.ini');
  const node = join(dir, 'node.ini');
  // No socket option: the listening socket on stdin is found and served as FastCGI.
  writeFileSync(python, `[uwsgi]\nwsgi-file = ${join(FIXTURES, 'apps', 'wsgi_app.py')}\nprocesses = 2\nstats = ${join(dir, 'python.stats')}\n`);
  // The listening socket on stdin named, and the app mounted at /node, the fastcgi.server prefix.
  writeFileSync(node, `[uwsgi]\nfastcgi-socket = fd://0\nmount = /node=${join(FIXTURES, 'apps', 'basic.mjs')}\nmanage-script-name = true\nprocesses = 2\nstats = ${join(dir, 'node.stats')}\n`);
  mkdirSync(docroot);
  const lighttpd = await startLighttpd(t, dir, docroot, `
fastcgi.server = (
  "/node" => (( "socket" => "${join(dir, 'node.socket')}", "bin-path" => "${process.execPath} ${EMPEROR_BIN} --ini ${node}", "max-procs" => 1, "check-local" => "disable" )),
  "/" => (( "socket" => "${join(dir, 'python.socket')}", "bin-path" => "${process.execPath} ${EMPEROR_BIN} --ini ${python}", "max-procs" => 1, "check-local" => "disable", "fix-root-scriptname" => "enable" )),
)
`);
  const py = await statsUntil(join(dir, 'python.stats'), (d) => d.workers.length === 2 && d.workers.every((w) => w.accepting === 1), { timeoutMs: 30_000, message: 'the Python vassal lighttpd started' });
  assert.deepEqual(py.sockets.map((s) => [s.name, s.proto]), [['fd://0', 'fastcgi']]);
  const nd = await statsUntil(join(dir, 'node.stats'), (d) => d.workers.length === 2 && d.workers.every((w) => w.accepting === 1), { timeoutMs: 30_000, message: 'the Node vassal lighttpd started' });
  assert.deepEqual(nd.sockets.map((s) => [s.name, s.proto]), [['fd://0', 'fastcgi']]);
  const masters = [py.pid, nd.pid];
  const lighttpdPid = lighttpd.proc.pid;
  assert.ok(masters.every((pid) => descendants(lighttpdPid).includes(pid)), 'both masters are lighttpd\'s children');

  const close = { headers: { connection: 'close' } };
  const env = await fetch(`${lighttpd.url}/environ/x?q=1`, close);
  assert.equal(env.status, 200, lighttpd.errorLog());
  const environ = JSON.parse(await env.text()) as Record<string, string>;
  assert.deepEqual([environ.SCRIPT_NAME, environ.PATH_INFO, environ.QUERY_STRING, environ.FCGI_ROLE], ['', '/environ/x', 'q=1', 'RESPONDER']);
  const stream = Buffer.from(await (await fetch(`${lighttpd.url}/stream?mb=3`, close)).arrayBuffer());
  assert.equal(stream.length, 3 * 1024 * 1024);
  const seen = JSON.parse(await (await fetch(`${lighttpd.url}/node/request?a=1`, close)).text()) as { url: string; originalUrl: string };
  assert.deepEqual([seen.url, seen.originalUrl], ['/request?a=1', '/node/request?a=1'], 'the Node app mounted at /node sees its own URL');
  assert.equal((await fetch(`${lighttpd.url}/node/`, close)).status, 200);

  // lighttpd's stop ends the masters it started, and they end their workers.
  const everyone = [...masters, ...masters.flatMap((pid) => descendants(pid))];
  lighttpd.proc.child.kill('SIGTERM');
  await lighttpd.proc.exited;
  await waitFor(() => everyone.every((pid) => !isAlive(pid)), { message: `every process gone: ${everyone.filter(isAlive).join(' ')}`, timeoutMs: 15_000 });
});
