// The cost of request logging: the 2-worker Node hello world of node-pool (same app,
// same wrk settings) without request lines, with uWSGI's default line and with JSON
// lines, both appended to a `logto` file as in production; the same for a Python WSGI
// hello world; and uWSGI itself (Debian's uwsgi + uwsgi-plugin-python3, http11-socket
// for keep-alive) on that WSGI app, for what the same logging costs the original on this
// machine in the same run. The promise (issue 7): logging costs at most 10% of throughput.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMPEROR_BIN, LOADS, ROOT, measureWrk, median, record, start, table, tempDir } from './lib.mjs';
import { debianTool } from './peers.mjs';

const APPS = {
  node: ['--module', join(ROOT, 'bench', 'apps', 'hello.mjs')],
  python: ['--wsgi-file', 'PY', '--env', 'PATH=/usr/bin:/bin'],
};
// With Content-Length, as the Node app: uWSGI's http11-socket keeps a connection open only then.
const PY_APP = 'def application(environ, start_response):\n    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])\n    return [b"hello world\\n"]\n';
const quiet = { ...process.env, EMPEROR_LOG_LEVEL: 'warn' };

const configs = {
  'node, no request log': ['node'],
  "node, uWSGI's line to a file": ['node', '--logto', 'LOG'],
  'node, JSON lines to a file': ['node', '--log-json', '--logto', 'LOG'],
  'python, no request log': ['python'],
  "python, uWSGI's line to a file": ['python', '--logto', 'LOG'],
  'uWSGI itself, no request log': ['uwsgi'],
  "uWSGI itself, uWSGI's line to a file": ['uwsgi', '--logto', 'LOG'],
};

/** uWSGI with its Python plugin, or undefined (its rows are then left out, with a note). */
function uwsgiBinary() {
  try {
    const bin = debianTool('uwsgi', 'uwsgi uwsgi-plugin-python3');
    return existsSync('/usr/lib/uwsgi/plugins/python3_plugin.so') ? bin : undefined;
  } catch {
    return undefined;
  }
}

function vassal([runtime, ...extra]) {
  return async (port) => {
    const dir = tempDir();
    writeFileSync(join(dir, 'app.py'), PY_APP);
    const args = extra.length === 0 ? ['--disable-logging'] : extra.map((a) => (a === 'LOG' ? join(dir, 'app.log') : a));
    if (runtime === 'uwsgi') {
      return start(uwsgiBinary(), ['--plugin', 'python3', '--master', '--processes', '2', '--listen', '511', '--die-on-term',
        '--http11-socket', `127.0.0.1:${port}`, '--wsgi-file', join(dir, 'app.py'), ...args], { cwd: dir });
    }
    const app = APPS[runtime].map((a) => (a === 'PY' ? join(dir, 'app.py') : a));
    return start(process.execPath, [EMPEROR_BIN, '--http-socket', `127.0.0.1:${port}`, ...app, '--processes', '2', '--listen', '511', ...args], { env: quiet });
  };
}

// BENCH_LOADS narrows the loads, BENCH_ROUNDS the rounds, as in node-pool.
export async function run({ rounds = Number(process.env.BENCH_ROUNDS ?? 5), seconds = 8 } = {}) {
  const loads = (process.env.BENCH_LOADS ?? Object.keys(LOADS).join(',')).split(',');
  const withUwsgi = uwsgiBinary() !== undefined;
  if (!withUwsgi) process.stderr.write('  uWSGI rows left out: apt-get install uwsgi uwsgi-plugin-python3\n');
  const names = Object.keys(configs).filter((name) => withUwsgi || configs[name][0] !== 'uwsgi');
  const results = {};
  for (const mode of loads) {
    for (let round = 0; round < rounds; round++) {
      // Alternate the order so drift on a shared machine does not favour one config.
      for (const name of round % 2 === 0 ? names : [...names].reverse()) {
        ((results[mode] ??= {})[name] ??= []).push(await measureWrk(name, vassal(configs[name]), mode, seconds));
      }
    }
  }
  record('request-log', results);
  const rows = [];
  for (const [mode, byName] of Object.entries(results)) {
    for (const [name, rs] of Object.entries(byName)) {
      const none = byName[`${name.split(',')[0]}, no request log`];
      // Each round compares configs run minutes apart at most; the median of the rounds'
      // ratios keeps one disturbed round (this is a shared 2-core VM) from moving the figure.
      const ratio = median(rs.map((r, i) => r.rps / none[i].rps));
      const cpu = median(rs.map((r) => r.cpuUsPerRequest));
      const extraCpu = median(rs.map((r, i) => r.cpuUsPerRequest - none[i].cpuUsPerRequest));
      rows.push([mode, name, Math.round(median(rs.map((r) => r.rps))).toLocaleString('en-US'), `${((ratio - 1) * 100).toFixed(1)}%`, `${cpu.toFixed(1)} µs`,
        rs === none ? '–' : `${extraCpu.toFixed(1)} µs`, rs.reduce((a, r) => a + r.errors, 0), rs.map((r) => Math.round(r.rps)).join(' / ')]);
    }
  }
  table(`Request logging cost: hello world, 2 workers, wrk as in node-pool (${seconds} s, ${rounds} rounds, order alternating; medians, ratios per round)`,
    ['load', 'request log', 'req/s', 'req/s vs none', 'CPU per request', 'CPU per line', 'errors', 'rounds (req/s)'], rows);
}
