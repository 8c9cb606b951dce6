import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeTyrant, reconcile, type KnownVassal, type VassalFile } from '@emperor/emperor';

const file = (uid: number, gid: number, name = 'shop.ini'): VassalFile => ({
  name, path: `/etc/emperor.d/${name}`, format: 'ini', monitor: '/etc/emperor.d', uid, gid,
  fingerprint: { dev: 1, ino: 1, mtimeMs: 1, size: 1, hash: 'a' },
});
const names = (uid: number, gid: number) => ({ user: uid === 0 ? 'root' : uid === 1000 ? 'shop' : undefined, group: gid === 0 ? 'root' : undefined });

test('uid 0 or gid 0 is refused with the rule, the file and its owner', () => {
  for (const [uid, gid, owner] of [[0, 0, 'uid 0 (root) gid 0 (root)'], [1000, 0, 'uid 1000 (shop) gid 0 (root)'], [0, 1000, 'uid 0 (root) gid 1000']] as const) {
    const verdict = judgeTyrant(file(uid, gid), { emperorUid: 0, emperorGid: 0, nofollow: false, names });
    assert.equal(verdict.ok, false);
    if (verdict.ok) continue;
    assert.equal(verdict.error.code, 'ERR_TYRANT');
    assert.equal(
      verdict.error.message,
      `/etc/emperor.d/shop.ini: refused: it is owned by ${owner}. In tyrant mode a vassal runs as the owner of its file, and a file owned by uid 0 or gid 0 would run as root; chown it to the app's user and group (e.g. chown shop:shop FILE)`,
    );
  }
});

test('any other owner is the identity; without root (or cap = setgid,setuid) only the emperor\'s own user is possible', () => {
  assert.deepEqual(judgeTyrant(file(1000, 1001), { emperorUid: 0, emperorGid: 0, nofollow: false, names }), { ok: true, identity: { uid: 1000, gid: 1001 } });
  assert.deepEqual(judgeTyrant(file(1000, 1001), { emperorUid: 1000, emperorGid: 1001, nofollow: false, names }), { ok: true, identity: { uid: 1000, gid: 1001 } });
  const other = judgeTyrant(file(1002, 1002), { emperorUid: 1000, emperorGid: 1000, nofollow: true, names });
  assert.equal(other.ok, false);
  if (!other.ok) {
    assert.match(other.error.message, /the symlink is owned by uid 1002 gid 1002, but the emperor runs as uid 1000 gid 1000 without the setuid and setgid capabilities, and only root \(or cap = setgid,setuid next to the emperor's uid\) can start a vassal as another user or group/);
  }
  assert.equal(judgeTyrant(file(1000, 1002), { emperorUid: 1000, emperorGid: 1000, nofollow: false, names }).ok, false, 'another group needs root too');
  // An emperor that dropped to a user of its own keeping CAP_SETUID and CAP_SETGID runs any owner but root.
  const kept = { emperorUid: 999, emperorGid: 999, canSwitchUsers: true, nofollow: false, names };
  assert.deepEqual(judgeTyrant(file(1002, 1003), kept), { ok: true, identity: { uid: 1002, gid: 1003 } });
  assert.equal(judgeTyrant(file(0, 1003), kept).ok, false, 'root-owned files are still refused');
});

test('in tyrant mode an owner change is a stop (then a start as the new owner); otherwise it is nothing', () => {
  const before = file(1000, 1000);
  const known = new Map<string, KnownVassal>([['shop.ini', { name: 'shop.ini', file: before, stopping: false }]]);
  const desired = new Map([['shop.ini', file(1001, 1000)]]);
  assert.deepEqual(reconcile(desired, known, { tyrant: true }), [{ kind: 'stop', name: 'shop.ini', reason: 'owner-changed' }]);
  assert.deepEqual(reconcile(desired, known), []);
  const stopping = new Map<string, KnownVassal>([['shop.ini', { name: 'shop.ini', file: before, stopping: true }]]);
  assert.deepEqual(reconcile(desired, stopping, { tyrant: true }), [], 'a vassal already stopping is left alone');
});
