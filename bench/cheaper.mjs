// Adaptive pool (cheaper) against fixed pools of its minimum and maximum size, under the
// same bursty, open-loop load on 127.0.0.1: p99 latency and total worker RSS.
import { join } from 'node:path';
import { Agent } from 'node:http';
import http from 'node:http';
import { EMPEROR_BIN, ROOT, freePort, get200, start, table, waitFor, runCleanups, percentile, descendants } from './lib.mjs';
import { readFileSync } from 'node:fs';

const APP = join(ROOT, 'bench', 'apps', 'mixed.mjs');

function rssOfTree(pid) {
  let bytes = 0;
  for (const p of descendants(pid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) bytes += Number(m[1]) * 1024;
    } catch { /* gone */ }
  }
  return bytes;
}

/** Sends `rate` requests per second during `onMs`, then nothing for `offMs`, `cycles` times. */
async function burstyLoad(url, { rate, onMs, offMs, cycles }) {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const latencies = [];
  let failed = 0;
  const pending = [];
  for (let c = 0; c < cycles; c++) {
    const t0 = performance.now();
    for (let i = 0; performance.now() - t0 < onMs; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const sent = performance.now();
      pending.push(new Promise((resolve) => {
        const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
          res.resume();
          res.on('end', () => { latencies.push(performance.now() - sent); resolve(); });
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', () => { failed++; resolve(); });
      }));
    }
    await new Promise((r) => setTimeout(r, offMs));
  }
  await Promise.all(pending);
  agent.destroy();
  return { latencies, failed };
}

async function measure(label, options, load) {
  const port = await freePort();
  const child = start(process.execPath, [EMPEROR_BIN, '--http-socket', `127.0.0.1:${port}`, '--module', APP, ...options], { env: { ...process.env, EMPEROR_LOG_LEVEL: 'warn' } });
  const url = `http://127.0.0.1:${port}/`;
  await waitFor(() => get200(url), 30_000, 20);
  await new Promise((r) => setTimeout(r, 1500)); // let the pool settle at its start size
  const samples = [];
  const sampler = setInterval(() => samples.push(rssOfTree(child.pid)), 250);
  const { latencies, failed } = await burstyLoad(url, load);
  clearInterval(sampler);
  await runCleanups();
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  return { label, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies), failed, requests: latencies.length, meanRss: mean, maxRss: Math.max(...samples) };
}

export async function run() {
  const load = { rate: Number(process.env.BENCH_RATE ?? 700), onMs: 5000, offMs: 5000, cycles: 3 };
  const min = 1;
  const max = 4;
  const results = [];
  results.push(await measure(`fixed, ${min} worker`, ['--processes', String(min)], load));
  results.push(await measure(`fixed, ${max} workers`, ['--processes', String(max)], load));
  results.push(await measure(`cheaper ${min}..${max} (spare, overload 1)`, ['--processes', String(max), '--cheaper', String(min), '--cheaper-overload', '1'], load));
  results.push(await measure(`cheaper ${min}..${max} (spare, overload 1, step 3)`, ['--processes', String(max), '--cheaper', String(min), '--cheaper-overload', '1', '--cheaper-step', '3'], load));
  results.push(await measure(`cheaper ${min}..${max} (busyness, overload 1)`, ['--processes', String(max), '--cheaper', String(min), '--cheaper-algo', 'busyness', '--cheaper-overload', '1', '--cheaper-busyness-multiplier', '3'], load));
  results.push(await measure(`cheaper ${min}..${max} (busyness, backlog alert 4)`, ['--processes', String(max), '--cheaper', String(min), '--cheaper-algo', 'busyness', '--cheaper-overload', '1', '--cheaper-busyness-multiplier', '3', '--cheaper-busyness-backlog-alert', '4'], load));
  const mib = (b) => `${(b / 1024 / 1024).toFixed(0)} MiB`;
  table(`Bursty load: ${load.rate} req/s for ${load.onMs / 1000} s, idle ${load.offMs / 1000} s, ×${load.cycles} (each request: 2 ms CPU + 30 ms wait), Node workers`,
    ['pool', 'requests', 'failed', 'p50', 'p99', 'max', 'mean worker RSS', 'peak worker RSS'],
    results.map((r) => [r.label, r.requests, r.failed, `${r.p50.toFixed(1)} ms`, `${r.p99.toFixed(1)} ms`, `${r.max.toFixed(0)} ms`, mib(r.meanRss), mib(r.maxRss)]));
}
