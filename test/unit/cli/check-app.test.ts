/** The permission rule `emperor check` judges another user's access by (issue 22, point 4). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modeString, permits } from '@emperor/cli';

const www = { uid: 33, gid: 33, groups: [33, 4] };
const file = (mode: number, uid = 0, gid = 0) => ({ mode: 0o100000 | mode, uid, gid, isDirectory: false });
const dir = (mode: number, uid = 0, gid = 0) => ({ mode: 0o040000 | mode, uid, gid, isDirectory: true });

test('owner, then group (primary or supplementary), then others: the first class that applies decides', () => {
  assert.equal(permits(file(0o644), www, 4), true, 'others may read');
  assert.equal(permits(file(0o640), www, 4), false, 'not in group root');
  assert.equal(permits(file(0o640, 0, 4), www, 4), true, 'a supplementary group (adm)');
  assert.equal(permits(file(0o044, 33, 33), www, 4), false, 'the owner class applies even when group and others could read');
  assert.equal(permits(dir(0o700), www, 1), false, 'a 0700 home directory');
  assert.equal(permits(dir(0o711), www, 1), true, 'search without listing');
  assert.equal(permits(dir(0o755, 0, 0), { uid: 33, gid: 33, groups: [] }, 5), true);
  assert.equal(permits(file(0o600, 0, 0), { uid: 33, gid: 33, groups: [] }, 4), false, 'tyrant mode: no supplementary groups');
});

test('root reads and searches anything, and runs a file with any execute bit', () => {
  const root = { uid: 0, gid: 0, groups: [] };
  assert.equal(permits(file(0o000, 33), root, 4), true);
  assert.equal(permits(dir(0o000, 33), root, 1), true);
  assert.equal(permits(file(0o644), root, 1), false);
  assert.equal(permits(file(0o744), root, 1), true);
});

test('modes read as ls -l shows them', () => {
  assert.equal(modeString({ mode: 0o040700, isDirectory: () => true }), 'drwx------');
  assert.equal(modeString({ mode: 0o100640, isDirectory: () => false }), '-rw-r-----');
});
