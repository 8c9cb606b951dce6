/**
 * Security properties: restrictive modes on the sockets and files we create, socket
 * ownership options honoured, no option or placeholder that runs a command, no XML
 * entity expansion, no database password shown.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, freePort, serving, spawnEmperor, startVassal, statsOf, statsUntil, tempDir, waitFor, type EmperorStatsDoc } from '../helpers/index.js';
import { record } from '../helpers/record.js';
import { POSTGRES_MISSING, VASSALS_TABLE, startPostgres } from '../helpers/postgres.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');
const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8);

test('stats sockets are created 0600 by default, for the emperor and for vassals', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  writeFileSync(join(dir, 'a.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nstats = %d%n.stats\n`);
  spawnEmperor(t, ['--emperor', dir, '--emperor-stats', join(dir, 'emperor.stats')]);
  await serving(`http://127.0.0.1:${port}/`);
  await statsOf<EmperorStatsDoc>(join(dir, 'emperor.stats'));
  await statsUntil(join(dir, 'a.stats'), () => true);
  assert.equal(mode(join(dir, 'emperor.stats')), '600');
  assert.equal(mode(join(dir, 'a.stats')), '600');
  record({ area: 'security', what: 'modes of the emperor and vassal stats unix sockets (no option set)', tries: 2, outcome: 'both 0600' });
});

test('unix sockets follow chmod-socket and chown-socket', { skip: process.getuid?.() !== 0 ? 'chown needs root' : false }, async (t) => {
  const v = await startVassal(t, (_p, dir) => `http-socket = ${dir}/app.sock\nmodule = ${APP}\nchmod-socket = 660\nchown-socket = nobody:nogroup`);
  const sock = join(v.dir, 'app.sock');
  // Born with its mode (the master binds under a matching umask); chowned right after.
  await waitFor(() => existsSync(sock) && statSync(sock).uid === 65534, { message: 'the socket, chowned' });
  const st = statSync(sock);
  assert.equal(mode(sock), '660');
  assert.equal(st.uid, 65534);
  assert.equal(st.gid, 65534);
  record({ area: 'security', what: 'chmod-socket = 660, chown-socket = nobody:nogroup on a unix http-socket', tries: 1, outcome: 'socket created 0660, owned by 65534:65534' });
});

test('the scoreboard is never reachable by path: created 0600 and unlinked at once', async (t) => {
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprocesses = 2`);
  const doc = await statsUntil(v.stats, (d) => d.workers.every((w) => w.accepting === 1));
  const links = readdirSync(`/proc/${doc.pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${doc.pid}/fd/${fd}`);
    } catch {
      return '';
    }
  });
  const scoreboard = links.filter((l) => l.includes('emperor-scoreboard'));
  assert.equal(scoreboard.length, 1);
  assert.match(scoreboard[0] ?? '', / \(deleted\)$/);
  record({ area: 'security', what: 'the scoreboard file shared by master and workers', tries: 1, outcome: 'opened 0600 and unlinked before any worker starts: no path to reach it' });
});

test('harakiri-verbose stack files live in a directory private to the master, removed when it stops', async (t) => {
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprocesses = 2\nharakiri = 30\nharakiri-verbose = true`);
  const doc = await statsUntil(v.stats, (d) => d.workers.length === 2 && d.workers.every((w) => w.accepting === 1));
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dirs = readdirSync(base).filter((n) => n.startsWith(`emperor-${doc.pid}-`)).map((n) => join(base, n));
  assert.equal(dirs.length, 1, `one private directory for master ${doc.pid}: ${dirs.join(', ')}`);
  const dir = dirs[0] as string;
  assert.ok(statSync(dir).isDirectory());
  assert.equal(mode(dir), '700');
  assert.equal(statSync(dir).uid, process.getuid?.());
  assert.equal(readdirSync(base).filter((n) => n.startsWith('emperor-stack-')).length, 0, 'no stack file outside it');
  v.proc.child.kill('SIGTERM');
  assert.equal((await v.proc.exited).code, 0);
  assert.ok(!existsSync(dir), 'removed when the vassal stopped');
  record({ area: 'security', what: 'where harakiri-verbose stack files go', tries: 1, outcome: `a directory of the master's own in ${base}, mode 0700, owned by the vassal's uid, removed at stop` });
});

test('no option or placeholder runs a command', async (t) => {
  const dir = tempDir(t);
  const witness = join(dir, 'pwned');
  const port = await freePort();
  const cases = [
    `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nenv = X=@(exec://touch ${witness})\n`,
    `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nexec-as-root = touch ${witness}\nhook-asap = exec:touch ${witness}\n`,
    `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nenv = X=$(touch ${witness})\n`,
  ];
  const outcomes: string[] = [];
  for (const [i, text] of cases.entries()) {
    const file = join(dir, `c${i}.ini`);
    writeFileSync(file, text);
    const proc = spawnEmperor(t, ['--ini', file]);
    // Either the file is refused (one config error, exit 78) or the vassal runs with the
    // command-running options ignored; in no case does anything execute.
    const outcome = await Promise.race([
      proc.exited.then((e) => `refused (exit ${e.code})`),
      serving(`http://127.0.0.1:${port}/`).then(() => 'ran, options ignored'),
    ]);
    outcomes.push(outcome);
    if (outcome.startsWith('refused')) {
      assert.match(outcome, /exit 78/);
      // Refused before anything runs: the command line's one plain error line.
      assert.deepEqual(proc.logs.lines.map((l) => l.raw.startsWith(`emperor: ${file}:`)), [true], proc.logs.tail());
    } else {
      assert.ok(proc.logs.find((l) => l.code === 'unsupported-option' || l.code === 'unset-variable').length >= 1, proc.logs.tail());
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  }
  assert.deepEqual(outcomes, ['refused (exit 78)', 'ran, options ignored', 'refused (exit 78)']);
  assert.ok(!existsSync(witness), 'nothing ran');
  record({ area: 'security', what: '@(exec://...), exec-as-root, hook-asap, $(touch ...) in vassal files', tries: cases.length, outcome: '@() refused (config error); exec/hook options ignored with a warning; $(touch ...) refused as an invalid variable name; no command ran' });
});

test('XML entity expansion is never performed ("billion laughs" is refused)', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'lol.xml');
  const entities = Array.from({ length: 10 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i};`.repeat(10)}">`).join('\n');
  writeFileSync(file, `<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol0 "lol">\n${entities}\n]>\n<uwsgi><http-socket>127.0.0.1:1</http-socket><module>&lol10;</module></uwsgi>\n`);
  const proc = spawnEmperor(t, ['--xml', file]);
  assert.equal((await proc.exited).code, 78);
  // Refused before anything runs: the command line's one plain error line.
  assert.equal(proc.logs.lines.length, 1, proc.logs.tail());
  const line = proc.logs.lines[0]?.raw ?? '';
  assert.match(line, /^emperor: .*lol\.xml:\d+: .*ENTITY/);
  record({ area: 'security', what: 'XML "billion laughs" (10 levels of nested entities)', tries: 1, outcome: 'refused before parsing: entity declarations are never expanded', log: line.replace(/^emperor: /, '') });
});

const pgCleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of pgCleanups.reverse()) await cleanup();
});

test('a pg:// source: its password is in no log line and no stats; row files are 0600 in a 0711 directory', { skip: POSTGRES_MISSING }, async (t) => {
  const db = await startPostgres({ after: (fn) => void pgCleanups.push(fn as () => Promise<void>) });
  await db.createDatabase('fleet');
  await db.sql(VASSALS_TABLE, [], 'fleet');
  await db.sql('CREATE ROLE emperor LOGIN PASSWORD \'Secret-pw-77\'');
  await db.sql('GRANT SELECT ON vassals TO emperor', [], 'fleet');
  const port = await freePort();
  await db.sql('INSERT INTO vassals (name, config) VALUES ($1, $2)', ['shop.ini', `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\n`], 'fleet');
  const stats = join(tempDir(t), 'emperor.stats');
  const value = `pg://host=127.0.0.1 port=${db.port} dbname=fleet user=emperor password=Secret-pw-77`;
  const emperor = spawnEmperor(t, ['--emperor', value, '--emperor-stats', stats]);
  await serving(`http://127.0.0.1:${port}/`);
  const doc = await statsOf<EmperorStatsDoc & { vassals: Array<{ path: string }> }>(stats);
  const path = doc.vassals[0]?.path ?? '';
  const shown = JSON.stringify(doc) + emperor.logs.lines.map((l) => l.raw).join('\n');
  assert.doesNotMatch(shown, /Secret-pw-77/);
  assert.ok(shown.includes(`pg://host=127.0.0.1 port=${db.port} dbname=fleet user=emperor`));
  assert.equal(mode(path), '600');
  assert.equal(mode(join(path, '..')), '711');
  record({
    area: 'security', what: 'a pg:// emperor source with a password in its connection string', tries: 1,
    outcome: 'the password is in no log line and not in stats (emperor, monitor); each row\'s config file is 0600, in a private 0711 directory',
  });
});
