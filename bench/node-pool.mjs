// A 2-worker Node vassal against 2 bare Node processes sharing one socket, Node's
// cluster module with 2 workers, and PM2 cluster mode with 2 instances: same app, same
// load generator (wrk), same run. Also: harakiri detection delay over 20 kills.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { EMPEROR_BIN, ROOT, freePort, get200, start, table, tempDir, waitFor, median, descendants, isAlive, runCleanups, measureWrk, mean, record } from './lib.mjs';
import { npmPeer } from './peers.mjs';

const APPS = join(ROOT, 'bench', 'apps');
const quiet = { ...process.env, EMPEROR_LOG_LEVEL: 'warn' };

// No request log, as the peers write none: `npm run bench request-log` measures its cost.
const emperorAt = (bin) => (port) =>
  start(process.execPath, [bin, '--http-socket', `127.0.0.1:${port}`, '--module', join(APPS, 'hello.mjs'), '--processes', '2', '--listen', '511', '--disable-logging'], { env: quiet });

// BENCH_BASELINE=/path/to/another/checkout (built) adds `baseline`: that checkout's
// Emperor with the same flags, in the same run, to compare a change with what it changes.
const BASELINE = process.env.BENCH_BASELINE;

const contenders = {
  emperor: emperorAt(EMPEROR_BIN),
  ...(BASELINE ? { baseline: emperorAt(join(BASELINE, 'packages', 'cli', 'dist', 'bin', 'emperor.js')) } : {}),
  async bare(port) {
    return start(process.execPath, [join(APPS, 'bare.mjs')], { env: { ...process.env, PORT: String(port) } });
  },
  async cluster(port) {
    return start(process.execPath, [join(APPS, 'cluster.cjs')], { env: { ...process.env, PORT: String(port) } });
  },
  async pm2(port) {
    const pm2 = npmPeer('pm2', 'pm2@7');
    const home = tempDir('emperor-bench-pm2-');
    const env = { ...process.env, PM2_HOME: home, PORT: String(port) };
    const { execFileSync } = await import('node:child_process');
    execFileSync(pm2, ['start', join(APPS, 'hello-listen.cjs'), '-i', '2', '--name', 'bench'], { env, stdio: 'ignore' });
    // Registered after start: ends the PM2 daemon and its apps by PID.
    const { onExit } = await import('./lib.mjs');
    onExit(async () => {
      const daemon = Number(readFileSync(join(home, 'pm2.pid'), 'utf8'));
      const tree = [daemon, ...descendants(daemon)];
      try { execFileSync(pm2, ['kill'], { env, stdio: 'ignore', timeout: 15_000 }); } catch { /* fall through to PIDs */ }
      for (const p of tree) if (isAlive(p)) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    });
    return { pid: Number(readFileSync(join(home, 'pm2.pid'), 'utf8')) };
  },
};

const measure = (name, mode, seconds) => measureWrk(name, contenders[name], mode, seconds);

// BENCH_SERVERS=bare,emperor and BENCH_LOADS=keep-alive narrow a run while iterating.
export async function pool({ rounds = Number(process.env.BENCH_ROUNDS ?? 2), seconds = 8 } = {}) {
  const names = (process.env.BENCH_SERVERS ?? `bare,emperor,${BASELINE ? 'baseline,' : ''}cluster,pm2`).split(',');
  const loads = (process.env.BENCH_LOADS ?? 'keep-alive,new connection per request').split(',');
  const results = {};
  for (const mode of loads) {
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? names : [...names].reverse();
      for (const name of order) {
        const r = await measure(name, mode, seconds);
        ((results[mode] ??= {})[name] ??= []).push(r);
      }
    }
  }
  return results;
}

/** Harakiri detection: from the start of a request that blocks the loop to the kill. */
export async function harakiriDelay({ kills = 20, harakiri = 2 } = {}) {
  const port = await freePort();
  const dir = tempDir();
  const stats = join(dir, 'stats.sock');
  const child = start(process.execPath, [EMPEROR_BIN, '--http-socket', `127.0.0.1:${port}`, '--module', join(ROOT, 'test', 'fixtures', 'apps', 'basic.mjs'), '--processes', '2', '--harakiri', String(harakiri), '--stats', stats], { env: { ...process.env, EMPEROR_LOG_STYLE: 'json' }, stderr: 'pipe' });
  const kills_ = [];
  let buffer = '';
  child.child.stderr.setEncoding('utf8');
  child.child.stderr.on('data', (c) => {
    buffer += c;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      try {
        const j = JSON.parse(line);
        if (/^HARAKIRI ON WORKER/.test(j.msg)) kills_.push(j.time);
      } catch { /* not ours */ }
    }
  });
  const { readStats } = await import('../packages/protocol/dist/index.js');
  const allReady = async () => { const s = await readStats(stats); return s.workers.every((w) => w.accepting === 1 && w.pid > 0); };
  await waitFor(() => get200(`http://127.0.0.1:${port}/`), 30_000, 20);
  const delays = [];
  for (let i = 0; i < kills; i++) {
    await waitFor(allReady, 30_000, 20);
    const before = kills_.length;
    const t0 = Date.now();
    fetch(`http://127.0.0.1:${port}/spin?ms=60000`, { headers: { connection: 'close' } }).catch(() => {});
    await waitFor(() => kills_.length > before, 30_000, 10);
    delays.push(kills_[before] - t0);
  }
  await runCleanups();
  return delays;
}

export async function run() {
  const results = await pool();
  record('node-pool', results);
  const rows = [];
  for (const [mode, byName] of Object.entries(results)) {
    const bare = mean(byName.bare, (r) => r.rps);
    for (const [name, rs] of Object.entries(byName)) {
      const rps = mean(rs, (r) => r.rps);
      const cpu = mean(rs, (r) => r.cpuUsPerRequest);
      const bareCpu = mean(byName.bare, (r) => r.cpuUsPerRequest);
      rows.push([mode, name, Math.round(rps).toLocaleString('en-US'), `${mean(rs, (r) => r.p99Ms).toFixed(2)} ms`, `${((rps / bare) * 100).toFixed(1)}%`,
        `${cpu.toFixed(1)} µs`, `${((cpu / bareCpu - 1) * 100).toFixed(1)}%`, rs.reduce((a, r) => a + r.errors, 0), rs.map((r) => Math.round(r.rps)).join(' / ')]);
    }
  }
  const rounds = Object.values(Object.values(results)[0] ?? {})[0]?.length ?? 0;
  table(`Node hello world, 2 workers, wrk on 127.0.0.1 (-t2; keep-alive: -c50, new connection: -c16 + Connection: close; 8 s, ${rounds} rounds)`,
    ['load', 'server', 'req/s', 'p99', 'req/s vs bare', 'CPU per request', 'CPU vs bare', 'errors', 'rounds (req/s)'], rows);
  if (process.env.BENCH_NO_HARAKIRI === '1') return;
  const delays = await harakiriDelay();
  record('harakiri', delays);
  table('Harakiri detection (harakiri = 2 s, event loop blocked): request start → kill', ['kills', 'median', 'max', 'min'],
    [[delays.length, `${median(delays)} ms`, `${Math.max(...delays)} ms`, `${Math.min(...delays)} ms`]]);
}
