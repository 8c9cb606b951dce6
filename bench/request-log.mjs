// The cost of request logging, measured in pairs: a server without request lines and the
// same server with them run at the same time, each under its own wrk, so that whatever
// else the shared machine is doing slows both alike. Each server has one worker: with two
// servers, two wrk processes and two cores, the scheduler gives each server the same
// share of CPU, and the one that spends more per request serves fewer. The ratio of the
// two throughputs in the same seconds is the cost; run one after the other, the same
// configuration moved ±10 % between runs here, more than the cost itself.
//
// Pairs: the Node hello world of node-pool with uWSGI's default line and with JSON lines,
// a Python WSGI hello world with uWSGI's line, and uWSGI itself (Debian's uwsgi +
// uwsgi-plugin-python3, http11-socket for keep-alive) on that WSGI app, all appended to a
// `logto` file as in production; and a control pair without logging on either side, whose
// spread is the method's noise. The promise (issue 7): logging costs at most 10 % of
// throughput.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMPEROR_BIN, LOADS, ROOT, freePort, get200, median, record, runCleanups, start, table, tempDir, treeCpuMs, waitFor } from './lib.mjs';
import { debianTool } from './peers.mjs';
import { wrk } from './wrk.mjs';

// With Content-Length, as the Node app: uWSGI's http11-socket keeps a connection open only then.
const PY_APP = 'def application(environ, start_response):\n    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])\n    return [b"hello world\\n"]\n';
const quiet = { ...process.env, EMPEROR_LOG_LEVEL: 'warn' };

/** [runtime, label, logging flags] of each pair's side with request lines ("LOG" is the file). */
const PAIRS = [
  ['node', 'control: no request log on either side', []],
  ['node', "uWSGI's line to a file", ['--logto', 'LOG']],
  ['node', 'JSON lines to a file', ['--log-json', '--logto', 'LOG']],
  ['python', "uWSGI's line to a file", ['--logto', 'LOG']],
  ['uWSGI itself', "uWSGI's line to a file", ['--logto', 'LOG']],
];

/** Each server's share of the load: half of node-pool's connections, one wrk thread. */
const PAIR_LOADS = Object.fromEntries(Object.entries(LOADS).map(([mode, o]) => [mode, { ...o, threads: 1, connections: Math.max(1, o.connections >> 1) }]));

/** uWSGI with its Python plugin, or undefined (its rows are then left out, with a note). */
function uwsgiBinary() {
  try {
    const bin = debianTool('uwsgi', 'uwsgi uwsgi-plugin-python3');
    return existsSync('/usr/lib/uwsgi/plugins/python3_plugin.so') ? bin : undefined;
  } catch {
    return undefined;
  }
}

/** Starts one server with one worker; resolves to its URL and root pid once it answers 200. */
async function server(runtime, logging) {
  const dir = tempDir();
  const app = join(dir, 'app.py');
  writeFileSync(app, PY_APP);
  const port = await freePort();
  const args = logging.length === 0 ? ['--disable-logging'] : logging.map((a) => (a === 'LOG' ? join(dir, 'app.log') : a));
  const common = ['--processes', '1', '--listen', '511'];
  const s = runtime === 'uWSGI itself'
    // uWSGI logs by default; the flag that turns it off is its own (--disable-logging too).
    ? start(uwsgiBinary(), ['--plugin', 'python3', '--master', '--die-on-term', '--http11-socket', `127.0.0.1:${port}`, '--wsgi-file', app, ...common, ...args], { cwd: dir })
    : start(process.execPath, [EMPEROR_BIN, '--http-socket', `127.0.0.1:${port}`,
      ...(runtime === 'node' ? ['--module', join(ROOT, 'bench', 'apps', 'hello.mjs')] : ['--wsgi-file', app, '--env', 'PATH=/usr/bin:/bin']),
      ...common, ...args], { env: quiet });
  const url = `http://127.0.0.1:${port}/`;
  await waitFor(() => get200(url), 30_000, 20);
  return { url, pid: s.pid };
}

/**
 * Both servers under load for the same `seconds`; CPU per request from /proc of each tree.
 * `swap` starts the second server's wrk first, so neither side always gets the head start.
 */
async function together(servers, load, seconds, swap = false) {
  const cpu0 = servers.map((s) => treeCpuMs(s.pid));
  const started = (swap ? [1, 0] : [0, 1]).map((i) => [i, wrk(servers[i].url, { ...load, seconds })]);
  const runs = [];
  for (const [i, run] of started) runs[i] = await run;
  return runs.map((r, i) => ({ ...r, cpuUsPerRequest: ((treeCpuMs(servers[i].pid) - cpu0[i]) * 1000) / r.requests }));
}

// BENCH_LOADS narrows the loads, BENCH_ROUNDS the rounds, as in node-pool.
export async function run({ rounds = Number(process.env.BENCH_ROUNDS ?? 7), seconds = 6 } = {}) {
  const loads = (process.env.BENCH_LOADS ?? Object.keys(LOADS).join(',')).split(',');
  const withUwsgi = uwsgiBinary() !== undefined;
  if (!withUwsgi) process.stderr.write('  uWSGI rows left out: apt-get install uwsgi uwsgi-plugin-python3\n');
  const pairs = PAIRS.filter(([runtime]) => withUwsgi || runtime !== 'uWSGI itself');
  const results = {};
  const rows = [];
  for (const mode of loads) {
    for (const [runtime, label, logging] of pairs) {
      process.stderr.write(`  ${mode}: ${runtime}, ${label} ...\n`);
      const servers = await Promise.all([server(runtime, []), server(runtime, logging)]);
      await together(servers, PAIR_LOADS[mode], 2); // warm-up
      const measured = [];
      for (let round = 0; round < rounds; round++) measured.push(await together(servers, PAIR_LOADS[mode], seconds, round % 2 === 1));
      await runCleanups();
      ((results[mode] ??= {})[`${runtime}, ${label}`] = measured);
      const ratios = measured.map(([none, logged]) => logged.rps / none.rps);
      const pct = (r) => `${((r - 1) * 100).toFixed(1)}%`;
      const rps = (i) => Math.round(median(measured.map((m) => m[i].rps))).toLocaleString('en-US');
      rows.push([mode, runtime, label, rps(1), rps(0), pct(median(ratios)), `${pct(Math.min(...ratios))} … ${pct(Math.max(...ratios))}`,
        `${median(measured.map((m) => m[0].cpuUsPerRequest)).toFixed(1)} µs`,
        `${median(measured.map(([none, logged]) => logged.cpuUsPerRequest - none.cpuUsPerRequest)).toFixed(1)} µs`,
        measured.reduce((a, m) => a + m[0].errors + m[1].errors, 0)]);
    }
  }
  record('request-log', results);
  table(`Request logging cost: hello world, 1 worker, each pair run at the same time (${rounds} rounds of ${seconds} s; medians, ratios per round)`,
    ['load', 'server', 'request log', 'req/s', 'req/s without', 'change', 'change, all rounds', 'CPU per request without', 'CPU per line', 'errors'], rows);
}
