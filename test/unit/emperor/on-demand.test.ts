import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMMAND_LINE, parseConfigText, resolveEmperorConfig, resolveVassalConfig, type RawOption } from '@emperor/config';
import { cutSocketName, onDemandSocketName, parseOnDemandAddress } from '@emperor/emperor';
import { tempDir } from '../config/helpers.js';

const flag = (name: string, value: string): RawOption => ({ file: COMMAND_LINE, line: 0, name, value });

test('on-demand socket names: cut at the first control character, as uWSGI', () => {
  assert.equal(cutSocketName('/run/app.sock\n'), '/run/app.sock');
  assert.equal(cutSocketName('127.0.0.1:9000\r\nrest'), '127.0.0.1:9000');
  assert.equal(cutSocketName('\n'), '');
});

test('on-demand socket addresses: TCP when the name has a colon, else a unix path (@ abstract)', () => {
  assert.deepEqual(parseOnDemandAddress(':8080', 'f'), { kind: 'tcp', host: '0.0.0.0', port: 8080 });
  assert.deepEqual(parseOnDemandAddress('127.0.0.1:9000', 'f'), { kind: 'tcp', host: '127.0.0.1', port: 9000 });
  assert.deepEqual(parseOnDemandAddress('[::1]:9000', 'f'), { kind: 'tcp', host: '::1', port: 9000 });
  assert.deepEqual(parseOnDemandAddress('/run/a.sock', 'f'), { kind: 'unix', path: '/run/a.sock', abstract: false });
  assert.deepEqual(parseOnDemandAddress('@app', 'f'), { kind: 'unix', path: 'app', abstract: true });
  assert.throws(() => parseOnDemandAddress('127.0.0.1:http', 'shop.ini: on-demand socket "127.0.0.1:http"'), {
    code: 'ERR_SOCKET_BIND',
    message: 'shop.ini: on-demand socket "127.0.0.1:http": expected host:port with a port from 1 to 65535',
  });
});

test('the socket comes from VASSAL+EXT, DIR/NAME.socket, or a command\'s output; absent or empty means not on demand', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'shop.ini');
  writeFileSync(path, '[uwsgi]\n');
  const file = { path, name: 'shop.ini' };
  assert.deepEqual(onDemandSocketName(file, { kind: 'extension', extension: '.socket' }), { name: undefined });
  writeFileSync(`${path}.socket`, '/run/shop.sock\nignored');
  assert.deepEqual(onDemandSocketName(file, { kind: 'extension', extension: '.socket' }), { name: '/run/shop.sock' });
  assert.deepEqual(onDemandSocketName(file, { kind: 'directory', directory: '/run/od' }), { name: '/run/od/shop.socket' });
  const script = join(dir, 'name.sh');
  writeFileSync(script, '#!/bin/sh\ncase "$1" in *shop.ini) echo "127.0.0.1:9100";; esac\n');
  chmodSync(script, 0o755);
  assert.deepEqual(onDemandSocketName(file, { kind: 'exec', command: script }), { name: '127.0.0.1:9100' });
  assert.deepEqual(onDemandSocketName({ path: join(dir, 'other.ini'), name: 'other.ini' }, { kind: 'exec', command: script }), { name: undefined });
  const failed = onDemandSocketName(file, { kind: 'exec', command: 'exit 3;' });
  assert.ok('problem' in failed && failed.problem.startsWith('emperor-on-demand-exec: exit 3; '), JSON.stringify(failed));
});

test('emperor-on-demand-*: the first set wins in uWSGI\'s order (extension, directory, exec); the others are reported', () => {
  const { config, warnings } = resolveEmperorConfig([parseConfigText('[uwsgi]\nemperor = /etc/emperor.d\nemperor-on-demand-dir = /run/od\nemperor-on-demand-ext = .sock\n', 'e.ini', 'ini')], { env: {} });
  assert.deepEqual(config.emperorOnDemand, { kind: 'extension', extension: '.sock' });
  assert.deepEqual(warnings.map((w) => [w.option, w.code]), [['emperor-on-demand-dir', 'no-effect']]);
  const none = resolveEmperorConfig([], { env: {}, overrides: [flag('emperor', '/etc/emperor.d')] });
  assert.equal(none.config.emperorOnDemand, undefined);
  const dir = resolveEmperorConfig([], { env: {}, overrides: [flag('emperor', '/etc/emperor.d'), flag('emperor-on-demand-directory', '/run/od')] });
  assert.deepEqual(dir.config.emperorOnDemand, { kind: 'directory', directory: '/run/od' });
});

test('an on-demand vassal serves fd 0: a socket option with the same address uses it with its protocol; else fd 0 with `protocol` (uwsgi)', () => {
  const vassal = (body: string, onDemandSocket: string) =>
    resolveVassalConfig([parseConfigText(`[uwsgi]\nmodule = app.js\n${body}`, '/srv/v.ini', 'ini')], { env: {}, onDemandSocket }).config.sockets
      .map((s) => [s.option, s.protocol, s.name, s.address.kind === 'fd' ? `fd ${s.address.fd}` : s.address.kind]);
  assert.deepEqual(vassal('http-socket = 127.0.0.1:9000\nsocket = /run/other.sock', '127.0.0.1:9000'), [
    ['http-socket', 'http', '127.0.0.1:9000', 'fd 0'],
    ['socket', 'uwsgi', '/run/other.sock', 'unix'],
  ]);
  assert.deepEqual(vassal('', '/run/od/v.socket'), [['socket', 'uwsgi', '/run/od/v.socket', 'fd 0']]);
  assert.deepEqual(vassal('protocol = http', '/run/od/v.socket'), [['http-socket', 'http', '/run/od/v.socket', 'fd 0']]);
  assert.deepEqual(vassal('http-socket = :9001', '127.0.0.1:9000'), [['http-socket', 'http', ':9001', 'tcp'], ['socket', 'uwsgi', '127.0.0.1:9000', 'fd 0']]);
});
