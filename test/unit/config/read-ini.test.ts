import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigParseError } from '@emperor/config';
import { pairs, parse, throwsExactly } from './helpers.js';


test('INI: uWSGI line rules (inline ; and # kept, bare key, first = splits, trimming)', () => {
  const raw = parse([
    '; leading comment',
    '[uwsgi]',
    'socket = :80 ; not a comment',
    'env = COLOR=#fff',
    '  ; comment after spaces',
    '\t# comment after a tab',
    'master',
    'env=A=b=c',
    '  chdir\t=\t/srv/app \r',
    'empty =',
  ].join('\n'));
  assert.deepEqual(pairs(raw), [
    [3, 'socket', ':80 ; not a comment'],
    [4, 'env', 'COLOR=#fff'],
    [7, 'master', ''],
    [8, 'env', 'A=b=c'],
    [9, 'chdir', '/srv/app'],
    [10, 'empty', ''],
  ]);
  assert.equal(raw.format, 'ini');
  assert.equal(raw.file, 'emperor.d/shop.ini');
});

test('INI: repeated keys stay in order; only [uwsgi] sections count (case-sensitive)', () => {
  const raw = parse('socket = a\n[UWSGI]\nsocket = upper\n[uwsgi]\nsocket = b\n[app]\nsocket = other\n[uwsgi]\nsocket = c\n');
  assert.deepEqual(pairs(raw), [[5, 'socket', 'b'], [9, 'socket', 'c']]);
});

test('INI: CRLF line endings and a UTF-8 BOM', () => {
  assert.deepEqual(pairs(parse('\ufeff[uwsgi]\r\nsocket = :1\r\nmaster\r\n')), [[2, 'socket', ':1'], [3, 'master', '']]);
});

test('INI: parse errors carry the line', () => {
  throwsExactly(() => parse('[uwsgi]\nsocket = :1\n[broken\n'), ConfigParseError, 'emperor.d/shop.ini:3: expected "]" at the end of the section header');
  throwsExactly(() => parse('[uwsgi]\n\n = value\n'), ConfigParseError, 'emperor.d/shop.ini:3: expected "key = value", got a line starting with "="');
  throwsExactly(() => parse('[app]\nsocket = :1\n'), ConfigParseError, 'emperor.d/shop.ini: no [uwsgi] section');
});
