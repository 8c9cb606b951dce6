// Vassals from PostgreSQL (emperor = pg://...): how long a change in the table takes to
// reach the app, on a throwaway cluster (test/helpers/postgres.ts, built by tsc -b).
//   1. `UPDATE vassals SET config = ..., ts = ...; NOTIFY emperor` → the emperor starts the
//      reload (the time of its `reloading vassal` log line) → the first response from the
//      new config.
//   2. A change the emperor did not hear of (no NOTIFY), then PostgreSQL stopped (fast
//      shutdown) and started again → the emperor has reconnected and reloads → the first
//      response from the new config, counted from the moment PostgreSQL accepts
//      connections again. Once right away (a restart), once after 10 s down, where the
//      growing reconnection delay shows.
// `emperor-freq` is 60 s, so only the notification or the reconnection explains a reload.
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { startPostgres, VASSALS_TABLE } from '../test/dist/helpers/postgres.js';
import { EMPEROR_BIN, ROOT, freePort, median, ms, onExit, percentile, record, start, table, waitFor } from './lib.mjs';

const APP = join(ROOT, 'test', 'fixtures', 'apps', 'basic.mjs');
const NAME = 'bench.ini';
const ini = (port, version) => `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 1\ndisable-logging = true\nenv = VERSION=${version}\n`;

async function versionOf(port) {
  const r = await fetch(`http://127.0.0.1:${port}/env?k=VERSION`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(2000) });
  return r.status === 200 ? r.text() : undefined;
}

/** The emperor's log lines (JSON), as they come. */
function collectLines(stream) {
  const lines = [];
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop();
    for (const line of parts) {
      try {
        lines.push(JSON.parse(line));
      } catch {
        // not a log line
      }
    }
  });
  return lines;
}

/**
 * Waits for the emperor's `reloading vassal` line (after line `from`) and for the app to
 * answer `version`; ms from `t0` (epoch ms) for each. The emperor's moment is its own log
 * line's timestamp, so nothing polls it; the app is polled every 5 ms.
 */
async function reached(lines, from, t0, port, version) {
  const [emperorMs, serveMs] = await Promise.all([
    waitFor(() => {
      const line = lines.slice(from).find((l) => l.msg === `reloading vassal ${NAME}`);
      return line === undefined ? undefined : line.time - t0;
    }, 60_000, 5),
    waitFor(async () => ((await versionOf(port)) === version ? Date.now() - t0 : undefined), 60_000, 5),
  ]);
  return { emperorMs, serveMs };
}

const row = (label, values) => [label, values.length, ms(median(values)), ms(percentile(values, 95)), ms(Math.min(...values)), ms(Math.max(...values))];

export async function run({ notifies = Number(process.env.BENCH_PG_NOTIFIES ?? 10), restarts = Number(process.env.BENCH_PG_RESTARTS ?? 5), outages = Number(process.env.BENCH_PG_OUTAGES ?? 2) } = {}) {
  const db = await startPostgres({ after: onExit });
  await db.createDatabase('bench');
  await db.sql(VASSALS_TABLE, [], 'bench');
  const port = await freePort();
  let version = 0;
  await db.sql('INSERT INTO vassals (name, config) VALUES ($1, $2)', [NAME, ini(port, `v${version}`)], 'bench');
  const emperor = start(process.execPath, [EMPEROR_BIN, '--emperor', `pg://${db.conninfo('bench')}`, '--emperor-freq', '60'], {
    env: { ...process.env, EMPEROR_LOG_PRETTY: '0' },
    stderr: 'pipe',
  });
  const lines = collectLines(emperor.child.stderr);
  await waitFor(async () => (await versionOf(port)) === 'v0', 60_000, 20);

  let admin;
  const connect = async () => {
    admin = new pg.Client({ host: db.socketDir, port: db.port, user: 'postgres', database: 'bench' });
    admin.on('error', () => {});
    await admin.connect();
  };
  await connect();
  onExit(() => admin.end().catch(() => {}));
  // One statement, one round trip: the new config and ts, and the notification.
  const change = (notify) => {
    version += 1;
    return admin.query(`UPDATE vassals SET config = replace(config, 'VERSION=v${version - 1}', 'VERSION=v${version}'), ts = clock_timestamp() WHERE name = '${NAME}'${notify ? '; NOTIFY emperor' : ''}`);
  };

  const notify = { emperorMs: [], serveMs: [] };
  process.stderr.write(`  UPDATE; NOTIFY x${notifies} ...\n`);
  for (let i = 0; i < notifies; i++) {
    const from = lines.length;
    const t0 = Date.now();
    await change(true);
    const r = await reached(lines, from, t0, port, `v${version}`);
    notify.emperorMs.push(r.emperorMs);
    notify.serveMs.push(r.serveMs);
  }
  record('emperor-pg-notify', notify);
  table('UPDATE …; NOTIFY → the changed vassal (emperor on PostgreSQL, 1 Node worker, emperor-freq 60 s)', ['from the UPDATE; NOTIFY to', 'runs', 'median', 'p95', 'min', 'max'], [
    row('the emperor starts the reload', notify.emperorMs),
    row('the first response from the new config', notify.serveMs),
  ]);

  const catchUp = async (downMs, runs) => {
    const out = { emperorMs: [], serveMs: [] };
    process.stderr.write(`  restart, ${downMs / 1000} s down, x${runs} ...\n`);
    for (let i = 0; i < runs; i++) {
      await change(false); // not notified: the emperor can only learn of it by re-reading
      await admin.end();
      await db.stop();
      if (downMs > 0) await delay(downMs);
      const from = lines.length;
      await db.start();
      const t0 = Date.now(); // PostgreSQL accepts connections again
      const r = await reached(lines, from, t0, port, `v${version}`);
      out.emperorMs.push(r.emperorMs);
      out.serveMs.push(r.serveMs);
      await connect();
    }
    return out;
  };
  const restart = await catchUp(0, restarts);
  const outage = await catchUp(10_000, outages);
  record('emperor-pg-restart', { restart, outage10s: outage });
  table('PostgreSQL back → caught up with a change made while the emperor was not listening', ['from PostgreSQL accepting connections again to', 'runs', 'median', 'p95', 'min', 'max'], [
    row('restarted at once: the emperor reloads', restart.emperorMs),
    row('restarted at once: first response, new config', restart.serveMs),
    row('down 10 s: the emperor reloads', outage.emperorMs),
    row('down 10 s: first response, new config', outage.serveMs),
  ]);
}
