import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { ConfigValueError, EMPEROR_VERSION } from '@emperor/config';
import { parse, throwsExactly } from './helpers.js';

const FILE = '/srv/apps/emperor.d/shop.ini';
const expand = (value: string, file = FILE) => parse(`[uwsgi]\nx = ${value}\n`, 'ini', file).options[0]?.value;

test('per-file magic placeholders', () => {
  assert.equal(expand('%p'), FILE);
  assert.equal(expand('%s'), 'shop.ini');
  assert.equal(expand('%n'), 'shop');
  assert.equal(expand('%e'), 'ini');
  assert.equal(expand('%d'), '/srv/apps/emperor.d/');
  assert.equal(expand('%c'), 'emperor.d');
  assert.equal(expand('%0/%1/%2'), 'srv/apps/emperor.d');
  assert.equal(expand('/run/%n.sock', '/etc/emperor.d/blog.v2.ini'), '/run/blog.v2.sock');
  assert.equal(expand('%n|%e', '/etc/emperor.d/noext'), 'noext|');
});

test('a relative file name is made absolute against the cwd', () => {
  assert.equal(expand('%p', 'emperor.d/shop.ini'), join(process.cwd(), 'emperor.d/shop.ini'));
  assert.equal(expand('%d', 'emperor.d/shop.ini'), `${join(process.cwd(), 'emperor.d')}/`);
});

test('host and process magic placeholders', () => {
  assert.equal(expand('%h'), hostname());
  assert.equal(expand('%k'), String(availableParallelism()));
  assert.equal(expand('%v'), process.cwd());
  assert.equal(expand('%V'), EMPEROR_VERSION);
  assert.equal(expand('%u'), String(process.getuid?.()));
  assert.equal(expand('%U'), userInfo().username);
  assert.equal(expand('%g'), String(process.getgid?.()));
  assert.equal(expand('%G'), spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim());
});

test('%% is a literal %, %( is left for the option pass, a trailing % stays', () => {
  assert.equal(expand('100%%'), '100%');
  assert.equal(expand('%(name) %%(name)'), '%(name) %(name)');
  assert.equal(expand('50%'), '50%');
});

test('unknown magic placeholders are errors (uWSGI expands them to "")', () => {
  throwsExactly(() => expand('/tmp/%z.sock'), ConfigValueError,
    `${FILE}:2: x: unknown magic placeholder "%z" (uWSGI expands it to ""; use %% for a literal %), got "/tmp/%z.sock"`);
  throwsExactly(() => expand('%t'), ConfigValueError,
    `${FILE}:2: x: unknown magic placeholder "%t" (uWSGI expands it to ""; use %% for a literal %), got "%t"`);
  throwsExactly(() => expand('%3'), ConfigValueError, `${FILE}:2: x: %3: the file's directory has fewer than 4 components, got "%3"`);
});

test('magic placeholders apply in XML and JSON values too', () => {
  assert.equal(parse('<uwsgi><socket>/run/%n.sock</socket></uwsgi>', 'xml', '/e/blog.xml').options[0]?.value, '/run/blog.sock');
  assert.equal(parse('{"uwsgi": {"socket": ["/run/%n.sock"]}}', 'json', '/e/api.json').options[0]?.value, '/run/api.sock');
});

test('EMPEROR_VERSION is the version in package.json', () => {
  const root = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(EMPEROR_VERSION, root.version);
});
