/**
 * `mount` and `manage-script-name` are protocol-independent, as in uWSGI (core/protocol.c
 * applies them to every request whatever brought it): the same vassal on an http-socket
 * and a uwsgi socket splits a path under its mountpoint the same way, and leaves one
 * outside it as it came. Python: SCRIPT_NAME and PATH_INFO; Node: `req.url` without the
 * mountpoint, `req.originalUrl` as it came. The request log shows the URL the client asked
 * for. (FastCGI, the protocol that needs it most, is covered in fastcgi.test.ts and the
 * lighttpd and nginx end-to-end tests.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FIXTURES, httpGet, startVassal, workersAccepting } from '../helpers/index.js';
import { nginxVars, uwsgiRequest as rawUwsgiRequest, type RawResponse, type Target } from '../helpers/wire.js';
import type { TestVassal } from '../helpers/index.js';

/** A uwsgi request whose failure shows the vassal's last log lines. */
function uwsgiVia(v: TestVassal): (target: Target, vars: [string, string][]) => Promise<RawResponse> {
  return (target, vars) => rawUwsgiRequest(target, vars).catch((err: Error) => {
    throw new Error(`${err.message}; the vassal's log:\n${v.proc.logs.tail()}`, { cause: err });
  });
}

test('python: mount + manage-script-name split SCRIPT_NAME and PATH_INFO alike on http-socket and a uwsgi socket', async (t) => {
  let sock = '';
  const v = await startVassal(t, (port, dir) => {
    sock = join(dir, 'uwsgi.sock');
    return `http-socket = 127.0.0.1:${port}\nsocket = ${sock}\nmount = /app=${join(FIXTURES, 'apps', 'wsgi_app.py')}\nmanage-script-name = true\nprocesses = 1`;
  });
  await workersAccepting(v, 1);
  const uwsgiRequest = uwsgiVia(v);
  const split = (environ: Record<string, unknown>): unknown[] => [environ.SCRIPT_NAME, environ.PATH_INFO, environ.QUERY_STRING];

  const viaHttp = await httpGet(`${v.url}/app/environ/x?q=1`);
  assert.equal(viaHttp.status, 200, viaHttp.body);
  assert.deepEqual(split(JSON.parse(viaHttp.body) as Record<string, unknown>), ['/app', '/environ/x', 'q=1']);
  const viaUwsgi = await uwsgiRequest(sock, nginxVars('GET', '/app/environ/y?q=2'));
  assert.equal(viaUwsgi.status, 200, viaUwsgi.body.toString());
  assert.deepEqual(split(JSON.parse(viaUwsgi.body.toString()) as Record<string, unknown>), ['/app', '/environ/y', 'q=2']);

  // Not under the mountpoint: as it came.
  const outside = await httpGet(`${v.url}/environ/z`);
  assert.deepEqual(split(JSON.parse(outside.body) as Record<string, unknown>), ['', '/environ/z', '']);
  const outsideUwsgi = await uwsgiRequest(sock, nginxVars('GET', '/environ/w'));
  assert.deepEqual(split(JSON.parse(outsideUwsgi.body.toString()) as Record<string, unknown>), ['', '/environ/w', '']);

  await v.proc.logs.waitFor((l) => / GET \/app\/environ\/x\?q=1 => generated /.test(l.raw), { message: 'the http request logged with its whole URL' });
  await v.proc.logs.waitFor((l) => / GET \/app\/environ\/y\?q=2 => generated /.test(l.raw), { message: 'the uwsgi request logged with its whole URL' });
});

test('node: mount + manage-script-name take the mountpoint off req.url alike on http-socket and a uwsgi socket', async (t) => {
  let sock = '';
  const v = await startVassal(t, (port, dir) => {
    sock = join(dir, 'uwsgi.sock');
    return `http-socket = 127.0.0.1:${port}\nsocket = ${sock}\nmount = /app=${join(FIXTURES, 'apps', 'basic.mjs')}\nmanage-script-name = true\nprocesses = 1`;
  });
  await workersAccepting(v, 1);
  const uwsgiRequest = uwsgiVia(v);
  const seen = (body: string): unknown[] => {
    const r = JSON.parse(body) as { url: string; originalUrl?: string };
    return [r.url, r.originalUrl];
  };

  const viaHttp = await httpGet(`${v.url}/app/request?a=1`);
  assert.equal(viaHttp.status, 200, viaHttp.body);
  assert.deepEqual(seen(viaHttp.body), ['/request?a=1', '/app/request?a=1']);
  const viaUwsgi = await uwsgiRequest(sock, nginxVars('GET', '/app/request?a=2'));
  assert.equal(viaUwsgi.status, 200, viaUwsgi.body.toString());
  assert.deepEqual(seen(viaUwsgi.body.toString()), ['/request?a=2', '/app/request?a=2']);

  // Not under the mountpoint: as it came, no originalUrl.
  assert.deepEqual(seen((await httpGet(`${v.url}/request?c=1`)).body), ['/request?c=1', undefined]);
  assert.deepEqual(seen((await uwsgiRequest(sock, nginxVars('GET', '/request?d=1'))).body.toString()), ['/request?d=1', undefined]);

  await v.proc.logs.waitFor((l) => / GET \/app\/request\?a=1 => generated /.test(l.raw), { message: 'the http request logged with its whole URL' });
  await v.proc.logs.waitFor((l) => / GET \/app\/request\?a=2 => generated /.test(l.raw), { message: 'the uwsgi request logged with its whole URL' });
});
