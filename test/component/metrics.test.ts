/**
 * A vassal's Prometheus endpoint (`prometheus`) and its `stats-http` server, against real
 * workers: counters that follow real requests, exposition checked by promtool, and a
 * metrics port already in use that does not stop the vassal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { readStats } from '@emperor/protocol';
import { FIXTURES, freePort, httpGet, serving, spawnEmperor, startVassal, statsUntil, tempDir, waitFor } from '../helpers/index.js';
import { promtoolProblems, sample } from '../helpers/promtool.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');

test('prometheus = host:port serves /metrics that follow the requests, valid for promtool', async (t) => {
  const metricsPort = await freePort();
  const v = await startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 2\nprometheus = 127.0.0.1:${metricsPort}`);
  await serving(`${v.url}/`);
  for (let i = 0; i < 9; i++) assert.equal((await httpGet(`${v.url}/`)).status, 200);
  assert.equal((await httpGet(`${v.url}/throw`)).status, 500);
  // Counters reach the master through the scoreboard within a tick.
  const doc = await statsUntil(v.stats, (d) => d.workers.reduce((a, w) => a + w.requests, 0) >= 11 && d.workers.some((w) => w.exceptions === 1));
  const url = `http://127.0.0.1:${metricsPort}/metrics`;
  const text = await waitFor(async () => {
    const r = await httpGet(url);
    return r.status === 200 && r.headers.get('content-type')?.startsWith('text/plain; version=0.0.4') === true ? r.body : undefined;
  }, { message: `metrics on ${url}` });
  assert.equal(promtoolProblems(text), '');
  let requests = 0;
  let exceptions = 0;
  for (const w of doc.workers) {
    const labels = { vassal: 'v.ini', worker: String(w.id) };
    requests += sample(text, 'emperor_worker_requests_total', labels) ?? NaN;
    exceptions += sample(text, 'emperor_worker_exceptions_total', labels) ?? NaN;
    assert.ok((sample(text, 'emperor_worker_rss_bytes', labels) ?? 0) > 10e6, 'rss of a real Node worker');
    assert.equal(sample(text, 'emperor_worker_accepting', labels), 1);
    assert.equal(sample(text, 'emperor_worker_respawns_total', labels), 0);
  }
  assert.ok(requests >= 11, `requests ${requests}`);
  assert.equal(exceptions, 1);
  assert.equal(sample(text, 'emperor_socket_max_queue_length', { vassal: 'v.ini', socket: `127.0.0.1:${v.port}`, proto: 'http' }), 100);
  assert.equal((await httpGet(`http://127.0.0.1:${metricsPort}/nope`)).status, 404);
});

test('stats-http: the stats JSON over HTTP (uWSGI headers), GET /metrics beside it, and readStats on http://', async (t) => {
  const [port, statsPort] = [await freePort(), await freePort()];
  const file = join(tempDir(t), 'v.ini');
  writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nstats-server = 127.0.0.1:${statsPort}\nstats-http = true\n`);
  spawnEmperor(t, ['--ini', file]);
  await serving(`http://127.0.0.1:${port}/`);
  const r = await waitFor(async () => {
    const got = await httpGet(`http://127.0.0.1:${statsPort}/`);
    return got.status === 200 ? got : undefined;
  }, { message: 'stats over HTTP' });
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.equal(r.headers.get('access-control-allow-origin'), '*');
  const doc = JSON.parse(r.body) as { vassal: string; workers: unknown[] };
  assert.equal(doc.vassal, 'v.ini');
  assert.equal(doc.workers.length, 1);
  const viaClient = (await readStats(`http://127.0.0.1:${statsPort}`)) as { vassal: string };
  assert.equal(viaClient.vassal, 'v.ini');
  const m = await httpGet(`http://127.0.0.1:${statsPort}/metrics`);
  assert.equal(m.status, 200);
  assert.equal(promtoolProblems(m.body), '');
  assert.equal(sample(m.body, 'emperor_worker_accepting', { vassal: 'v.ini', worker: '1' }), 1);
});

test('a metrics port in use: one clear log line, and the vassal keeps serving', async (t) => {
  const busy: Server = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => busy.close(() => resolve())));
  const port = (busy.address() as { port: number }).port;
  const v = await startVassal(t, (p) => `http-socket = 127.0.0.1:${p}\nmodule = ${APP}\nprometheus = 127.0.0.1:${port}`);
  const line = await v.proc.logs.waitFor((l) => /^prometheus: cannot listen on/.test(l.msg ?? ''), { message: 'the prometheus error line' });
  assert.equal(line.msg, `prometheus: cannot listen on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port}; the vassal keeps serving without metrics`);
  assert.match(await serving(`${v.url}/`), /^pid \d+/);
  assert.equal(v.proc.logs.find((l) => /prometheus/.test(l.msg ?? '')).length, 1);
});
