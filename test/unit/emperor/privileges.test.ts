import { test } from 'node:test';
import assert from 'node:assert/strict';
import { currentIdentity, planMasterLaunch, type EmperorIdentity } from '@emperor/emperor';
import { parseCapabilitySets } from '@emperor/process';

const names = (uid: number): string | undefined => ({ 0: 'root', 101: 'nginx', 999: 'uwsgi' } as Record<number, string>)[uid];
const root: EmperorIdentity = { uid: 0, gid: 0, canSwitchUsers: true, capabilities: ['setuid', 'setgid'] };
const keeping: EmperorIdentity = { uid: 999, gid: 999, canSwitchUsers: true, capabilities: ['setgid', 'setuid'] };
const plain: EmperorIdentity = { uid: 999, gid: 999, canSwitchUsers: false, capabilities: [] };
const nginx = { uid: 101, gid: 101, groups: [101, 33] };

test('a root emperor starts masters as root, or with spawn() ids in tyrant mode; no setpriv', () => {
  assert.deepEqual(planMasterLaunch(root, undefined, { file: 'a.ini', nameOf: names }), { ok: true, launch: { spawnIds: undefined, credentials: undefined, capabilities: undefined } });
  assert.deepEqual(planMasterLaunch(root, { uid: 101, gid: 101, groups: [] }, { file: 'a.ini', nameOf: names }), {
    ok: true, launch: { spawnIds: { uid: 101, gid: 101 }, credentials: undefined, capabilities: undefined },
  });
});

test('an emperor keeping setuid/setgid starts each master as its user through setpriv, capabilities cleared', () => {
  assert.deepEqual(planMasterLaunch(keeping, nginx, { file: 'a.ini', nameOf: names }), { ok: true, launch: { spawnIds: undefined, credentials: nginx, capabilities: [] } });
  assert.deepEqual(planMasterLaunch(keeping, undefined, { file: 'a.ini', nameOf: names }), {
    ok: true, launch: { spawnIds: undefined, credentials: undefined, capabilities: [] },
  }, 'a vassal without uid runs as the emperor\'s user, with no capabilities');
});

test('an emperor without them runs vassals as itself only, and refuses another user with the file, both users and the fix', () => {
  assert.deepEqual(planMasterLaunch(plain, { uid: 999, gid: 999, groups: [999] }, { file: 'a.ini', nameOf: names }), {
    ok: true, launch: { spawnIds: undefined, credentials: undefined, capabilities: [] },
  });
  const refused = planMasterLaunch(plain, nginx, { file: '/etc/uwsgi.d/a.ini', nameOf: names });
  assert.equal(refused.ok, false);
  if (refused.ok) return;
  assert.equal(refused.error.code, 'ERR_PRIVILEGE');
  assert.equal(refused.error.message,
    '/etc/uwsgi.d/a.ini: refused: its uid/gid ask to run it as nginx (uid 101 gid 101), but the emperor runs as uwsgi (uid 999 gid 999) without the setuid and setgid capabilities, ' +
    'so it can start vassals only as uwsgi. Add cap = setgid,setuid next to uid in the emperor\'s configuration, or remove uid and gid from this vassal');
  assert.equal(planMasterLaunch(plain, { uid: 999, gid: 33, groups: [33] }, { file: 'a.ini', nameOf: names }).ok, false, 'another group too');
});

test('capability sets from /proc/PID/status; who may switch users', () => {
  const status = 'Name:\tnode\nCapInh:\t00000000000000c0\nCapPrm:\t00000000000000c0\nCapEff:\t00000000000000c0\nCapBnd:\t000001fffeffffff\nCapAmb:\t00000000000000c0\n';
  const sets = parseCapabilitySets(status);
  assert.deepEqual(sets, { inheritable: 0xc0n, permitted: 0xc0n, effective: 0xc0n, bounding: 0x1fffeffffffn, ambient: 0xc0n });
  assert.deepEqual(parseCapabilitySets(''), { inheritable: 0n, permitted: 0n, effective: 0n, bounding: 0n, ambient: 0n });
  const me = currentIdentity(sets);
  assert.deepEqual(me.capabilities, ['setgid', 'setuid']);
  assert.equal(me.canSwitchUsers, true);
  const onlySetuid = currentIdentity(parseCapabilitySets('CapEff:\t0000000000000080\n'));
  assert.equal(onlySetuid.canSwitchUsers, process.getuid?.() === 0, 'setuid without setgid is not enough (root always can)');
});

test('an emperor that dropped its privileges never starts a vassal as root or with root\'s group', () => {
  for (const wanted of [{ uid: 0, gid: 0, groups: [0] }, { uid: 101, gid: 0, groups: [0] }, { uid: 101, gid: 101, groups: [101, 0] }]) {
    const refused = planMasterLaunch(keeping, wanted, { file: '/etc/uwsgi.d/a.ini', nameOf: names });
    assert.equal(refused.ok, false, JSON.stringify(wanted));
    if (!refused.ok) assert.match(refused.error.message, /^\/etc\/uwsgi\.d\/a\.ini: refused: its uid\/gid ask to run it as root .*never starts a vassal as root or with root's group/);
  }
  assert.equal(planMasterLaunch(root, { uid: 0, gid: 0, groups: [] }, { file: 'a.ini', nameOf: names }).ok, true, 'a root emperor: the master drops as it always did');
});
