import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMMAND_LINE, ConfigValueError, loadEmperorConfig, parseConfigText, resolveEmperorConfig, resolveVassalConfig, type RawOption } from '@emperor/config';
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

test('vassal options in the emperor file are misplaced, each warning naming the emperor option meant or vassals-inherit; tyrant-nofollow alone has no effect', () => {
  const file = parseConfigText(
    '[uwsgi]\nemperor = /e\nsocket = :80\nharakiri = 3\nemperor-tyrant-nofollow\nthreads = 2\nprometheus = :9100\nplugins = python3\nlogto = /var/log/e.log\nmaster = true\n',
    '/etc/emperor.ini', 'ini');
  const { warnings } = resolveEmperorConfig([file], { env: {} });
  const ignored = 'is a vassal option; ignored in the emperor\'s configuration: ';
  assert.deepEqual(warnings.map((w) => [w.line, w.code, w.option, w.message]), [
    [3, 'misplaced-option', 'socket', `${ignored}the emperor serves no requests; each vassal binds its own sockets`],
    [4, 'misplaced-option', 'harakiri', `${ignored}to give it to every vassal, put it in a vassals-inherit file`],
    [6, 'misplaced-option', 'threads', `${ignored}to give it to every vassal, put it in a vassals-inherit file`],
    [7, 'misplaced-option', 'prometheus', `${ignored}the emperor's own metrics are emperor-prometheus`],
    [8, 'misplaced-option', 'plugins', `${ignored}the emperor loads no plugins; a vassal names its runtime with plugin (or it is inferred from module/wsgi-file)`],
    [9, 'misplaced-option', 'logto', `${ignored}the emperor logs to stderr (the journal under systemd); to give every vassal a log file, put logto in a vassals-inherit file`],
    [10, 'misplaced-option', 'master', `${ignored}the emperor needs no master`],
    [5, 'no-effect', 'emperor-tyrant-nofollow', 'has no effect without emperor-tyrant'],
  ]);
});

test('uid, gid, cap and stats in the emperor file: the emperor\'s own user, capabilities and stats', () => {
  const file = parseConfigText('[uwsgi]\nuid = uwsgi\ngid = 999\npidfile = /run/uwsgi/uwsgi.pid\nemperor = /etc/uwsgi.d\nstats = /run/uwsgi/stats.sock\nemperor-tyrant = true\ncap = setgid, SETUID,cap_net_bind_service,7\n', '/etc/uwsgi.ini', 'ini');
  const { config, warnings } = resolveEmperorConfig([file], { env: {} });
  assert.equal(config.uid, 'uwsgi');
  assert.equal(config.gid, 999);
  assert.deepEqual(config.cap, ['setgid', 'setuid', 'net_bind_service'], 'names, any case, cap_ prefix and numbers; each once');
  assert.deepEqual(config.stats, { kind: 'unix', path: '/run/uwsgi/stats.sock', abstract: false });
  assert.equal(config.emperorStats, undefined);
  assert.equal(config.pidfile, '/run/uwsgi/uwsgi.pid');
  assert.deepEqual(warnings, []);

  const bare = resolveEmperorConfig([parseConfigText('[uwsgi]\nemperor = /e\n', '/etc/e.ini', 'ini')], { env: {} }).config;
  assert.deepEqual([bare.uid, bare.gid, bare.cap, bare.stats], [undefined, undefined, [], undefined]);

  const alone = parseConfigText('[uwsgi]\nemperor = /e\ncap = setuid\ngid = www-data\n', '/etc/e.ini', 'ini');
  assert.deepEqual(resolveEmperorConfig([alone], { env: {} }).warnings.map((w) => [w.line, w.code, w.option, w.message]), [
    [4, 'no-effect', 'gid', 'has no effect without uid: the emperor drops privileges only to a uid'],
    [3, 'no-effect', 'cap', 'has no effect without uid: the emperor keeps the privileges it was started with'],
  ]);
});

test('cap: an unknown capability is one error naming it, with a suggestion and the known names', () => {
  const bad = parseConfigText('[uwsgi]\nemperor = /e\nuid = uwsgi\ncap = setgid,set_uid\n', '/etc/uwsgi.ini', 'ini');
  assert.throws(() => resolveEmperorConfig([bad], { env: {} }), (err: unknown) => {
    assert.ok(err instanceof ConfigValueError);
    assert.match(err.message, /^\/etc\/uwsgi\.ini:4: cap: unknown capability "set_uid" \(did you mean "setuid"\?\); known: chown, dac_override, .*, checkpoint_restore, got "setgid,set_uid"$/);
    return true;
  });
  for (const value of ['', ' , ', '41', 'setuid,nosuch']) {
    const file = parseConfigText(`[uwsgi]\nemperor = /e\nuid = uwsgi\ncap = ${value}\n`, '/etc/uwsgi.ini', 'ini');
    assert.throws(() => resolveEmperorConfig([file], { env: {} }), ConfigValueError, JSON.stringify(value));
  }
});

test('cap in a vassal file says vassals run without capabilities', () => {
  const file = parseConfigText('[uwsgi]\nhttp-socket = :8080\nmodule = app.js\ncap = net_bind_service\n', '/etc/emperor.d/a.ini', 'ini');
  const { warnings } = resolveVassalConfig([file], { env: {} });
  assert.deepEqual(warnings.map((w) => [w.line, w.code, w.option, w.message]), [
    [4, 'misplaced-option', 'cap', 'is an emperor option; ignored in a vassal file: vassal masters and workers always run without capabilities; cap belongs in the emperor\'s configuration, with uid'],
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
