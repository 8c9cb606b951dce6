import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { config, rejects, SHOP, vassal } from './helpers.js';

const MiB = 1024 * 1024;
const BASE = join(process.cwd(), 'emperor.d');

test('defaults when nothing is set', () => {
  const c = config('');
  assert.equal(c.file, join(BASE, 'shop.ini'));
  assert.equal(c.name, 'shop.ini');
  assert.equal(c.format, 'ini');
  assert.equal(c.baseDir, BASE);
  assert.deepEqual(
    [c.processes, c.listen, c.bufferSize, c.harakiriMs, c.minWorkerLifetimeMs, c.workerReloadMercyMs, c.reloadMercyMs, c.heartbeatMs, c.callable],
    [1, 100, 4096, 0, 10_000, 60_000, 0, 10_000, 'application'],
  );
  assert.deepEqual([c.vacuum, c.noOrphans, c.statsHttp, c.statsMinified, c.disableLogging], Array(5).fill(false));
  // What Emperor always does: a master, SIGTERM stops. Python apps are preloaded and forked unless lazy-apps.
  assert.deepEqual([c.master, c.dieOnTerm], [true, true]);
  assert.equal(c.lazyApps, false);
  assert.equal(c.logStyle, 'auto');
  assert.deepEqual([c.chmodSocket, c.chownSocket, c.pidfile, c.stats, c.logto, c.uid, c.gid, c.home, c.chdir], Array(9).fill(undefined));
  assert.deepEqual([c.cheaper, c.cheaperInitial, c.cheaperStep, c.cheaperAlgo, c.cheaperOverload], [0, 1, 1, 'spare', 3]);
  assert.deepEqual(c.cheaperBusyness, {
    max: 50, min: 25, multiplier: 10, penalty: 2, verbose: false, backlogAlert: 33, backlogMultiplier: 3, backlogStep: 1, backlogNonzeroMs: 60_000,
  });
});

test('unit conversions: seconds to ms, MB (MiB) to bytes, bytes and ms kept', () => {
  const c = config([
    'harakiri = 30', 'min-worker-lifetime = 2', 'max-worker-lifetime = 3600', 'max-worker-lifetime-delta = 60',
    'worker-reload-mercy = 5', 'reload-mercy = 7', 'heartbeat = 10', 'idle = 600', 'cheaper-busyness-backlog-nonzero = 30',
    'reload-on-rss = 256', 'reload-on-as = 2048', 'evil-reload-on-rss = 512', 'evil-reload-on-as = 4096', 'limit-as = 1536',
    'cheaper-rss-limit-soft = 1000000', 'cheaper-rss-limit-hard = 2000000', 'log-slow = 1500', 'buffer-size = 32768',
    'max-requests = 5000', 'max-requests-delta = 10', 'cpu-affinity = 2', 'listen = 1024',
  ].join('\n'));
  assert.deepEqual(
    [c.harakiriMs, c.minWorkerLifetimeMs, c.maxWorkerLifetimeMs, c.maxWorkerLifetimeDeltaMs, c.workerReloadMercyMs, c.reloadMercyMs, c.heartbeatMs, c.idleMs, c.cheaperBusyness.backlogNonzeroMs],
    [30_000, 2_000, 3_600_000, 60_000, 5_000, 7_000, 10_000, 600_000, 30_000],
  );
  assert.deepEqual(
    [c.reloadOnRssBytes, c.reloadOnAsBytes, c.evilReloadOnRssBytes, c.evilReloadOnAsBytes, c.limitAsBytes],
    [256 * MiB, 2048 * MiB, 512 * MiB, 4096 * MiB, 1536 * MiB],
  );
  assert.deepEqual([c.cheaperRssLimitSoftBytes, c.cheaperRssLimitHardBytes, c.logSlowMs, c.bufferSize], [1_000_000, 2_000_000, 1500, 32768]);
  assert.deepEqual([c.maxRequests, c.maxRequestsDelta, c.cpuAffinity, c.listen], [5000, 10, 2, 1024]);
});

test('whole numbers: shape and range errors', () => {
  rejects('harakiri = ten\n', `${SHOP}:4: harakiri: expected whole seconds >= 0, got "ten"`);
  rejects('harakiri = 1.5\n', `${SHOP}:4: harakiri: expected whole seconds >= 0, got "1.5"`);
  rejects('harakiri\n', `${SHOP}:4: harakiri: expected whole seconds >= 0, got ""`);
  rejects('harakiri = -1\n', `${SHOP}:4: harakiri: must be >= 0, got "-1"`);
  rejects('harakiri = 99999999\n', `${SHOP}:4: harakiri: must be <= 2147483, got "99999999"`);
  rejects('processes = 0\n', `${SHOP}:4: processes: must be >= 1, got "0"`);
  rejects('processes = 5000\n', `${SHOP}:4: processes: must be <= 1024, got "5000"`);
  rejects('max-requests = 99999999999999999999\n', `${SHOP}:4: max-requests: must be <= 9007199254740991, got "99999999999999999999"`);
  rejects('reload-on-rss = 1G\n', `${SHOP}:4: reload-on-rss: expected whole megabytes >= 0, got "1G"`);
  rejects('log-slow = +5\n', `${SHOP}:4: log-slow: expected whole milliseconds >= 0, got "+5"`);
  rejects('cheaper-busyness-max = 101\ncheaper = 1\nprocesses = 2\n', `${SHOP}:4: cheaper-busyness-max: must be <= 100, got "101"`);
  const err = rejects('listen = 0\n', `${SHOP}:4: listen: must be >= 1, got "0"`);
  assert.deepEqual([err.option, err.value, err.expected, err.line], ['listen', '0', 'a whole number >= 1', 4]);
});

test('buffer-size above 65535 is lowered with a warning, as uWSGI does', () => {
  const result = vassal('buffer-size = 65536\n');
  assert.equal(result.config.bufferSize, 65535);
  assert.deepEqual(result.warnings, [{ file: SHOP, line: 4, code: 'no-effect', option: 'buffer-size', message: 'more than 65535; using 65535, as uWSGI does' }]);
});

test('booleans: true/false, 1/0, yes/no, on/off in any case; a bare key is true', () => {
  for (const [value, expected] of [['', true], ['true', true], ['TRUE', true], ['1', true], ['yes', true], ['On', true],
    ['false', false], ['0', false], ['No', false], ['OFF', false]] as const) {
    assert.equal(config(`vacuum = ${value}\n`).vacuum, expected, JSON.stringify(value));
  }
  const c = config('master\nlazy-apps\nno-orphans\ndie-on-term\nstats-http\nstats-min\nharakiri-verbose\ndisable-logging\nlog-4xx\nlog-5xx\n');
  assert.deepEqual([c.master, c.lazyApps, c.noOrphans, c.dieOnTerm, c.statsHttp, c.statsMinified, c.harakiriVerbose, c.disableLogging, c.log4xx, c.log5xx],
    Array(10).fill(true));
  assert.equal(config('lazy = true\n').lazyApps, true);
  rejects('vacuum = maybe\n', `${SHOP}:4: vacuum: expected true/false, 1/0, yes/no or on/off, got "maybe"`);
});

test('the later occurrence of a scalar wins; repeatable options accumulate', () => {
  const c = config('harakiri = 10\nharakiri = 20\ntouch-reload = a\ntouch-reload = /b\npythonpath = lib\npp = /opt/x\n');
  assert.equal(c.harakiriMs, 20_000);
  assert.deepEqual(c.touchReload, [join(BASE, 'a'), '/b']);
  assert.deepEqual(c.pythonpath, [join(BASE, 'lib'), '/opt/x']);
});

test('socket addresses: TCP forms, abstract and unix sockets, protocols by option', () => {
  const c = config('http-socket = 127.0.0.1:8080\nuwsgi-socket = [::1]:9000\nsocket = localhost:0\nsocket = @shop\nsocket = run/shop.sock\nhttp-socket = /tmp/h.sock\n');
  assert.deepEqual(c.sockets.map((s) => [s.option, s.protocol, s.name, s.address, s.line]), [
    ['socket', 'uwsgi', ':3031', { kind: 'tcp', host: '0.0.0.0', port: 3031 }, 2],
    ['http-socket', 'http', '127.0.0.1:8080', { kind: 'tcp', host: '127.0.0.1', port: 8080 }, 4],
    ['uwsgi-socket', 'uwsgi', '[::1]:9000', { kind: 'tcp', host: '::1', port: 9000 }, 5],
    ['socket', 'uwsgi', 'localhost:0', { kind: 'tcp', host: 'localhost', port: 0 }, 6],
    ['socket', 'uwsgi', '@shop', { kind: 'unix', path: 'shop', abstract: true }, 7],
    ['socket', 'uwsgi', 'run/shop.sock', { kind: 'unix', path: join(BASE, 'run/shop.sock'), abstract: false }, 8],
    ['http-socket', 'http', '/tmp/h.sock', { kind: 'unix', path: '/tmp/h.sock', abstract: false }, 9],
  ]);
  assert.equal(c.sockets[0]?.file, SHOP);
});

test('bad addresses', () => {
  rejects('socket = :70000\n', `${SHOP}:4: socket: expected a port from 0 to 65535 after the ":", got ":70000"`);
  rejects('socket = host:http\n', `${SHOP}:4: socket: expected a port from 0 to 65535 after the ":", got "host:http"`);
  rejects('socket = ::1:80\n', `${SHOP}:4: socket: an IPv6 address needs brackets, as in [::1]:8080, got "::1:80"`);
  rejects('socket = [::g]:80\n', `${SHOP}:4: socket: expected [ipv6-address]:port, got "[::g]:80"`);
  rejects('socket = bad_host!:80\n', `${SHOP}:4: socket: expected an IP address or host name before the ":", got "bad_host!:80"`);
  rejects('socket = =0\n', `${SHOP}:4: socket: shared (=N) sockets are not supported, got "=0"`);
  rejects('socket = fd://x\n', `${SHOP}:4: socket: expected fd://N with N a file descriptor from 0 to 1023, got "fd://x"`);
  rejects('fastcgi-socket = fd://1024\n', `${SHOP}:4: fastcgi-socket: expected fd://N with N a file descriptor from 0 to 1023, got "fd://1024"`);
  rejects('stats = fd://3\n', `${SHOP}:4: stats: fd:// names an inherited socket, for socket options only, got "fd://3"`);
  rejects('fastcgi-socket = fd://0\nhttp-socket = fd://0\n', `${SHOP}:5: http-socket: the same address is already declared at ${SHOP}:4, got "fd://0"`);
  rejects('socket = @\n', `${SHOP}:4: socket: expected an abstract socket name of 1 to 107 bytes, got "@"`);
  rejects('socket = :3031\n', `${SHOP}:4: socket: the same address is already declared at ${SHOP}:2, got ":3031"`);
  const long = `/tmp/${'s'.repeat(103)}`;
  rejects(`socket = ${long}\n`, `${SHOP}:4: socket: unix socket path is 108 bytes once resolved to "${long.slice(0, 59)}…"; the limit is 107, got "${long.slice(0, 59)}…"`);
  assert.equal(config(`socket = ${long.slice(0, -1)}\n`).sockets[1]?.address.kind, 'unix');
});

test('stats address', () => {
  assert.deepEqual(config('stats = 127.0.0.1:9191\n').stats, { kind: 'tcp', host: '127.0.0.1', port: 9191 });
  assert.deepEqual(config('stats-server = stats.sock\n').stats, { kind: 'unix', path: join(BASE, 'stats.sock'), abstract: false });
});

test('chmod-socket: alone or 1 is 666, else exactly 3 octal digits', () => {
  assert.equal(config('chmod-socket\n').chmodSocket, 0o666);
  assert.equal(config('chmod-socket = 1\n').chmodSocket, 0o666);
  assert.equal(config('chmod-socket = 660\n').chmodSocket, 0o660);
  assert.equal(config('chmod-socket = 007\n').chmodSocket, 0o007);
  rejects('chmod-socket = 0660\n', `${SHOP}:4: chmod-socket: expected 3 octal digits such as 660, or nothing for 666, got "0660"`);
  rejects('chmod-socket = 668\n', `${SHOP}:4: chmod-socket: expected 3 octal digits such as 660, or nothing for 666, got "668"`);
});

test('chown-socket, uid and gid: names or numbers, not looked up', () => {
  assert.deepEqual(config('chown-socket = www-data:www-data\n').chownSocket, { user: 'www-data', group: 'www-data' });
  assert.deepEqual(config('chown-socket = 33\n').chownSocket, { user: 33, group: undefined });
  assert.deepEqual(config('chown-socket = nginx:0\n').chownSocket, { user: 'nginx', group: 0 });
  rejects('chown-socket = www-data:\n', `${SHOP}:4: chown-socket: expected user[:group], names or numbers, got "www-data:"`);
  rejects('chown-socket = :www\n', `${SHOP}:4: chown-socket: expected user[:group], names or numbers, got ":www"`);
  const c = config('uid = Shop_User.1\ngid = 1001\n');
  assert.deepEqual([c.uid, c.gid], ['Shop_User.1', 1001]);
  rejects('uid = 9shop\n', `${SHOP}:4: uid: expected a name such as www-data, or a number, got "9shop"`);
  rejects('gid = 4294967295\n', `${SHOP}:4: gid: expected a name such as www-data, or a number, got "4294967295"`);
});

test('env: KEY=VALUE, in file order, a later key wins', () => {
  assert.deepEqual(config('env = A=1\nenv = B=x=y\nenv = EMPTY=\nenv = A=2\n').env, [['A', '2'], ['B', 'x=y'], ['EMPTY', '']]);
  rejects('env = NOVALUE\n', `${SHOP}:4: env: expected KEY=VALUE with KEY made of letters, digits and _, got "NOVALUE"`);
  rejects('env = 1A=x\n', `${SHOP}:4: env: expected KEY=VALUE with KEY made of letters, digits and _, got "1A=x"`);
});

test('paths resolve once against the vassal file\'s directory', () => {
  const c = config('chdir = app\npidfile = ../run/shop.pid\nlogto = /var/log/shop.log\nhome = venv\ntouch-chain-reload = deploy\n');
  assert.deepEqual([c.chdir, c.pidfile, c.logto, c.home, c.touchChainReload],
    [join(BASE, 'app'), join(BASE, '../run/shop.pid'), '/var/log/shop.log', join(BASE, 'venv'), [join(BASE, 'deploy')]]);
  rejects('chdir =\n', `${SHOP}:4: chdir: expected a path, got ""`);
});
