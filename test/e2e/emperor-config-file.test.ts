/**
 * End to end: the emperor run from its own config file (`emperor --ini/--json FILE`),
 * as an operator would: a typical uWSGI emperor.ini as is, vassals-inherit, a glob.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FIXTURES,
  freePort,
  httpGet,
  serving,
  spawnEmperor,
  statsOf,
  tempDir,
  type EmperorStatsDoc,
  type VassalStatsDoc,
} from '../helpers/index.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');

test('a typical uWSGI emperor.ini run as root with uid = root runs as is: options that make no sense here are named once and ignored; vassals-inherit gives defaults; pidfile', async (t) => {
  const dir = tempDir(t);
  copyFileSync(join(FIXTURES, 'emperor', 'uwsgi-emperor.ini'), join(dir, 'emperor.ini'));
  mkdirSync(join(dir, 'vassals'));
  writeFileSync(join(dir, 'defaults.ini'), '[uwsgi]\nprocesses = 3\nenv = FROM_INHERIT=yes\nenv = COLOR=red\n');
  const port = await freePort();
  writeFileSync(join(dir, 'vassals', 'shop.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 1\nenv = COLOR=blue\nstats = %d%n.stats\n`);
  const emperor = spawnEmperor(t, ['--ini', join(dir, 'emperor.ini')]);

  assert.equal(await serving(`http://127.0.0.1:${port}/env?k=FROM_INHERIT`), 'yes', 'inherited option');
  assert.equal(await serving(`http://127.0.0.1:${port}/env?k=COLOR`), 'blue', 'the vassal\'s own value wins');
  const shop = await statsOf<VassalStatsDoc>(join(dir, 'vassals', 'shop.stats'));
  assert.equal(shop.workers.length, 1, 'processes from the vassal, not the inherited 3');

  const doc = await statsOf<EmperorStatsDoc>(join(dir, 'emperor.stats'));
  assert.deepEqual(doc.emperor, [join(dir, 'vassals')]);
  assert.equal(readFileSync(join(dir, 'emperor.pid'), 'utf8'), `${emperor.pid}\n`);
  const warned = (option: string) => emperor.logs.find((l) => l.option === option && l.level === 40);
  // uid = root keeps the emperor root (no warning), so cap has nothing to apply to.
  for (const option of ['plugins', 'master', 'cap', 'vacuum', 'logto', 'log-date', 'thunder-lock', 'auto-procname', 'procname-prefix-spaced']) {
    assert.equal(warned(option).length, 1, `${option} warned once: ${emperor.logs.tail(30)}`);
    assert.match(warned(option)[0]?.msg ?? '', new RegExp(`emperor\\.ini:\\d+: ${option}: .*ignored`));
  }
  assert.equal(emperor.logs.find((l) => l.level !== undefined && l.level >= 50).length, 0, emperor.logs.tail());

  emperor.child.kill('SIGTERM');
  assert.deepEqual(await emperor.exited, { code: 0, signal: null });
  assert.equal(existsSync(join(dir, 'emperor.pid')), false, 'pidfile removed at exit');
});

test('emperor = DIR/PATTERN (JSON config): only matching files are vassals, named by file name', async (t) => {
  const dir = tempDir(t);
  const vassals = join(dir, 'vassals');
  mkdirSync(vassals);
  const [p1, p2] = [await freePort(), await freePort()];
  writeFileSync(join(vassals, 'app-a.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${p1}\nmodule = ${APP}\n`);
  writeFileSync(join(vassals, 'other.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${p2}\nmodule = ${APP}\n`);
  const stats = join(dir, 'emperor.stats');
  writeFileSync(join(dir, 'emperor.json'), JSON.stringify({ uwsgi: { emperor: 'vassals/app-*.ini', 'emperor-stats': stats, 'emperor-freq': 1, 'die-on-term': true } }));
  spawnEmperor(t, ['--json', join(dir, 'emperor.json')]);
  await serving(`http://127.0.0.1:${p1}/`);
  const doc = await statsOf<EmperorStatsDoc>(stats);
  assert.deepEqual(doc.emperor, [join(vassals, 'app-*.ini')]);
  assert.deepEqual(doc.vassals.map((v) => v.id), ['app-a.ini']);

  // A new matching file is picked up at once (the directory is watched).
  const p3 = await freePort();
  writeFileSync(join(vassals, 'app-b.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${p3}\nmodule = ${APP}\n`);
  await serving(`http://127.0.0.1:${p3}/`);
  await assert.rejects(httpGet(`http://127.0.0.1:${p2}/`), 'other.ini never ran');
});

test('wildcards in a directory part are refused with a clear error', async (t) => {
  const dir = tempDir(t);
  const emperor = spawnEmperor(t, ['--emperor', join(dir, '*', 'vassals')]);
  const exit = await emperor.exited;
  assert.equal(exit.code, 78);
  // Nothing runs yet: the command line's own error, one plain line on stderr (not a log record).
  assert.deepEqual(emperor.logs.lines.map((l) => l.raw), [
    `emperor: <command line>: emperor: wildcards are only allowed in the file name part, e.g. /etc/emperor.d/*.ini, got ${JSON.stringify(join(dir, '*', 'vassals'))}`,
  ]);
});

test('stats in the emperor\'s file serves the emperor\'s stats (as uWSGI\'s emperor does); with emperor-stats too, both answer', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'vassals'));
  const port = await freePort();
  writeFileSync(join(dir, 'vassals', 'a.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\n`);
  const tcp = await freePort();
  writeFileSync(join(dir, 'emperor.ini'), `[uwsgi]\nemperor = vassals\nstats = %d/stats.sock\nemperor-stats = 127.0.0.1:${tcp}\n`);
  const emperor = spawnEmperor(t, ['--ini', join(dir, 'emperor.ini')]);
  await serving(`http://127.0.0.1:${port}/`);
  const [unix, inet] = [await statsOf<EmperorStatsDoc>(join(dir, 'stats.sock')), await statsOf<EmperorStatsDoc>(`127.0.0.1:${tcp}`)];
  assert.equal(unix.pid, emperor.pid);
  assert.deepEqual(unix.vassals.map((v) => v.id), ['a.ini']);
  assert.deepEqual(inet.vassals.map((v) => v.id), ['a.ini']);
  assert.equal(emperor.logs.find((l) => l.option === 'stats').length, 0, 'no "vassal option; ignored" warning');
  emperor.child.kill('SIGTERM');
  assert.equal((await emperor.exited).code, 0);
  assert.equal(existsSync(join(dir, 'stats.sock')), false, 'the unix stats socket is removed at exit');
});
