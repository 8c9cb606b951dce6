// Memory first (wsgi-memory.mjs): a Django project with 4 workers under Emperor (preload
// and lazy-apps), uWSGI (preload and --lazy-apps) and gunicorn (lazy and --preload).
// Then a WSGI hello world, 2 workers each: Emperor's Python worker, uWSGI (Debian's uwsgi +
// uwsgi-plugin-python3) and gunicorn (Debian's, sync workers), behind one nginx worker
// (uwsgi_pass, or proxy_pass for gunicorn) and on each server's own HTTP socket, all in
// one run with the same load generator (wrk, fixed duration, on 127.0.0.1). Then the
// same three with 4 threads per worker on an app whose requests wait 20 ms.
//
// Needs: apt-get install wrk nginx uwsgi uwsgi-plugin-python3 gunicorn python3
// (installed here when missing and running as root). BENCH_SECONDS sets the duration of
// each measurement (default 5), BENCH_CONNECTIONS the concurrent connections (default 50),
// BENCH_ROUNDS how many times each is measured (default 3; the median is reported).
// The CPU column is the app server's own processes (user + system time per answered
// request, from /proc): unlike req/s it hardly moves with other load on the machine.
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { EMPEROR_BIN, ensureDebianPackages, freePort, get200, start, startNginx, table, tempDir, treeCpuMs, version, waitFor } from './lib.mjs';
import { memoryTable } from './wsgi-memory.mjs';
import { wrk } from './wrk.mjs';

const PACKAGES = ['wrk', 'nginx', 'uwsgi', 'uwsgi-plugin-python3', 'gunicorn'];
const PYTHON = '/usr/bin/python3';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
// Other work on a 2-core machine moves single runs a lot: every target is measured this
// many times, round-robin, and the median run (by req/s) is reported.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const APP = `def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '13')])
    return [b'Hello, World!']
`;

function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * How many of `clients` keep-alive clients, each sending requests one after another for
 * `ms`, get any answer. wrk's totals cannot show it: a sync server that keeps a
 * connection open serves that one connection while the others wait, and only answered
 * requests count in req/s and p99.
 */
async function fairness(url, clients = 10, ms = 2000) {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const end = Date.now() + ms;
  const get = () => new Promise((resolve) => {
    const req = request(url, { agent, timeout: ms + 500 }, (res) => { res.resume(); res.on('end', () => resolve(true)); });
    req.on('timeout', () => { req.destroy(); resolve(false); });
    req.on('error', () => resolve(false));
    req.end();
  });
  const counts = await Promise.all(Array.from({ length: clients }, async () => {
    let n = 0;
    while (Date.now() < end && (await get())) n++;
    return n;
  }));
  agent.destroy();
  return counts;
}

/** An nginx server block on 127.0.0.1:`listen` passing to a uwsgi socket on `to`, with the stock uwsgi_params. */
const uwsgiPass = (listen, to) => `server { listen 127.0.0.1:${listen}; location / { include /etc/nginx/uwsgi_params; uwsgi_pass 127.0.0.1:${to}; } }`;
/**
 * The same through an upstream block with `keepalive 16`. nginx keeps upstream connections
 * for proxy_pass (HTTP/1.1) and fastcgi_pass (fastcgi_keep_conn), not for uwsgi_pass: the
 * uwsgi protocol has no response length, a response ends when the server closes (uWSGI and
 * Emperor both close after each response), so every request still opens a connection.
 */
const uwsgiPassKeepalive = (listen, to) => `upstream ka${listen} { server 127.0.0.1:${to}; keepalive 16; } server { listen 127.0.0.1:${listen}; location / { include /etc/nginx/uwsgi_params; uwsgi_pass ka${listen}; } }`;
/** An nginx server block on 127.0.0.1:`listen` proxying HTTP to `to`. */
const proxyPass = (listen, to) => `server { listen 127.0.0.1:${listen}; location / { proxy_pass http://127.0.0.1:${to}; } }`;

export async function run() {
  ensureDebianPackages('wsgi', PACKAGES);
  const dir = tempDir();
  // Memory first, one server at a time, before the load tests start theirs.
  await memoryTable(dir);
  writeFileSync(join(dir, 'app.py'), APP);
  const port = {};
  for (const name of ['emperorUwsgi', 'emperorHttp', 'uwsgiUwsgi', 'uwsgiHttp', 'uwsgiHttp11', 'gunicorn', 'ngxEmperor', 'ngxUwsgi', 'ngxGunicorn', 'ngxEmperorKa', 'ngxUwsgiKa']) port[name] = await freePort();
  const quiet = { env: { ...process.env, EMPEROR_LOG_LEVEL: 'warn', EMPEROR_LOG_STYLE: 'json' } };

  writeFileSync(join(dir, 'emperor.ini'), `[uwsgi]
socket = 127.0.0.1:${port.emperorUwsgi}
http-socket = 127.0.0.1:${port.emperorHttp}
wsgi-file = ${join(dir, 'app.py')}
processes = 2
env = PATH=/usr/bin:/bin
# No request log, as uWSGI runs with --disable-logging and gunicorn writes none by default.
disable-logging = true
`);
  const emperor = start(process.execPath, [EMPEROR_BIN, '--ini', join(dir, 'emperor.ini')], quiet);
  const uwsgi = start('uwsgi', [
    '--plugin', 'python3', '--master', '--processes', '2', '--disable-logging', '--die-on-term',
    '--socket', `127.0.0.1:${port.uwsgiUwsgi}`, '--http-socket', `127.0.0.1:${port.uwsgiHttp}`, '--http11-socket', `127.0.0.1:${port.uwsgiHttp11}`,
    '--wsgi-file', join(dir, 'app.py'),
  ], { cwd: dir });
  const gunicorn = start('gunicorn', ['--workers', '2', '--worker-class', 'sync', '--bind', `127.0.0.1:${port.gunicorn}`, '--chdir', dir, 'app:application'], { cwd: dir });

  startNginx(join(dir, 'nginx'), [
    uwsgiPass(port.ngxEmperor, port.emperorUwsgi),
    uwsgiPass(port.ngxUwsgi, port.uwsgiUwsgi),
    proxyPass(port.ngxGunicorn, port.gunicorn),
    uwsgiPassKeepalive(port.ngxEmperorKa, port.emperorUwsgi),
    uwsgiPassKeepalive(port.ngxUwsgiKa, port.uwsgiUwsgi),
  ]);

  // [name, url, wrk headers, the app server's root pid (its CPU is measured, nginx's is not)]
  const close = ['Connection: close'];
  const targets = [
    ['nginx uwsgi_pass → Emperor (Python worker)', `http://127.0.0.1:${port.ngxEmperor}/`, [], emperor.pid],
    ['nginx uwsgi_pass → uWSGI', `http://127.0.0.1:${port.ngxUwsgi}/`, [], uwsgi.pid],
    ['nginx proxy_pass → gunicorn sync', `http://127.0.0.1:${port.ngxGunicorn}/`, [], gunicorn.pid],
    // An upstream with `keepalive`: nginx's uwsgi module never keeps an upstream connection
    // (the uwsgi protocol ends a response by closing; both servers close), so this measures
    // the same path as above; it is here so that the claim is checked on every run.
    ['nginx uwsgi_pass, upstream keepalive → Emperor', `http://127.0.0.1:${port.ngxEmperorKa}/`, [], emperor.pid],
    ['nginx uwsgi_pass, upstream keepalive → uWSGI', `http://127.0.0.1:${port.ngxUwsgiKa}/`, [], uwsgi.pid],
    ['Emperor http-socket (keep-alive)', `http://127.0.0.1:${port.emperorHttp}/`, [], emperor.pid],
    ['uWSGI http11-socket (keep-alive)', `http://127.0.0.1:${port.uwsgiHttp11}/`, [], uwsgi.pid],
    ['Emperor http-socket, new connection per request', `http://127.0.0.1:${port.emperorHttp}/`, close, emperor.pid],
    ['uWSGI http-socket (closes after each response)', `http://127.0.0.1:${port.uwsgiHttp}/`, [], uwsgi.pid],
    ['gunicorn sync (closes after each response)', `http://127.0.0.1:${port.gunicorn}/`, [], gunicorn.pid],
  ];
  const measure = async (url, headers, root, seconds) => {
    const cpu0 = treeCpuMs(root);
    const r = await wrk(url, { threads: 1, connections: CONNECTIONS, seconds, headers });
    // A server that closes after each response makes wrk count a read error per
    // connection; those are not failed requests. Failures: refused, unwritten, timed out, non-2xx.
    const failed = r.non2xx + r.socketErrors.connect + r.socketErrors.write + r.socketErrors.timeout;
    return { ...r, errors: failed, cpuUs: ((treeCpuMs(root) - cpu0) * 1000) / r.requests };
  };
  for (const [, url] of targets) {
    await waitFor(() => tcpOpen(Number(new URL(url).port)), 30_000, 20);
    await waitFor(() => get200(url), 30_000, 20);
  }
  for (const [, url, headers, root] of targets) await measure(url, headers, root, 1); // warm-up
  const runs = new Map(targets.map(([name]) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, url, headers, root] of targets) runs.get(name).push(await measure(url, headers, root, SECONDS));
  }
  const results = targets.map(([name]) => {
    const sorted = [...runs.get(name)].sort((a, b) => a.rps - b.rps);
    const median = sorted[Math.floor(sorted.length / 2)];
    return [name, { ...median, errors: sorted.reduce((n, r) => n + r.errors, 0) }];
  });
  const byName = new Map(results);
  const fmt = (r) => [Math.round(r.rps).toLocaleString('en-US'), `${r.p99Ms.toFixed(2)} ms`, Math.round(r.cpuUs), r.errors];
  table(
    `WSGI hello world, 2 workers each (wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, median of ${ROUNDS}; ${version(PYTHON, ['--version'])}; uWSGI ${version('uwsgi', ['--version'])}; gunicorn ${version('gunicorn', ['--version']).replace(/^gunicorn \(version (.*)\)$/, '$1')}; ${version('/usr/sbin/nginx', ['-v'])})`,
    ['server', 'req/s', 'p99', 'app server CPU µs/req', 'errors'],
    results.map(([name, r]) => [name, ...fmt(r)]),
  );
  const fair = [];
  for (const [name, url] of targets.filter(([n]) => /keep-alive/.test(n))) {
    const counts = await fairness(url);
    fair.push([name, `${counts.filter((c) => c > 0).length} of ${counts.length}`, Math.min(...counts), Math.max(...counts)]);
  }
  table('Keep-alive fairness: 10 clients, each sending requests one after another for 2 s', ['server', 'clients answered', 'fewest answers', 'most answers'], fair);
  const ratio = (a, b) => `${(byName.get(a).rps / byName.get(b).rps).toFixed(2)} (CPU per request ${(byName.get(a).cpuUs / byName.get(b).cpuUs).toFixed(2)})`;
  table('Ratios: req/s (and app server CPU per request)', ['comparison', 'ratio'], [
    ['Emperor / uWSGI, behind nginx uwsgi_pass', ratio(targets[0][0], targets[1][0])],
    ['Emperor / gunicorn, behind nginx', ratio(targets[0][0], targets[2][0])],
    ['Emperor / uWSGI, own socket with keep-alive', ratio(targets[5][0], targets[6][0])],
    ['Emperor / uWSGI, own socket, a connection per request', ratio(targets[7][0], targets[8][0])],
    ['Emperor / gunicorn, own socket, a connection per request', ratio(targets[7][0], targets[9][0])],
    ['Emperor / uWSGI, behind nginx uwsgi_pass with upstream keepalive', ratio(targets[3][0], targets[4][0])],
  ]);
  await ioBound(dir, quiet);
}

/** The app of the threads table: each request waits 20 ms, as on a database. */
const IO_APP = `import time
def application(environ, start_response):
    time.sleep(0.02)
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '13')])
    return [b'Hello, World!']
`;

/**
 * Threads where they pay: an app whose requests wait 20 ms, 2 workers of 4 threads each
 * behind nginx (Emperor and uWSGI over uwsgi_pass, gunicorn's gthread workers over
 * proxy_pass), and Emperor without threads for the baseline. The most any can do is
 * 2 × 4 / 20 ms = 400 req/s.
 */
async function ioBound(dir, quiet) {
  writeFileSync(join(dir, 'waits.py'), IO_APP);
  const port = {};
  for (const name of ['emperor', 'emperor1', 'uwsgi', 'gunicorn', 'ngxEmperor', 'ngxEmperor1', 'ngxUwsgi', 'ngxGunicorn']) port[name] = await freePort();
  const vassal = (file, p, threads) => {
    writeFileSync(join(dir, file), `[uwsgi]\nsocket = 127.0.0.1:${p}\nwsgi-file = ${join(dir, 'waits.py')}\nprocesses = 2\nthreads = ${threads}\nenv = PATH=/usr/bin:/bin\ndisable-logging = true\n`);
    return start(process.execPath, [EMPEROR_BIN, '--ini', join(dir, file)], quiet);
  };
  const emperor = vassal('io4.ini', port.emperor, 4);
  const emperor1 = vassal('io1.ini', port.emperor1, 1);
  const uwsgi = start('uwsgi', ['--plugin', 'python3', '--master', '--processes', '2', '--threads', '4', '--disable-logging', '--die-on-term',
    '--socket', `127.0.0.1:${port.uwsgi}`, '--wsgi-file', join(dir, 'waits.py')], { cwd: dir });
  const gunicorn = start('gunicorn', ['--workers', '2', '--worker-class', 'gthread', '--threads', '4', '--bind', `127.0.0.1:${port.gunicorn}`, '--chdir', dir, 'waits:application'], { cwd: dir });
  startNginx(join(dir, 'nginx-io'), [
    uwsgiPass(port.ngxEmperor, port.emperor),
    uwsgiPass(port.ngxEmperor1, port.emperor1),
    uwsgiPass(port.ngxUwsgi, port.uwsgi),
    proxyPass(port.ngxGunicorn, port.gunicorn),
  ]);
  const targets = [
    ['Emperor, 2 workers × 4 threads (uwsgi_pass)', port.ngxEmperor, emperor.pid],
    ['uWSGI, 2 workers × 4 threads (uwsgi_pass)', port.ngxUwsgi, uwsgi.pid],
    ['gunicorn gthread, 2 workers × 4 threads (proxy_pass)', port.ngxGunicorn, gunicorn.pid],
    ['Emperor, 2 workers, no threads (uwsgi_pass)', port.ngxEmperor1, emperor1.pid],
  ].map(([name, p, root]) => [name, `http://127.0.0.1:${p}/`, root]);
  for (const [, url] of targets) await waitFor(() => get200(url), 30_000, 20);
  const runs = new Map(targets.map(([name]) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, url, root] of targets) {
      const cpu0 = treeCpuMs(root);
      const r = await wrk(url, { threads: 1, connections: CONNECTIONS, seconds: SECONDS });
      runs.get(name).push({ ...r, errors: r.non2xx + r.socketErrors.connect + r.socketErrors.write + r.socketErrors.timeout, cpuUs: ((treeCpuMs(root) - cpu0) * 1000) / r.requests });
    }
  }
  table(
    `WSGI app waiting 20 ms per request (as on a database), behind one nginx worker (wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, median of ${ROUNDS}; at most 400 req/s with 8 threads)`,
    ['server', 'req/s', 'p99', 'app server CPU µs/req', 'errors'],
    targets.map(([name]) => {
      const sorted = [...runs.get(name)].sort((a, b) => a.rps - b.rps);
      const r = sorted[Math.floor(sorted.length / 2)];
      return [name, Math.round(r.rps).toLocaleString('en-US'), `${r.p99Ms.toFixed(2)} ms`, Math.round(r.cpuUs), sorted.reduce((n, x) => n + x.errors, 0)];
    }),
  );
}
