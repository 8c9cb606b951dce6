import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ConfigValueError, resolveVassalConfig } from '@emperor/config';
import { config, ini, rejects, SHOP, throwsExactly, vassal } from './helpers.js';

const BASE = join(process.cwd(), 'emperor.d');
const app = (body: string) => {
  const c = resolveVassalConfig([ini(`socket = :1\n${body}`)], { env: {} }).config;
  return [c.runtime, c.module, c.wsgiFile];
};

test('runtime inference without plugin', () => {
  assert.deepEqual(app('module = app.js\n'), ['node', join(BASE, 'app.js'), undefined]);
  assert.deepEqual(app('module = server.mjs\n'), ['node', join(BASE, 'server.mjs'), undefined]);
  assert.deepEqual(app('module = /srv/app/index.cjs\n'), ['node', '/srv/app/index.cjs', undefined]);
  assert.deepEqual(app('module = shop.wsgi\n'), ['python', 'shop.wsgi', undefined]);
  assert.deepEqual(app('module = shop.wsgi:app\n'), ['python', 'shop.wsgi:app', undefined]);
  assert.deepEqual(app('wsgi = hello\n'), ['python', 'hello', undefined]);
  assert.deepEqual(app('wsgi-file = app/wsgi.py\n'), ['python', undefined, join(BASE, 'app/wsgi.py')]);
  assert.deepEqual(app('file = /srv/wsgi.py\n'), ['python', undefined, '/srv/wsgi.py']);
});

test('a Node module resolves against chdir when set', () => {
  assert.deepEqual(app('chdir = /srv/shop\nmodule = dist/server.js\n'), ['node', '/srv/shop/dist/server.js', undefined]);
  assert.equal(config('chdir = app\nmodule = index.js\n').module, join(BASE, 'app/index.js'));
});

test('plugin selects the runtime; other plugins are reported once and ignored', () => {
  assert.deepEqual(app('plugin = nodejs\nmodule = server\n'), ['node', join(BASE, 'server'), undefined]);
  assert.deepEqual(app('plugins = python3\nmodule = app.js\n'), ['python', 'app.js', undefined]);
  for (const name of ['python', 'python3', 'python38', 'python311', '/usr/lib/uwsgi/python3_plugin.so']) {
    assert.equal(app(`plugin = ${name}\nmodule = app\n`)[0], 'python', name);
  }
  const result = vassal('plugins = http, router_static node\nplugin = http\n');
  assert.equal(result.config.runtime, 'node');
  assert.deepEqual(result.warnings, [
    { file: SHOP, line: 4, code: 'unsupported-option', option: 'plugins', message: 'plugin "http" is a uWSGI plugin Emperor does not support; ignored' },
    { file: SHOP, line: 4, code: 'unsupported-option', option: 'plugins', message: 'plugin "router_static" is a uWSGI plugin Emperor does not support; ignored' },
  ]);
});

test('contradictions: two runtimes, module with wsgi-file, wsgi-file under node', () => {
  rejects('plugin = node,python3\n', `${SHOP}:4: plugin: plugins node and python3 select two runtimes; a vassal has one, got "node,python3"`);
  rejects('wsgi-file = app.py\n', `${SHOP}:4: wsgi-file: module (${SHOP}:3) and wsgi-file are both set; keep one, got "app.py"`);
  throwsExactly(() => resolveVassalConfig([ini('socket = :1\nplugin = node\nwsgi-file = app.py\n')]), ConfigValueError,
    `${SHOP}:4: wsgi-file: wsgi-file needs the python runtime, but plugin selects node, got "app.py"`);
});

test('a module that is neither a JS file nor a Python module name', () => {
  rejects('module = src/app.ts\n', `${SHOP}:4: module: expected a .js, .mjs or .cjs file (Node) or a dotted Python module such as pkg.app, got "src/app.ts"`);
  // A name like app.ts is a valid dotted Python module (package app, module ts).
  assert.equal(app('module = app.ts\n')[0], 'python');
  rejects('plugin = python\nmodule = ./app.py\n', `${SHOP}:5: module: expected a dotted Python module such as pkg.app or pkg.app:callable, got "./app.py"`);
});

test('no app, no socket', () => {
  const noApp = throwsExactly(() => resolveVassalConfig([ini('socket = :1\nchdir = /srv\n')]), ConfigValueError,
    `${SHOP}: no app: set module (a .js file for Node, a Python module) or wsgi-file`);
  assert.deepEqual([noApp.line, noApp.option, noApp.value], [0, 'module', undefined]);
  const noSocket = throwsExactly(() => resolveVassalConfig([ini('module = app.js\n')]), ConfigValueError,
    `${SHOP}: no socket: set http-socket, socket, uwsgi-socket or fastcgi-socket (or start the vassal with a listening socket on stdin)`);
  assert.equal(noSocket.option, 'socket');
});

test('callable and Python-only options', () => {
  assert.equal(app('module = app\ncallable = app\n')[0], 'python');
  assert.equal(resolveVassalConfig([ini('socket = :1\nmodule = pkg.app\ncallable = create_app\n')]).config.callable, 'create_app');
  rejects('callable = not-valid\n', `${SHOP}:4: callable: expected a Python identifier such as application, got "not-valid"`);
  const result = vassal('home = /srv/venv\npythonpath = lib\ncallable = app\nthreads = 4\n');
  assert.deepEqual(result.warnings.map((w) => [w.option, w.code, w.message]), [
    ['home', 'no-effect', 'applies to Python apps only; this vassal runs Node'],
    ['pythonpath', 'no-effect', 'applies to Python apps only; this vassal runs Node'],
    ['callable', 'no-effect', 'applies to Python apps only; this vassal runs Node'],
    ['threads', 'no-effect', 'applies to Python apps only; this vassal runs Node'],
  ]);
  assert.equal(resolveVassalConfig([ini('socket = :1\nmodule = pkg.app\nthreads = 4\n')]).config.threads, 4);
  assert.equal(resolveVassalConfig([ini('socket = :1\nmodule = pkg.app\n')]).config.threads, 1);
  rejects('socket = :1\nmodule = pkg.app\nthreads = 0\n', `${SHOP}:6: threads: must be >= 1, got "0"`);
});

test('limit-as too small for a Node worker is refused up front', () => {
  rejects('limit-as = 512\n', `${SHOP}:4: limit-as: must be >= 1024 for a Node vassal (a Node worker needs about 720-750 MB of address space just to start), got "512"`);
  assert.equal(config('limit-as = 1024\n').limitAsBytes, 1024 * 1024 * 1024);
  assert.equal(resolveVassalConfig([ini('socket = :1\nmodule = app\nlimit-as = 128\n')]).config.limitAsBytes, 128 * 1024 * 1024);
});

test('node-args: the Node worker\'s flags, split on whitespace, repeated lines appended in order; a word that is no flag is refused; no effect for Python', () => {
  assert.deepEqual(config('').nodeArgs, []);
  assert.deepEqual(config('node-args = --max-old-space-size=256  --max-semi-space-size=2\nnode-args = --no-warnings\n').nodeArgs,
    ['--max-old-space-size=256', '--max-semi-space-size=2', '--no-warnings']);
  rejects('node-args = --max-old-space-size 256\n', `${SHOP}:4: node-args: "256" is not a node flag, got "--max-old-space-size 256"`);
  const python = resolveVassalConfig([ini('socket = :1\nwsgi-file = app.py\nnode-args = --no-warnings\n')], { env: {} });
  assert.deepEqual(python.config.nodeArgs, []);
  assert.deepEqual(python.warnings.map((w) => [w.code, w.option, w.message]), [['no-effect', 'node-args', 'has no effect for a Python vassal: its workers are not Node processes']]);
});
