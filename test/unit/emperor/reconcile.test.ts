import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileChanged, reconcile, type Fingerprint, type KnownVassal, type VassalFile } from '@emperor/emperor';

const fp = (over: Partial<Fingerprint> = {}): Fingerprint => ({ dev: 1, ino: 10, mtimeMs: 1000, size: 5, hash: 'aaa', ...over });
const file = (name: string, over: Partial<Fingerprint> = {}): VassalFile => ({
  name, path: `/d/${name}`, format: 'ini', monitor: '/d', fingerprint: fp(over), uid: 0, gid: 0,
});
const known = (f: VassalFile, stopping = false): KnownVassal => ({ name: f.name, file: f, stopping });

test('a touch (same inode, new mtime) and an edit (new content) are changes; an identical copy is not', () => {
  assert.equal(fileChanged(fp(), fp({ mtimeMs: 2000 })), true);
  assert.equal(fileChanged(fp(), fp({ hash: 'bbb', ino: 11 })), true);
  assert.equal(fileChanged(fp(), fp({ ino: 11, mtimeMs: 5000 })), false);
  assert.equal(fileChanged(fp(), fp({ dev: 2, mtimeMs: 5000 })), false);
  assert.equal(fileChanged(fp(), fp()), false);
});

test('new files start, changed files reload, missing files stop, in that order by name', () => {
  const a = file('a.ini');
  const b = file('b.ini');
  const c = file('c.xml');
  const desired = new Map([
    ['b.ini', file('b.ini', { mtimeMs: 2000 })],
    ['c.xml', c],
    ['d.json', file('d.json')],
  ]);
  const running = new Map([
    ['a.ini', known(a)],
    ['b.ini', known(b)],
    ['c.xml', known(c)],
  ]);
  const actions = reconcile(desired, running).map((x) => `${x.kind} ${x.kind === 'stop' ? x.name : x.file.name}`);
  assert.deepEqual(actions, ['stop a.ini', 'reload b.ini', 'start d.json']);
});

test('a rename is a stop of the old name and a start of the new one', () => {
  const old = file('shop.ini');
  const actions = reconcile(new Map([['store.ini', file('store.ini')]]), new Map([['shop.ini', known(old)]]));
  assert.deepEqual(actions.map((a) => a.kind), ['stop', 'start']);
});

test('a vassal already stopping is neither stopped again nor reloaded', () => {
  const a = file('a.ini');
  assert.deepEqual(reconcile(new Map(), new Map([['a.ini', known(a, true)]])), []);
  assert.deepEqual(reconcile(new Map([['a.ini', file('a.ini', { hash: 'new' })]]), new Map([['a.ini', known(a, true)]])), []);
});

test('nothing to do when everything matches', () => {
  const a = file('a.ini');
  assert.deepEqual(reconcile(new Map([['a.ini', a]]), new Map([['a.ini', known(a)]])), []);
});
