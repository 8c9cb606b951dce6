import { test } from 'node:test';
import assert from 'node:assert/strict';
import { optionsFromArgv } from '@emperor/cli';

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
