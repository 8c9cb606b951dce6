import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMMAND_LINE, ConfigReadError, ConfigValueError, loadVassalConfig, resolveVassalConfig } from '@emperor/config';
import { ini, rejects, SHOP, tempDir, throwsExactly, vassal } from './helpers.js';

function layout(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'templates'));
  mkdirSync(join(dir, 'vassals'));
  const base = join(dir, 'templates', 'base.ini');
  const shop = join(dir, 'vassals', 'shop.ini');
  writeFileSync(base, '[uwsgi]\nharakiri = 60\nsocket = :1\nenv = A=base\nprocesses = 2\nchdir = app\nname = %n\n');
  writeFileSync(shop, '[uwsgi]\nharakiri = 30\nsocket = :2\nenv = A=vassal\nmodule = app.js\nlogto = %(name).log\n');
  return { dir, base, shop };
}

test('inherited files come first: the vassal\'s scalars win, lists accumulate', (t) => {
  const { dir, base, shop } = layout(t);
  const { config, warnings } = loadVassalConfig(shop, { inherit: [base], env: {} });
  assert.equal(config.harakiriMs, 30_000);
  assert.equal(config.processes, 2);
  assert.deepEqual(config.sockets.map((s) => [s.file, s.line, s.name]), [[base, 3, ':1'], [shop, 3, ':2']]);
  assert.deepEqual(config.env, [['A', 'vassal']]);
  // Relative paths from any file resolve against the vassal's directory; magic is per file.
  assert.equal(config.chdir, join(dir, 'vassals', 'app'));
  assert.equal(config.logto, join(dir, 'vassals', 'base.log'));
  assert.equal(config.file, shop);
  assert.equal(config.name, 'shop.ini');
  assert.deepEqual(warnings, []);
});

test('overrides come last; command-line paths resolve against the cwd', (t) => {
  const { base, shop } = layout(t);
  const overrides = [
    { file: COMMAND_LINE, line: 0, name: 'harakiri', value: '5' },
    { file: COMMAND_LINE, line: 0, name: 'socket', value: ':3' },
    { file: COMMAND_LINE, line: 0, name: 'pidfile', value: 'run/shop.pid' },
  ];
  const { config } = loadVassalConfig(shop, { inherit: [base], overrides, env: {} });
  assert.equal(config.harakiriMs, 5_000);
  assert.deepEqual(config.sockets.map((s) => s.name), [':1', ':2', ':3']);
  assert.equal(config.pidfile, join(process.cwd(), 'run/shop.pid'));
  throwsExactly(() => loadVassalConfig(shop, { inherit: [base], overrides: [{ file: COMMAND_LINE, line: 0, name: 'harakiri', value: 'x' }] }),
    ConfigValueError, '<command line>: harakiri: expected whole seconds >= 0, got "x"');
});

test('a missing inherited file is a read error naming that file', (t) => {
  const { dir, shop } = layout(t);
  const missing = join(dir, 'nope.ini');
  throwsExactly(() => loadVassalConfig(shop, { inherit: [missing] }), ConfigReadError, `${missing}: cannot read: no such file`);
});

test('resolveVassalConfig needs the vassal file', () => {
  assert.throws(() => resolveVassalConfig([]), { name: 'InternalError', code: 'ERR_INTERNAL', message: 'resolveVassalConfig needs at least the vassal file as a source' });
});

test('unknown options: one warning per name, with a suggestion when close', () => {
  const { config, warnings } = vassal('harakiry = 3\nharakiry = 4\nfrobnicate = 1\n');
  assert.equal(config.harakiriMs, 0);
  assert.deepEqual(warnings, [
    { file: SHOP, line: 4, code: 'unknown-option', option: 'harakiry', message: 'unknown option; ignored; did you mean "harakiri"?' },
    { file: SHOP, line: 6, code: 'unknown-option', option: 'frobnicate', message: 'unknown option; ignored' },
  ]);
});

test('unsupported uWSGI options: one warning, ignored', () => {
  const { warnings } = vassal('gevent = 100\nugreen = true\ngevent = 200\n');
  assert.deepEqual(warnings, [
    { file: SHOP, line: 4, code: 'unsupported-option', option: 'gevent', message: 'is a uWSGI option Emperor does not support; ignored (workers are processes, or threads in Python workers: no async cores)' },
    { file: SHOP, line: 5, code: 'unsupported-option', option: 'ugreen', message: 'is a uWSGI option Emperor does not support; ignored (workers are processes, or threads in Python workers: no async cores)' },
  ]);
});

test('flags whose purpose Emperor always serves are accepted without a warning', () => {
  const { warnings } = vassal('enable-threads = true\nsingle-interpreter = true\nneed-app = true\nlazy-apps = true\npy-call-osafterfork = true\n');
  assert.deepEqual(warnings, []);
});

test('emperor options in a vassal file are misplaced and ignored; master is accepted silently', () => {
  const { warnings } = vassal('emperor = /etc/emperor.d\nemperor-tyrant\nmaster = true\n');
  assert.deepEqual(warnings.map((w) => [w.line, w.code, w.option, w.message]), [
    [4, 'misplaced-option', 'emperor', 'is an emperor option; ignored in a vassal file'],
    [5, 'misplaced-option', 'emperor-tyrant', 'is an emperor option; ignored in a vassal file'],
  ]);
});

test('strict: unknown options become errors; unsupported ones stay warnings', () => {
  rejects('strict = true\nharakiry = 3\n', `${SHOP}:5: harakiry: unknown option (strict mode; did you mean "harakiri"?), got "3"`);
  rejects('strict\nfrobnicate\n', `${SHOP}:5: frobnicate: unknown option (strict mode), got ""`);
  assert.equal(vassal('strict = true\ngevent = 2\n').warnings[0]?.code, 'unsupported-option');
  assert.equal(vassal('strict = false\nfrobnicate = 1\n').warnings[0]?.code, 'unknown-option');
  // strict from an inherited file applies to the whole vassal.
  throwsExactly(() => resolveVassalConfig([ini('strict\n', 'base.ini'), ini('socket = :1\nmodule = a.js\nx = 1\n')]), ConfigValueError,
    `${SHOP}:4: x: unknown option (strict mode), got "1"`);
  rejects('strict = sure\n', `${SHOP}:4: strict: expected true/false, 1/0, yes/no or on/off, got "sure"`);
});
