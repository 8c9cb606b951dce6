import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkConfigFile, parseLogFormat } from '@emperor/config';
import { config, tempDir, vassal } from './helpers.js';

function file(t: Parameters<typeof tempDir>[0], name: string, body: string): string {
  const path = join(tempDir(t), name);
  writeFileSync(path, body);
  return path;
}

test('check reports every bad value, not just the first, with file:line: option: message', (t) => {
  const path = file(t, 'shop.ini', '[uwsgi]\nhttp-socket = :8080\nmodule = app.mjs\nprocesses = two\nharakiri = ten\nprocesess = 3\n');
  const result = checkConfigFile(path, { env: {} });
  assert.equal(result.kind, 'vassal');
  assert.deepEqual(result.problems.map((p) => [p.severity, p.text]), [
    ['error', `${path}:4: processes: expected a whole number >= 1, got "two"`],
    ['error', `${path}:5: harakiri: expected whole seconds >= 0, got "ten"`],
    ['warning', `${path}:6: procesess: unknown option; ignored; did you mean "processes"?`],
  ]);
});

test('check adds the cross-option errors of the builder, once', (t) => {
  const path = file(t, 'shop.ini', '[uwsgi]\nhttp-socket = :8080\nmodule = app.mjs\nprocesses = 2\ncheaper = 2\n');
  const result = checkConfigFile(path, { env: {} });
  assert.deepEqual(result.problems.map((p) => p.text), [`${path}:5: cheaper: must be lower than processes (2), got "2"`]);
  const none = checkConfigFile(file(t, 'empty.ini', '[uwsgi]\nmodule = app.mjs\n'), { env: {} });
  assert.match(none.problems[0]?.text ?? '', /no socket: set http-socket, socket, uwsgi-socket or fastcgi-socket \(or start the vassal with a listening socket on stdin\)$/);
});

test('check reads an emperor file as one, and a missing file as one error', (t) => {
  const path = file(t, 'emperor.ini', '[uwsgi]\nemperor = /etc/emperor.d\nemperor-throttle = fast\nharakiri = 3\n');
  const result = checkConfigFile(path, { env: {} });
  assert.equal(result.kind, 'emperor');
  assert.deepEqual(result.problems.map((p) => [p.severity, p.option]), [['error', 'emperor-throttle'], ['warning', 'harakiri']]);
  const missing = checkConfigFile(join(tempDir(t), 'nope.ini'));
  assert.equal(missing.problems.length, 1);
  assert.equal(missing.problems[0]?.code, 'ERR_CONFIG_READ');
  assert.equal(missing.resolved, undefined);
});

test('check gives the resolved options and the defaults of the rest', (t) => {
  const path = file(t, 'shop.ini', '[uwsgi]\nproject = shop\nhttp-socket = :8080\nmodule = /srv/%(project)/app.mjs\nharakiri = 30\n');
  const result = checkConfigFile(path, { env: {} });
  assert.deepEqual(result.problems.map((p) => p.text), []);
  assert.equal(result.resolved?.find((o) => o.name === 'module')?.value, '/srv/shop/app.mjs');
  const defaults = new Map(result.defaults.map((d) => [d.name, d.value]));
  assert.equal(defaults.get('processes'), '1');
  assert.equal(defaults.get('harakiri'), undefined, 'set options have no default line');
  assert.equal(defaults.get('emperor-freq'), undefined, 'emperor options are not a vassal\'s defaults');
});

test('log-format keeps its %(vars) through the placeholder pass, expands real options, and warns about unknown ones', () => {
  const loaded = vassal('project = shop\nlog-format = %(project) %(addr) [%(ltime)] "%(method) %(uri)" %(status) %(HTTP_X_REQUEST_ID) %(nope)\n');
  assert.equal(loaded.config.logFormat, 'shop %(addr) [%(ltime)] "%(method) %(uri)" %(status) %(HTTP_X_REQUEST_ID) %(nope)');
  assert.deepEqual(loaded.warnings.map((w) => [w.option, w.code]), [['log-format', 'no-effect']]);
  assert.match(loaded.warnings[0]?.message ?? '', /%\(nope\)/);
  assert.throws(() => config('harakiri = %(addr)\n'), /harakiri: %\(addr\) refers to an option that is never set/);
  assert.deepEqual(parseLogFormat('a %(b) %c %(d)'), [
    { kind: 'text', text: 'a ' }, { kind: 'var', name: 'b' }, { kind: 'text', text: ' %c ' }, { kind: 'var', name: 'd' },
  ]);
  assert.deepEqual(parseLogFormat(''), [{ kind: 'text', text: '' }]);
});

test('log-json with log-format: log-format is reported as having no effect', () => {
  const loaded = vassal('log-json = true\nlog-format = %(uri)\n');
  assert.equal(loaded.config.logJson, true);
  assert.deepEqual(loaded.warnings.map((w) => [w.option, w.code]), [['log-format', 'no-effect']]);
});
