/**
 * The Node worker's entry started directly, as a master starts it (the spec in
 * EMPEROR_WORKER, sockets at fds 3…, the scoreboard after them, an IPC channel), so a
 * spec no master would write can be tried: a protocol the worker has no module for.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bindSocket, Scoreboard, SlotStatus, WORKER_ENTRIES, WORKER_SPEC_VERSION, type BoundSocket, type WorkerSpec } from '@emperor/vassal';
import { LogCollector, freePort, httpGet, isAlive, tempDir, waitFor } from '../helpers/index.js';

interface DirectWorker {
  readonly child: ChildProcess;
  readonly logs: LogCollector;
  readonly messages: unknown[];
  readonly scoreboard: Scoreboard;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A TCP socket on 127.0.0.1 bound as a master binds it (no listen). */
async function bind(t: TestContext): Promise<{ bound: BoundSocket; port: number }> {
  const port = await freePort();
  const bound = await bindSocket(
    { file: 'test', line: 1, name: `127.0.0.1:${port}`, address: { kind: 'tcp', host: '127.0.0.1', port }, protocol: 'http', option: 'http-socket' },
    { mode: undefined, uid: undefined, gid: undefined },
  );
  t.after(() => bound.close(false));
  return { bound, port };
}

/** Starts worker-main.js on `sockets` (name and protocol as the spec will say) running `module`. */
function startWorker(t: TestContext, sockets: ReadonlyArray<{ bound: BoundSocket; name: string; protocol: string }>, module: string): DirectWorker {
  const scoreboard = Scoreboard.create(1, tempDir(t));
  t.after(() => scoreboard.close());
  const index = scoreboard.allocate() ?? 0;
  const spec = {
    v: WORKER_SPEC_VERSION, vassal: 'direct.ini', id: 1, generation: 1,
    scoreboard: { fd: 3 + sockets.length, index },
    sockets: sockets.map((s, i) => ({ fd: 3 + i, name: s.name, protocol: s.protocol })),
    backlog: 100, bufferSize: 4096, threads: 1, socketTimeoutMs: 4000, harakiriMs: 0, harakiriVerbose: false, heartbeatIntervalMs: 1000,
    maxRequests: 0, minWorkerLifetimeMs: 0, stackFile: undefined, stackPipeFd: undefined,
    requestLog: { enabled: false, log4xx: false, log5xx: false, slowMs: 0, zero: false, bigBytes: 0, format: undefined, json: false, micros: false, xForwardedFor: false },
    logto: undefined,
    app: { runtime: 'node', module },
    mount: { mountpoint: '', manageScriptName: false },
    fastcgi: { maxConns: 512, maxReqs: 512 },
  } as unknown as WorkerSpec;
  const child = spawn(process.execPath, [WORKER_ENTRIES.node], {
    env: { ...process.env, EMPEROR_LOG_STYLE: 'json', EMPEROR_WORKER: JSON.stringify(spec) },
    stdio: ['ignore', 'ignore', 'pipe', ...sockets.map((s) => s.bound.fd), scoreboard.fd, 'ipc'],
  });
  const logs = new LogCollector();
  if (child.stderr) logs.attach(child.stderr);
  const messages: unknown[] = [];
  child.on('message', (m) => messages.push(m));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.after(async () => {
    if (child.pid !== undefined && isAlive(child.pid) && child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, logs, messages, scoreboard, exited };
}

/** An app that leaves a mark when it is imported. */
function markingApp(t: TestContext): { module: string; marker: string } {
  const dir = tempDir(t);
  const marker = join(dir, 'imported');
  const module = join(dir, 'app.mjs');
  writeFileSync(module, `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'yes');\nexport default (req, res) => res.end('direct ' + process.pid);\n`);
  return { module, marker };
}

test('started directly on an http socket, the worker serves, publishes its slot and stops on the master\'s stop', async (t) => {
  const { bound, port } = await bind(t);
  const { module, marker } = markingApp(t);
  const w = startWorker(t, [{ bound, name: `127.0.0.1:${port}`, protocol: 'http' }], module);
  await waitFor(() => w.messages.some((m) => (m as { type?: string }).type === 'ready'), { message: 'ready from the worker', timeoutMs: 15_000 });
  assert.ok(existsSync(marker));
  assert.equal(w.scoreboard.read(0)?.accepting, true, 'accepting in its slot once ready');
  const res = await httpGet(`http://127.0.0.1:${port}/`);
  assert.equal(res.body, `direct ${w.child.pid}`);
  const slot = await waitFor(() => {
    const s = w.scoreboard.read(0);
    return s !== undefined && s.requests === 1 && s.status === SlotStatus.IDLE ? s : undefined;
  }, { message: 'the slot counting the request' });
  assert.equal(slot.pid, w.child.pid);
  w.child.send({ v: 1, type: 'stop' });
  assert.deepEqual(await w.exited, { code: 0, signal: null });
  assert.equal(w.scoreboard.read(0)?.status, SlotStatus.STOPPING);
});

test('a socket whose protocol the Node worker has no module for fails the start with one clear line, before the app loads', async (t) => {
  const http = (await bind(t)).bound;
  const other = (await bind(t)).bound;
  const { module, marker } = markingApp(t);
  const w = startWorker(t, [{ bound: http, name: '127.0.0.1:8000', protocol: 'http' }, { bound: other, name: '/run/app/scgi.sock', protocol: 'scgi' }], module);
  const { code } = await w.exited;
  assert.equal(code, 22, `exit code (ExitCode.APP_LOAD); log:\n${w.logs.tail()}`);
  const errors = w.logs.find((l) => (l.level ?? 0) >= 50);
  assert.equal(errors.length, 1, w.logs.tail());
  assert.equal(
    errors[0]?.msg,
    'worker failed to start: socket /run/app/scgi.sock: unknown protocol "scgi" in the worker spec (EMPEROR_WORKER); this Node worker serves http, uwsgi, fastcgi',
  );
  assert.equal((errors[0]?.err as { code?: string } | undefined)?.code, 'ERR_WORKER_PROTOCOL');
  assert.equal(existsSync(marker), false, 'the app was never imported');
  assert.deepEqual(w.messages, [], 'never ready');
  const slot = w.scoreboard.read(0);
  assert.equal(slot?.status, SlotStatus.STARTING);
  assert.equal(slot?.accepting, false);
});
