import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HANDOFF_ENV, planEmperorDrop, takeHandoff } from '@emperor/cli';
import { parseConfigText, resolveEmperorConfig, type EmperorConfig } from '@emperor/config';
import { canSetPdeathsig, parseCapabilitySets } from '@emperor/process';
import { InternalError, PrivilegeError } from '@emperor/protocol';

const config = (lines: string): EmperorConfig =>
  resolveEmperorConfig([parseConfigText(`[uwsgi]\nemperor = /etc/uwsgi.d\n${lines}`, '/etc/uwsgi.ini', 'ini')], { env: {} }).config;
const FULL = parseCapabilitySets('CapEff:\t000001ffffffffff\nCapPrm:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n');
const asRoot = { uid: 0, gid: 0, capabilities: FULL };

test('as root with uid: drop to that user and its groups, keeping cap', { skip: canSetPdeathsig() ? false : 'needs setpriv' }, () => {
  const decision = planEmperorDrop(config('uid = nobody\ngid = nogroup\ncap = setgid,setuid\n'), asRoot);
  assert.equal(decision.kind, 'drop');
  if (decision.kind !== 'drop') return;
  assert.deepEqual(decision.plan, { user: 'nobody', uid: 65534, gid: 65534, groups: [65534], capabilities: ['setgid', 'setuid'] });
  const noCap = planEmperorDrop(config('uid = daemon\n'), asRoot);
  assert.deepEqual(noCap.kind === 'drop' ? [noCap.plan.gid, noCap.plan.capabilities] : undefined, [1, []], 'gid: the user\'s primary group; no cap, no capabilities');
});

test('nothing to drop: no uid, uid = root, or already that user (then missing capabilities are named)', () => {
  assert.deepEqual(planEmperorDrop(config(''), asRoot), { kind: 'stay', warnings: [] });
  assert.deepEqual(planEmperorDrop(config('uid = root\ngid = root\ncap = setgid,setuid\n'), asRoot), {
    kind: 'stay', warnings: ['/etc/uwsgi.ini:5: cap: ignored: uid = root keeps the emperor root, with every capability'],
  });
  const asNobody = { uid: 65534, gid: 65534, capabilities: parseCapabilitySets('CapEff:\t0000000000000040\n') };
  const stay = planEmperorDrop(config('uid = nobody\ngid = nogroup\ncap = setgid,setuid\n'), asNobody);
  assert.equal(stay.kind, 'stay');
  assert.match(stay.kind === 'stay' ? stay.warnings.join() : '', /^\/etc\/uwsgi\.ini:5: cap: the emperor already runs as nobody but without setuid; a process that is not root cannot gain capabilities/);
});

test('refused: another user without root, an unknown user, a capability outside the bounding set', () => {
  const asNobody = { uid: 65534, gid: 65534, capabilities: parseCapabilitySets('') };
  assert.throws(() => planEmperorDrop(config('uid = daemon\n'), asNobody), (err: unknown) => err instanceof PrivilegeError &&
    /^\/etc\/uwsgi\.ini:3: uid: daemon: the emperor runs as uid 65534 gid 65534; dropping to another user needs root/.test(err.message));
  assert.throws(() => planEmperorDrop(config('uid = no-such-user-here\n'), asRoot), (err: unknown) => err instanceof PrivilegeError &&
    err.message === '/etc/uwsgi.ini:3: uid: no such user "no-such-user-here": create it (useradd --system --no-create-home no-such-user-here), or fix uid');
  const bounded = { uid: 0, gid: 0, capabilities: parseCapabilitySets('CapEff:\t00000000000000c0\nCapBnd:\t00000000000000c0\n') };
  assert.throws(() => planEmperorDrop(config('uid = nobody\ncap = setuid,net_bind_service\n'), bounded), (err: unknown) => err instanceof PrivilegeError &&
    /^\/etc\/uwsgi\.ini:4: cap: net_bind_service not in the emperor's capability bounding set, so it cannot keep it; .*CapabilityBoundingSet=/.test(err.message));
});

test('the handoff is read once and removed from the environment; anything else there is an internal error', () => {
  const env: NodeJS.ProcessEnv = { [HANDOFF_ENV]: JSON.stringify({ v: 1, config: config('stats = 127.0.0.1:1717\n'), fds: { stats: 3 } }) };
  const handoff = takeHandoff(env);
  assert.deepEqual(handoff?.fds, { stats: 3 });
  assert.deepEqual(handoff?.config.stats, { kind: 'tcp', host: '127.0.0.1', port: 1717 });
  assert.equal(env[HANDOFF_ENV], undefined);
  assert.equal(takeHandoff({}), undefined);
  assert.throws(() => takeHandoff({ [HANDOFF_ENV]: 'x' }), InternalError);
  assert.throws(() => takeHandoff({ [HANDOFF_ENV]: '{"v":2}' }), InternalError);
});
