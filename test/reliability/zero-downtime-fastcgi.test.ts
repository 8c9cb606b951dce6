/**
 * Zero downtime over FastCGI, measured: failed requests while vassals of both runtimes
 * reload gracefully (SIGHUP to the master) and chain-reload, under steady load through
 * lighttpd (a connection per request) and through nginx with `fastcgi_keep_conn on` and
 * an upstream `keepalive` pool. Every figure must be zero.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, startVassal, statsUntil, tempDir, waitFor } from '../helpers/index.js';
import { startLighttpd } from '../helpers/lighttpd.js';
import { startNginx } from '../helpers/nginx.js';
import { record } from '../helpers/record.js';

const ROUNDS = 2;

/** Clients in a loop through every front end until stopped; counts answers and failures. */
function load(urls: readonly string[], perUrl: number) {
  let stop = false;
  const counts = { ok: 0, failed: [] as string[] };
  const one = async (url: string): Promise<void> => {
    while (!stop) {
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(10_000) });
        const body = await r.text();
        if (r.status === 200 && /^pid \d+\n$/.test(body)) counts.ok++;
        else counts.failed.push(`${url}: status ${r.status} ${body.slice(0, 60)}`);
      } catch (err) {
        counts.failed.push(`${url}: ${String((err as Error).cause ?? err)}`);
      }
    }
  };
  const running = urls.flatMap((url) => Array.from({ length: perUrl }, () => one(url)));
  return {
    counts,
    async stop(): Promise<void> {
      stop = true;
      await Promise.all(running);
    },
  };
}

for (const runtime of ['node', 'python'] as const) {
  test(`${runtime}: graceful and chain reloads under load through lighttpd and nginx keep-conn fail no request`, async (t) => {
    const dir = tempDir(t);
    const trigger = join(dir, 'chain.trigger');
    writeFileSync(trigger, '');
    const app = runtime === 'node' ? `module = ${join(FIXTURES, 'apps', 'basic.mjs')}` : `wsgi-file = ${join(FIXTURES, 'apps', 'wsgi_app.py')}\nmanage-script-name = true`;
    const v = await startVassal(t, (_port, vdir) => `fastcgi-socket = ${join(vdir, 'app.sock')}\nchmod-socket = 666\n${app}\nprocesses = 2\ntouch-chain-reload = ${trigger}`);
    const socket = join(v.dir, 'app.sock');
    const lighttpd = await startLighttpd(t, dir, dir, `fastcgi.server = ( "/" => (( "socket" => "${socket}", "check-local" => "disable", "fix-root-scriptname" => "enable" )) )`);
    const nginx = await startNginx(t, dir,
      `location / { include /etc/nginx/fastcgi_params; fastcgi_keep_conn on; fastcgi_pass app; }`,
      `upstream app { server unix:${socket}; keepalive 8; keepalive_timeout 4s; }`);
    const urls = [`${lighttpd.url}/`, `${nginx.url}/`];
    await waitFor(async () => (await Promise.all(urls.map((u) => fetch(u).then((r) => r.status)))).every((s) => s === 200), { message: 'both front ends answering', timeoutMs: 20_000 });
    const later = (path: string): void => {
      const when = new Date(Date.now() + 60_000 + Math.random() * 1000);
      utimesSync(path, when, when);
    };
    const kinds: [string, () => void][] = [
      ['graceful reload (SIGHUP to the vassal master)', () => v.proc.child.kill('SIGHUP')],
      ['chain reload (touch-chain-reload)', () => later(trigger)],
    ];
    for (const [what, fire] of kinds) {
      const l = load(urls, 2);
      for (let i = 0; i < ROUNDS; i++) {
        const before = await statsUntil(v.stats, (d) => d.state === 'ready' && d.workers.every((w) => w.accepting === 1));
        const served = l.counts.ok;
        fire();
        await statsUntil(v.stats, (d) => d.state === 'ready' && d.workers.every((w) => w.accepting === 1 && !before.workers.some((o) => o.pid === w.pid)), { timeoutMs: 30_000, message: `${what}: new workers` });
        await waitFor(() => l.counts.ok > served + 50, { message: `${what}: load kept flowing` });
      }
      await l.stop();
      record({
        area: 'zero downtime',
        what: `${runtime === 'node' ? 'Node' : 'Python'} vassal on a fastcgi-socket: ${what}, under 2 clients through lighttpd and 2 through nginx (fastcgi_keep_conn on)`,
        tries: ROUNDS,
        outcome: `${l.counts.ok} requests, ${l.counts.failed.length} failed`,
      });
      assert.deepEqual(l.counts.failed, [], `${what}: ${l.counts.failed.length} failed of ${l.counts.ok + l.counts.failed.length}`);
    }
  });
}
