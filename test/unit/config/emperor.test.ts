import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMMAND_LINE, ConfigValueError, loadEmperorConfig, parseConfigText, resolveEmperorConfig, type RawOption } from '@emperor/config';
import { tempDir, throwsExactly } from './helpers.js';

const flag = (name: string, value: string): RawOption => ({ file: COMMAND_LINE, line: 0, name, value });

test('emperor config from a file: paths against the file\'s directory, defaults, units', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'emperor.ini');
  writeFileSync(path, [
    '[uwsgi]',
    'emperor = vassals',
    'emperor = /etc/emperor.d/*.ini',
    'emperor-stats-server = run/emperor.sock',
    'emperor-tyrant',
    'emperor-freq = 5',
    'emperor-required-heartbeat = 0',
    'vassals-inherit = base.ini',
    'pidfile = run/emperor.pid',
    'die-on-term',
  ].join('\n'));
  const { config, warnings } = loadEmperorConfig(path, { env: {} });
  assert.deepEqual(config.emperor, [join(dir, 'vassals'), '/etc/emperor.d/*.ini']);
  assert.deepEqual(config.emperorStats, { kind: 'unix', path: join(dir, 'run/emperor.sock'), abstract: false });
  assert.deepEqual([config.emperorTyrant, config.emperorTyrantNofollow, config.dieOnTerm], [true, false, true]);
  assert.deepEqual([config.emperorFreqMs, config.emperorThrottleMs, config.emperorMaxThrottleMs, config.emperorRequiredHeartbeatMs], [5_000, 1_000, 180_000, 0]);
  assert.deepEqual(config.vassalsInherit, [join(dir, 'base.ini')]);
  assert.equal(config.pidfile, join(dir, 'run/emperor.pid'));
  assert.equal(config.resolved.length, 9);
  assert.deepEqual(warnings, []);
});

test('emperor config from the command line alone: paths against the cwd', () => {
  const { config } = resolveEmperorConfig([], {
    overrides: [flag('emperor', './emperor.d'), flag('emperor-stats', '127.0.0.1:9190'), flag('emperor-pidfile', 'run/e.pid')],
    env: {},
  });
  assert.deepEqual(config.emperor, [join(process.cwd(), 'emperor.d')]);
  assert.deepEqual(config.emperorStats, { kind: 'tcp', host: '127.0.0.1', port: 9190 });
  assert.equal(config.pidfile, join(process.cwd(), 'run/e.pid'));
  assert.deepEqual([config.emperorFreqMs, config.emperorRequiredHeartbeatMs, config.emperorTyrant], [3_000, 30_000, false]);
});

test('command-line flags override the file; the later of pidfile and emperor-pidfile wins', () => {
  const file = parseConfigText('[uwsgi]\nemperor = /a\nemperor-freq = 10\npidfile = /run/a.pid\nemperor-pidfile = /run/b.pid\n', '/etc/emperor.ini', 'ini');
  const { config } = resolveEmperorConfig([file], { overrides: [flag('emperor-freq', '1'), flag('emperor', '/b')], env: {} });
  assert.equal(config.emperorFreqMs, 1_000);
  assert.deepEqual(config.emperor, ['/a', '/b']);
  assert.equal(config.pidfile, '/run/b.pid');
});

test('vassal options in the emperor file are misplaced; tyrant-nofollow alone has no effect', () => {
  const file = parseConfigText('[uwsgi]\nemperor = /e\nsocket = :80\nharakiri = 3\nemperor-tyrant-nofollow\nthreads = 2\n', '/etc/emperor.ini', 'ini');
  const { warnings } = resolveEmperorConfig([file], { env: {} });
  assert.deepEqual(warnings.map((w) => [w.line, w.code, w.option, w.message]), [
    [3, 'misplaced-option', 'socket', 'is a vassal option; ignored in the emperor\'s configuration'],
    [4, 'misplaced-option', 'harakiri', 'is a vassal option; ignored in the emperor\'s configuration'],
    [6, 'misplaced-option', 'threads', 'is a vassal option; ignored in the emperor\'s configuration'],
    [5, 'no-effect', 'emperor-tyrant-nofollow', 'has no effect without emperor-tyrant'],
  ]);
});

test('emperor config errors', () => {
  throwsExactly(() => resolveEmperorConfig([], { env: {} }), ConfigValueError, '<command line>: no vassals: set emperor = <directory of vassal files>');
  const file = parseConfigText('[uwsgi]\nemperor-throttle = 5000\nemperor-max-throttle = 2000\nemperor = /e\n', '/etc/emperor.ini', 'ini');
  throwsExactly(() => resolveEmperorConfig([file], { env: {} }), ConfigValueError,
    '/etc/emperor.ini:2: emperor-throttle: must be <= emperor-max-throttle (2000), got "5000"');
  throwsExactly(() => resolveEmperorConfig([], { overrides: [flag('emperor', '/e'), flag('emperor-freq', '0')] }), ConfigValueError,
    '<command line>: emperor-freq: must be >= 1, got "0"');
  throwsExactly(() => resolveEmperorConfig([], { overrides: [flag('emperor', '/e'), flag('strict', ''), flag('emperor-frek', '3')] }), ConfigValueError,
    '<command line>: emperor-frek: unknown option (strict mode; did you mean "emperor-freq"?), got "3"');
});
