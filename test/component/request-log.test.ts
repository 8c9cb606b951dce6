/**
 * Request log lines from real workers: uWSGI's default line, conditional logging,
 * `log-format`, `log-json`, and `logto` with a reopen for logrotate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, httpGet, serving, startVassal, statsUntil, waitFor, type LogLine } from '../helpers/index.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');
/** Both worker runtimes write the same lines: the app line and the route that raises. */
const RUNTIMES = {
  node: { app: `module = ${APP}`, raise: '/throw' },
  python: { app: `wsgi-file = ${join(FIXTURES, 'apps', 'wsgi_app.py')}`, raise: '/raise' },
} as const;

/** uWSGI's default line (core/logging.c), with the variable parts as groups: pid, vars, bytes, method+uri, body, msecs, status. */
const UWSGI_LINE =
  /^\[pid: (\d+)\|app: 0\|req: \d+\/\d+\] 127\.0\.0\.1 \(\) \{(\d+) vars in (\d+) bytes\} \[(?:Sun|Mon|Tue|Wed|Thu|Fri|Sat) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d \d{4}\] (\S+ \S+) => generated (\d+) bytes in (\d+) msecs \(HTTP\/1\.1 (\d{3})\) \d+ headers in \d+ bytes \(1 switches on core 0\)$/;

const requestLines = (lines: readonly LogLine[]): string[] => lines.filter((l) => l.raw.startsWith('[pid: ')).map((l) => l.raw);

for (const [runtime, { app }] of Object.entries(RUNTIMES)) {
test(`${runtime}: one line per request in uWSGI's default format, from the worker that served it`, async (t) => {
  const v = await startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\n${app}`);
  await serving(`${v.url}/`);
  const r = await httpGet(`${v.url}/hello?x=1`);
  const line = await v.proc.logs.waitFor((l) => l.raw.includes('GET /hello?x=1 =>'), { message: 'the request line' });
  const m = UWSGI_LINE.exec(line.raw);
  assert.ok(m, line.raw);
  assert.equal(Number(m[1]), Number(/pid (\d+)/.exec(r.body)?.[1]), 'the pid is the worker\'s');
  assert.equal(m[4], 'GET /hello?x=1');
  assert.equal(Number(m[5]), Buffer.byteLength(r.body), 'generated = the body');
  assert.equal(m[7], '200');
  assert.ok(Number(m[2]) >= 20 && Number(m[2]) % 2 === 0, `vars ${m[2]}`);
});
}

for (const [runtime, { app }] of Object.entries(RUNTIMES)) {
test(`${runtime}: log-micros gives the default line's time in microseconds`, async (t) => {
  const v = await startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\n${app}\nlog-micros = true`);
  await serving(`${v.url}/`);
  await httpGet(`${v.url}/sleep?ms=30`);
  const line = await v.proc.logs.waitFor((l) => l.raw.includes('GET /sleep?ms=30 =>'), { message: 'the request line' });
  const us = Number(/ => generated \d+ bytes in (\d+) micros \(HTTP\/1\.1 200\) /.exec(line.raw)?.[1]);
  assert.ok(us >= 30_000 && us < 30_000_000, line.raw);
});
}

for (const [runtime, { app, raise }] of Object.entries(RUNTIMES)) {
test(`${runtime}: disable-logging with log-5xx and log-slow logs only the errors and the slow requests`, async (t) => {
  const v = await startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\n${app}\ndisable-logging = true\nlog-5xx = true\nlog-slow = 200`);
  await serving(`${v.url}/`);
  await httpGet(`${v.url}/fast`);
  await httpGet(`${v.url}${raise}`);
  await httpGet(`${v.url}/sleep?ms=300`);
  await httpGet(`${v.url}/sleep?ms=1`);
  await httpGet(`${v.url}/sleep?ms=250`);
  await v.proc.logs.waitFor((l) => l.raw.includes('GET /sleep?ms=250 =>'), { message: 'the last slow request' });
  // One worker writes its lines in order, so everything before the last line is there.
  const lines = requestLines(v.proc.logs.lines).map((l) => UWSGI_LINE.exec(l)?.[4]);
  assert.deepEqual(lines, [`GET ${raise}`, 'GET /sleep?ms=300', 'GET /sleep?ms=250']);
});
}

for (const [runtime, { app }] of Object.entries(RUNTIMES)) {
test(`${runtime}: log-format with uWSGI variables, a request header and X-Forwarded-For; the request's bytes and the template's UTF-8 come out as they went in`, async (t) => {
  const format = '%(addr) - %(user) "%(method) %(uri) %(proto)" %(status) %(rsize) "%(uagent)" id=%(HTTP_X_REQUEST_ID) %(msecs)ms w%(wid) → [%(ltime)]';
  const v = await startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\n${app}\nlog-format = ${format}\nlog-x-forwarded-for = true`);
  await serving(`${v.url}/`);
  // A header value is bytes: these are the UTF-8 of "tester/1.0 (ü)", one character per byte.
  const agent = Buffer.from('tester/1.0 (ü)', 'utf8').toString('latin1');
  await httpGet(`${v.url}/p?q=1`, { headers: { 'user-agent': agent, 'x-request-id': 'abc-123', 'x-forwarded-for': '203.0.113.9, 10.0.0.1' } });
  const line = await v.proc.logs.waitFor((l) => l.raw.includes('/p?q=1'), { message: 'the formatted line' });
  assert.match(line.raw, /^203\.0\.113\.9 - {2}"GET \/p\?q=1 HTTP\/1\.1" 200 \d+ "tester\/1\.0 \(ü\)" id=abc-123 \d+ms w1 → \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]$/);
});
}

for (const [runtime, { app }] of Object.entries(RUNTIMES)) {
test(`${runtime}: log-json: one JSON object per request, whatever the event log level`, async (t) => {
  const v = await startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\n${app}\nlog-json = true`, { env: { EMPEROR_LOG_LEVEL: 'warn' } });
  await serving(`${v.url}/`);
  await httpGet(`${v.url}/missing?json=1`);
  const line = await v.proc.logs.waitFor((l) => l.uri === '/missing?json=1', { message: 'the JSON request line' });
  assert.equal(line.msg, 'GET /missing?json=1 200');
  assert.equal(line.method, 'GET');
  assert.equal(line.status, 200);
  assert.equal(line.proto, 'HTTP/1.1');
  assert.equal(line.addr, '127.0.0.1');
  assert.equal(line.vassal, 'v.ini');
  assert.equal(line.worker, 1);
  assert.equal(typeof line.micros, 'number');
  assert.equal(line.size, Buffer.byteLength(`pid ${String(line.pid)}\n`));
  assert.deepEqual(Object.keys(line).filter((k) => k !== 'raw'), [
    'level', 'time', 'pid', 'vassal', 'worker', 'msg', 'addr', 'user', 'method', 'uri', 'proto', 'status', 'size', 'hsize', 'headers', 'micros', 'start', 'req', 'host',
  ]);
});
}

for (const [runtime, { app }] of Object.entries(RUNTIMES)) {
test(`${runtime}: logto: master, worker and app lines go to the file; SIGUSR2 and touch-logreopen reopen it after logrotate`, async (t) => {
  const v = await startVassal(t, (port, dir) => `http-socket = 127.0.0.1:${port}\n${app}\nprocesses = 2\nlogto = ${dir}/app.log\ntouch-logreopen = ${dir}/reopen`);
  const log = join(v.dir, 'app.log');
  writeFileSync(join(v.dir, 'reopen'), '');
  await serving(`${v.url}/`);
  await httpGet(`${v.url}/print?m=before`);
  const read = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');
  await waitFor(() => /GET \/print\?m=before =>/.test(read(log)), { message: 'the first request line in app.log' });
  const before = read(log);
  assert.match(before, /"msg":"vassal master started/);
  assert.match(before, /^stdout before$/m);
  assert.match(before, /^stderr before$/m);
  assert.equal(requestLines(v.proc.logs.lines).length, 0, 'nothing on stderr');

  // logrotate: move the file away, then signal the master.
  renameSync(log, `${log}.1`);
  v.proc.child.kill('SIGUSR2');
  await waitFor(() => read(log).includes('SIGUSR2: reopened'), { message: 'the master writing to the new file' });
  const doc = await statsUntil(v.stats, (d) => d.workers.every((w) => w.accepting === 1));
  // Every worker writes to the new file too: send requests until both have answered one.
  await waitFor(async () => {
    await httpGet(`${v.url}/print?m=after`);
    return doc.workers.every((w) => read(log).includes(`[pid: ${w.pid}|`));
  }, { message: 'request lines of both workers in the reopened file', timeoutMs: 15_000 });
  assert.match(read(log), /^stdout after$/m, 'the app\'s console output follows the reopened file');
  assert.doesNotMatch(read(`${log}.1`), /after/);

  // touch-logreopen does the same without a signal.
  renameSync(log, `${log}.2`);
  const now = new Date();
  utimesSync(join(v.dir, 'reopen'), now, new Date(now.getTime() + 5000));
  await waitFor(() => read(log).includes('reopen touched: reopened'), { message: 'a reopen after the touch' });
  // The master writes its "reopened" line before its message reaches the workers: a
  // request served before the message is logged in the file it was served with. Send
  // requests until one lands in the new file.
  await waitFor(async () => {
    await httpGet(`${v.url}/after-touch`);
    return read(log).includes('GET /after-touch =>');
  }, { message: 'a request line in the third file', timeoutMs: 15_000 });
});
}

test('a logto file that cannot be opened: one error line, and the vassal serves, logging to stderr', async (t) => {
  const v = await startVassal(t, (port, dir) => `http-socket = 127.0.0.1:${port}\nmodule = ${APP}\nlogto = ${dir}/no/such/dir/app.log`);
  const line = await v.proc.logs.waitFor((l) => /^logto: cannot open/.test(l.msg ?? ''), { message: 'the logto error' });
  assert.match(line.msg ?? '', /^logto: cannot open \S+\/no\/such\/dir\/app\.log: ENOENT: no such file or directory, open '\S+'; logging to stderr$/);
  await serving(`${v.url}/`);
  await v.proc.logs.waitFor((l) => l.raw.includes('GET / =>'), { message: 'request lines on stderr' });
});
