import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigValueError, resolveVassalConfig } from '@emperor/config';
import { ini, MINIMAL, rejects, SHOP, throwsExactly, vassal } from './helpers.js';

const valueOf = (result: ReturnType<typeof vassal>, name: string) => result.config.resolved.findLast((o) => o.name === name)?.value;

test('$(ENV) expands from options.env; an unset variable is "" with one warning', () => {
  const result = vassal('chdir = /srv/$(APP)/$(MISSING)\npidfile = /run/$(MISSING).pid\nenv = HOME=$(HOME)\n', { env: { APP: 'shop', HOME: '/root' } });
  assert.equal(result.config.chdir, '/srv/shop');
  assert.equal(result.config.pidfile, '/run/.pid');
  assert.deepEqual(result.config.env, [['HOME', '/root']]);
  assert.deepEqual(result.warnings, [
    { file: SHOP, line: 4, code: 'unset-variable', option: 'chdir', message: '$(MISSING) is not set; expanded to ""' },
  ]);
});

test('$(ENV) defaults to process.env', () => {
  const name = 'EMPEROR_CONFIG_TEST_VAR';
  process.env[name] = 'from-process';
  try {
    const result = resolveVassalConfig([ini(`${MINIMAL}chdir = /srv/$(${name})\n`)]);
    assert.equal(result.config.chdir, '/srv/from-process');
  } finally {
    delete process.env[name];
  }
});

test('%(name) is the final value of another option, known or not, through aliases', () => {
  const result = vassal([
    'project = shop',
    'base = /srv/%(project)',
    'chdir = %(base)/current',
    'logto = %(chdir)/log/%(workers).log',
    'workers = 3',
    'project = blog',
  ].join('\n'));
  assert.equal(result.config.chdir, '/srv/blog/current');
  assert.equal(result.config.logto, '/srv/blog/current/log/3.log');
  // Unknown options used as variables are not reported as typos; `base` is used too.
  assert.deepEqual(result.warnings, []);
});

test('set-placeholder / set-ph define %(name) without defining an option', () => {
  const result = vassal('set-placeholder = root=/srv/app\nset-ph = sock=%(root)/app.sock\nchdir = %(root)\nsocket = %(sock)\n');
  assert.equal(result.config.chdir, '/srv/app');
  assert.deepEqual(result.config.sockets.map((s) => s.name), [':3031', '/srv/app/app.sock']);
  assert.deepEqual(result.warnings, []);
  rejects('set-placeholder = novalue\n', `${SHOP}:4: set-placeholder: expected name=value, got "novalue"`);
});

test('%(name) of an option never set is an error', () => {
  rejects('chdir = /srv/%(project)\n', `${SHOP}:4: chdir: %(project) refers to an option that is never set, got "/srv/%(project)"`);
});

test('placeholder cycles are errors', () => {
  rejects('a = %(b)\nb = %(a)\n', `${SHOP}:5: b: placeholder cycle %(a) -> %(b) -> %(a), got "%(a)"`);
  rejects('chdir = %(chdir)/x\n', `${SHOP}:4: chdir: placeholder cycle %(chdir) -> %(chdir), got "%(chdir)/x"`);
  // Not a cycle: the earlier `a` is not the value %(a) refers to.
  assert.equal(valueOf(vassal('a = %(b)\nb = %(a)\na = final\n'), 'b'), 'final');
});

test('placeholders that would grow without bound are stopped', () => {
  const doubling = Array.from({ length: 20 }, (_, i) => `v${i + 1} = %(v${i})%(v${i})`).join('\n');
  const err = throwsExactly(() => vassal(`v0 = ${'x'.repeat(100)}\n${doubling}\n`), ConfigValueError,
    `${SHOP}:14: v10: expected at most 65536 characters after expanding placeholders, got "%(v9)%(v9)"`);
  assert.equal(err.option, 'v10');
});

test('no arithmetic in %(...)', () => {
  rejects('a = 1\nb = %(a + 1)\n', `${SHOP}:5: b: %(a + 1): placeholders take an option name (no arithmetic or expressions), got "%(a + 1)"`);
});

test('@(...) is refused: uWSGI reads files and runs commands with it', () => {
  rejects('chdir = @(exec://id -un)\n', `${SHOP}:4: chdir: @(...) is not supported: it can run commands, got "@(exec://id -un)"`);
  rejects('x = @(/etc/passwd)\n', `${SHOP}:4: x: @(...) is not supported: it can run commands, got "@(/etc/passwd)"`);
});

test('malformed $(...) is an error', () => {
  rejects('chdir = $()\n', `${SHOP}:4: chdir: malformed $(), got "$()"`);
});

test('resolved lists every occurrence after all passes, with its location', () => {
  const result = vassal('project = shop\nchdir = /srv/%(project)\n');
  assert.deepEqual(result.config.resolved, [
    { file: SHOP, line: 2, name: 'socket', value: ':3031' },
    { file: SHOP, line: 3, name: 'module', value: 'app.js' },
    { file: SHOP, line: 4, name: 'project', value: 'shop' },
    { file: SHOP, line: 5, name: 'chdir', value: '/srv/shop' },
  ]);
});
