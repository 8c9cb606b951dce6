import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lchownSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DirectorySource, GlobSource, createSource, globToRegExp, isGlobPattern } from '@emperor/emperor';
import { tempDir } from '../../helpers/index.js';

const options = { freqMs: 1000, onError: () => {} };
const LATER = Date.now() + 60_000; // past the settle window of every file

test('glob patterns: * ? [set] [!set] and escapes, on file names', () => {
  assert.equal(isGlobPattern('/etc/emperor.d'), false);
  assert.equal(isGlobPattern('/etc/emperor.d/*.ini'), true);
  const re = globToRegExp('shop-?[0-9][!x]*.ini');
  assert.ok(re.test('shop-a1y.ini'));
  assert.ok(re.test('shop-a1yzzz.ini'));
  assert.ok(!re.test('shop-a1x.ini'));
  assert.ok(!re.test('shop-ab1.ini'));
  assert.ok(!re.test('shop-a1y.ini.bak'));
  assert.ok(globToRegExp('a\\*.ini').test('a*.ini'));
  assert.ok(!globToRegExp('a\\*.ini').test('ab.ini'));
  assert.ok(globToRegExp('a.ini').test('a.ini') && !globToRegExp('a.ini').test('axini'));
});

test('a glob source keeps the matching vassal files of its directory, named by file name', (t) => {
  const dir = tempDir(t);
  for (const name of ['a.ini', 'b.ini', 'c.xml', 'notes.txt', '.hidden.ini']) writeFileSync(join(dir, name), '[uwsgi]\n');
  const source = createSource(join(dir, '*.ini'), options);
  assert.ok(source instanceof GlobSource);
  assert.equal(source.monitor, join(dir, '*.ini'));
  assert.deepEqual([...source.scan(LATER).files.keys()].sort(), ['a.ini', 'b.ini']);
  const all = createSource(dir, options);
  assert.ok(all instanceof DirectorySource);
  assert.deepEqual([...all.scan(LATER).files.keys()].sort(), ['a.ini', 'b.ini', 'c.xml']);
});

test('the owner is the target\'s, or the link\'s own when told not to follow links', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'v'));
  writeFileSync(join(dir, 'target.ini'), '[uwsgi]\n'); // root's
  symlinkSync(join(dir, 'target.ini'), join(dir, 'v', 'app.ini'));
  lchownSync(join(dir, 'v', 'app.ini'), 1, 2);
  const follow = new DirectorySource(join(dir, 'v'), options).scan(LATER).files.get('app.ini');
  assert.deepEqual([follow?.uid, follow?.gid], [0, 0]);
  const own = new DirectorySource(join(dir, 'v'), { ...options, ownerOfLink: true }).scan(LATER).files.get('app.ini');
  assert.deepEqual([own?.uid, own?.gid], [1, 2]);
  assert.equal(own?.fingerprint.hash, follow?.fingerprint.hash, 'content is the target\'s either way');
});
