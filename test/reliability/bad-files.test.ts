/**
 * The catalogue of bad vassal files: each is dropped into a running emperor's directory
 * beside a good vassal under load, and must reach its documented outcome with a clear
 * log line naming the file (and the option, where there is one), while the good vassal
 * keeps serving every request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { FIXTURES, freePort, httpGet, serving, spawnEmperor, statsOf, tempDir, waitFor, type EmperorStatsDoc, type LogLine } from '../helpers/index.js';
import { record } from '../helpers/record.js';

const NODE_APP = join(FIXTURES, 'apps', 'basic.mjs');

/** What should become of a file. */
type Outcome =
  /** Refused: the vassal waits in `config-error` for its file to change. */
  | 'config-error'
  /** The master cannot get a resource and is respawned with a growing delay. */
  | 'throttled'
  /** The vassal runs (a warning at most). */
  | 'ready'
  /** The master runs, but its worker cannot load the app and is respawned with backoff. */
  | 'app-fails'
  /** The emperor does not start it at all, and says why once. */
  | 'skipped';

interface Case {
  readonly name: string;
  readonly what: string;
  readonly outcome: Outcome;
  /** The line an operator sees; it must mention the file. */
  readonly log: RegExp;
  readonly setup: (dir: string, ports: { free: () => Promise<number>; busy: number }) => Promise<void> | void;
}

const ini = (port: number, extra = '', app = NODE_APP): string => `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${app}\n${extra}`;

const CASES: Case[] = [
  { name: 'empty.ini', what: 'an empty file', outcome: 'config-error', log: /empty\.ini: .*no \[uwsgi\] section/, setup: (d) => writeFileSync(join(d, 'empty.ini'), '') },
  { name: 'junk.ini', what: 'binary junk', outcome: 'config-error', log: /junk\.ini:\d+: .*(NUL|UTF-8)/, setup: (d) => writeFileSync(join(d, 'junk.ini'), Buffer.from([0x5b, 0x00, 0xff, 0xfe, 0x01, 0x02, 0x80, 0x0a, 0x00])) },
  { name: 'wrong-root.xml', what: 'XML with the wrong root element', outcome: 'config-error', log: /wrong-root\.xml:1: expected root element <uwsgi>, got <vassal>/, setup: (d) => writeFileSync(join(d, 'wrong-root.xml'), '<vassal><http-socket>:1</http-socket></vassal>\n') },
  { name: 'not-json.json', what: 'JSON that does not parse', outcome: 'config-error', log: /not-json\.json:\d+: /, setup: (d) => writeFileSync(join(d, 'not-json.json'), '{"uwsgi": {"http-socket": ":1",}\n') },
  { name: 'unknown-option.ini', what: 'an unknown option (a typo)', outcome: 'ready', log: /unknown-option\.ini:4: procesess: unknown option; ignored; did you mean "processes"\?/, setup: async (d, p) => writeFileSync(join(d, 'unknown-option.ini'), ini(await p.free(), 'procesess = 2\n')) },
  { name: 'unsupported.ini', what: 'a uWSGI option Emperor does not implement', outcome: 'ready', log: /unsupported\.ini:4: gevent: is a uWSGI option Emperor does not support; ignored/, setup: async (d, p) => writeFileSync(join(d, 'unsupported.ini'), ini(await p.free(), 'gevent = 100\n')) },
  { name: 'negative.ini', what: 'a negative number', outcome: 'config-error', log: /negative\.ini:4: processes: .*"-2"/, setup: (d) => writeFileSync(join(d, 'negative.ini'), ini(1, 'processes = -2\n')) },
  { name: 'overflow.ini', what: 'an overflowing number', outcome: 'config-error', log: /overflow\.ini:4: processes: .*"99999999999999999999"/, setup: (d) => writeFileSync(join(d, 'overflow.ini'), ini(1, 'processes = 99999999999999999999\n')) },
  { name: 'bad-bool.ini', what: 'a boolean that is not one', outcome: 'config-error', log: /bad-bool\.ini:4: vacuum: .*"maybe"/, setup: (d) => writeFileSync(join(d, 'bad-bool.ini'), ini(1, 'vacuum = maybe\n')) },
  { name: 'bad-port.ini', what: 'a port out of range', outcome: 'config-error', log: /bad-port\.ini:2: http-socket: .*"127\.0\.0\.1:99999"/, setup: (d) => writeFileSync(join(d, 'bad-port.ini'), ini(99999)) },
  { name: 'no-socket.ini', what: 'no socket at all', outcome: 'config-error', log: /no-socket\.ini: no socket/, setup: (d) => writeFileSync(join(d, 'no-socket.ini'), `[uwsgi]\nmodule = ${NODE_APP}\n`) },
  { name: 'no-app.ini', what: 'no app at all', outcome: 'config-error', log: /no-app\.ini: no app/, setup: (d) => writeFileSync(join(d, 'no-app.ini'), '[uwsgi]\nhttp-socket = 127.0.0.1:1\n') },
  { name: 'exec.ini', what: 'a placeholder that would run a command, @(exec://...)', outcome: 'config-error', log: /exec\.ini:4: env: @\(\.\.\.\) is not supported/, setup: (d) => writeFileSync(join(d, 'exec.ini'), ini(1, 'env = X=@(exec://id)\n')) },
  { name: 'small-as.ini', what: 'limit-as too small for a Node worker', outcome: 'config-error', log: /small-as\.ini:4: limit-as: .*1024/, setup: (d) => writeFileSync(join(d, 'small-as.ini'), ini(1, 'limit-as = 128\n')) },
  { name: 'big.ini', what: 'a 10 MB file', outcome: 'config-error', log: /big\.ini: .*(1 MiB|1048576)/, setup: (d) => writeFileSync(join(d, 'big.ini'), `[uwsgi]\n${'; padding\n'.repeat(1_100_000)}`) },
  { name: 'deep.xml', what: 'deeply nested XML', outcome: 'config-error', log: /deep\.xml: not accepted by the XML parser: Maximum nested tags exceeded/, setup: (d) => writeFileSync(join(d, 'deep.xml'), `<uwsgi>${'<a>'.repeat(20_000)}${'</a>'.repeat(20_000)}</uwsgi>`) },
  { name: 'lol.xml', what: 'XML entity expansion ("billion laughs")', outcome: 'config-error', log: /lol\.xml:\d+: entity declarations \(<!ENTITY\) are refused/, setup: (d) => writeFileSync(join(d, 'lol.xml'), `<?xml version="1.0"?>\n<!DOCTYPE l [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;">]>\n<uwsgi><module>&b;</module></uwsgi>\n`) },
  { name: 'no-uid.ini', what: 'a uid that does not exist', outcome: 'throttled', log: /uid "no-such-user-x": no such user/, setup: async (d, p) => writeFileSync(join(d, 'no-uid.ini'), ini(await p.free(), 'uid = no-such-user-x\n')) },
  { name: 'no-gid.ini', what: 'a gid that does not exist', outcome: 'throttled', log: /gid "no-such-group-x": no such group/, setup: async (d, p) => writeFileSync(join(d, 'no-gid.ini'), ini(await p.free(), 'gid = no-such-group-x\n')) },
  { name: 'port-in-use.ini', what: 'a port another process listens on', outcome: 'throttled', log: /port-in-use\.ini:2: http-socket: 127\.0\.0\.1:\d+: cannot bind: address already in use/, setup: (d, p) => writeFileSync(join(d, 'port-in-use.ini'), ini(p.busy)) },
  { name: 'missing-dir.ini', what: 'a unix socket in a directory that does not exist', outcome: 'throttled', log: /missing-dir\.ini:2: http-socket: .*cannot bind: the directory does not exist/, setup: (d) => writeFileSync(join(d, 'missing-dir.ini'), `[uwsgi]\nhttp-socket = ${d}/no/such/dir/app.sock\nmodule = ${NODE_APP}\n`) },
  { name: 'no-module.ini', what: 'a module that does not exist', outcome: 'app-fails', log: /cannot load app .*does-not-exist\.mjs: Cannot find module/, setup: async (d, p) => writeFileSync(join(d, 'no-module.ini'), ini(await p.free(), '', '/nonexistent/does-not-exist.mjs')) },
  { name: 'throws.ini', what: 'a module that throws at import', outcome: 'app-fails', log: /cannot load app .*throws-at-import\.mjs: this app is broken at import/, setup: async (d, p) => writeFileSync(join(d, 'throws.ini'), ini(await p.free(), '', join(FIXTURES, 'apps', 'throws-at-import.mjs'))) },
  {
    name: 'py-syntax.ini', what: 'a Python app with a syntax error', outcome: 'app-fails', log: /SyntaxError/,
    setup: async (d, p) => {
      writeFileSync(join(d, 'broken_app.py'), 'def application(environ, start_response)\n    return []\n');
      writeFileSync(join(d, 'py-syntax.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${await p.free()}\nplugin = python3\nwsgi-file = %dbroken_app.py\n`);
    },
  },
  { name: 'py-missing.ini', what: 'a Python module that does not exist', outcome: 'app-fails', log: /No module named 'no_such_module_x'/, setup: async (d, p) => writeFileSync(join(d, 'py-missing.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${await p.free()}\nplugin = python3\nmodule = no_such_module_x\n`) },
  { name: 'app.yml', what: 'a YAML vassal file', outcome: 'skipped', log: /app\.yml: YAML vassal files are not supported/, setup: (d) => writeFileSync(join(d, 'app.yml'), 'uwsgi:\n  http-socket: :1\n') },
  {
    name: 'loop-a.ini', what: 'a symlink loop', outcome: 'skipped', log: /loop-a\.ini: symlink loop \(ELOOP\)/,
    setup: (d) => {
      symlinkSync(join(d, 'loop-b.ini'), join(d, 'loop-a.ini'));
      symlinkSync(join(d, 'loop-a.ini'), join(d, 'loop-b.ini'));
    },
  },
  { name: 'dangling.ini', what: 'a symlink to nothing', outcome: 'skipped', log: /dangling\.ini: dangling symlink/, setup: (d) => symlinkSync(join(d, 'nowhere', 'x.ini'), join(d, 'dangling.ini')) },
  { name: 'dir.ini', what: 'a directory named like a vassal file', outcome: 'skipped', log: /dir\.ini: not a regular file \(a directory\)/, setup: (d) => mkdirSync(join(d, 'dir.ini')) },
  { name: 'with space.ini', what: 'a name with spaces', outcome: 'ready', log: /vassal with space\.ini started/, setup: async (d, p) => writeFileSync(join(d, 'with space.ini'), ini(await p.free())) },
  { name: 'new\nline.ini', what: 'a name with a newline', outcome: 'skipped', log: /new\nline\.ini: the file name contains a control character/, setup: async (d, p) => writeFileSync(join(d, 'new\nline.ini'), ini(await p.free())) },
  { name: 'café-ünïcode.ini', what: 'a non-ASCII name', outcome: 'ready', log: /vassal café-ünïcode\.ini started/, setup: async (d, p) => writeFileSync(join(d, 'café-ünïcode.ini'), ini(await p.free())) },
  { name: 'crlf.ini', what: 'CRLF line endings (a file from Windows)', outcome: 'ready', log: /vassal crlf\.ini started/, setup: async (d, p) => writeFileSync(join(d, 'crlf.ini'), ini(await p.free()).replaceAll('\n', '\r\n')) },
];

/** The emperor's state names that each outcome allows. */
const STATES: Record<Exclude<Outcome, 'skipped'>, readonly string[]> = {
  'config-error': ['config-error'],
  throttled: ['throttled', 'cursed'],
  ready: ['ready'],
  'app-fails': ['starting'],
};

test('every file in the catalogue reaches its documented outcome with a clear line; the good vassal keeps serving', async (t) => {
  const dir = tempDir(t);
  const goodPort = await freePort();
  writeFileSync(join(dir, 'good.ini'), ini(goodPort, 'processes = 2\n'));
  const busy = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => busy.once('listening', r));
  t.after(() => busy.close());
  const busyPort = (busy.address() as { port: number }).port;
  const emperorStats = join(dir, 'emperor.stats');
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-stats', emperorStats, '--emperor-freq', '1']);
  await serving(`http://127.0.0.1:${goodPort}/`);

  let stop = false;
  let served = 0;
  const failures: string[] = [];
  const client = (async () => {
    while (!stop) {
      try {
        const r = await httpGet(`http://127.0.0.1:${goodPort}/`);
        if (r.status === 200) served++;
        else failures.push(`status ${r.status}`);
      } catch (err) {
        failures.push(String((err as Error).cause ?? err));
      }
    }
  })();

  for (const c of CASES) await c.setup(dir, { free: freePort, busy: busyPort });

  const logged = (c: Case): LogLine[] => emperor.logs.find((l) => c.log.test(l.msg ?? ''));
  let missing: string[] = [];
  const doc = await waitFor(async () => {
    const s = await statsOf<EmperorStatsDoc>(emperorStats);
    const states = new Map(s.vassals.map((v) => [v.id, v.state]));
    missing = CASES.filter((c) =>
      logged(c).length === 0 || (c.outcome === 'skipped' ? states.has(c.name) : !STATES[c.outcome].includes(states.get(c.name) ?? 'absent')),
    ).map((c) => `${c.name} (${states.get(c.name) ?? 'absent'}, ${logged(c).length} lines)`);
    return missing.length === 0 ? s : undefined;
  }, { timeoutMs: 30_000, message: 'every case at its outcome' }).catch((err: Error) => {
    throw new Error(`${err.message}\nmissing: ${missing.join('; ')}\nlast log lines:\n${emperor.logs.tail(40)}`);
  });
  stop = true;
  await client;

  assert.deepEqual(failures, [], 'the good vassal never failed a request');
  assert.ok(served > 50, `the good vassal served ${served} requests meanwhile`);
  assert.equal(doc.vassals.find((v) => v.id === 'good.ini')?.state, 'ready');
  for (const c of CASES) {
    const lines = logged(c);
    // A config error or a skip is reported once; failing masters and workers report each attempt.
    if (c.outcome === 'config-error' || c.outcome === 'skipped') assert.equal(lines.length, 1, `${c.name}: one line, got ${lines.length}: ${lines.map((l) => l.msg).join(' | ')}`);
    const line = lines[0]?.msg ?? '';
    assert.ok(!line.includes('\n') || c.name.includes('\n'), `${c.name}: one line`);
    const state = doc.vassals.find((v) => v.id === c.name)?.state ?? 'not started';
    // The emperor's stats show the error itself, as the master logged it (issue 22, point 3).
    if (c.outcome === 'config-error') assert.match(doc.vassals.find((v) => v.id === c.name)?.last_error ?? '', c.log, `${c.name}: last_error`);
    record({ area: 'bad file', what: c.what, tries: 1, outcome: describe(c.outcome, state), log: line.replaceAll(dir, '…') });
  }
});

function describe(outcome: Outcome, state: string): string {
  switch (outcome) {
    case 'config-error':
      return `not started; waits for the file to change (state ${state}); others unaffected`;
    case 'throttled':
      return `master exits (69), respawned with a growing delay (state ${state}); others unaffected`;
    case 'ready':
      return `runs (state ${state})`;
    case 'app-fails':
      return `master runs; the worker exits 22 and is respawned with a growing delay (state ${state}); others unaffected`;
    case 'skipped':
      return 'not started; reported once until it changes';
    default: {
      const never: never = outcome;
      return never;
    }
  }
}

test('an unreadable vassal file is one clear error for that vassal', { skip: process.getuid?.() !== 0 ? 'needs root to start the emperor as nobody' : false }, async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'secret.ini'), ini(1));
  chmodSync(join(dir, 'secret.ini'), 0o000);
  const emperorStats = join(dir, 'e.stats');
  // The emperor (and so the master) runs as nobody, who may not read the root-owned file.
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-stats', `127.0.0.1:${await freePort()}`], { uid: 65534, gid: 65534 });
  void emperorStats;
  const line = await emperor.logs.waitFor((l) => /secret\.ini: .*(permission denied|EACCES)/i.test(l.msg ?? ''), { message: 'the unreadable file reported' });
  record({ area: 'bad file', what: 'an unreadable file (mode 000, emperor not root)', tries: 1, outcome: 'not started; waits for the file to change', log: (line.msg ?? '').replaceAll(dir, '…') });
});
