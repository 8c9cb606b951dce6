import { test } from 'node:test';
import assert from 'node:assert/strict';
import { booleanFlags, isBooleanFlag, optionsFromArgv, strayWordsOfArgv, suggestCommand } from '@emperor/cli';
import { OPTIONS, findOption, type OptionSpec } from '@emperor/config';

const bool = (n: string): boolean => ['master', 'vacuum'].includes(n);

test('uWSGI-style flags become config options in order, repeats kept', () => {
  const got = optionsFromArgv(
    ['--http-socket', ':8080', '--master', '--env', 'A=1', '--env=B=2', '--processes', '2', '--vacuum', '--ini', 'x.ini', '--module', 'app.js'],
    bool,
  ).map((o) => [o.name, o.value]);
  assert.deepEqual(got, [
    ['http-socket', ':8080'],
    ['master', ''],
    ['env', 'A=1'],
    ['env', 'B=2'],
    ['processes', '2'],
    ['vacuum', ''],
    ['module', 'app.js'],
  ]);
});

test('a non-boolean flag followed by another flag is a bare key', () => {
  const got = optionsFromArgv(['--chmod-socket', '--http-socket', '/tmp/s'], bool).map((o) => [o.name, o.value]);
  assert.deepEqual(got, [
    ['chmod-socket', ''],
    ['http-socket', '/tmp/s'],
  ]);
});

test('a boolean option added to the table becomes a boolean flag, under its name and aliases', () => {
  const added: OptionSpec = { name: 'brand-new-flag', aliases: ['bnf'], scope: 'vassal', group: 'app', type: 'bool', repeatable: false, default: 'false', doc: 'x' };
  const table = [...OPTIONS, added];
  const flags = booleanFlags(table);
  assert.ok(flags.has('brand-new-flag') && flags.has('bnf'));
  assert.ok(!booleanFlags().has('brand-new-flag'), 'not in the real table');
  const argv = ['--brand-new-flag', 'app.ini', '--bnf', '--processes', '2'];
  assert.deepEqual(optionsFromArgv(argv, (n) => flags.has(n)).map((o) => [o.name, o.value]), [
    ['brand-new-flag', ''],
    ['bnf', ''],
    ['processes', '2'],
  ]);
  // Without it in the table, the flag would swallow the file name as its value.
  assert.deepEqual(optionsFromArgv(argv).map((o) => [o.name, o.value])[0], ['brand-new-flag', 'app.ini']);
});

test('the flags are exactly the table\'s bool options, aliases included, and the parser uses them by default', () => {
  for (const spec of OPTIONS) {
    for (const name of [spec.name, ...spec.aliases]) assert.equal(isBooleanFlag(name), spec.type === 'bool', name);
  }
  // The options the hand-kept list had drifted from: missing ones are flags now; json-output is no option at all.
  for (const name of ['enable-threads', 'single-interpreter', 'need-app', 'cheaper-busyness-verbose', 'log-zero', 'log-json', 'log-micros', 'log-x-forwarded-for', 'stats-min']) {
    assert.equal(findOption(name)?.type, 'bool', name);
    assert.ok(isBooleanFlag(name), name);
  }
  assert.equal(findOption('json-output'), undefined);
  assert.ok(!isBooleanFlag('json-output'));
  assert.deepEqual(optionsFromArgv(['--log-json', 'shop.ini', '--need-app', '--processes', '2']).map((o) => [o.name, o.value]), [
    ['log-json', ''],
    ['need-app', ''],
    ['processes', '2'],
  ]);
});

test('stray words are what is neither a flag nor a flag\'s value, read as the flags are (issue 22, point 5)', () => {
  assert.deepEqual(strayWordsOfArgv(['stat', '127.0.0.1:9191'], bool), ['stat', '127.0.0.1:9191']);
  assert.deepEqual(strayWordsOfArgv(['--ini', 'app.ini', '--processes', '2', '--master', 'x.ini'], bool), ['x.ini'], 'a boolean takes no value');
  assert.deepEqual(strayWordsOfArgv(['--env=A=1', '--http-socket', ':80', '-h', 'app.ini'], bool), ['app.ini']);
  assert.deepEqual(strayWordsOfArgv(['--help', 'top'], bool), ['top'], '--help takes no value');
  assert.deepEqual(strayWordsOfArgv(['--emperor', 'dir', '--', 'extra'], bool), []);
});

test('a mistyped command suggests the one it looks like (issue 22, point 5)', () => {
  assert.equal(suggestCommand('stat'), 'stats');
  assert.equal(suggestCommand('chek'), 'check');
  assert.equal(suggestCommand('tpo'), 'top');
  assert.equal(suggestCommand('Top'), 'top');
  assert.equal(suggestCommand('completions'), 'completion');
  assert.equal(suggestCommand('frobnicate'), undefined);
  assert.equal(suggestCommand('x'), undefined);
});
