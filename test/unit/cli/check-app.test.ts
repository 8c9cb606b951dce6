/** The permission rule `emperor check` judges another user's access by (issue 22, point 4). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, constants, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accessAs, modeString, permits } from '@emperor/cli';

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

test('accessAs: another user\'s access(2), from the mode bits of the path and of every directory on the way', (t) => {
  const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, groups: [], name: 'me' };
  const dir = mkdtempSync(join(tmpdir(), 'access-as-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  const closed = join(dir, 'closed');
  mkdirSync(closed, { mode: 0o700 });
  chmodSync(closed, 0o700);
  writeFileSync(join(closed, 'python3'), '', { mode: 0o755 });
  writeFileSync(join(dir, 'python3'), '', { mode: 0o755 });
  writeFileSync(join(dir, 'secret'), '', { mode: 0o600 });
  chmodSync(join(dir, 'secret'), 0o600);
  // A symlink in an open directory whose target is inside the closed one: the kernel walks the target's way too.
  symlinkSync(join(closed, 'python3'), join(dir, 'link'));
  // Someone who owns none of these files and is in none of their groups.
  const other = { uid: me.uid + 12345, gid: me.gid + 12345, groups: [], name: 'other' };
  const as = accessAs(other);
  assert.equal(as(join(dir, 'python3'), constants.X_OK), undefined);
  assert.equal(as(join(closed, 'python3'), constants.X_OK), 'EACCES', 'a directory on the way it cannot search');
  assert.equal(as(join(dir, 'link'), constants.X_OK), 'EACCES', 'through a symlink into it');
  assert.equal(as(join(dir, 'secret'), constants.R_OK), 'EACCES');
  assert.equal(as(join(dir, 'missing'), constants.F_OK), 'ENOENT');
  // The check's own user: the kernel answers.
  assert.equal(accessAs(me)(join(dir, 'python3'), constants.X_OK), undefined);
  assert.equal(accessAs(me)(join(dir, 'missing'), constants.F_OK), 'ENOENT');
});
