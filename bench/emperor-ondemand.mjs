// On-demand vassals (issue 23), next to uWSGI's emperor in the same run: N vassal files
// (default 500) under `emperor-on-demand-directory`, so every vassal waits on a unix
// socket the emperor binds (uWSGI's `--emperor-on-demand-directory` takes unix sockets
// only; both use them). Then ACTIVE of them (default 20) get traffic:
//   - total memory (PSS of the emperor and everything under it) with no vassal started,
//     and once the ACTIVE ones run and served for a while;
//   - cold-start latency: from connecting to an idle vassal's socket to its first 200,
//     one vassal at a time (median and p95 over the ACTIVE vassals);
//   - the same with ACTIVE first requests at once, on vassals back on demand (ours:
//     after `idle` + `die-on-idle`; uWSGI: the same options).
// Ours serves a Node hello world (examples/node-hello), uWSGI a Python WSGI hello world
// (Debian's uwsgi-core + uwsgi-plugin-python3); one worker each, `protocol = http`.
//
//   npm run bench -- emperor-ondemand
//   BENCH_ONDEMAND_VASSALS=50 BENCH_ONDEMAND_ACTIVE=5 npm run bench -- emperor-ondemand   # quick
//   BENCH_SKIP_UWSGI=1 ...     ours only
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { EMPEROR_BIN, ROOT, descendants, median, mib, ms, percentile, record, start, table, tempDir } from './lib.mjs';

const N = Number(process.env.BENCH_ONDEMAND_VASSALS ?? 500);
const ACTIVE = Number(process.env.BENCH_ONDEMAND_ACTIVE ?? 20);
const TRAFFIC_S = Number(process.env.BENCH_ONDEMAND_TRAFFIC_S ?? 10);
/** `idle` of every vassal, s: longer than the cold starts one at a time plus the traffic (no vassal goes back on demand before), short enough to wait for. */
const IDLE_S = Number(process.env.BENCH_ONDEMAND_IDLE_S ?? 60);

const pss = (pid) => { try { return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]) * 1024; } catch { return 0; } };
const rss = (pid) => { try { return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024; } catch { return 0; } };
const childrenOf = (pid) => {
  try { return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { return []; }
};

/** One HTTP/1.0 GET over a unix socket on a fresh connection: 'ok' on a 200, 'refused' when the connection is, 'timeout', else 'failed'. */
function probe(path, timeoutMs = 30_000) {
  return new Promise((resolve) => {
    const socket = connect(path);
    let data = '';
    const done = (result) => { socket.destroy(); clearTimeout(timer); resolve(result); };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    socket.on('connect', () => socket.write('GET / HTTP/1.0\r\nHost: x\r\n\r\n'));
    socket.on('data', (c) => { data += c; if (data.includes('\r\n')) done(/^HTTP\/1\.[01] 200/.test(data) ? 'ok' : 'failed'); });
    socket.on('error', (err) => done(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'refused' : 'failed'));
    socket.on('end', () => done(/^HTTP\/1\.[01] 200/.test(data) ? 'ok' : 'failed'));
  });
}

/** ms from connecting to the 200 of one request; throws when it is not answered. */
async function timed(path) {
  const t = performance.now();
  const result = await probe(path);
  if (result !== 'ok') throw new Error(`${path}: ${result}`);
  return performance.now() - t;
}

const SYSTEMS = {
  emperor: {
    label: 'Emperor (Node hello, 1 worker, emperor-on-demand-directory)',
    prepare() { return { app: join(ROOT, 'examples', 'node-hello', 'app.mjs') }; },
    vassal: ({ app }) => `[uwsgi]\nmodule = ${app}\nprotocol = http\nprocesses = 1\nidle = ${IDLE_S}\ndie-on-idle = true\ndisable-logging = true\n`,
    start: (dir, sockets) => start(process.execPath, [EMPEROR_BIN, '--emperor', dir, '--emperor-on-demand-directory', sockets], { env: { ...process.env, EMPEROR_LOG_LEVEL: 'warn', EMPEROR_LOG_STYLE: 'json' } }),
  },
  uwsgi: {
    label: 'uWSGI 2.0 emperor (Python WSGI hello, master + 1 worker, --emperor-on-demand-directory)',
    prepare(dir) {
      const app = join(dir, '..', `ondemand-app-${process.pid}.py`);
      writeFileSync(app, 'def application(environ, start_response):\n    start_response("200 OK", [("Content-Type", "text/plain")])\n    return [b"Hello"]\n');
      return { app };
    },
    vassal: ({ app }) => `[uwsgi]\nplugins = python3\nmaster = true\nwsgi-file = ${app}\nprotocol = http\nprocesses = 1\nidle = ${IDLE_S}\ndie-on-idle = true\ndisable-logging = true\n`,
    start: (dir, sockets) => start('uwsgi', ['--emperor', dir, '--emperor-on-demand-directory', sockets, '--die-on-term'], { stderr: 'ignore' }),
  },
};

function haveUwsgi() {
  try {
    execFileSync('uwsgi', ['--version'], { stdio: 'ignore' });
    execFileSync('sh', ['-c', 'ls /usr/lib/uwsgi/plugins/python3*_plugin.so'], { stdio: 'ignore' });
    return true;
  } catch { return false; }
}

/** PSS and RSS of the emperor and everything under it, and how many masters run. */
function footprint(emperorPid) {
  const tree = [emperorPid, ...descendants(emperorPid)];
  return { pss: tree.reduce((n, p) => n + pss(p), 0), emperorRss: rss(emperorPid), masters: childrenOf(emperorPid).length };
}

async function measure(system) {
  const dir = tempDir(`emperor-ondemand-${system === SYSTEMS.uwsgi ? 'uwsgi' : 'ours'}-`);
  const vassals = join(dir, 'vassals');
  const sockets = join(dir, 'sockets');
  mkdirSync(vassals);
  mkdirSync(sockets);
  const ctx = system.prepare(dir);
  const names = Array.from({ length: N }, (_, i) => `v${String(i).padStart(3, '0')}`);
  for (const name of names) writeFileSync(join(vassals, `${name}.ini`), system.vassal(ctx));
  const pathOf = (name) => join(sockets, `${name}.socket`);

  const t0 = performance.now();
  const emperor = system.start(vassals, sockets);
  for (;;) {
    if (names.every((n) => existsSync(pathOf(n)))) break;
    if (performance.now() - t0 > 120_000) throw new Error('not every on-demand socket appeared within 120 s');
    await delay(50);
  }
  const allWaiting = performance.now() - t0;
  await delay(5000);
  const idle = footprint(emperor.pid);

  // Cold starts, one vassal at a time.
  const active = names.slice(0, ACTIVE);
  const cold = [];
  for (const name of active) cold.push(await timed(pathOf(name)));

  // Light traffic on the active ones, then the memory with them running.
  const until = performance.now() + TRAFFIC_S * 1000;
  let served = 0;
  const failed = { refused: 0, timeout: 0, failed: 0 };
  while (performance.now() < until) {
    const results = await Promise.all(active.map((n) => probe(pathOf(n), 10_000)));
    for (const r of results) if (r === 'ok') served += 1; else failed[r] += 1;
    await delay(100);
  }
  const running = footprint(emperor.pid);

  // Back on demand after `idle` (die-on-idle), then every active one at once.
  const backBy = performance.now() + (IDLE_S + 30) * 1000;
  for (;;) {
    if (childrenOf(emperor.pid).length === 0) break;
    if (performance.now() > backBy) throw new Error(`${childrenOf(emperor.pid).length} masters still running ${IDLE_S + 30} s after the traffic stopped`);
    await delay(200);
  }
  const burst = await Promise.all(active.map((n) => timed(pathOf(n)).catch(() => NaN)));
  const burstFailed = burst.filter((x) => Number.isNaN(x)).length;
  const burstOk = burst.filter((x) => !Number.isNaN(x));
  return { allWaiting, idle, cold, served, failed, running, burst: burstOk, burstFailed };
}

export async function run() {
  const results = [['Emperor', await measure(SYSTEMS.emperor)]];
  await import('./lib.mjs').then((lib) => lib.runCleanups());
  if (process.env.BENCH_SKIP_UWSGI === '1') console.error('uWSGI skipped (BENCH_SKIP_UWSGI=1)');
  else if (!haveUwsgi()) console.error('uWSGI not measured: install it with `apt-get install uwsgi-core uwsgi-plugin-python3`');
  else results.push(['uWSGI', await measure(SYSTEMS.uwsgi)]);

  for (const [name, r] of results) {
    record(`emperor-ondemand.${name}`, {
      vassals: N, active: ACTIVE, idlePss: r.idle.pss, runningPss: r.running.pss, emperorRss: r.idle.emperorRss,
      coldMedianMs: median(r.cold), coldP95Ms: percentile(r.cold, 95), burstMedianMs: median(r.burst), burstP95Ms: percentile(r.burst, 95),
    });
  }
  const rows = [
    [`${N} on-demand sockets bound`, ...results.map(([, r]) => ms(r.allWaiting))],
    ['total PSS, no vassal started', ...results.map(([, r]) => mib(r.idle.pss))],
    ['emperor RSS, no vassal started', ...results.map(([, r]) => mib(r.idle.emperorRss))],
    [`cold start → first 200, median (${ACTIVE} vassals, one at a time)`, ...results.map(([, r]) => ms(median(r.cold)))],
    ['  p95', ...results.map(([, r]) => ms(percentile(r.cold, 95)))],
    [`total PSS, ${ACTIVE} running + ${N - ACTIVE} waiting`, ...results.map(([, r]) => mib(r.running.pss))],
    ['  masters running', ...results.map(([, r]) => String(r.running.masters))],
    [`requests in ${TRAFFIC_S} s of light traffic: answered / refused / timed out (10 s) / other`, ...results.map(([, r]) => `${r.served} / ${r.failed.refused} / ${r.failed.timeout} / ${r.failed.failed}`)],
    [`back on demand (idle ${IDLE_S} s, die-on-idle), ${ACTIVE} cold starts at once: median`, ...results.map(([, r]) => ms(median(r.burst)))],
    ['  p95', ...results.map(([, r]) => ms(percentile(r.burst, 95)))],
    ['  not answered', ...results.map(([, r]) => String(r.burstFailed))],
  ];
  table(`On-demand vassals: ${N}, ${ACTIVE} with traffic, same run (${new Date().toISOString().slice(0, 16)}Z)`, ['', ...results.map(([name]) => name)], rows);
  for (const [name] of results) console.log(`- ${name}: ${SYSTEMS[name === 'uWSGI' ? 'uwsgi' : 'emperor'].label}`);
}
