import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EmperorError } from '@emperor/protocol';
import { ConfigError, ConfigParseError, ConfigReadError, ConfigValueError, formatWarning } from '@emperor/config';

test('each config error has its literal code, name, location and cause', () => {
  const cause = new Error('low level');
  const read = new ConfigReadError({ file: 'a.ini', line: 0 }, 'cannot read: no such file', { cause });
  const parse = new ConfigParseError({ file: 'b.xml', line: 3 }, 'expected closing tag </socket>, got </uwsgi>');
  const value = new ConfigValueError({ file: 'c.ini', line: 7, option: 'harakiri', value: 'ten', expected: 'whole seconds >= 0' });
  assert.deepEqual([read.code, parse.code, value.code], ['ERR_CONFIG_READ', 'ERR_CONFIG_PARSE', 'ERR_CONFIG_VALUE']);
  assert.deepEqual([read.name, parse.name, value.name], ['ConfigReadError', 'ConfigParseError', 'ConfigValueError']);
  assert.ok(read instanceof EmperorError && parse instanceof EmperorError && value instanceof EmperorError);
  assert.ok(read instanceof ConfigError && parse instanceof ConfigError && value instanceof ConfigError);
  assert.equal(read.cause, cause);
  assert.equal(read.message, 'a.ini: cannot read: no such file');
  assert.equal(parse.message, 'b.xml:3: expected closing tag </socket>, got </uwsgi>');
  assert.deepEqual([parse.file, parse.line], ['b.xml', 3]);
  assert.equal(value.message, 'c.ini:7: harakiri: expected whole seconds >= 0, got "ten"');
  assert.deepEqual([value.file, value.line, value.option, value.value, value.expected], ['c.ini', 7, 'harakiri', 'ten', 'whole seconds >= 0']);
});

test('value errors quote the value as JSON and cut it to about 60 characters', () => {
  const long = `${'x'.repeat(100)}\nmore`;
  const err = new ConfigValueError({ file: 'c.ini', line: 1, option: 'chdir', value: long, expected: 'a path' });
  assert.equal(err.message, `c.ini:1: chdir: expected a path, got "${'x'.repeat(59)}…"`);
  const control = new ConfigValueError({ file: 'c.ini', line: 1, option: 'chdir', value: 'a\nb\u2028c', expected: 'a path' });
  assert.equal(control.message, 'c.ini:1: chdir: expected a path, got "a\\nb\\u2028c"');
  assert.ok(!control.message.includes('\n'));
});

test('a missing option has no "got" part, and a subject may replace the option name', () => {
  const err = new ConfigValueError({
    file: 'shop.ini', line: 0, option: 'module', value: undefined, expected: 'module or wsgi-file', subject: 'no app', problem: 'set module',
  });
  assert.equal(err.message, 'shop.ini: no app: set module');
  assert.equal(err.value, undefined);
});

test('control characters in a file name cannot split the message', () => {
  const err = new ConfigParseError({ file: 'bad\nname.ini', line: 2 }, 'oops');
  assert.equal(err.message, 'bad\\u000aname.ini:2: oops');
});

test('formatWarning prints file:line: option: message', () => {
  const warning = { file: 'emperor.d/shop.ini', line: 4, code: 'unknown-option', option: 'harakiry', message: 'unknown option' } as const;
  assert.equal(formatWarning(warning), 'emperor.d/shop.ini:4: harakiry: unknown option');
  assert.equal(formatWarning({ ...warning, file: '<command line>', line: 0 }), '<command line>: harakiry: unknown option');
});
