/**
 * Stats are exact when read (issue 17): right after a response, a stats read (the stats
 * socket) and a Prometheus scrape count that request and show its worker idle, in both
 * worker runtimes. The workers batch their slot writes; the master asks each one to
 * publish its slot before it builds the document (docs/stats.md, "Exact when read").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readStats } from '@emperor/protocol';
import { FIXTURES, freePort, httpGet, startVassal, workersAccepting, type VassalStatsDoc } from '../helpers/index.js';
import { sample } from '../helpers/promtool.js';

const RUNTIMES = {
  node: `module = ${join(FIXTURES, 'apps', 'basic.mjs')}`,
  python: `wsgi-file = ${join(FIXTURES, 'apps', 'wsgi_app.py')}`,
} as const;

interface WorkerDoc {
  requests: number;
  status: string;
  in_flight: number;
}

for (const [runtime, app] of Object.entries(RUNTIMES)) {
  test(`${runtime}: 100 times, one request then an immediate stats read: the count is exact and the worker idle; a Prometheus scrape too`, async (t) => {
    const metricsPort = await freePort();
    const v = await startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\n${app}\nprocesses = 1\nprometheus = 127.0.0.1:${metricsPort}`);
    await workersAccepting(v, 1);
    const first = (await readStats(v.stats)) as VassalStatsDoc;
    const before = (first.workers[0] as unknown as WorkerDoc).requests;
    for (let i = 1; i <= 100; i++) {
      const r = await httpGet(`${v.url}/`);
      assert.equal(r.status, 200);
      const doc = (await readStats(v.stats)) as VassalStatsDoc;
      const w = doc.workers[0] as unknown as WorkerDoc;
      assert.deepEqual({ requests: w.requests, status: w.status, in_flight: w.in_flight }, { requests: before + i, status: 'idle', in_flight: 0 }, `read ${i}`);
    }
    assert.equal((await httpGet(`${v.url}/`)).status, 200);
    const metrics = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(metrics.status, 200);
    assert.equal(sample(metrics.body, 'emperor_worker_requests_total', { vassal: 'v.ini', worker: '1' }), before + 101);
    assert.equal(sample(metrics.body, 'emperor_worker_status', { vassal: 'v.ini', worker: '1', status: 'idle' }), 1);
    assert.equal(sample(metrics.body, 'emperor_worker_in_flight_requests', { vassal: 'v.ini', worker: '1' }), 0);
  });
}
