// FastCGI hello world, 2 workers each, behind one nginx worker with fastcgi_pass and
// Debian's stock fastcgi_params: Emperor's Python and Node workers on fastcgi-socket
// against uWSGI's fastcgi-socket (Debian's uwsgi + uwsgi-plugin-python3), all in one run
// with the same load generator (wrk, fixed duration, on 127.0.0.1). Each is measured
// with a connection per request (fastcgi_keep_conn off, nginx's default) and with
// fastcgi_keep_conn on and an upstream keepalive pool (uWSGI 2.0 ignores FCGI_KEEP_CONN
// and closes after each request, so its second row shows what nginx does then).
//
// Needs: apt-get install wrk nginx uwsgi uwsgi-plugin-python3 python3. BENCH_SECONDS,
// BENCH_CONNECTIONS and BENCH_ROUNDS as in bench/wsgi.mjs. The CPU column is the app
// server's own processes (user + system time per answered request, from /proc); nginx's
// is not counted, and on 2 cores one nginx worker bounds req/s as much as the app server.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMPEROR_BIN, ROOT, ensureDebianPackages, freePort, get200, record, start, startNginx, table, tempDir, treeCpuMs, version, waitFor } from './lib.mjs';
import { wrk } from './wrk.mjs';

const PACKAGES = ['wrk', 'nginx', 'uwsgi', 'uwsgi-plugin-python3'];
const PYTHON = '/usr/bin/python3';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const NODE_APP = join(ROOT, 'bench', 'apps', 'hello.mjs');

const APP = `def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '13')])
    return [b'Hello, World!']
`;

/** An nginx server block on 127.0.0.1:`listen` passing to `upstream` over FastCGI with the stock fastcgi_params. */
const fastcgiPass = (listen, upstream, keepConn) =>
  `server { listen 127.0.0.1:${listen}; location / { include /etc/nginx/fastcgi_params; ${keepConn ? 'fastcgi_keep_conn on; ' : ''}fastcgi_pass ${upstream}; } }`;

export async function run() {
  ensureDebianPackages('fastcgi', PACKAGES);
  const dir = tempDir();
  writeFileSync(join(dir, 'app.py'), APP);
  const port = {};
  for (const name of ['python', 'node', 'uwsgi', 'ngxPython', 'ngxNode', 'ngxUwsgi', 'ngxPythonKept', 'ngxNodeKept', 'ngxUwsgiKept']) port[name] = await freePort();
  const quiet = { env: { ...process.env, EMPEROR_LOG_LEVEL: 'warn', EMPEROR_LOG_PRETTY: '0' } };
  // No request log, as uWSGI runs with --disable-logging.
  writeFileSync(join(dir, 'python.ini'), `[uwsgi]\nfastcgi-socket = 127.0.0.1:${port.python}\nwsgi-file = ${join(dir, 'app.py')}\nprocesses = 2\nenv = PATH=/usr/bin:/bin\ndisable-logging = true\n`);
  writeFileSync(join(dir, 'node.ini'), `[uwsgi]\nfastcgi-socket = 127.0.0.1:${port.node}\nmodule = ${NODE_APP}\nprocesses = 2\ndisable-logging = true\n`);
  const python = start(process.execPath, [EMPEROR_BIN, '--ini', join(dir, 'python.ini')], quiet);
  const node = start(process.execPath, [EMPEROR_BIN, '--ini', join(dir, 'node.ini')], quiet);
  const uwsgi = start('uwsgi', [
    '--plugin', 'python3', '--master', '--processes', '2', '--disable-logging', '--die-on-term',
    '--fastcgi-socket', `127.0.0.1:${port.uwsgi}`, '--wsgi-file', join(dir, 'app.py'),
  ], { cwd: dir });
  const upstream = (name, p) => `upstream ${name} { server 127.0.0.1:${p}; keepalive 16; keepalive_timeout 4s; }`;
  startNginx(join(dir, 'nginx'), [
    upstream('python_kept', port.python),
    upstream('node_kept', port.node),
    upstream('uwsgi_kept', port.uwsgi),
    fastcgiPass(port.ngxPython, `127.0.0.1:${port.python}`, false),
    fastcgiPass(port.ngxNode, `127.0.0.1:${port.node}`, false),
    fastcgiPass(port.ngxUwsgi, `127.0.0.1:${port.uwsgi}`, false),
    fastcgiPass(port.ngxPythonKept, 'python_kept', true),
    fastcgiPass(port.ngxNodeKept, 'node_kept', true),
    fastcgiPass(port.ngxUwsgiKept, 'uwsgi_kept', true),
  ]);

  // [name, nginx port, the app server's root pid (its CPU is measured, nginx's is not)]
  const targets = [
    ['Emperor, Python worker', port.ngxPython, python.pid],
    ['Emperor, Node worker', port.ngxNode, node.pid],
    ['uWSGI fastcgi-socket', port.ngxUwsgi, uwsgi.pid],
    ['Emperor, Python worker, keep-conn on', port.ngxPythonKept, python.pid],
    ['Emperor, Node worker, keep-conn on', port.ngxNodeKept, node.pid],
    ['uWSGI fastcgi-socket, keep-conn on', port.ngxUwsgiKept, uwsgi.pid],
  ].map(([name, p, root]) => [name, `http://127.0.0.1:${p}/`, root]);
  const measure = async (url, root, seconds) => {
    const cpu0 = treeCpuMs(root);
    const r = await wrk(url, { threads: 1, connections: CONNECTIONS, seconds });
    const errors = r.non2xx + r.socketErrors.connect + r.socketErrors.read + r.socketErrors.write + r.socketErrors.timeout;
    return { ...r, errors, cpuUs: ((treeCpuMs(root) - cpu0) * 1000) / r.requests };
  };
  for (const [, url] of targets) await waitFor(() => get200(url), 30_000, 20);
  for (const [, url, root] of targets) await measure(url, root, 1); // warm-up
  const runs = new Map(targets.map(([name]) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, url, root] of targets) runs.get(name).push(await measure(url, root, SECONDS));
  }
  const results = new Map(targets.map(([name]) => {
    const sorted = [...runs.get(name)].sort((a, b) => a.rps - b.rps);
    const median = sorted[Math.floor(sorted.length / 2)];
    return [name, { ...median, errors: sorted.reduce((n, r) => n + r.errors, 0) }];
  }));
  record('fastcgi', Object.fromEntries([...results].map(([name, r]) => [name, { rps: r.rps, p99Ms: r.p99Ms, cpuUs: r.cpuUs, errors: r.errors }])));
  table(
    `FastCGI hello world, 2 workers each, behind one nginx worker with fastcgi_pass (wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, median of ${ROUNDS}; ${version(PYTHON, ['--version'])}; node ${process.version}; uWSGI ${version('uwsgi', ['--version'])}; ${version('/usr/sbin/nginx', ['-v'])})`,
    ['server', 'req/s', 'p99', 'app server CPU µs/req', 'errors'],
    [...results].map(([name, r]) => [name, Math.round(r.rps).toLocaleString('en-US'), `${r.p99Ms.toFixed(2)} ms`, Math.round(r.cpuUs), r.errors]),
  );
  const ratio = (a, b) => `${(results.get(a).rps / results.get(b).rps).toFixed(2)} (CPU per request ${(results.get(a).cpuUs / results.get(b).cpuUs).toFixed(2)})`;
  table('Ratios: req/s (and app server CPU per request)', ['comparison', 'ratio'], [
    ['Emperor Python / uWSGI, a connection per request', ratio('Emperor, Python worker', 'uWSGI fastcgi-socket')],
    ['Emperor Node / uWSGI, a connection per request', ratio('Emperor, Node worker', 'uWSGI fastcgi-socket')],
    ['Emperor Python / uWSGI, keep-conn on', ratio('Emperor, Python worker, keep-conn on', 'uWSGI fastcgi-socket, keep-conn on')],
    ['Emperor Node / uWSGI, keep-conn on', ratio('Emperor, Node worker, keep-conn on', 'uWSGI fastcgi-socket, keep-conn on')],
    ['Emperor Python, keep-conn on / off', ratio('Emperor, Python worker, keep-conn on', 'Emperor, Python worker')],
    ['Emperor Node, keep-conn on / off', ratio('Emperor, Node worker, keep-conn on', 'Emperor, Node worker')],
  ]);
}
