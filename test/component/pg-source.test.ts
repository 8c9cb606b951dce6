/**
 * The PostgreSQL vassal source on its own, against a real throwaway cluster (no vassal
 * processes): what it reads, the row files it writes, when it re-reads, what an outage
 * and a failing query look like, and where the password comes from.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PgSource, type PgSourceOptions, type VassalFile } from '@emperor/emperor';
import { createLogger } from '@emperor/process';
import { tempDir, waitFor, type LogLine } from '../helpers/index.js';
import { POSTGRES_MISSING, VASSALS_TABLE, startPostgres, type Postgres } from '../helpers/postgres.js';

const skip = POSTGRES_MISSING;
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});
let db: Postgres;
before(async () => {
  if (skip === false) db = await startPostgres({ after: (fn) => void cleanups.push(fn as () => Promise<void>) });
});

let databases = 0;
/** A fresh database with uWSGI's vassals table, and a role `emperor` that may read it (over TCP, with a password). */
async function fleet(): Promise<string> {
  const name = `fleet${++databases}`;
  await db.createDatabase(name);
  await db.sql(VASSALS_TABLE, [], name);
  await db.sql('DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = \'emperor\') THEN CREATE ROLE emperor LOGIN PASSWORD \'pw-Emperor-1\'; END IF; END $$');
  await db.sql('GRANT SELECT ON vassals TO emperor', [], name);
  return name;
}

interface Started {
  readonly source: PgSource;
  readonly lines: LogLine[];
  /** How many times `change` was emitted. */
  changes(): number;
  files(): Map<string, VassalFile>;
}

/** A source on `value`, logging into `lines` (debug level), closed after the test. */
function startSource(t: TestContext, value: string, options: Partial<PgSourceOptions> = {}): Started {
  const lines: LogLine[] = [];
  const logger = createLogger({ role: 'emperor' }, { level: 'debug', style: 'json', destination: { write: (line: string) => void lines.push({ ...(JSON.parse(line) as object), raw: line }) } });
  const source = new PgSource(value, { freqMs: 60_000, channel: 'emperor', tyrant: false, inherit: [], logger, runtimeBase: tempDir(t), ...options });
  let changes = 0;
  source.on('change', () => void changes++);
  t.after(() => source.close());
  source.start();
  return { source, lines, changes: () => changes, files: () => source.scan().files };
}

const line = (started: Started, pattern: RegExp, message: string) =>
  waitFor(() => started.lines.find((l) => pattern.test(l.msg ?? '')), { message: `${message} (last lines: ${started.lines.slice(-4).map((l) => l.msg).join(' | ')})`, timeoutMs: 20_000 });

test('rows become vassal files: mode 0600 in a private directory, named by the row, versioned by ts', { skip }, async (t) => {
  const name = await fleet();
  await db.sql('INSERT INTO vassals (name, config, ts) VALUES ($1, $2, to_timestamp(1700000000.25)), ($3, $4, to_timestamp(1700000001))', ['shop.ini', '[uwsgi]\nv = 1\n', 'blog.xml', '<uwsgi/>'], name);
  const started = startSource(t, `pg://${db.conninfo(name)}`);
  const files = await waitFor(() => started.files().size === 2 && started.files(), { message: 'two vassals' });
  const shop = files.get('shop.ini') as VassalFile;
  assert.equal(shop.kind, 'row');
  assert.equal(shop.format, 'ini');
  assert.equal(shop.monitor, `pg://${db.conninfo(name)}`);
  assert.equal(shop.path, join(started.source.directory as string, 'shop.ini'));
  assert.equal(shop.fingerprint.hash, 'ts 1700000000.250000', 'the text PostgreSQL sent');
  assert.equal(shop.fingerprint.mtimeMs, 1_700_000_000_250);
  assert.equal(readFileSync(shop.path, 'utf8'), '[uwsgi]\nv = 1\n');
  assert.equal(statSync(shop.path).mode & 0o777, 0o600);
  assert.equal(statSync(started.source.directory as string).mode & 0o777, 0o711);
  assert.equal(files.get('blog.xml')?.format, 'xml');
  assert.equal(started.changes(), 1);
  assert.equal(started.source.state, 'connected');
});

test('a NOTIFY re-reads at once (emperor-freq is 60 s); an unchanged ts changes nothing; a deleted row goes', { skip }, async (t) => {
  const name = await fleet();
  await db.sql('INSERT INTO vassals (name, config, ts) VALUES ($1, $2, to_timestamp(10))', ['a.ini', 'v1'], name);
  const started = startSource(t, `pg://${db.conninfo(name)}`);
  const a = await waitFor(() => started.files().get('a.ini'), { message: 'a.ini' });
  await db.sql('UPDATE vassals SET config = \'v2 without a new ts\'; NOTIFY emperor', [], name);
  await db.sql('INSERT INTO vassals (name, config, ts) VALUES (\'b.ini\', \'b\', to_timestamp(10)); NOTIFY emperor', [], name);
  await waitFor(() => started.files().has('b.ini'), { message: 'b.ini after the NOTIFY' });
  assert.equal(started.changes(), 2, 'the first NOTIFY (same ts) emitted nothing');
  assert.equal(readFileSync(a.path, 'utf8'), 'v1', 'the same ts: the file was not rewritten');
  assert.equal(started.files().get('a.ini'), a);

  await db.sql('UPDATE vassals SET ts = to_timestamp(11) WHERE name = \'a.ini\'; NOTIFY emperor', [], name);
  await waitFor(() => started.files().get('a.ini')?.fingerprint.hash === 'ts 11.000000', { message: 'the new ts' });
  assert.equal(readFileSync(a.path, 'utf8'), 'v2 without a new ts');
  await db.sql('DELETE FROM vassals WHERE name = \'a.ini\'; NOTIFY emperor', [], name);
  await waitFor(() => !started.files().has('a.ini'), { message: 'a.ini gone' });
  assert.throws(() => statSync(a.path), /ENOENT/, 'its file is removed');
  assert.equal(started.changes(), 4);
});

test('the query also runs every emperor-freq, without a notification', { skip }, async (t) => {
  const name = await fleet();
  const started = startSource(t, `pg://${db.conninfo(name)}`, { freqMs: 300 });
  await line(started, /connected to/, 'the connection');
  await db.sql('INSERT INTO vassals (name, config) VALUES (\'late.ini\', \'x\')', [], name);
  await waitFor(() => started.files().has('late.ini'), { message: 'late.ini from the periodic query' });
});

test('an outage: logged once, retried with a growing delay, logged once when back; the vassals stay meanwhile', { skip }, async (t) => {
  const name = await fleet();
  await db.sql('INSERT INTO vassals (name, config) VALUES (\'a.ini\', \'x\')', [], name);
  const started = startSource(t, `pg://${db.conninfo(name)}`);
  await waitFor(() => started.files().has('a.ini'), { message: 'a.ini' });
  const path = started.files().get('a.ini')?.path as string;
  await db.stop();
  try {
    const outage = await line(started, /cannot read the vassals/, 'the outage line');
    assert.equal(outage.code, 'ERR_VASSAL_SOURCE');
    assert.equal(outage.level, 50);
    assert.match(outage.msg ?? '', /: cannot read the vassals: .*; the 1 vassal\(s\) from it keep running as they are; retrying in \d\.\d s, then with a growing delay up to 5 s/);
    const retries = await waitFor(() => {
      const found = started.lines.filter((l) => /still cannot connect/.test(l.msg ?? ''));
      return found.length >= 3 && found;
    }, { message: 'three more failed attempts', timeoutMs: 20_000 });
    const delays = retries.map((l) => Number(/retrying in ([\d.]+) s/.exec(l.msg ?? '')?.[1]));
    assert.ok((delays[2] as number) > (delays[0] as number), `the delay grows: ${delays.join(', ')}`);
    assert.deepEqual([...started.files().keys()], ['a.ini'], 'an unreachable database is not "every row deleted"');
    assert.equal(readFileSync(path, 'utf8'), 'x');
    assert.equal(started.source.state === 'retrying' || started.source.state === 'connecting', true);
  } finally {
    await db.start();
  }
  const back = await line(started, /the database is back after/, 'the line saying it is back');
  assert.match(back.msg ?? '', /the database is back after \d+\.\d s \(\d+ failed attempt\(s\)\); re-reading the vassals/);
  assert.equal(started.lines.filter((l) => l.level !== undefined && l.level >= 40).length, 1, 'one warning-or-worse line for the whole outage');
  await db.sql('UPDATE vassals SET ts = now() + interval \'1 minute\'; NOTIFY emperor', [], name);
  await waitFor(() => started.changes() === 2, { message: 'LISTEN again after the reconnection' });
});

test('a change made while the source was disconnected is read on reconnection, without any notification', { skip }, async (t) => {
  const name = await fleet();
  await db.sql('INSERT INTO vassals (name, config, ts) VALUES (\'a.ini\', \'v1\', to_timestamp(1))', [], name);
  await db.sql(`REVOKE CONNECT ON DATABASE ${name} FROM PUBLIC`);
  await db.sql(`GRANT CONNECT ON DATABASE ${name} TO emperor`);
  const started = startSource(t, `pg://host=127.0.0.1 port=${db.port} dbname=${name} user=emperor password=pw-Emperor-1`);
  await waitFor(() => started.files().has('a.ini'), { message: 'a.ini' });
  // Keep it out (it cannot connect), cut it off, then change the table and notify: nobody listens.
  await db.sql(`REVOKE CONNECT ON DATABASE ${name} FROM emperor`);
  await db.sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = \'emperor\'');
  await line(started, /cannot read the vassals/, 'the outage line');
  await db.sql('UPDATE vassals SET config = \'v2\', ts = to_timestamp(2); INSERT INTO vassals (name, config) VALUES (\'b.ini\', \'b\'); NOTIFY emperor', [], name);
  await line(started, /still cannot connect: .*permission denied for database/, 'a refused attempt after the change');
  assert.equal(started.files().get('a.ini')?.fingerprint.hash, 'ts 1.000000', 'not read yet');
  await db.sql(`GRANT CONNECT ON DATABASE ${name} TO emperor`);
  await waitFor(() => started.files().get('a.ini')?.fingerprint.hash === 'ts 2.000000' && started.files().has('b.ini'), { message: 'the change, read on reconnection', timeoutMs: 20_000 });
  assert.equal(readFileSync(started.files().get('a.ini')?.path as string, 'utf8'), 'v2');
});

test('a failing query is logged once and keeps the last result; it is logged as working again once fixed', { skip }, async (t) => {
  const name = await fleet();
  await db.sql('INSERT INTO vassals (name, config) VALUES (\'a.ini\', \'x\')', [], name);
  await db.sql('CREATE VIEW vassals_v AS SELECT name, config, ts FROM vassals', [], name);
  const started = startSource(t, `pg://${db.conninfo(name)};SELECT name, config, ts FROM vassals_v`, { freqMs: 200 });
  await waitFor(() => started.files().has('a.ini'), { message: 'a.ini' });
  await db.sql('DROP VIEW vassals_v', [], name);
  const failed = await line(started, /the query failed/, 'the query error');
  assert.equal(failed.code, 'ERR_VASSAL_SOURCE');
  assert.match(failed.msg ?? '', /: the query failed: relation "vassals_v" does not exist \(SQLSTATE 42P01\); the 1 vassal\(s\) from it keep running as they are; trying again on the next notification or in 0.2 s$/);
  await db.sql('NOTIFY emperor; NOTIFY emperor', [], name);
  await db.sql('CREATE VIEW vassals_v AS SELECT name, config, ts, 1 AS extra FROM vassals WHERE false', [], name);
  await line(started, /the query works again/, 'the query working again');
  assert.equal(started.lines.filter((l) => /the query failed/.test(l.msg ?? '')).length, 1, 'logged once, though it failed many times');
  await waitFor(() => started.files().size === 0, { message: 'the (now empty) result applied' });
  assert.ok(started.source.state === 'connected');
});

test('a result without name, config and ts is refused as a whole; bad rows are logged once each', { skip }, async (t) => {
  const name = await fleet();
  await db.sql('INSERT INTO vassals (name, config) VALUES (\'a.ini\', \'x\'), (\'notes.txt\', \'x\')', [], name);
  const started = startSource(t, `pg://${db.conninfo(name)};SELECT name, config FROM vassals`);
  const refused = await line(started, /the query returns 2 column/, 'the shape error');
  assert.equal(refused.code, 'ERR_VASSAL_SOURCE');
  assert.equal(started.files().size, 0);
  const rows = startSource(t, `pg://${db.conninfo(name)}`, { freqMs: 200 });
  await waitFor(() => rows.files().has('a.ini'), { message: 'a.ini' });
  const bad = await line(rows, /notes\.txt/, 'the bad row');
  assert.equal(bad.code, 'ERR_VASSAL_ROW');
  assert.match(bad.msg ?? '', /^pg:\/\/.*: row "notes\.txt": not a vassal name/);
  await db.sql('NOTIFY emperor', [], name);
  await db.sql('INSERT INTO vassals (name, config) VALUES (\'b.ini\', \'x\'); NOTIFY emperor', [], name);
  await waitFor(() => rows.files().has('b.ini'), { message: 'b.ini' });
  assert.equal(rows.lines.filter((l) => /notes\.txt/.test(l.msg ?? '')).length, 1, 'the bad row is logged once');

  // uWSGI's 6th column (an on-demand socket): not supported; the vassal is started anyway, with a warning.
  const onDemand = startSource(t, `pg://${db.conninfo(name)};SELECT name, config, ts, NULL, NULL, '/run/shop.sock' FROM vassals WHERE name = 'a.ini'`);
  await waitFor(() => onDemand.files().has('a.ini'), { message: 'a.ini with a socket column' });
  const warning = await line(onDemand, /socket column/, 'the socket column warning');
  assert.equal(warning.level, 40);
  assert.match(warning.msg ?? '', /row "a\.ini": the socket column \(uWSGI's on-demand vassals\) is not supported; the vassal starts at once$/);
});

test('the password: from the connection string, PGPASSFILE or ~/.pgpass (0600 only); never in a log line or the monitor', { skip }, async (t) => {
  const name = await fleet();
  await db.sql('INSERT INTO vassals (name, config) VALUES (\'a.ini\', \'x\')', [], name);
  const tcp = `host=127.0.0.1 port=${db.port} dbname=${name} user=emperor`;
  const inline = startSource(t, `pg://${tcp} password=pw-Emperor-1`);
  await waitFor(() => inline.files().has('a.ini'), { message: 'connected with the password in the string' });
  assert.equal(inline.source.monitor, `pg://${tcp}`);

  const home = tempDir(t);
  const passfile = join(home, '.pgpass');
  writeFileSync(passfile, `127.0.0.1:${db.port}:${name}:emperor:pw-Emperor-1\n`);
  chmodSync(passfile, 0o600);
  const fromHome = startSource(t, `pg://${tcp}`, { environment: { env: { HOME: home } } });
  await waitFor(() => fromHome.files().has('a.ini'), { message: 'connected with ~/.pgpass' });
  const other = join(tempDir(t), 'emperor.pgpass');
  writeFileSync(other, `*:*:*:emperor:pw-Emperor-1\n`);
  chmodSync(other, 0o600);
  const fromEnv = startSource(t, `pg://${tcp}`, { environment: { env: { PGPASSFILE: other } } });
  await waitFor(() => fromEnv.files().has('a.ini'), { message: 'connected with PGPASSFILE' });
  const fromKeyword = startSource(t, `pg://${tcp} passfile=${other}`, { environment: { env: {} } });
  await waitFor(() => fromKeyword.files().has('a.ini'), { message: 'connected with passfile=' });

  chmodSync(other, 0o644);
  const open = startSource(t, `pg://${tcp}`, { environment: { env: { PGPASSFILE: other } } });
  const warning = await line(open, /has group or world access/, 'the insecure file warning');
  assert.equal(warning.level, 40, 'through our logger, as a JSON line');
  assert.equal(warning.msg, `pg://${tcp}: password file ${other} has group or world access; permissions should be u=rw (0600) or less; ignored`);
  const refused = await line(open, /cannot read the vassals/, 'the refused connection');
  assert.match(refused.msg ?? '', new RegExp(`the server asks for a password and none was given: not in the connection string, no PGPASSWORD, and no line of ${other} \\(mode 0600, PGPASSFILE or passfile= to use another\\) matches 127\\.0\\.0\\.1:${db.port}:${name}:emperor`));
  const wrong = startSource(t, `pg://${tcp} password=not-the-password`);
  await line(wrong, /password authentication failed for user "emperor"/, 'the login refused');
  for (const started of [inline, fromHome, fromEnv, fromKeyword, open, wrong]) {
    assert.deepEqual(started.lines.filter((l) => l.raw.includes('pw-Emperor-1') || l.raw.includes('not-the-password')), [], 'no line shows a password');
  }
});
