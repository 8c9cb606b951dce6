import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  COMMAND_LINE, ConfigValueError, DEFAULT_PG_QUERY, isPgMonitor, maskPgMonitor, parseConfigText, parsePgMonitor, resolveEmperorConfig, type PgMonitor, type RawOption,
} from '@emperor/config';

const flag = (name: string, value: string): RawOption => ({ file: COMMAND_LINE, line: 0, name, value });

function ok(value: string): PgMonitor {
  const parsed = parsePgMonitor(value);
  assert.ok(parsed.ok, `${value}: ${parsed.ok ? '' : parsed.problem}`);
  return parsed.monitor;
}

function problem(value: string): string {
  const parsed = parsePgMonitor(value);
  assert.ok(!parsed.ok, `${value} should be refused`);
  return parsed.problem;
}

test('pg:// and pgsql:// pick the PostgreSQL source; anything else is a path', () => {
  assert.ok(isPgMonitor('pg://host=db'));
  assert.ok(isPgMonitor('pgsql://host=db'));
  assert.ok(!isPgMonitor('/etc/emperor.d'));
  assert.ok(!isPgMonitor('pg:/x'));
  assert.ok(!isPgMonitor('postgresql://db/fleet'), 'a bare URI is not an emperor value: it goes after pg://');
});

test('uWSGI\'s syntax: a libpq keyword string, then the query after the first ";"; the default query without one', () => {
  const m = ok('pg://host=127.0.0.1 user=foobar dbname=emperor;SELECT name,config,ts FROM vassals WHERE host = \'a\'');
  assert.equal(m.scheme, 'pg');
  assert.deepEqual(m.params, { host: '127.0.0.1', user: 'foobar', dbname: 'emperor' });
  assert.equal(m.query, 'SELECT name,config,ts FROM vassals WHERE host = \'a\'');
  assert.equal(ok('pgsql://dbname=fleet').query, DEFAULT_PG_QUERY);
  assert.equal(DEFAULT_PG_QUERY, 'SELECT name,config,EXTRACT(epoch FROM ts) FROM vassals');
  assert.deepEqual(ok('pg://').params, {}, 'everything from the environment, as libpq allows');
  assert.equal(ok('pg://dbname=x;SELECT 1; SELECT 2').query, 'SELECT 1; SELECT 2', 'only the first ";" splits');
});

test('keyword values as libpq reads them: spaces around "=", single quotes, backslash escapes', () => {
  const m = ok(String.raw`pg://host = /var/run/postgresql  application_name='my emperor' password='it\'s a \\ secret' options=-c\ search_path=fleet`);
  assert.deepEqual(m.params, {
    host: '/var/run/postgresql',
    application_name: 'my emperor',
    password: String.raw`it's a \ secret`,
    options: '-c search_path=fleet',
  });
  assert.match(problem('pg://host'), /missing "=" after "host"/);
  assert.match(problem("pg://password='abc"), /unterminated quoted value of "password"/);
});

test('a postgresql:// URI: user, password, host, port, database and parameters, percent-decoded', () => {
  const m = ok('pg://postgresql://emperor:p%40ss@db.example:5433/fleet?sslmode=require&application_name=e1;SELECT 1');
  assert.deepEqual(m.params, { user: 'emperor', password: 'p@ss', host: 'db.example', port: '5433', dbname: 'fleet', sslmode: 'require', application_name: 'e1' });
  assert.deepEqual(ok('pg://postgres://%2Fvar%2Frun%2Fpostgresql/fleet').params, { host: '/var/run/postgresql', dbname: 'fleet' });
  assert.deepEqual(ok('pg://postgresql:///fleet?host=/tmp/pg').params, { dbname: 'fleet', host: '/tmp/pg' });
  assert.deepEqual(ok('pg://postgresql://[::1]:6000/x').params, { host: '::1', port: '6000', dbname: 'x' });
  assert.deepEqual(ok('pg://postgresql://db?ssl=true').params, { host: 'db', sslmode: 'require' });
  assert.match(problem('pg://postgresql://a,b/fleet'), /several hosts are not supported/);
  assert.match(problem('pg://postgresql://db/%zz'), /not valid percent-encoding/);
});

test('keywords node-postgres cannot honour are refused by name; values are checked', () => {
  assert.match(problem('pg://host=db target_session_attrs=read-write'), /connection keyword "target_session_attrs" is not supported \(supported: host, /);
  assert.match(problem('pg://port=0'), /port: expected 1-65535, got "0"/);
  assert.match(problem('pg://port=70000'), /port: expected 1-65535/);
  assert.match(problem('pg://connect_timeout=soon'), /connect_timeout: expected whole seconds/);
  assert.match(problem('pg://sslmode=prefer'), /sslmode=prefer is not supported: node-postgres cannot fall back/);
  assert.match(problem('pg://sslmode=maybe'), /sslmode: expected one of disable, require, verify-ca, verify-full/);
  assert.match(problem('pg://host=a,b'), /host: several hosts are not supported/);
  assert.match(problem('pg://keepalives=2'), /keepalives: expected 0 or 1/);
  assert.match(problem('pg://dbname=x;  '), /the query after ";" is empty/);
  for (const value of ['pg://sslmode=require', 'pg://sslmode=verify-full sslrootcert=/etc/ssl/ca.pem', 'pg://keepalives=0 keepalives_idle=30 connect_timeout=5']) ok(value);
});

test('the password never shows: keyword (plain or quoted), URI user part, URI parameter; refused values too', () => {
  const cases: Array<[string, string]> = [
    ['pg://host=db password=s3cret user=e;SELECT 1', 'pg://host=db user=e;SELECT 1'],
    ["pg://password='s3 cret' host=db", 'pg://host=db'],
    [String.raw`pg://host=db password=s3\ cret`, 'pg://host=db'],
    ['pg://host=db password = s3cret', 'pg://host=db'],
    ['pg://host=db passfile=/etc/pgpass', 'pg://host=db passfile=/etc/pgpass'],
    ['pg://postgresql://e:s3cret@db/fleet;SELECT 1', 'pg://postgresql://e@db/fleet;SELECT 1'],
    ['pg://postgresql://e:s3cret@db/fleet?password=s3cret&sslmode=require', 'pg://postgresql://e@db/fleet?sslmode=require'],
    ['pg://postgresql://db/fleet?password=s3cret', 'pg://postgresql://db/fleet'],
    ["pg://host=db password='s3cret", 'pg://host=db'], // refused (unterminated), still masked
    ['pg://host=db target_session_attrs=any password=s3cret', 'pg://host=db target_session_attrs=any'],
  ];
  for (const [value, shown] of cases) {
    assert.equal(maskPgMonitor(value), shown, value);
    const parsed = parsePgMonitor(value);
    if (parsed.ok) assert.equal(parsed.monitor.display, shown);
  }
  assert.equal(maskPgMonitor('/etc/emperor.d'), '/etc/emperor.d');
});

test('emperor config: pg values are kept as given, in order with directories; a bad one is an error without its password', () => {
  const file = parseConfigText('[uwsgi]\nemperor = vassals\nemperor = pg://host=db password=s3cret;SELECT name, config, ts FROM vassals WHERE host = \'%h\'\nemperor-pg-channel = fleet_1\n', '/etc/emperor.ini', 'ini');
  const { config, warnings } = resolveEmperorConfig([file], { env: {} });
  assert.equal(config.emperor[0], '/etc/vassals');
  assert.match(config.emperor[1] ?? '', /^pg:\/\/host=db password=s3cret;SELECT name, config, ts FROM vassals WHERE host = '.+'$/);
  assert.equal(config.emperorPgChannel, 'fleet_1');
  assert.deepEqual(warnings, []);

  const bad = parseConfigText('[uwsgi]\nemperor = pg://host=db password=s3cret sslmode=prefer\n', '/etc/emperor.ini', 'ini');
  const err = assert.throws(() => resolveEmperorConfig([bad], { env: {} }), (e: unknown) => {
    assert.ok(e instanceof ConfigValueError);
    assert.equal(e.message, '/etc/emperor.ini:2: emperor: sslmode=prefer is not supported: node-postgres cannot fall back between TLS and plain text; use disable, require, verify-ca, verify-full, got "pg://host=db sslmode=prefer"');
    assert.doesNotMatch(e.message, /s3cret/);
    return true;
  });
  void err;
});

test('emperor-pg-channel: a default, a name NOTIFY takes unquoted, and a warning without a pg source', () => {
  const { config } = resolveEmperorConfig([], { overrides: [flag('emperor', 'pg://dbname=fleet')], env: {} });
  assert.equal(config.emperorPgChannel, 'emperor');
  for (const bad of ['Emperor', 'fleet-1', '1fleet', '', 'x'.repeat(64)]) {
    assert.throws(() => resolveEmperorConfig([], { overrides: [flag('emperor', 'pg://'), flag('emperor-pg-channel', bad)], env: {} }), /emperor-pg-channel: expected a channel name/, bad);
  }
  const { warnings } = resolveEmperorConfig([], { overrides: [flag('emperor', '/srv/vassals'), flag('emperor-pg-channel', 'fleet')], env: {} });
  assert.deepEqual(warnings.map((w) => [w.code, w.option, w.message]), [['no-effect', 'emperor-pg-channel', 'has no effect without a pg:// emperor']]);
});
