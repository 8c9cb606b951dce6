// What one emperor, one vassal master and one Node worker cost, each on its own:
//   - CPU used by the time the vassal answers its first request (user + system of all
//     threads, /proc/PID/stat, 10 ms ticks), next to `node -e 0` on the same machine;
//   - RSS and PSS once settled;
//   - idle wakeups over BENCH_IDLE_S seconds (context switches of all the process's
//     threads, /proc/PID/task/TID/status voluntary + involuntary) and idle CPU.
// Repeated BENCH_ROUNDS times (default 5), medians shown.
//
//   npm run bench -- process-cost
//   BENCH_ROUNDS=3 BENCH_IDLE_S=10 npm run bench -- process-cost
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { EMPEROR_BIN, ROOT, descendants, freePort, median, mib, ms, runCleanups, start, table, tempDir } from './lib.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 20);
const SETTLE_S = Number(process.env.BENCH_SETTLE_S ?? 10);

function probe(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const done = (ok) => { socket.destroy(); resolve(ok); };
    socket.on('connect', () => socket.write('GET / HTTP/1.0\r\nHost: x\r\n\r\n'));
    socket.on('data', (c) => { data += c; if (data.includes('\r\n')) done(/^HTTP\/1\.[01] 200/.test(data)); });
    socket.on('error', () => done(false));
    socket.on('end', () => done(/^HTTP\/1\.[01] 200/.test(data)));
  });
}

/** CPU time of a process (user + system, all its threads), ms, from /proc/PID/stat. */
const cpuMs = (pid) => {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch { return 0; }
};
/** Context switches of all threads of a process: each is a wakeup or a preemption. */
const switches = (pid) => {
  let n = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const s = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      n += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(s)?.[1] ?? 0) + Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(s)?.[1] ?? 0);
    }
  } catch { /* gone */ }
  return n;
};
const threads = (pid) => { try { return readdirSync(`/proc/${pid}/task`).length; } catch { return 0; } };
const rss = (pid) => { try { return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024; } catch { return 0; } };
const pss = (pid) => { try { return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]) * 1024; } catch { return 0; } };

async function once(dir, app) {
  const port = await freePort();
  const file = join(dir, `v${port}.ini`);
  writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${app}\nprocesses = 1\n`);
  const emperor = start(process.execPath, [EMPEROR_BIN, '--emperor', dir], { env: { ...process.env, EMPEROR_LOG_LEVEL: 'warn' } });
  const t0 = performance.now();
  while (!(await probe(port))) {
    if (performance.now() - t0 > 60_000) throw new Error('vassal never answered');
    await delay(5);
  }
  const tree = descendants(emperor.pid);
  const [master, worker] = tree;
  const ready = { emperor: cpuMs(emperor.pid), master: cpuMs(master), worker: cpuMs(worker), answerMs: performance.now() - t0 };
  await delay(SETTLE_S * 1000);
  const pids = { emperor: emperor.pid, master, worker };
  const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, { cpu: cpuMs(p), sw: switches(p) }]));
  await delay(IDLE_S * 1000);
  const out = { ready };
  for (const [k, p] of Object.entries(pids)) {
    out[k] = { rss: rss(p), pss: pss(p), threads: threads(p), idleCpuMs: cpuMs(p) - before[k].cpu, wakeupsPerS: (switches(p) - before[k].sw) / IDLE_S };
  }
  await runCleanups();
  return out;
}

export async function run() {
  const nodeCpu = [];
  for (let i = 0; i < ROUNDS; i++) {
    nodeCpu.push(Number(execFileSync(process.execPath, ['-e', 'process.on("exit",()=>{const u=process.cpuUsage();process.stdout.write(String((u.user+u.system)/1000))})'], { encoding: 'utf8' })));
  }
  const rounds = [];
  for (let i = 0; i < ROUNDS; i++) {
    const dir = tempDir('emperor-cost-');
    rounds.push(await once(dir, join(ROOT, 'examples', 'node-hello', 'app.mjs')));
  }
  const med = (f) => median(rounds.map(f));
  const rows = [
    ['`node -e 0`: CPU (process.cpuUsage at exit)', ms(median(nodeCpu)), '', ''],
    ['CPU by the first 200', ms(med((r) => r.ready.emperor)), ms(med((r) => r.ready.master)), ms(med((r) => r.ready.worker))],
    ['RSS, settled', mib(med((r) => r.emperor.rss)), mib(med((r) => r.master.rss)), mib(med((r) => r.worker.rss))],
    ['PSS, settled', mib(med((r) => r.emperor.pss)), mib(med((r) => r.master.pss)), mib(med((r) => r.worker.pss))],
    ['threads', String(med((r) => r.emperor.threads)), String(med((r) => r.master.threads)), String(med((r) => r.worker.threads))],
    [`idle CPU over ${IDLE_S} s`, ms(med((r) => r.emperor.idleCpuMs)), ms(med((r) => r.master.idleCpuMs)), ms(med((r) => r.worker.idleCpuMs))],
    ['idle context switches per s', med((r) => r.emperor.wakeupsPerS).toFixed(1), med((r) => r.master.wakeupsPerS).toFixed(1), med((r) => r.worker.wakeupsPerS).toFixed(1)],
    ['emperor start → first 200', ms(med((r) => r.ready.answerMs)), '', ''],
  ];
  table(`One Node vassal: what each process costs (${ROUNDS} rounds, medians, ${new Date().toISOString().slice(0, 16)}Z)`, ['', 'emperor', 'vassal master', 'Node worker'], rows);
}
