import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONNECT_TIMEOUT_MS, RowFiles, lookUpPassword, pgClientConfig, runtimeBase, vassalOwner, type IdLookup } from '@emperor/emperor';
import { tempDir } from '../../helpers/index.js';

const none = { env: {}, osUser: 'root', exists: () => false };

test('libpq\'s precedence: the connection string, then PG* variables, then libpq\'s defaults', () => {
  const defaults = pgClientConfig({}, none);
  assert.deepEqual(
    { ...defaults.config },
    { host: 'localhost', port: 5432, user: 'root', database: 'root', ssl: false, application_name: 'emperor', connectionTimeoutMillis: DEFAULT_CONNECT_TIMEOUT_MS, keepAlive: true },
  );
  assert.equal(defaults.describe, 'localhost:5432 database root as root');
  assert.equal(pgClientConfig({}, { ...none, exists: (p) => p === '/var/run/postgresql' }).config.host, '/var/run/postgresql', 'libpq\'s default socket directory when it exists');

  const env = { PGHOST: 'envhost', PGPORT: '6000', PGUSER: 'envuser', PGDATABASE: 'envdb', PGAPPNAME: 'envapp', PGCONNECT_TIMEOUT: '3', PGOPTIONS: '-c x=1' };
  const fromEnv = pgClientConfig({}, { ...none, env });
  assert.deepEqual([fromEnv.config.host, fromEnv.config.port, fromEnv.config.user, fromEnv.config.database, fromEnv.config.application_name, fromEnv.config.connectionTimeoutMillis, fromEnv.config.options],
    ['envhost', 6000, 'envuser', 'envdb', 'envapp', 3000, '-c x=1']);
  const given = pgClientConfig({ host: '/run/pg', port: '5433', user: 'e', dbname: 'fleet', application_name: 'a', connect_timeout: '0', keepalives: '0', keepalives_idle: '9' }, { ...none, env });
  assert.deepEqual([given.config.host, given.config.port, given.config.user, given.config.database, given.config.application_name, given.config.connectionTimeoutMillis, given.config.keepAlive, given.config.keepAliveInitialDelayMillis],
    ['/run/pg', 5433, 'e', 'fleet', 'a', 0, false, 9000]);
  assert.equal(given.describe, '/run/pg/.s.PGSQL.5433 database fleet as e');
  assert.equal(pgClientConfig({ hostaddr: '10.0.0.5', host: 'db.example' }, none).config.host, '10.0.0.5', 'hostaddr is where it connects');
  assert.throws(() => pgClientConfig({}, { ...none, env: { PGPORT: 'x' } }), /ERR_VASSAL_SOURCE|PGPORT: expected 1-65535, got "x"/);
});

test('the password: given (string or PGPASSWORD) is used as is; otherwise looked up in the password file, with libpq\'s host for a socket', () => {
  const given = pgClientConfig({ password: 's3cret' }, none);
  assert.equal(given.config.password, 's3cret');
  assert.equal(given.passwordLookup, undefined);
  assert.equal(pgClientConfig({}, { ...none, env: { PGPASSWORD: 'fromenv' } }).config.password, 'fromenv');
  const socket = pgClientConfig({ host: '/var/run/postgresql', dbname: 'fleet', user: 'e' }, { ...none, env: { HOME: '/home/e' } });
  assert.equal(socket.config.password, undefined);
  assert.deepEqual(socket.passwordLookup, { host: 'localhost', port: 5432, database: 'fleet', user: 'e', passfile: '/home/e/.pgpass' });
  assert.equal(pgClientConfig({ host: '/srv/pg' }, none).passwordLookup?.host, '/srv/pg', 'another socket directory is matched by its path');
  assert.equal(pgClientConfig({ passfile: '/etc/emperor/pgpass' }, { ...none, env: { PGPASSFILE: '/x' } }).passwordLookup?.passfile, '/etc/emperor/pgpass');
  assert.equal(pgClientConfig({}, { ...none, env: { PGPASSFILE: '/x' } }).passwordLookup?.passfile, '/x');
});

test('sslmode as libpq means it; PGSSLMODE=prefer cannot be honoured; TLS files are read', () => {
  const files: Record<string, string> = { '/ca.pem': 'CA', '/c.pem': 'CERT', '/k.pem': 'KEY' };
  const readFile = (path: string): string => {
    const text = files[path];
    if (text === undefined) throw new Error('ENOENT: no such file');
    return text;
  };
  const ssl = (params: Record<string, string>, env = {}) => pgClientConfig(params, { ...none, env, readFile }).config.ssl;
  assert.equal(ssl({}), false);
  assert.equal(ssl({ sslmode: 'disable' }, { PGSSLMODE: 'require' }), false);
  assert.deepEqual(ssl({}, { PGSSLMODE: 'require' }), { rejectUnauthorized: false });
  const requireWithCa = ssl({ sslmode: 'require', sslrootcert: '/ca.pem' }) as Record<string, unknown>;
  assert.equal(requireWithCa.rejectUnauthorized, true, 'require with a root certificate verifies the chain (libpq)');
  assert.equal(requireWithCa.ca, 'CA');
  const verifyCa = ssl({ sslmode: 'verify-ca', sslrootcert: '/ca.pem', sslcert: '/c.pem', sslkey: '/k.pem' }) as Record<string, unknown>;
  assert.deepEqual([verifyCa.ca, verifyCa.cert, verifyCa.key, verifyCa.rejectUnauthorized, typeof verifyCa.checkServerIdentity], ['CA', 'CERT', 'KEY', true, 'function']);
  const full = ssl({ sslmode: 'verify-full', host: 'db.example', hostaddr: '10.0.0.5' }) as Record<string, unknown>;
  assert.deepEqual([full.rejectUnauthorized, full.servername, full.checkServerIdentity], [true, 'db.example', undefined]);
  assert.throws(() => ssl({}, { PGSSLMODE: 'prefer' }), /sslmode=prefer \(from PGSSLMODE\) is not supported/);
  assert.throws(() => ssl({ sslmode: 'verify-ca', sslrootcert: '/missing.pem' }), /sslrootcert \/missing.pem: ENOENT/);
});

test('the password file: libpq\'s line format and wildcards, and only when its mode is 0600 or less', async (t) => {
  const dir = tempDir(t);
  const passfile = join(dir, 'pgpass');
  writeFileSync(passfile, [
    '# comment',
    'db.example:5432:fleet:other:wrong',
    'db.example:5432:fleet:emperor:first\\:one',
    '*:*:*:emperor:fallback',
  ].join('\n'));
  chmodSync(passfile, 0o600);
  const lookup = { host: 'db.example', port: 5432, database: 'fleet', user: 'emperor', passfile };
  assert.deepEqual(await lookUpPassword(lookup), { password: 'first:one', ignored: undefined }, 'the first matching line, unescaped');
  assert.deepEqual(await lookUpPassword({ ...lookup, host: 'elsewhere' }), { password: 'fallback', ignored: undefined });
  assert.deepEqual(await lookUpPassword({ ...lookup, user: 'nobody' }), { password: undefined, ignored: undefined });
  assert.deepEqual(await lookUpPassword({ ...lookup, passfile: join(dir, 'missing') }), { password: undefined, ignored: undefined }, 'no file is no problem');
  assert.deepEqual(await lookUpPassword({ ...lookup, passfile: dir }), { password: undefined, ignored: `password file ${dir} is not a plain file; ignored` });
  chmodSync(passfile, 0o640);
  assert.deepEqual(await lookUpPassword(lookup), {
    password: undefined,
    ignored: `password file ${passfile} has group or world access; permissions should be u=rw (0600) or less; ignored`,
  }, 'a file others can read is ignored, as libpq does');
});

test('row files: a private directory (0711), files of mode 0600 written atomically, removed with the directory', (t) => {
  const base = join(tempDir(t), 'run');
  const files = new RowFiles(base);
  assert.equal(statSync(base).mode & 0o777, 0o755);
  assert.equal(statSync(files.dir).mode & 0o777, 0o711);
  const path = files.write('shop.ini', '[uwsgi]\nv = 1\n', undefined);
  assert.equal(path, join(files.dir, 'shop.ini'));
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const inode = statSync(path).ino;
  files.write('shop.ini', '[uwsgi]\nv = 2\n', undefined);
  assert.equal(readFileSync(path, 'utf8'), '[uwsgi]\nv = 2\n');
  assert.notEqual(statSync(path).ino, inode, 'a new file renamed over the old one: a master never reads half a config');
  files.remove('shop.ini');
  assert.throws(() => statSync(path), /ENOENT/);
  files.close();
  assert.throws(() => statSync(files.dir), /ENOENT/);
  assert.equal(runtimeBase({ RUNTIME_DIRECTORY: '/run/emperor:/run/other' }, 0), '/run/emperor');
  assert.equal(runtimeBase({}, 0), '/run/emperor');
  assert.equal(runtimeBase({ XDG_RUNTIME_DIR: '/run/user/1000' }, 1000), '/run/user/1000');
});

test('outside tyrant mode a row file belongs to the user its master drops to (uid/gid in its config), so reloads can read it', (t) => {
  const dir = tempDir(t);
  const users: Record<string, readonly number[]> = { 'passwd shop': [1000, 1001], 'group web': [33], 'passwd 1002': [1002, 1003] };
  const lookup: IdLookup = (db, who) => users[`${db} ${who}`];
  const path = join(dir, 'shop.ini');
  const app = 'http-socket = :8080\nmodule = /srv/app.mjs\n';
  assert.deepEqual(vassalOwner(`[uwsgi]\n${app}uid = shop\n`, path, 'ini', [], lookup), { uid: 1000, gid: 1001 }, 'the user\'s primary group');
  assert.deepEqual(vassalOwner(`[uwsgi]\n${app}uid = shop\ngid = web\n`, path, 'ini', [], lookup), { uid: 1000, gid: 33 });
  assert.deepEqual(vassalOwner(`[uwsgi]\n${app}gid = web\n`, path, 'ini', [], lookup), { uid: 0, gid: 33 }, 'a group alone: root keeps the file, with that group');
  assert.deepEqual(vassalOwner(`[uwsgi]\n${app}uid = 1002\n`, path, 'ini', [], lookup), { uid: 1002, gid: 1003 });
  assert.deepEqual(vassalOwner(`[uwsgi]\n${app}uid = 4242\n`, path, 'ini', [], lookup), { uid: 4242, gid: 4242 }, 'an unknown number is used as is, as the master does');
  const inherited = join(dir, 'base.ini');
  writeFileSync(inherited, '[uwsgi]\nuid = shop\n');
  assert.deepEqual(vassalOwner(`[uwsgi]\n${app}`, path, 'ini', [inherited], lookup), { uid: 1000, gid: 1001 }, 'from vassals-inherit');
  assert.equal(vassalOwner(`[uwsgi]\n${app}`, path, 'ini', [], lookup), undefined, 'no uid/gid: root\'s');
  assert.equal(vassalOwner(`[uwsgi]\n${app}uid = nobody-here\n`, path, 'ini', [], lookup), undefined, 'an unknown user: the master reports it');
  assert.equal(vassalOwner('not ini at all', path, 'ini', [], lookup), undefined, 'an invalid config: the master reports it');
});
