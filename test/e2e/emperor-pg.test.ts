/**
 * End to end: the built `emperor` with vassals from a PostgreSQL table (uWSGI's
 * emperor-pg), on a throwaway cluster started for this file. `emperor-freq` is 60 s in
 * these tests, so what happens within a test's wait came from a NOTIFY (or a reconnect),
 * not from the periodic query.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  FIXTURES,
  ROOT,
  descendants,
  freePort,
  httpGet,
  isAlive,
  procStatus,
  spawnEmperor,
  statsOf,
  tempDir,
  waitFor,
  type EmperorStatsDoc,
  type Spawned,
} from '../helpers/index.js';
import { POSTGRES_MISSING, VASSALS_TABLE, startPostgres, type Postgres } from '../helpers/postgres.js';

const skip = POSTGRES_MISSING;
const rootSkip = skip !== false ? skip : process.getuid?.() !== 0 ? 'tyrant mode needs root' : false;
const APP = join(FIXTURES, 'apps', 'basic.mjs');
const NOBODY = 65534;
const DAEMON = 1;

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});
let db: Postgres;
before(async () => {
  if (skip === false) db = await startPostgres({ after: (fn) => void cleanups.push(fn as () => Promise<void>) });
});

type VassalDoc = EmperorStatsDoc['vassals'][number] & { monitor: string; path: string };
type EmperorDoc = Omit<EmperorStatsDoc, 'vassals'> & { vassals: VassalDoc[] };

let databases = 0;
/** A fresh database with the vassals table (name, config, ts, uid, gid, host). */
async function fleet(): Promise<string> {
  const name = `e2e${++databases}`;
  await db.createDatabase(name);
  await db.sql(VASSALS_TABLE, [], name);
  return name;
}

function vassalIni(port: number, version: string, extra = ''): string {
  return `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 1\nenv = VERSION=${version}\n${extra}`;
}

/** Inserts (or replaces) a row with a new ts, then notifies. */
async function putRow(database: string, name: string, config: string, extra: { uid?: number; gid?: number; host?: string } = {}): Promise<void> {
  await db.sql(
    `INSERT INTO vassals (name, config, ts, uid, gid, host) VALUES ($1, $2, clock_timestamp(), $3, $4, $5)
     ON CONFLICT (name) DO UPDATE SET config = EXCLUDED.config, ts = EXCLUDED.ts, uid = EXCLUDED.uid, gid = EXCLUDED.gid, host = EXCLUDED.host`,
    [name, config, extra.uid ?? null, extra.gid ?? null, extra.host ?? 'any'],
    database,
  );
  await db.sql('NOTIFY emperor', [], database);
}

function pgEmperor(t: TestContext, value: string, extra: readonly string[] = []): { emperor: Spawned; stats: string } {
  const stats = join(tempDir(t, 'emperor-pg-stats-'), 'emperor.stats');
  const emperor = spawnEmperor(t, ['--emperor', value, '--emperor-freq', '60', '--emperor-stats', stats, ...extra]);
  return { emperor, stats };
}

async function vassal(stats: string, id: string, predicate: (v: VassalDoc) => boolean, message: string): Promise<VassalDoc> {
  return waitFor(async () => {
    const doc = await statsOf<EmperorDoc>(stats);
    const v = doc.vassals.find((x) => x.id === id);
    return v !== undefined && predicate(v) ? v : undefined;
  }, { message: `${id}: ${message}`, timeoutMs: 20_000 });
}

async function vassalIds(stats: string): Promise<string[]> {
  return (await statsOf<EmperorDoc>(stats)).vassals.map((v) => v.id).sort();
}

/** What the vassal on `port` says its VERSION is, once it answers with `want`. */
function answers(port: number, want: string): Promise<string> {
  return waitFor(async () => {
    const r = await httpGet(`http://127.0.0.1:${port}/env?k=VERSION`);
    return r.status === 200 && r.body === want ? r.body : undefined;
  }, { message: `VERSION=${want} on port ${port}`, timeoutMs: 20_000 });
}

async function refused(port: number): Promise<boolean> {
  try {
    await httpGet(`http://127.0.0.1:${port}/`);
    return false;
  } catch {
    return true;
  }
}

test('a row starts a vassal, a new ts reloads it, the same ts does nothing, a deleted row stops it: each on NOTIFY', { skip }, async (t) => {
  const database = await fleet();
  const [pa, pb] = [await freePort(), await freePort()];
  await putRow(database, 'a.ini', vassalIni(pa, 'a1'));
  const value = `pg://host=${db.socketDir} port=${db.port} dbname=${database} user=postgres`;
  const { emperor, stats } = pgEmperor(t, value);
  await answers(pa, 'a1');
  const a = await vassal(stats, 'a.ini', (v) => v.ready === 1, 'ready');
  assert.equal(a.monitor, value);
  const dir = emperor.logs.find((l) => typeof l.dir === 'string')[0]?.dir as string;
  assert.equal(a.path, join(dir, 'a.ini'));
  assert.deepEqual((await statsOf<EmperorDoc>(stats)).emperor, [value]);

  await putRow(database, 'b.xml', `<uwsgi><http-socket>127.0.0.1:${pb}</http-socket><module>${APP}</module><env>VERSION=b1</env></uwsgi>`);
  await answers(pb, 'b1');

  await putRow(database, 'a.ini', vassalIni(pa, 'a2'));
  await answers(pa, 'a2');
  const reloaded = await vassal(stats, 'a.ini', (v) => v.ready === 1 && v.respawns === 1, 'reloaded once');
  assert.equal(reloaded.pid, a.pid, 'a reload, not a restart: the same master');

  // A changed config without a new ts: nothing happens (uWSGI's rule), even when notified.
  await db.sql(`UPDATE vassals SET config = replace(config, 'a2', 'a3') WHERE name = 'a.ini'; NOTIFY emperor`, [], database);
  await db.sql(`DELETE FROM vassals WHERE name = 'b.xml'; NOTIFY emperor`, [], database);
  await waitFor(() => refused(pb), { message: 'b.xml stopped' });
  await waitFor(async () => (await vassalIds(stats)).join() === 'a.ini', { message: 'only a.ini left' });
  assert.equal((await httpGet(`http://127.0.0.1:${pa}/env?k=VERSION`)).body, 'a2');
  assert.equal((await vassal(stats, 'a.ini', () => true, 'still there')).respawns, 1, 'no reload for the same ts');
  assert.equal(emperor.logs.find((l) => l.msg === 'reloading vassal a.ini').length, 1);

  // The row files go with the emperor.
  emperor.child.kill('SIGTERM');
  await emperor.exited;
  assert.throws(() => statSync(dir), /ENOENT/);
});

test('an invalid config in a row: the master\'s one-line error names the row, the vassal waits for a new ts, the others serve on', { skip }, async (t) => {
  const database = await fleet();
  const [pGood, pBad] = [await freePort(), await freePort()];
  await putRow(database, 'good.ini', vassalIni(pGood, 'g1'));
  await putRow(database, 'bad.ini', vassalIni(pBad, 'b1', 'harakiri = ten\n'));
  const { emperor, stats } = pgEmperor(t, `pg://${db.conninfo(database)}`);
  await answers(pGood, 'g1');
  const error = await emperor.logs.waitFor((l) => l.code === 'ERR_CONFIG_VALUE' && l.vassal === 'bad.ini', { message: 'the config error' });
  assert.equal(error.msg, 'bad.ini:6: harakiri: expected whole seconds >= 0, got "ten"');
  const bad = await vassal(stats, 'bad.ini', (v) => v.state === 'config-error', 'config-error');
  assert.equal(bad.pid, -1);
  assert.equal(bad.last_error, 'bad.ini:6: harakiri: expected whole seconds >= 0, got "ten"', 'the master\'s error, naming the row, as last_error');
  const waiting = await emperor.logs.waitFor((l) => /vassal bad\.ini has an invalid config in its row/.test(l.msg ?? ''), { message: 'the emperor\'s line' });
  assert.equal(waiting.msg, `vassal bad.ini has an invalid config in its row of pg://${db.conninfo(database)}; waiting for its ts to change`);

  // A row that cannot be a vassal at all: one line naming it.
  await putRow(database, 'notes.txt', 'x');
  const notes = await emperor.logs.waitFor((l) => l.code === 'ERR_VASSAL_ROW', { message: 'the bad row' });
  assert.match(notes.msg ?? '', /: row "notes\.txt": not a vassal name/);

  // Fixed with a new ts: it starts. Broken again: the reload is abandoned, the old workers serve on.
  await putRow(database, 'bad.ini', vassalIni(pBad, 'b2'));
  await answers(pBad, 'b2');
  await putRow(database, 'bad.ini', vassalIni(pBad, 'b3', 'harakiri = later\n'));
  await emperor.logs.waitFor((l) => l.vassal === 'bad.ini' && /reload abandoned: bad\.ini:6: harakiri/.test(l.msg ?? ''), { message: 'the abandoned reload' });
  assert.equal((await httpGet(`http://127.0.0.1:${pBad}/env?k=VERSION`)).body, 'b2');
  assert.equal((await httpGet(`http://127.0.0.1:${pGood}/env?k=VERSION`)).body, 'g1');
  assert.equal(emperor.logs.find((l) => l.code === 'ERR_VASSAL_ROW').length, 1, 'the bad row is logged once');
});

test('a PostgreSQL restart: every vassal keeps serving, the outage is logged once, and the emperor catches up', { skip }, async (t) => {
  const database = await fleet();
  const [p1, p2] = [await freePort(), await freePort()];
  await putRow(database, 'one.ini', vassalIni(p1, 'one1'));
  await putRow(database, 'two.ini', vassalIni(p2, 'two1'));
  const { emperor } = pgEmperor(t, `pg://${db.conninfo(database)}`);
  await answers(p1, 'one1');
  await answers(p2, 'two1');

  // Clients on both vassals for the whole outage.
  let served = 0;
  const failures: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const port of [p1, p2]) {
        try {
          const r = await httpGet(`http://127.0.0.1:${port}/`);
          if (r.status === 200) served++;
          else failures.push(`${port}: ${r.status}`);
        } catch (err) {
          failures.push(`${port}: ${(err as Error).message}`);
        }
      }
    }
  })();
  t.after(() => {
    running = false;
    return loop;
  });

  await db.stop();
  try {
    const outage = await emperor.logs.waitFor((l) => l.code === 'ERR_VASSAL_SOURCE', { message: 'the outage line' });
    assert.match(outage.msg ?? '', /cannot read the vassals: .*; the 2 vassal\(s\) from it keep running as they are; retrying in/);
    const before = served;
    await waitFor(() => served >= before + 100, { message: '100 more requests answered while the database is down', timeoutMs: 30_000 });
  } finally {
    await db.start();
  }
  const back = await emperor.logs.waitFor((l) => /the database is back after/.test(l.msg ?? ''), { message: 'the line saying it is back', timeoutMs: 30_000 });
  assert.match(back.msg ?? '', /re-reading the vassals$/);
  running = false;
  await loop;
  assert.deepEqual(failures, [], 'no request failed');
  assert.equal(emperor.logs.find((l) => l.code === 'ERR_VASSAL_SOURCE').length, 1, 'the outage is logged once');
  assert.equal(emperor.logs.find((l) => /vassal (one|two)\.ini (stopped|started)/.test(l.msg ?? '')).length, 2, 'no vassal was stopped or restarted (only the two starts)');

  // Listening again: a notified change takes effect.
  await putRow(database, 'two.ini', vassalIni(p2, 'two2'));
  await answers(p2, 'two2');
});

test('a change made while the emperor was disconnected (its notification lost) is applied on reconnect', { skip }, async (t) => {
  const database = await fleet();
  await db.sql('DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = \'emperor\') THEN CREATE ROLE emperor LOGIN PASSWORD \'pw-Emperor-1\'; END IF; END $$');
  await db.sql('GRANT SELECT ON vassals TO emperor', [], database);
  await db.sql(`REVOKE CONNECT ON DATABASE ${database} FROM PUBLIC`);
  await db.sql(`GRANT CONNECT ON DATABASE ${database} TO emperor`);
  const [p1, p2] = [await freePort(), await freePort()];
  await putRow(database, 'kept.ini', vassalIni(p1, 'k1'));
  const value = `pg://host=127.0.0.1 port=${db.port} dbname=${database} user=emperor password=pw-Emperor-1`;
  const { emperor, stats } = pgEmperor(t, value);
  await answers(p1, 'k1');

  await db.sql(`REVOKE CONNECT ON DATABASE ${database} FROM emperor`);
  await db.sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = \'emperor\'');
  await emperor.logs.waitFor((l) => l.code === 'ERR_VASSAL_SOURCE', { message: 'the emperor cut off' });
  await putRow(database, 'kept.ini', vassalIni(p1, 'k2'));
  await putRow(database, 'new.ini', vassalIni(p2, 'n1'));
  assert.equal((await httpGet(`http://127.0.0.1:${p1}/env?k=VERSION`)).body, 'k1');
  await db.sql(`GRANT CONNECT ON DATABASE ${database} TO emperor`);
  await answers(p1, 'k2');
  await answers(p2, 'n1');
  assert.deepEqual(await vassalIds(stats), ['kept.ini', 'new.ini']);

  // The password is in the value, and nowhere in what the emperor shows.
  const shown = `pg://host=127.0.0.1 port=${db.port} dbname=${database} user=emperor`;
  const doc = await statsOf<EmperorDoc>(stats);
  assert.deepEqual(doc.emperor, [shown]);
  assert.deepEqual(doc.vassals.map((v) => v.monitor), [shown, shown]);
  assert.deepEqual(emperor.logs.lines.filter((l) => l.raw.includes('pw-Emperor-1')).map((l) => l.raw), []);
});

test('two emperors with different WHERE clauses on one table each run only their rows; a row moved between them moves', { skip }, async (t) => {
  const database = await fleet();
  const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
  await putRow(database, 'a.ini', vassalIni(pa, 'a'), { host: 'host-a' });
  await putRow(database, 'b.ini', vassalIni(pb, 'b'), { host: 'host-b' });
  await putRow(database, 'c.ini', vassalIni(pc, 'c'), { host: 'host-a' });
  const query = (host: string) => `pg://${db.conninfo(database)};SELECT name, config, EXTRACT(epoch FROM ts) FROM vassals WHERE host = '${host}'`;
  const first = pgEmperor(t, query('host-a'));
  const second = pgEmperor(t, query('host-b'));
  await answers(pa, 'a');
  await answers(pb, 'b');
  await answers(pc, 'c');
  assert.deepEqual(await vassalIds(first.stats), ['a.ini', 'c.ini']);
  assert.deepEqual(await vassalIds(second.stats), ['b.ini']);

  await db.sql(`UPDATE vassals SET host = 'host-b', ts = clock_timestamp() WHERE name = 'c.ini'; NOTIFY emperor`, [], database);
  await waitFor(async () => (await vassalIds(second.stats)).join() === 'b.ini,c.ini', { message: 'c.ini on the second emperor' });
  await waitFor(async () => (await vassalIds(first.stats)).join() === 'a.ini', { message: 'c.ini gone from the first' });
  const moved = await vassal(second.stats, 'c.ini', (v) => v.ready === 1, 'ready on the second emperor');
  assert.ok(descendants(second.emperor.pid).includes(moved.pid));
  await answers(pc, 'c');
});

test('tyrant mode: rows run as their uid and gid columns, uid 0 is refused once naming the row, an owner change restarts', { skip: rootSkip }, async (t) => {
  const database = await fleet();
  const [pOk, pRoot] = [await freePort(), await freePort()];
  await putRow(database, 'ok.ini', vassalIni(pOk, 'ok1'), { uid: NOBODY, gid: NOBODY });
  await putRow(database, 'root.ini', vassalIni(pRoot, 'r1'), { uid: 0, gid: 0 });
  const { emperor, stats } = pgEmperor(t, `pg://${db.conninfo(database)};SELECT name, config, EXTRACT(epoch FROM ts), uid, gid FROM vassals`, ['--emperor-tyrant']);
  const ok = await vassal(stats, 'ok.ini', (v) => v.ready === 1, 'ready');
  await answers(pOk, 'ok1');
  for (const pid of [ok.pid, ...descendants(ok.pid)]) {
    assert.match(procStatus(pid, 'Uid') ?? '', /^65534\s+65534\s+65534\s+65534$/, `uid of ${pid}`);
    assert.match(procStatus(pid, 'Gid') ?? '', /^65534\s+65534\s+65534\s+65534$/, `gid of ${pid}`);
  }
  const file = statSync(ok.path);
  assert.deepEqual([file.uid, file.gid, file.mode & 0o777], [NOBODY, NOBODY, 0o600], 'its row file: the vassal\'s own, 0600');
  const refusal = await emperor.logs.waitFor((l) => l.code === 'ERR_TYRANT', { message: 'root.ini refused' });
  assert.equal(refusal.msg, `row "root.ini" of pg://${db.conninfo(database)};SELECT name, config, EXTRACT(epoch FROM ts), uid, gid FROM vassals: refused: its uid and gid columns say uid 0 (root) gid 0 (root). In tyrant mode a vassal runs as its row's uid and gid, and uid 0 or gid 0 would run it as root; set them to the app's user and group`);
  assert.ok(await refused(pRoot));

  // Reloading ok.ini (a new ts) re-judges root.ini without repeating the refusal.
  await putRow(database, 'ok.ini', vassalIni(pOk, 'ok2'), { uid: NOBODY, gid: NOBODY });
  await answers(pOk, 'ok2');
  assert.equal(emperor.logs.find((l) => l.code === 'ERR_TYRANT').length, 1);

  // A new owner: stopped, started again as that owner.
  await putRow(database, 'ok.ini', vassalIni(pOk, 'ok3'), { uid: DAEMON, gid: DAEMON });
  await emperor.logs.waitFor((l) => /owner changed from uid 65534 gid 65534; stopping vassal ok\.ini/.test(l.msg ?? ''), { message: 'the owner change' });
  const moved = await vassal(stats, 'ok.ini', (v) => v.ready === 1 && v.pid !== ok.pid, 'restarted');
  assert.match(procStatus(moved.pid, 'Uid') ?? '', /^1\s+1\s+1\s+1$/);
  await answers(pOk, 'ok3');
  assert.equal(isAlive(ok.pid), false);

  // uid 0 fixed: it runs.
  await putRow(database, 'root.ini', vassalIni(pRoot, 'r2'), { uid: NOBODY, gid: NOBODY });
  await answers(pRoot, 'r2');
});

test('outside tyrant mode a row file belongs to the user its master drops to, so a reload as that user can read it', { skip: rootSkip }, async (t) => {
  const database = await fleet();
  const port = await freePort();
  await putRow(database, 'drop.ini', vassalIni(port, 'd1', 'uid = nobody\ngid = nogroup\n'));
  const { stats } = pgEmperor(t, `pg://${db.conninfo(database)}`);
  const v = await vassal(stats, 'drop.ini', (x) => x.ready === 1, 'ready');
  await answers(port, 'd1');
  assert.match(procStatus(v.pid, 'Uid') ?? '', /^65534\s/);
  assert.deepEqual([statSync(v.path).uid, statSync(v.path).mode & 0o777], [NOBODY, 0o600]);
  await putRow(database, 'drop.ini', vassalIni(port, 'd2', 'uid = nobody\ngid = nogroup\n'));
  await answers(port, 'd2');
  assert.equal((await vassal(stats, 'drop.ini', () => true, 'same master')).pid, v.pid, 'reloaded in place, by a master that is nobody');
});

/** A system user of our own for an emperor to drop to (removed after the test). */
function addUser(t: TestContext, name: string): { uid: number; gid: number } {
  execFileSync('useradd', ['--system', '--no-create-home', '--user-group', '--shell', '/usr/sbin/nologin', name], { stdio: 'ignore' });
  t.after(() => execFileSync('userdel', ['--force', name], { stdio: 'ignore' }));
  const id = (flag: string): number => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

test('an emperor dropped to its own user: with cap = setgid,setuid a row of another user is refused in one line naming chown; with chown added, its master runs as that user and reloads from its own 0600 file', { skip: rootSkip }, async (t) => {
  const database = await fleet();
  const port = await freePort();
  await putRow(database, 'other.ini', vassalIni(port, 'o1', 'uid = nobody\ngid = nogroup\n'));
  const user = `empg${process.pid}`;
  const me = addUser(t, user);
  // The emperor's runtime directory, its own as systemd's RuntimeDirectory= would be.
  const dir = tempDir(t, 'emperor-pg-priv-');
  chmodSync(dir, 0o755);
  const runtime = join(dir, 'run');
  mkdirSync(runtime, { mode: 0o755 });
  chownSync(runtime, me.uid, me.gid);
  const start = (cap: string, name: string): { emperor: Spawned; stats: string } => {
    const stats = join(dir, `${name}.stats`);
    const ini = join(dir, `${name}.ini`);
    writeFileSync(ini, `[uwsgi]\nuid = ${user}\ncap = ${cap}\nemperor = pg://${db.conninfo(database)}\nemperor-freq = 60\nemperor-stats = ${stats}\n`, { mode: 0o600 });
    return { emperor: spawnEmperor(t, ['--ini', ini], { env: { ...process.env, RUNTIME_DIRECTORY: runtime } }), stats };
  };

  const without = start('setgid,setuid', 'nochown');
  const line = await without.emperor.logs.waitFor((l) => /cannot give it its mode 0600 file/.test(l.msg ?? ''), { message: 'the refusal naming chown', timeoutMs: 30_000 });
  assert.match(line.msg ?? '', new RegExp(`row "other\\.ini": cannot write its file in .*: its master runs as uid ${NOBODY} gid \\d+, but the emperor \\(uid ${me.uid} gid ${me.gid}\\) cannot give it its mode 0600 file: that needs root or the chown capability; add chown to the emperor's cap \\(cap = setgid,setuid,chown\\)`));
  assert.deepEqual(await vassalIds(without.stats), [], 'not started');
  assert.equal(await refused(port), true);
  assert.equal(without.emperor.logs.find((l) => /cannot give it its mode 0600 file/.test(l.msg ?? '')).length, 1, 'logged once');
  without.emperor.child.kill('SIGTERM');
  await without.emperor.exited;

  const withChown = start('setgid,setuid,chown', 'chown');
  const v = await vassal(withChown.stats, 'other.ini', (x) => x.ready === 1, 'ready');
  await answers(port, 'o1');
  assert.match(procStatus(v.pid, 'Uid') ?? '', new RegExp(`^${NOBODY}\\s`), 'the master runs as the row\'s user');
  assert.match(procStatus(v.pid, 'CapEff') ?? '', /^0+$/, 'with no capability');
  assert.deepEqual([statSync(v.path).uid, statSync(v.path).mode & 0o777], [NOBODY, 0o600]);
  assert.equal(v.path.startsWith(`${runtime}/emperor-pg-`), true, v.path);
  await putRow(database, 'other.ini', vassalIni(port, 'o2', 'uid = nobody\ngid = nogroup\n'));
  await answers(port, 'o2');
  assert.equal((await vassal(withChown.stats, 'other.ini', () => true, 'same master')).pid, v.pid, 'reloaded in place, by a master that is nobody');
});

test('a name found in a directory and in the table: one clear error, the running vassal keeps it; it moves once the file goes', { skip }, async (t) => {
  const database = await fleet();
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const [pDir, pRow] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'shop.ini'), vassalIni(pDir, 'from-dir'));
  const stats = join(tempDir(t, 'emperor-pg-stats-'), 'emperor.stats');
  const value = `pg://${db.conninfo(database)}`;
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor', value, '--emperor-freq', '60', '--emperor-stats', stats]);
  await answers(pDir, 'from-dir');
  await putRow(database, 'shop.ini', vassalIni(pRow, 'from-row'));
  await putRow(database, 'other.ini', vassalIni(pRow, 'other'));
  await answers(pRow, 'other');
  const collision = await emperor.logs.waitFor((l) => /already comes from/.test(l.msg ?? ''), { message: 'the collision' });
  assert.equal(collision.level, 50);
  assert.equal(collision.msg, `row "shop.ini" of ${value}: refused: a vassal named shop.ini already comes from ${join(dir, 'shop.ini')}; vassal names must be unique across every emperor source (rename one)`);
  const shop = await vassal(stats, 'shop.ini', (v) => v.ready === 1, 'ready');
  assert.equal(shop.monitor, dir);
  // More scans (a touch of another file, more notifications) do not repeat it.
  await putRow(database, 'other.ini', vassalIni(pRow, 'other2'));
  await answers(pRow, 'other2');
  assert.equal(emperor.logs.find((l) => /already comes from/.test(l.msg ?? '')).length, 1);
  assert.equal((await httpGet(`http://127.0.0.1:${pDir}/env?k=VERSION`)).body, 'from-dir');

  // The file goes: the row's vassal takes the name (stopped, then started from the row).
  await db.sql('DELETE FROM vassals WHERE name = \'other.ini\'; NOTIFY emperor', [], database);
  await waitFor(() => refused(pRow), { message: 'other.ini stopped' });
  unlinkSync(join(dir, 'shop.ini'));
  await answers(pRow, 'from-row');
  const moved = await vassal(stats, 'shop.ini', (v) => v.ready === 1 && v.monitor === value, 'shop.ini from the table');
  assert.notEqual(moved.pid, shop.pid);
  assert.ok(await refused(pDir));
});

test('the row files directory is private; a file\'s name is the row\'s, its owner root (no uid) and mode 0600', { skip: rootSkip }, async (t) => {
  const database = await fleet();
  const port = await freePort();
  await putRow(database, 'plain.ini', vassalIni(port, 'p1'));
  const { stats } = pgEmperor(t, `pg://${db.conninfo(database)}`);
  const v = await vassal(stats, 'plain.ini', (x) => x.ready === 1, 'ready');
  const dirMode = statSync(join(v.path, '..')).mode & 0o777;
  assert.equal(dirMode, 0o711);
  assert.deepEqual([statSync(v.path).uid, statSync(v.path).mode & 0o777], [0, 0o600]);
  // Another user cannot read it (nobody is neither owner nor group).
  const probe = join(tempDir(t), 'probe.mjs');
  writeFileSync(probe, `import { readFileSync } from 'node:fs';\ntry { readFileSync(${JSON.stringify(v.path)}); console.log('read'); } catch (e) { console.log(e.code); }\n`);
  chmodSync(join(probe, '..'), 0o755);
  chownSync(probe, NOBODY, NOBODY);
  const { execFileSync } = await import('node:child_process');
  assert.equal(execFileSync(process.execPath, [probe], { uid: NOBODY, gid: NOBODY, encoding: 'utf8' }).trim(), 'EACCES');
});

/** The emperor query docs/fleet.md gives for per-host rows (`%h` is the host name). */
const FLEET_QUERY = "SELECT DISTINCT ON (name) name, config, EXTRACT(epoch FROM ts), uid, gid FROM vassals WHERE host IN ('%h', '*') ORDER BY name, host = '*'";

test('docs/fleet.md as written: its schema and triggers, its per-host query; a plain UPDATE of a config rolls it out', { skip }, async (t) => {
  const sql = readFileSync(join(ROOT, 'docs', 'fleet', 'vassals.sql'), 'utf8');
  const page = readFileSync(join(ROOT, 'docs', 'fleet.md'), 'utf8');
  assert.ok(page.includes(FLEET_QUERY), 'fleet.md shows the query this test runs');
  const body = sql.split('\n').filter((l) => !l.startsWith('--')).join('\n').trim();
  assert.ok(page.includes(body), 'fleet.md shows docs/fleet/vassals.sql as it is');
  const database = `e2e${++databases}`;
  await db.createDatabase(database);
  await db.sql(sql, [], database);
  const [pShared, pMine, pOther] = [await freePort(), await freePort(), await freePort()];
  const me = hostname();
  await db.sql(`INSERT INTO vassals (name, host, config) VALUES
    ('shared.ini', '*', '${vassalIni(pShared, 'everywhere')}'),
    ('site.ini', '*', '${vassalIni(pMine, 'default')}'),
    ('site.ini', '${me}', '${vassalIni(pMine, 'mine')}'),
    ('other.ini', 'some-other-host', '${vassalIni(pOther, 'theirs')}')`, [], database);
  // From an emperor file, as fleet.md shows it: placeholders such as %h are expanded there.
  const dir = tempDir(t, 'emperor-pg-ini-');
  const stats = join(dir, 'emperor.stats');
  writeFileSync(join(dir, 'emperor.ini'), `[uwsgi]\nemperor = pg://${db.conninfo(database)};${FLEET_QUERY}\nemperor-freq = 60\nemperor-stats = ${stats}\n`);
  const emperor = spawnEmperor(t, ['--ini', join(dir, 'emperor.ini')]);
  await answers(pShared, 'everywhere');
  await answers(pMine, 'mine');
  assert.deepEqual(await vassalIds(stats), ['shared.ini', 'site.ini'], 'this host\'s rows and the shared ones, not another host\'s');
  assert.deepEqual(emperor.logs.find((l) => l.code === 'ERR_VASSAL_ROW'), [], 'the host row wins over the shared one without a duplicate');

  // What an operator types: no ts, no NOTIFY. The triggers do both.
  await db.sql(`UPDATE vassals SET config = replace(config, 'everywhere', 'everywhere-2') WHERE name = 'shared.ini'`, [], database);
  await answers(pShared, 'everywhere-2');
  await db.sql(`DELETE FROM vassals WHERE name = 'site.ini' AND host = '${me}'`, [], database);
  await answers(pMine, 'default');
  await assert.rejects(db.sql(`INSERT INTO vassals (name, config) VALUES ('../x.ini', 'x')`, [], database), /violates check constraint/);
});

test('handover: row vassals survive a SIGKILL of the emperor with their files; the next emperor adopts the same rows (same masters, reloads read the file), stops a row deleted meanwhile and removes its file; a real stop removes the directory', { skip }, async (t) => {
  const database = await fleet();
  const [pa, pb] = [await freePort(), await freePort()];
  await putRow(database, 'a.ini', vassalIni(pa, 'a1'));
  await putRow(database, 'b.ini', vassalIni(pb, 'b1'));
  const value = `pg://host=${db.socketDir} port=${db.port} dbname=${database} user=postgres`;
  const base = tempDir(t, 'emperor-pg-handover-');
  chmodSync(base, 0o755);
  const handover = ['--emperor-runtime-dir', join(base, 'run'), '--emperor-adopt-timeout', '60'];
  const first = pgEmperor(t, value, handover);
  await answers(pa, 'a1');
  await answers(pb, 'b1');
  const a = await vassal(first.stats, 'a.ini', (v) => v.ready === 1, 'ready');
  const b = await vassal(first.stats, 'b.ini', (v) => v.ready === 1, 'ready');
  // The masters outlive the emperor: end them (and their workers) by pid whatever happens.
  t.after(() => {
    for (const pid of [a.pid, b.pid]) {
      for (const p of [pid, ...descendants(pid)]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  });
  const dir = first.emperor.logs.find((l) => typeof l.dir === 'string')[0]?.dir as string;
  assert.equal(a.path, join(dir, 'a.ini'));

  first.emperor.child.kill('SIGKILL');
  await first.emperor.exited;
  assert.ok(statSync(join(dir, 'a.ini')).isFile(), 'the row file outlives a crashed emperor');
  assert.equal((await httpGet(`http://127.0.0.1:${pa}/env?k=VERSION`)).body, 'a1', 'a serves on without an emperor');
  // A row deleted while no emperor listens: its notification is lost.
  await db.sql(`DELETE FROM vassals WHERE name = 'b.ini'`, [], database);

  const second = pgEmperor(t, value, handover);
  await waitFor(() => second.emperor.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('adopted 2 vassal(s)')).length > 0, { message: 'both masters adopted', timeoutMs: 20_000 });
  await waitFor(() => refused(pb), { message: 'b.ini (row deleted) stopped', timeoutMs: 20_000 });
  await waitFor(() => { try { statSync(join(dir, 'b.ini')); return false; } catch { return true; } }, { message: 'b.ini\'s file removed' });
  const adopted = await vassal(second.stats, 'a.ini', (v) => v.ready === 1, 'adopted and ready');
  assert.equal(adopted.pid, a.pid, 'adopted: the same master, not restarted');
  assert.equal(adopted.path, join(dir, 'a.ini'), 'the same row file');
  assert.equal(second.emperor.logs.find((l) => l.msg === 'reloading vassal a.ini').length, 0, 'the same row: no reload');

  // A new ts reloads the adopted master, which re-reads its file.
  await putRow(database, 'a.ini', vassalIni(pa, 'a2'));
  await answers(pa, 'a2');
  assert.equal((await vassal(second.stats, 'a.ini', (v) => v.ready === 1, 'reloaded')).pid, a.pid);

  // A real stop stops the vassals and removes the row files.
  second.emperor.child.kill('SIGTERM');
  await second.emperor.exited;
  assert.equal(isAlive(a.pid), false, 'a real stop stops the adopted master');
  assert.throws(() => statSync(dir), /ENOENT/);
});
