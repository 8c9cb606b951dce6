// The emperor at scale, next to uWSGI's emperor measured in the same run:
//   - spawn time: from starting the emperor on a directory of N vassal files (one worker
//     each; BENCH_VASSALS, a comma-separated list of sizes, default 50,200: one table each) until every one answers 200;
//   - idle CPU of the emperor (and of all the vassals) over 60 s once everything is up;
//   - RSS of the emperor, RSS of one vassal master and one worker, memory per vassal
//     (PSS: shared pages split between their users, so forked and exec'd trees compare);
//   - time from dropping one more file to its first 200 (median, p95 over 20 drops).
// Columns (BENCH_SYSTEMS, comma-separated, default all four):
//   emperor         ours serving a Node hello world (examples/node-hello): master + Node worker;
//   emperor-python  ours serving a Python WSGI hello world: master + template + forked worker;
//   floor           two bare Node processes per vassal and a 40-line launcher (bench/apps/floor.mjs):
//                   what any Node master + Node worker costs before any code of ours;
//   uwsgi           uWSGI's emperor with a Python WSGI hello world (Debian's uwsgi-core +
//                   uwsgi-plugin-python3).
//
//   npm run bench -- emperor-scale
//   BENCH_VASSALS=30 BENCH_IDLE_S=10 BENCH_DROPS=5 npm run bench -- emperor-scale   # quick
//   BENCH_SKIP_UWSGI=1 ...     ours only
import { execFileSync } from 'node:child_process';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { EMPEROR_BIN, ROOT, descendants, freePort, median, mib, ms, percentile, start, table, tempDir } from './lib.mjs';

const SIZES = (process.env.BENCH_VASSALS ?? '50,200').split(',').map(Number);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 60);
const DROPS = Number(process.env.BENCH_DROPS ?? 20);
const CLK_TCK = 100;

/** One HTTP/1.0 GET on a fresh connection; true on a 200 status line. Lighter than fetch, so the client steals little CPU from what it measures. */
function probe(port, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const done = (ok) => { socket.destroy(); clearTimeout(timer); resolve(ok); };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => socket.write('GET / HTTP/1.0\r\nHost: x\r\n\r\n'));
    socket.on('data', (c) => { data += c; if (data.includes('\r\n')) done(/^HTTP\/1\.[01] 200/.test(data)); });
    socket.on('error', () => done(false));
    socket.on('end', () => done(/^HTTP\/1\.[01] 200/.test(data)));
  });
}

/** Distinct free ports. */
async function ports(n) {
  const out = new Set();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

/** Waits until every port answers 200; returns ms from `t0` to each first 200. */
async function allAnswer(portList, t0, limitMs) {
  const pending = new Set(portList);
  const at = new Map();
  const deadline = t0 + limitMs;
  while (pending.size > 0) {
    if (performance.now() > deadline) throw new Error(`${pending.size} of ${portList.length} vassals not answering after ${limitMs} ms`);
    const batch = [...pending];
    for (let i = 0; i < batch.length; i += 25) {
      const slice = batch.slice(i, i + 25);
      const results = await Promise.all(slice.map((p) => probe(p, 1000)));
      slice.forEach((p, j) => { if (results[j]) { pending.delete(p); at.set(p, performance.now() - t0); } });
    }
    if (pending.size > 0) await delay(100);
  }
  return [...at.values()];
}

const cpuTicks = (pid) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime
  } catch { return 0; }
};
const rss = (pid) => { try { return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024; } catch { return 0; } };
const pss = (pid) => { try { return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]) * 1024; } catch { return 0; } };
const childrenOf = (pid) => {
  try { return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { return []; }
};

/** The two systems under test. */
const SYSTEMS = {
  emperor: {
    label: 'Emperor (Node hello, 1 worker)',
    prepare() { return { app: join(ROOT, 'examples', 'node-hello', 'app.mjs') }; },
    vassal: ({ app }, port) => `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${app}\nprocesses = 1\n`,
    start: (dir) => start(process.execPath, [EMPEROR_BIN, '--emperor', dir], { env: { ...process.env, EMPEROR_LOG_LEVEL: 'warn', EMPEROR_LOG_STYLE: 'json' } }),
    masters: (pid) => childrenOf(pid),
  },
  'emperor-python': {
    label: 'Emperor (Python WSGI hello, preloaded, 1 worker)',
    prepare(dir) {
      const app = join(dir, '..', `app-${process.pid}.py`);
      writeFileSync(app, 'def application(environ, start_response):\n    start_response("200 OK", [("Content-Type", "text/plain")])\n    return [b"Hello"]\n');
      return { app };
    },
    // Debian's Python, which uWSGI's python3 plugin embeds too (not a pyenv shim on PATH).
    vassal: ({ app }, port) => `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nwsgi-file = ${app}\nprocesses = 1\ndisable-logging = true\nenv = PATH=/usr/bin:/bin\n`,
    start: (dir) => start(process.execPath, [EMPEROR_BIN, '--emperor', dir], { env: { ...process.env, EMPEROR_LOG_LEVEL: 'warn', EMPEROR_LOG_STYLE: 'json' } }),
    masters: (pid) => childrenOf(pid),
  },
  floor: {
    label: 'floor: two bare Node processes per vassal (bench/apps/floor.mjs), no code of ours',
    prepare() { return {}; },
    vassal: (_ctx, port) => `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\n`,
    start: (dir) => start(process.execPath, [join(ROOT, 'bench', 'apps', 'floor.mjs'), 'emperor', dir]),
    masters: (pid) => childrenOf(pid),
  },
  uwsgi: {
    label: 'uWSGI 2.0 emperor (Python WSGI hello, master + 1 worker)',
    prepare(dir) {
      const app = join(dir, '..', `app-${process.pid}.py`);
      writeFileSync(app, 'def application(environ, start_response):\n    start_response("200 OK", [("Content-Type", "text/plain")])\n    return [b"Hello"]\n');
      return { app };
    },
    vassal: ({ app }, port) => `[uwsgi]\nplugins = python3\nmaster = true\nhttp-socket = 127.0.0.1:${port}\nwsgi-file = ${app}\nprocesses = 1\ndisable-logging = true\n`,
    start: (dir) => start('uwsgi', ['--emperor', dir, '--die-on-term'], { stderr: 'ignore' }),
    masters: (pid) => childrenOf(pid),
  },
};

/** Ensures Debian's uWSGI is there (installing it as root when allowed); returns whether it can run. */
function haveUwsgi() {
  const has = () => {
    try {
      execFileSync('uwsgi', ['--version'], { stdio: 'ignore' });
      execFileSync('sh', ['-c', 'ls /usr/lib/uwsgi/plugins/python3*_plugin.so'], { stdio: 'ignore' });
      return true;
    } catch { return false; }
  };
  if (has()) return true;
  if (process.getuid?.() === 0 && process.env.BENCH_NO_INSTALL !== '1') {
    console.error('installing uwsgi-core and uwsgi-plugin-python3 (apt-get) for the comparison...');
    try {
      execFileSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq uwsgi-core uwsgi-plugin-python3'], { stdio: 'ignore' });
    } catch { /* reported below */ }
  }
  return has();
}

async function measure(system, N) {
  const dir = tempDir(`emperor-scale-${Object.keys(SYSTEMS).find((k) => SYSTEMS[k] === system)}-`);
  const ctx = system.prepare(dir);
  const portList = await ports(N);
  portList.forEach((port, i) => writeFileSync(join(dir, `v${String(i).padStart(3, '0')}.ini`), system.vassal(ctx, port)));

  const t0 = performance.now();
  const emperor = system.start(dir);
  const answered = await allAnswer(portList, t0, 300_000);
  const spawnAll = Math.max(...answered);
  // CPU each tier used to get there (user + system of all threads, 10 ms ticks).
  const startMasters = system.masters(emperor.pid);
  const startWorkers = startMasters.flatMap((m) => descendants(m));
  const startCpuMs = {
    emperor: cpuTicks(emperor.pid) * 10,
    master: startMasters.reduce((n, p) => n + cpuTicks(p), 0) * 10 / Math.max(1, startMasters.length),
    worker: startWorkers.reduce((n, p) => n + cpuTicks(p), 0) * 10 / Math.max(1, startWorkers.length),
  };

  // Let the start-up dust settle before measuring a quiet minute: V8's memory reducer
  // keeps collecting for several seconds after a busy start (measured: a lone emperor
  // burns 0.3 % of a core 5 s after start-up, 0.03 % after 30 s).
  await delay(Number(process.env.BENCH_SETTLE_S ?? 30) * 1000);
  const tree = () => descendants(emperor.pid);
  const idlePids = tree();
  const ticksBefore = new Map(idlePids.map((p) => [p, cpuTicks(p)]));
  const before = { emperor: cpuTicks(emperor.pid), vassals: idlePids.reduce((n, p) => n + (ticksBefore.get(p) ?? 0), 0) };
  await delay(IDLE_S * 1000);
  const after = { emperor: cpuTicks(emperor.pid), vassals: idlePids.reduce((n, p) => n + cpuTicks(p), 0) };
  if (process.env.BENCH_DEBUG === '1') {
    const busiest = idlePids.map((p) => [p, cpuTicks(p) - (ticksBefore.get(p) ?? 0)]).sort((x, y) => y[1] - x[1]).slice(0, 5);
    for (const [p, t] of busiest) console.error(`idle ticks ${t} pid ${p} ${readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ').slice(0, 80)}`);
  }
  const idleCpu = (after.emperor - before.emperor) / CLK_TCK / IDLE_S;
  const vassalsCpu = (after.vassals - before.vassals) / CLK_TCK / IDLE_S;

  const masters = system.masters(emperor.pid);
  const workers = masters.flatMap((m) => descendants(m));
  const memory = {
    emperorRss: rss(emperor.pid),
    masterRss: median(masters.map(rss)),
    workerRss: median(workers.map(rss)),
    perVassalPss: tree().reduce((n, p) => n + pss(p), 0) / masters.length,
    perVassalRss: tree().reduce((n, p) => n + rss(p), 0) / masters.length,
  };

  // Drop one more file at a time while N vassals run.
  const drops = [];
  const dropPorts = await ports(DROPS);
  for (let i = 0; i < DROPS; i++) {
    const file = join(dir, `drop${i}.ini`);
    const t = performance.now();
    writeFileSync(file, system.vassal(ctx, dropPorts[i]));
    for (;;) {
      if (await probe(dropPorts[i], 500)) break;
      if (performance.now() - t > 60_000) throw new Error(`drop ${i} never answered`);
      await delay(2);
    }
    drops.push(performance.now() - t);
    unlinkSync(file);
  }
  return { vassals: masters.length, spawnAll, spawnMedian: median(answered), startCpuMs, idleCpu, vassalsCpu, memory, drops, emperorPid: emperor.pid };
}

export async function run() {
  for (const N of SIZES) await runSize(N);
}

const COLUMNS = { emperor: 'Emperor', 'emperor-python': 'Emperor (Python)', floor: 'floor (bare Node)', uwsgi: 'uWSGI' };
const WANTED = (process.env.BENCH_SYSTEMS ?? Object.keys(COLUMNS).join(',')).split(',').filter((k) => k in COLUMNS);

async function runSize(N) {
  const lib = await import('./lib.mjs');
  const results = [];
  for (const key of WANTED) {
    if (key === 'uwsgi') {
      if (process.env.BENCH_SKIP_UWSGI === '1') { console.error('uWSGI skipped (BENCH_SKIP_UWSGI=1)'); continue; }
      if (!haveUwsgi()) { console.error('uWSGI not measured: install it with `apt-get install uwsgi-core uwsgi-plugin-python3`'); continue; }
    }
    results.push([COLUMNS[key], await measure(SYSTEMS[key], N), key]);
    await lib.runCleanups();
  }

  const pct = (x) => `${(x * 100).toFixed(2)} %`;
  const rows = [
    ['vassals running', ...results.map(([, r]) => String(r.vassals))],
    [`spawn ${N} vassals → all answer 200`, ...results.map(([, r]) => ms(r.spawnAll))],
    ['  median vassal first 200', ...results.map(([, r]) => ms(r.spawnMedian))],
    ['CPU until all answer: emperor', ...results.map(([, r]) => ms(r.startCpuMs.emperor))],
    ['  per master / per worker', ...results.map(([, r]) => `${ms(r.startCpuMs.master)} / ${ms(r.startCpuMs.worker)}`)],
    [`emperor CPU, ${IDLE_S} s idle (of one core)`, ...results.map(([, r]) => pct(r.idleCpu))],
    [`all vassals' CPU, ${IDLE_S} s idle (of one core)`, ...results.map(([, r]) => pct(r.vassalsCpu))],
    ['emperor RSS', ...results.map(([, r]) => mib(r.memory.emperorRss))],
    ['vassal master RSS (median)', ...results.map(([, r]) => mib(r.memory.masterRss))],
    ['worker RSS (median)', ...results.map(([, r]) => mib(r.memory.workerRss))],
    ['memory per vassal, PSS (all its processes)', ...results.map(([, r]) => mib(r.memory.perVassalPss))],
    ['memory per vassal, RSS (all its processes)', ...results.map(([, r]) => mib(r.memory.perVassalRss))],
    [`drop a file → first 200, median (${DROPS} drops, ${N} running)`, ...results.map(([, r]) => ms(median(r.drops)))],
    ['  p95', ...results.map(([, r]) => ms(percentile(r.drops, 95)))],
  ];
  table(`Emperor at scale: ${N} vassals, same run (${new Date().toISOString().slice(0, 16)}Z)`, ['', ...results.map(([name]) => name)], rows);
  for (const [name, , key] of results) console.log(`- ${name}: ${SYSTEMS[key].label}`);
}
