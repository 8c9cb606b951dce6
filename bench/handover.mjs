// Apps outlive the emperor (issue 19): failed requests and the longest gap in answers
// while the emperor is SIGKILLed and a new one started 2 s later (systemd's RestartSec=2
// in the shipped unit), and during `emperor upgrade`; a quiet window of the same length
// for comparison. Three vassals (two Node, one Python WSGI) on 127.0.0.1, each under
// two keep-alive clients and one client opening a new connection per request.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMPEROR_BIN, ROOT, descendants, freePort, get200, isAlive, onExit, record, start, table, tempDir, waitFor } from './lib.mjs';

const NODE_APP = join(ROOT, 'test', 'fixtures', 'apps', 'basic.mjs');
const WSGI_APP = join(ROOT, 'test', 'fixtures', 'apps', 'wsgi_app.py');
const ROUNDS = 3;
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/** Clients in a loop until stopped: answers, failures, and the longest time any URL went without an answer. */
function load(urls) {
  let stopped = false;
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const fresh = new http.Agent({ keepAlive: false });
  const counts = { ok: 0, failed: 0, reasons: new Map(), gapMs: 0 };
  const last = new Map();
  const one = (url, agent) => new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => {
        const now = performance.now();
        if (last.has(url)) counts.gapMs = Math.max(counts.gapMs, now - last.get(url));
        last.set(url, now);
        if (res.statusCode === 200) counts.ok++;
        else { counts.failed++; counts.reasons.set(`status ${res.statusCode}`, (counts.reasons.get(`status ${res.statusCode}`) ?? 0) + 1); }
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => {
      counts.failed++;
      counts.reasons.set(err.code ?? err.message, (counts.reasons.get(err.code ?? err.message) ?? 0) + 1);
      resolve();
    });
  });
  const loop = async (url, agent) => { while (!stopped) await one(url, agent); };
  const running = urls.flatMap((u) => [loop(u, keepAlive), loop(u, keepAlive), loop(u, fresh)]);
  return {
    counts,
    /** Starts a measurement window: resets the counts and the gap. */
    reset() { counts.ok = 0; counts.failed = 0; counts.reasons.clear(); counts.gapMs = 0; for (const u of urls) last.set(u, performance.now()); },
    async stop() { stopped = true; await Promise.all(running); keepAlive.destroy(); fresh.destroy(); },
  };
}

async function statsOf(path) {
  const { readStats } = await import('../packages/protocol/dist/index.js');
  return readStats(path, { timeoutMs: 2000 });
}

export async function run() {
  const dir = tempDir();
  const vassals = join(dir, 'vassals.d');
  mkdirSync(vassals);
  const urls = [];
  const apps = { 'shop.ini': ['module', NODE_APP, 2], 'api.ini': ['module', NODE_APP, 1], 'blog.ini': ['wsgi-file', WSGI_APP, 2] };
  for (const [name, [key, app, processes]] of Object.entries(apps)) {
    const port = await freePort();
    urls.push(`http://127.0.0.1:${port}/`);
    writeFileSync(join(vassals, name), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\n${key} = ${app}\nprocesses = ${processes}\n`);
  }
  const stats = join(dir, 'emperor.stats');
  const args = ['--emperor', vassals, '--emperor-runtime-dir', join(dir, 'run'), '--emperor-stats', stats];
  const env = { ...process.env, EMPEROR_LOG_LEVEL: 'warn' };
  const masters = new Set();
  onExit(() => { for (const pid of masters) for (const p of [pid, ...descendants(pid)]) if (isAlive(p)) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } });
  let emperorPid = start(process.execPath, [EMPEROR_BIN, ...args], { env }).pid;
  const allReady = async (pid) => waitFor(async () => {
    const doc = await statsOf(stats);
    if (doc.pid !== pid || doc.vassals.length !== 3 || !doc.vassals.every((v) => v.state === 'ready')) return false;
    for (const v of doc.vassals) masters.add(v.pid);
    return doc;
  }, 60_000, 50);
  await allReady(emperorPid);
  for (const url of urls) await waitFor(() => get200(url), 30_000, 50);
  const traffic = load(urls);
  await delay(2000);
  const rows = [];
  const data = [];
  const measure = async (label, round, event) => {
    traffic.reset();
    const t0 = performance.now();
    const masterPids = (await statsOf(stats)).vassals.map((v) => v.pid).sort().join(',');
    await event();
    const adoptedMs = performance.now() - t0;
    await delay(2000);
    const after = (await statsOf(stats)).vassals.map((v) => v.pid).sort().join(',');
    const { ok, failed, gapMs, reasons } = traffic.counts;
    rows.push([label, round, ok, failed, `${gapMs.toFixed(0)} ms`, `${(adoptedMs / 1000).toFixed(1)} s`, after === masterPids ? 'yes' : 'NO']);
    data.push({ label, round, ok, failed, gapMs, adoptedMs, reasons: Object.fromEntries(reasons) });
  };
  for (let round = 1; round <= ROUNDS; round++) {
    await measure('quiet (no event)', round, () => delay(4000));
    await measure('SIGKILL, new emperor 2 s later', round, async () => {
      process.kill(emperorPid, 'SIGKILL');
      await delay(2000);
      emperorPid = start(process.execPath, [EMPEROR_BIN, ...args], { env }).pid;
      await allReady(emperorPid);
    });
    await measure('emperor upgrade', round, async () => {
      const out = await new Promise((resolve) => {
        const c = spawn(process.execPath, [EMPEROR_BIN, 'upgrade', '--runtime-dir', join(dir, 'run')], { stdio: ['ignore', 'pipe', 'inherit'] });
        let text = '';
        c.stdout.on('data', (d) => { text += d; });
        c.on('exit', () => resolve(text));
      });
      const pid = Number(/pid (\d+)/.exec(out)?.[1]);
      if (!(pid > 0)) throw new Error(`emperor upgrade: ${out}`);
      emperorPid = pid;
      onExit(async () => { if (isAlive(pid)) { process.kill(pid, 'SIGTERM'); await waitFor(() => !isAlive(pid), 30_000, 50).catch(() => {}); } });
      await allReady(emperorPid);
    });
  }
  await traffic.stop();
  table('Handover under load: 3 vassals (2 Node, 1 Python), 2 keep-alive + 1 new-connection client each', ['event', 'round', 'answers', 'failed', 'longest gap', 'until adopted', 'same masters'], rows);
  record('handover', data);
}
