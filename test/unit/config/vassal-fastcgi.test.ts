/**
 * The options FastCGI deployments use: `fastcgi-socket` (and `fd://N`), `protocol` for
 * `socket`, the listening socket a web server leaves on stdin (`skip-zero`), `mount` and
 * `manage-script-name`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { STDIN_SOCKET_FILE, findOption, resolveVassalConfig, type SocketProtocol } from '@emperor/config';
import { ini, rejects, SHOP } from './helpers.js';

const BASE = join(process.cwd(), 'emperor.d');
const sockets = (body: string, stdinSocket = false) =>
  resolveVassalConfig([ini(body)], { env: {}, stdinSocket }).config.sockets.map((s) => [s.option, s.protocol, s.name, s.address.kind, s.file]);

test('fastcgi-socket: TCP, :port, unix paths and fd://N, repeatable; stats proto fastcgi', () => {
  assert.deepEqual(sockets('module = app.js\nfastcgi-socket = 127.0.0.1:9000\nfastcgi-socket = :9001\nfastcgi-socket = run/app.sock\nfastcgi-socket = fd://0\n'), [
    ['fastcgi-socket', 'fastcgi', '127.0.0.1:9000', 'tcp', SHOP],
    ['fastcgi-socket', 'fastcgi', ':9001', 'tcp', SHOP],
    ['fastcgi-socket', 'fastcgi', 'run/app.sock', 'unix', SHOP],
    ['fastcgi-socket', 'fastcgi', 'fd://0', 'fd', SHOP],
  ]);
  const c = resolveVassalConfig([ini('module = app.js\nfastcgi-socket = fd://7\nfastcgi-socket = run/app.sock\n')], { env: {} }).config;
  assert.deepEqual(c.sockets[0]?.address, { kind: 'fd', fd: 7 });
  assert.deepEqual(c.sockets[1]?.address, { kind: 'unix', path: join(BASE, 'run/app.sock'), abstract: false });
});

test('protocol sets what socket speaks (not uwsgi-socket, http-socket or fastcgi-socket), as in uWSGI', () => {
  assert.deepEqual(findOption('protocol')?.choices satisfies readonly string[] | undefined, ['uwsgi', 'http', 'fastcgi'] satisfies SocketProtocol[]);
  assert.equal(findOption('socket-protocol')?.name, 'protocol');
  assert.deepEqual(sockets('module = app.js\nprotocol = fastcgi\nsocket = :1\nuwsgi-socket = :2\nhttp-socket = :3\n').map((s) => s[1]), ['fastcgi', 'uwsgi', 'http']);
  rejects('protocol = scgi\n', `${SHOP}:4: protocol: expected one of uwsgi, http, fastcgi, got "scgi"`);
});

test('a listening socket on stdin: served as FastCGI (or as protocol says) unless skip-zero or an option names fd://0', () => {
  assert.deepEqual(sockets('module = app.js\n', true), [['fastcgi-socket', 'fastcgi', 'fd://0', 'fd', STDIN_SOCKET_FILE]]);
  assert.deepEqual(sockets('module = app.js\nhttp-socket = :8080\n', true).map((s) => s[2]), [':8080', 'fd://0']);
  assert.deepEqual(sockets('module = app.js\nprotocol = uwsgi\n', true), [['socket', 'uwsgi', 'fd://0', 'fd', STDIN_SOCKET_FILE]]);
  assert.deepEqual(sockets('module = app.js\nsocket = fd://0\n', true), [['socket', 'uwsgi', 'fd://0', 'fd', SHOP]], 'named once');
  assert.deepEqual(sockets('module = app.js\nhttp-socket = :8080\nskip-zero = true\n', true).map((s) => s[2]), [':8080']);
  assert.throws(() => sockets('module = app.js\nskip-zero\n', true), /no socket: set http-socket, socket, uwsgi-socket or fastcgi-socket/);
});

test('mount: the app and its mountpoint; manage-script-name', () => {
  const c = (body: string) => resolveVassalConfig([ini(`socket = :1\n${body}`)], { env: {} });
  const blog = c('mount = /blog/=blog.mjs\nmanage-script-name = true\n').config;
  assert.deepEqual([blog.runtime, blog.module, blog.mountpoint, blog.manageScriptName], ['node', join(BASE, 'blog.mjs'), '/blog', true]);
  const root = c('mount = /=mysite.wsgi:application\n').config;
  assert.deepEqual([root.runtime, root.module, root.mountpoint, root.manageScriptName], ['python', 'mysite.wsgi:application', '', false]);
  const file = c('chdir = /srv/site\nmount = /x=app.wsgi\nmanage-script-name\n').config;
  assert.deepEqual([file.runtime, file.wsgiFile, file.module, file.mountpoint], ['python', '/srv/site/app.wsgi', undefined, '/x']);
  assert.deepEqual(c('mount = /x=app.py\nmanage-script-name\n').config.wsgiFile, join(BASE, 'app.py'));
  const unmanaged = c('mount = /shop=shop.wsgi:application\n');
  assert.deepEqual(unmanaged.warnings.map((w) => [w.option, w.code, w.message]), [
    ['mount', 'no-effect', 'the mountpoint changes nothing without manage-script-name: SCRIPT_NAME stays what the front end sends'],
  ]);
  assert.deepEqual(c('module = app.js\n').config.mountpoint, '', 'no mount: the root');
});

test('mount: one per vassal, a path for a mountpoint, not beside module or wsgi-file', () => {
  const refuse = (body: string, message: string) =>
    assert.throws(() => resolveVassalConfig([ini(`socket = :1\n${body}`)], { env: {} }), (err: Error) => err.message === message);
  refuse('mount = /a=a.mjs\nmount = /b=b.mjs\n',
    `${SHOP}:4: mount: a vassal runs one app, already mounted at ${SHOP}:3; run the other as a vassal of its own, got "/b=b.mjs"`);
  refuse('mount = app.mjs\n', `${SHOP}:3: mount: expected MOUNTPOINT=APP, such as /blog=blog.wsgi:application, got "app.mjs"`);
  refuse('mount = /a=\n', `${SHOP}:3: mount: expected MOUNTPOINT=APP, such as /blog=blog.wsgi:application, got "/a="`);
  refuse('mount = myapp=app.mjs\n',
    `${SHOP}:3: mount: the mountpoint "myapp" is not a path starting with / (uWSGI's app ids and vhost keys are not supported), got "myapp=app.mjs"`);
  refuse('module = app.js\nmount = /a=a.mjs\n', `${SHOP}:4: mount: mount names the app, and so does module (${SHOP}:3); keep one, got "/a=a.mjs"`);
  refuse('wsgi-file = w.py\nmount = /a=a.py\n', `${SHOP}:4: mount: mount names the app, and so does wsgi-file (${SHOP}:3); keep one, got "/a=a.py"`);
});
