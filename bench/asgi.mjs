// ASGI, 2 workers each: Emperor's asyncio worker against Debian's uvicorn (`--workers 2`,
// h11 and asyncio, pure Python as Emperor's worker is), same run, same load generator
// (wrk, fixed duration, on 127.0.0.1, keep-alive): a plain ASGI hello world and a FastAPI
// JSON endpoint (Debian's python3-fastapi), then WebSocket echo messages per second
// (a Node client keeping N connections busy, one message in flight on each).
//
// Needs: apt-get install wrk python3-uvicorn python3-fastapi (installed here when missing
// and running as root). BENCH_SECONDS sets the duration of each measurement (default 5),
// BENCH_CONNECTIONS the concurrent connections (default 50), BENCH_ROUNDS how many times
// each is measured (default 3; the median is reported). The CPU column is the app
// server's own processes (user + system time per answered request, from /proc).
import { writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { join } from 'node:path';
import { EMPEROR_BIN, ROOT, ensureDebianPackages, freePort, get200, record, start, table, tempDir, treeCpuMs, version, waitFor } from './lib.mjs';
import { wrk } from './wrk.mjs';

const PACKAGES = ['wrk', 'python3-uvicorn', 'python3-fastapi'];
const PYTHON = '/usr/bin/python3';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const FASTAPI_APP = join(ROOT, 'test', 'fixtures', 'apps');

const HELLO = `async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]})
    await send({"type": "http.response.body", "body": b"Hello, World!"})
`;

/**
 * WebSocket echo messages per second over `connections` connections to `url`'s host and
 * path, each with one 32-byte text message in flight, for `seconds`.
 */
async function wsEcho(port, path, connections, seconds) {
  const payload = Buffer.from('x'.repeat(32));
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
  let count = 0;
  let stop = false;
  const one = () => new Promise((resolve) => {
    const key = randomBytes(16).toString('base64');
    const s = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let open = false;
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!open) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        if (!buf.subarray(0, end).toString('latin1').includes(accept)) { s.destroy(); resolve(); return; }
        buf = buf.subarray(end + 4);
        open = true;
        s.write(frame);
      }
      while (buf.length >= 2 && buf.length >= 2 + (buf[1] & 0x7f)) {
        buf = buf.subarray(2 + (buf[1] & 0x7f));
        count++;
        if (stop) { s.destroy(); resolve(); return; }
        s.write(frame);
      }
    });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
  const running = Array.from({ length: connections }, one);
  await new Promise((r) => setTimeout(r, 500)); // handshakes done
  const c0 = count;
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const rate = ((count - c0) * 1000) / (Date.now() - t0);
  stop = true;
  await Promise.all(running);
  return rate;
}

export async function run() {
  ensureDebianPackages('asgi', PACKAGES);
  const dir = tempDir();
  writeFileSync(join(dir, 'hello.py'), HELLO);
  const port = {};
  for (const name of ['emperorHello', 'uvicornHello', 'emperorFastapi', 'uvicornFastapi']) port[name] = await freePort();
  const quiet = { env: { ...process.env, EMPEROR_LOG_LEVEL: 'warn', EMPEROR_LOG_STYLE: 'json' } };
  const vassal = (file, p, app, pythonpath) => {
    writeFileSync(join(dir, file), `[uwsgi]\nhttp-socket = 127.0.0.1:${p}\npythonpath = ${pythonpath}\nasgi = ${app}\nprocesses = 2\nenv = PATH=/usr/bin:/bin\n# No request log, as uvicorn runs with --no-access-log.\ndisable-logging = true\n`);
    return start(process.execPath, [EMPEROR_BIN, '--ini', join(dir, file)], quiet);
  };
  const uvicorn = (p, app, appDir) => start(PYTHON, ['-m', 'uvicorn', '--workers', '2', '--host', '127.0.0.1', '--port', String(p), '--no-access-log', '--log-level', 'warning', '--app-dir', appDir, app], { cwd: dir });
  const emperorHello = vassal('hello.ini', port.emperorHello, 'hello:app', dir);
  const uvicornHello = uvicorn(port.uvicornHello, 'hello:app', dir);
  const emperorFastapi = vassal('fastapi.ini', port.emperorFastapi, 'fastapi_app:app', FASTAPI_APP);
  const uvicornFastapi = uvicorn(port.uvicornFastapi, 'fastapi_app:app', FASTAPI_APP);

  // [name, url, wrk headers, the app server's root pid]. Keep-alive, and a new connection
  // per request: Debian's uvicorn 0.17 on h11 answers a keep-alive connection about every
  // 40 ms (the response's two writes meet Nagle and the client's delayed ACK: 23 req/s on
  // one connection), so its keep-alive rows are bound by that wait, not by its CPU; the
  // new-connection rows and the CPU per request compare the servers' work.
  const close = ['Connection: close'];
  const targets = [
    ['Emperor (asyncio worker), plain ASGI hello world, keep-alive', `http://127.0.0.1:${port.emperorHello}/`, [], emperorHello.pid],
    ['uvicorn --workers 2, plain ASGI hello world, keep-alive', `http://127.0.0.1:${port.uvicornHello}/`, [], uvicornHello.pid],
    ['Emperor (asyncio worker), plain ASGI hello world, new connection per request', `http://127.0.0.1:${port.emperorHello}/`, close, emperorHello.pid],
    ['uvicorn --workers 2, plain ASGI hello world, new connection per request', `http://127.0.0.1:${port.uvicornHello}/`, close, uvicornHello.pid],
    ['Emperor (asyncio worker), FastAPI JSON endpoint, keep-alive', `http://127.0.0.1:${port.emperorFastapi}/json?n=10`, [], emperorFastapi.pid],
    ['uvicorn --workers 2, FastAPI JSON endpoint, keep-alive', `http://127.0.0.1:${port.uvicornFastapi}/json?n=10`, [], uvicornFastapi.pid],
    ['Emperor (asyncio worker), FastAPI JSON endpoint, new connection per request', `http://127.0.0.1:${port.emperorFastapi}/json?n=10`, close, emperorFastapi.pid],
    ['uvicorn --workers 2, FastAPI JSON endpoint, new connection per request', `http://127.0.0.1:${port.uvicornFastapi}/json?n=10`, close, uvicornFastapi.pid],
  ];
  for (const [, url] of targets) await waitFor(() => get200(url), 60_000, 50);
  const measure = async (url, headers, root, seconds) => {
    const cpu0 = treeCpuMs(root);
    const r = await wrk(url, { threads: 1, connections: CONNECTIONS, seconds, headers });
    // With Connection: close, wrk counts a read error per closed connection: not a failure.
    const failed = r.non2xx + r.socketErrors.connect + r.socketErrors.write + r.socketErrors.timeout;
    return { ...r, errors: failed, cpuUs: ((treeCpuMs(root) - cpu0) * 1000) / r.requests };
  };
  for (const [, url, headers, root] of targets) await measure(url, headers, root, 1); // warm-up
  const runs = new Map(targets.map(([name]) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, url, headers, root] of targets) runs.get(name).push(await measure(url, headers, root, SECONDS));
  }
  const rows = targets.map(([name]) => {
    const sorted = [...runs.get(name)].sort((a, b) => a.rps - b.rps);
    const median = sorted[Math.floor(sorted.length / 2)];
    return { name, ...median, errors: sorted.reduce((n, r) => n + r.errors, 0) };
  });
  record('rows', rows.map(({ name, rps, p99Ms, cpuUs, errors }) => ({ name, rps, p99Ms, cpuUs, errors })));
  const uvicornVersion = version(PYTHON, ['-m', 'uvicorn', '--version']).replace(/^Running (uvicorn \S+).*$/s, '$1');
  table(
    `ASGI, 2 workers each (wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, median of ${ROUNDS}; ${version(PYTHON, ['--version'])}; ${uvicornVersion}, whose keep-alive answers wait ~40 ms each: see bench/asgi.mjs)`,
    ['server', 'req/s', 'p99', 'app server CPU µs/req', 'errors'],
    rows.map((r) => [r.name, Math.round(r.rps).toLocaleString('en-US'), `${r.p99Ms.toFixed(2)} ms`, Math.round(r.cpuUs), r.errors]),
  );
  const ws = [];
  for (const [name, p, path] of [['Emperor (asyncio worker)', port.emperorFastapi, '/ws'], ['uvicorn --workers 2 (websockets library)', port.uvicornFastapi, '/ws']]) {
    ws.push([name, await wsEcho(p, path, CONNECTIONS, SECONDS)]);
  }
  record('websocket', ws.map(([name, rate]) => ({ name, rate })));
  table(`WebSocket echo, FastAPI endpoint, 2 workers each (${CONNECTIONS} connections, one 32-byte message in flight on each, ${SECONDS} s)`,
    ['server', 'messages/s'], ws.map(([name, rate]) => [name, Math.round(rate).toLocaleString('en-US')]));
  const ratio = (a, b) => `${(rows[a].rps / rows[b].rps).toFixed(2)} (CPU per request ${(rows[a].cpuUs / rows[b].cpuUs).toFixed(2)})`;
  table('Ratios: req/s (and app server CPU per request)', ['comparison', 'ratio'], [
    ['Emperor / uvicorn, plain ASGI hello world, keep-alive', ratio(0, 1)],
    ['Emperor / uvicorn, plain ASGI hello world, new connection per request (goal ≥ 1.5)', ratio(2, 3)],
    ['Emperor / uvicorn, FastAPI JSON endpoint, keep-alive', ratio(4, 5)],
    ['Emperor / uvicorn, FastAPI JSON endpoint, new connection per request (goal ≥ 0.9)', ratio(6, 7)],
    ['Emperor / uvicorn, WebSocket echo messages/s', (ws[0][1] / ws[1][1]).toFixed(2)],
  ]);
}
