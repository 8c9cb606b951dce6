// The cost of request logging: the 2-worker Node hello world of node-pool (same app,
// same wrk settings) without request lines, with uWSGI's default line and with JSON
// lines, both appended to a `logto` file as in production. The promise (issue 7):
// logging costs at most 10% of throughput.
import { join } from 'node:path';
import { EMPEROR_BIN, LOADS, ROOT, mean, measureWrk, record, start, table, tempDir } from './lib.mjs';

const APP = join(ROOT, 'bench', 'apps', 'hello.mjs');
const quiet = { ...process.env, EMPEROR_LOG_LEVEL: 'warn' };

const configs = {
  'no request log': [],
  "uWSGI's line to a file": ['--logto', 'LOG'],
  'JSON lines to a file': ['--log-json', '--logto', 'LOG'],
};

function vassal(extra) {
  return async (port) => {
    const log = join(tempDir(), 'app.log');
    const args = extra.length === 0 ? ['--disable-logging'] : extra.map((a) => (a === 'LOG' ? log : a));
    return start(process.execPath, [EMPEROR_BIN, '--http-socket', `127.0.0.1:${port}`, '--module', APP, '--processes', '2', '--listen', '511', ...args], { env: quiet });
  };
}

// BENCH_LOADS narrows the loads, BENCH_ROUNDS the rounds, as in node-pool.
export async function run({ rounds = Number(process.env.BENCH_ROUNDS ?? 3), seconds = 8 } = {}) {
  const loads = (process.env.BENCH_LOADS ?? Object.keys(LOADS).join(',')).split(',');
  const names = Object.keys(configs);
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
    const base = mean(byName['no request log'], (r) => r.rps);
    const baseCpu = mean(byName['no request log'], (r) => r.cpuUsPerRequest);
    for (const [name, rs] of Object.entries(byName)) {
      const rps = mean(rs, (r) => r.rps);
      const cpu = mean(rs, (r) => r.cpuUsPerRequest);
      rows.push([mode, name, Math.round(rps).toLocaleString('en-US'), `${((rps / base - 1) * 100).toFixed(1)}%`, `${cpu.toFixed(1)} µs`,
        `${((cpu / baseCpu - 1) * 100).toFixed(1)}%`, rs.reduce((a, r) => a + r.errors, 0), rs.map((r) => Math.round(r.rps)).join(' / ')]);
    }
  }
  table(`Request logging cost: Node hello world, 2 workers, wrk as in node-pool (${seconds} s, ${rounds} rounds, order alternating)`,
    ['load', 'request log', 'req/s', 'req/s vs none', 'CPU per request', 'CPU vs none', 'errors', 'rounds (req/s)'], rows);
}
