import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canSetPdeathsig, wrapCommand } from '@emperor/process';

const skip = canSetPdeathsig() ? false : 'needs setpriv (util-linux)';

test('setpriv: user, groups, capabilities and the death signal in one wrapper, outermost', { skip }, () => {
  const [file, args] = wrapCommand('/usr/bin/node', ['master.js', 'a.ini'], {
    pdeathsig: true,
    credentials: { uid: 101, gid: 102, groups: [102, 33] },
    capabilities: [],
  });
  assert.match(file, /\/setpriv$/);
  assert.deepEqual(args, ['--reuid', '101', '--regid', '102', '--groups', '102,33', '--inh-caps', '-all', '--ambient-caps', '-all', '--pdeathsig', 'KILL', '--', '/usr/bin/node', 'master.js', 'a.ini']);
  // Tyrant mode: no supplementary groups. The emperor's own drop: capabilities raised.
  assert.deepEqual(wrapCommand('node', [], { credentials: { uid: 1, gid: 1, groups: [] }, capabilities: ['setgid', 'setuid'], pdeathsig: 'SIGTERM' })[1],
    ['--reuid', '1', '--regid', '1', '--clear-groups', '--inh-caps', '-all,+setgid,+setuid', '--ambient-caps', '-all,+setgid,+setuid', '--pdeathsig', 'TERM', '--', 'node']);
  assert.deepEqual(wrapCommand('node', ['x'], {}), ['node', ['x']], 'nothing asked, no wrapper');
});
