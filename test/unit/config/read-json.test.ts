import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigParseError } from '@emperor/config';
import { pairs, parse, throwsExactly } from './helpers.js';

const FILE = 'emperor.d/shop.json';
const json = (text: string) => parse(text, 'json', FILE);
const fails = (text: string, message: string) => throwsExactly(() => json(text), ConfigParseError, `${FILE}:${message}`);

test('JSON: uWSGI value rules; arrays repeat; duplicate keys kept; lines per key and item', () => {
  const raw = json([
    '{',
    '  "other": {"ignored": true},',
    '  "uwsgi": {',
    '    "master": true,',
    '    "vacuum": false, "stats-http": null,',
    '    "processes": 4, "offset": -2,',
    '    "socket": [":8080",',
    '               "/run/s.sock", 3],',
    '    "env": "A=\\u00e9\\n",',
    '    "env": "B=2"',
    '  }',
    '}',
  ].join('\n'));
  assert.deepEqual(pairs(raw), [
    [4, 'master', '1'],
    [5, 'vacuum', '0'],
    [5, 'stats-http', '0'],
    [6, 'processes', '4'],
    [6, 'offset', '-2'],
    [7, 'socket', ':8080'],
    [8, 'socket', '/run/s.sock'],
    [8, 'socket', '3'],
    [9, 'env', 'A=é\n'],
    [10, 'env', 'B=2'],
  ]);
  assert.equal(raw.format, 'json');
});

test('JSON: syntax errors carry the line', () => {
  fails('{"uwsgi": {\n  "master": true,\n}}', '3: expected a quoted key, got "}"');
  fails('{"uwsgi": {\n  "master": tru\n}}', '2: expected a value, got "t"');
  fails('{"uwsgi": {\n  "a": "x"\n  "b": "y"}}', '3: expected "," or "}", got "\\""');
  fails('{"uwsgi": {"a": "unterminated\n', '1: control character in a string; write it as an escape such as \\n');
  fails('{"uwsgi": {"a": "\\q"}}', '1: invalid escape in a string');
  fails('{"uwsgi": {}}\n{}', '2: expected the end of the file, got "{"');
  fails('', '1: expected a value, got the end of the file');
  fails(`{"uwsgi": ${'['.repeat(100)}`, '1: nested more than 64 levels deep');
});

test('JSON: the document must hold an object "uwsgi" of scalars or arrays of scalars', () => {
  fails('[1, 2]', '1: expected an object with an object "uwsgi", got an array');
  fails('{\n"app": {}}', '1: no object "uwsgi"');
  fails('{\n"uwsgi": [1]}', '2: "uwsgi" must be an object, got an array');
  fails('{"uwsgi": {\n"socket": {"port": 80}}}', '2: "socket": expected a string, integer, boolean or null as a value, got an object');
  fails('{"uwsgi": {\n"socket": [":1",\n[":2"]]}}', '3: "socket": expected a string, integer, boolean or null as an array item, got an array');
  fails('{"uwsgi": {\n"harakiri": 1.5}}', '2: "harakiri": expected a string, integer, boolean or null as a value, got the number 1.5');
  fails('{"uwsgi": {\n"harakiri": 1e3}}', '2: "harakiri": expected a string, integer, boolean or null as a value, got the number 1e3');
});
