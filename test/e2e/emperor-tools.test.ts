/**
 * The operator's view of an emperor: its stats over HTTP (`stats-http`), its Prometheus
 * endpoint, `emperor stats` on it, and SIGUSR2 passed on to the vassals for logrotate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { userInfo } from 'node:os';
import { EMPEROR_BIN, FIXTURES, ROOT, freePort, httpGet, spawnEmperor, tempDir, waitFor, type EmperorStatsDoc } from '../helpers/index.js';
import { promtoolProblems, sample } from '../helpers/promtool.js';

const run = promisify(execFile);
const APP = join(FIXTURES, 'apps', 'basic.mjs');

test('an emperor with stats-http and emperor-prometheus: JSON and metrics over HTTP, emperor stats, SIGUSR2 reaches the vassals', async (t) => {
  const dir = tempDir(t);
  const [port, statsPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(join(dir, 'a.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nlogto = %d%n.log\n`);
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-stats', `127.0.0.1:${statsPort}`, '--stats-http', '--emperor-prometheus', `127.0.0.1:${metricsPort}`]);
  const stats = `http://127.0.0.1:${statsPort}`;
  const doc = await waitFor(async () => {
    const r = await httpGet(`${stats}/`);
    const d = JSON.parse(r.body) as EmperorStatsDoc;
    return r.headers.get('content-type') === 'application/json' && d.vassals[0]?.ready === 1 ? d : undefined;
  }, { message: 'a.ini ready in the emperor stats over HTTP', timeoutMs: 20_000 });
  assert.equal(doc.vassals[0]?.id, 'a.ini');

  const metrics = (await httpGet(`http://127.0.0.1:${metricsPort}/metrics`)).body;
  assert.equal(promtoolProblems(metrics), '');
  assert.equal(sample(metrics, 'emperor_vassals', { state: 'ready' }), 1);
  assert.equal(sample(metrics, 'emperor_vassals', { state: 'cursed' }), 0);
  assert.equal(sample(metrics, 'emperor_vassal_ready', { vassal: 'a.ini' }), 1);
  assert.equal(sample(metrics, 'emperor_vassal_respawns_total', { vassal: 'a.ini' }), 0);
  assert.equal(sample((await httpGet(`${stats}/metrics`)).body, 'emperor_vassal_ready', { vassal: 'a.ini' }), 1, '/metrics on the stats-http server too');

  const text = (await run(process.execPath, [EMPEROR_BIN, 'stats', stats])).stdout;
  assert.match(text, new RegExp(`^emperor · version \\S+ · pid ${emperor.pid} · watching ${dir} · tyrant off · ${stats}$`, 'm'));
  assert.match(text, /^1 vassal: 1 ready · respawns 0$/m);
  assert.match(text, new RegExp(`^a\\.ini\\s+ready\\s+${doc.vassals[0]?.pid}\\s+yes\\s`, 'm'));

  // logrotate: move the vassal's log away, signal the emperor alone.
  const log = join(dir, 'a.log');
  await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').includes('vassal ready'), { message: 'a.log written' });
  renameSync(log, `${log}.1`);
  emperor.child.kill('SIGUSR2');
  await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').includes('the emperor asked: reopened'), { message: 'the vassal reopening a.log' });
  await httpGet(`http://127.0.0.1:${port}/after`);
  await waitFor(() => readFileSync(log, 'utf8').includes('GET /after =>'), { message: 'the worker writing to the new a.log' });
  assert.equal(emperor.child.exitCode, null, 'SIGUSR2 does not end the emperor');
});

test('the shipped logrotate configuration rotates a vassal\'s logto file, and the vassal moves on to the new file', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  writeFileSync(join(dir, 'a.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nlogto = %d%n.log\n`);
  const emperor = spawnEmperor(t, ['--emperor', dir]);
  const log = join(dir, 'a.log');
  await waitFor(async () => (await httpGet(`http://127.0.0.1:${port}/before`)).status === 200, { message: 'a.ini serving', timeoutMs: 20_000 });
  await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').includes('GET /before =>'), { message: 'a request line in a.log' });
  // docs/logrotate/emperor as shipped, pointed at this directory, this user, and this emperor.
  const user = userInfo();
  const group = (await run('id', ['-gn'])).stdout.trim();
  const shipped = readFileSync(join(ROOT, 'docs', 'logrotate', 'emperor'), 'utf8');
  const config = shipped
    .replace('/var/log/emperor/*.log', `${dir}/*.log`)
    .replace('create 0640 www-data adm', `create 0640 ${user.username} ${group}`)
    .replace(/systemctl kill --kill-whom=main --signal=USR2 emperor\.service/, `kill -USR2 ${emperor.pid}`);
  assert.notEqual(config, shipped);
  const conf = join(dir, 'logrotate.conf');
  writeFileSync(conf, config, { mode: 0o644 });
  await run('/usr/sbin/logrotate', ['-f', '-s', join(dir, 'logrotate.state'), conf]);
  assert.match(readFileSync(`${log}.1`, 'utf8'), /GET \/before =>/);
  await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').includes('the emperor asked: reopened'), { message: 'the master reopening a.log' });
  await httpGet(`http://127.0.0.1:${port}/after`);
  await waitFor(() => readFileSync(log, 'utf8').includes('GET /after =>'), { message: 'the worker writing to the new a.log' });
  assert.doesNotMatch(readFileSync(`${log}.1`, 'utf8'), /GET \/after/);
});
