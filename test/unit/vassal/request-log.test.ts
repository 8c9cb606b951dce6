import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileLogFormat, countVars, ctime, epochMsText, formatDefaultLine, jsonRenderer, ltime, shouldLog, type RequestFacts, type RequestLogSpec } from '@emperor/vassal';

process.env.TZ = 'UTC';
const START = Date.UTC(2026, 10, 22, 3, 9, 30, 250);

function facts(over: Partial<RequestFacts> = {}): RequestFacts {
  const headers: Record<string, string> = { host: 'example.com', 'user-agent': 'curl/8', 'x-request-id': 'r-1' };
  return {
    pid: 16217, wid: 2, n: 1, method: 'GET', uri: '/hello?x=1', proto: 'HTTP/1.1', status: 200, addr: '10.0.0.1', port: 51000, user: '',
    startMs: START, durationUs: 812, rsize: 6, hsize: 45, headers: 1, vars: 20, pktsize: 216, header: (name) => headers[name] ?? '', ...over,
  };
}

test('the default line is uWSGI\'s, byte for byte (reference/uwsgi-internals.md §6)', () => {
  assert.equal(
    formatDefaultLine(facts(), false),
    '[pid: 16217|app: 0|req: 1/1] 10.0.0.1 () {20 vars in 216 bytes} [Sun Nov 22 03:09:30 2026] GET /hello?x=1 => generated 6 bytes in 0 msecs (HTTP/1.1 200) 1 headers in 45 bytes (1 switches on core 0)\n',
  );
  assert.match(formatDefaultLine(facts({ durationUs: 1512.4 }), true), / in 1512 micros \(HTTP/);
  assert.match(formatDefaultLine(facts({ durationUs: 2999 }), false), / in 2 msecs /, 'whole milliseconds, truncated as uWSGI does');
});

test('dates: ctime with a space-padded day, ltime as Apache\'s %t', () => {
  assert.equal(ctime(Date.UTC(2026, 0, 5, 7, 8, 9)), 'Mon Jan  5 07:08:09 2026');
  assert.equal(ltime(Date.UTC(2026, 0, 5, 7, 8, 9)), '05/Jan/2026:07:08:09 +0000');
  assert.equal(ctime(START), 'Sun Nov 22 03:09:30 2026');
});

const spec = (over: Partial<RequestLogSpec> = {}): RequestLogSpec => ({
  enabled: false, log4xx: false, log5xx: false, slowMs: 0, zero: false, bigBytes: 0, format: undefined, json: false, micros: false, xForwardedFor: false, ...over,
});

test('which requests are logged: everything, or with disable-logging only what an exception asks for (uWSGI log_request)', () => {
  assert.equal(shouldLog(spec({ enabled: true }), 200, 1, 10), true);
  assert.equal(shouldLog(spec(), 500, 1e6, 0), false);
  assert.equal(shouldLog(spec({ log4xx: true }), 404, 1, 10), true);
  assert.equal(shouldLog(spec({ log4xx: true }), 500, 1, 10), false);
  assert.equal(shouldLog(spec({ log5xx: true }), 503, 1, 10), true);
  assert.equal(shouldLog(spec({ slowMs: 100 }), 200, 99_999, 10), false);
  assert.equal(shouldLog(spec({ slowMs: 100 }), 200, 100_000, 10), true);
  assert.equal(shouldLog(spec({ zero: true }), 204, 1, 0), true);
  assert.equal(shouldLog(spec({ bigBytes: 1000 }), 200, 1, 999), false);
  assert.equal(shouldLog(spec({ bigBytes: 1000 }), 200, 1, 1000), true);
});

test('log-format renders uWSGI variables, CGI names and request headers; unknown ones as ""', () => {
  const render = compileLogFormat('%(addr) %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size) %(rsize) %(hsize) %(msecs)/%(micros) %(HTTP_X_REQUEST_ID) %(REMOTE_PORT) %(PATH_INFO) %(QUERY_STRING) %(host) %(uagent) %(wid) %(pid) %(nope)|% literal');
  assert.equal(render(facts({ durationUs: 2500 })), '10.0.0.1  [22/Nov/2026:03:09:30 +0000] "GET /hello?x=1 HTTP/1.1" 200 51 6 45 2/2500 r-1 51000 /hello x=1 example.com curl/8 2 16217 |% literal\n');
  assert.equal(compileLogFormat('%(time) %(tmsecs) %(cl) %(switches) %(core)')(facts()), `${Math.floor(START / 1000)} ${START} 0 1 0\n`);
});

test('request variables are counted as uWSGI counts them: two slots each, and their size as a uwsgi packet', () => {
  const none = countVars('GET', '/', 'HTTP/1.1', '1.2.3.4', 5, 'h:80', []);
  assert.equal(none.vars, 20);
  // 10 keys (116 bytes) + values GET / "" / HTTP/1.1 "" h 80 1.2.3.4 5 + 4 bytes of lengths each.
  assert.equal(none.pktsize, 116 + 3 + 1 + 0 + 1 + 8 + 1 + 2 + 7 + 1 + 40);
  const one = countVars('GET', '/', 'HTTP/1.1', '1.2.3.4', 5, 'h:80', ['Host', 'h:80', 'Content-Type', 'x']);
  assert.equal(one.vars, 24);
  assert.equal(one.pktsize, none.pktsize + (5 + 4 + 4 + 4) + (12 + 1 + 4), 'HTTP_HOST, and CONTENT_TYPE without HTTP_');
});

test('epochMsText is String(ms) for every whole number of milliseconds, whatever came before', () => {
  // The cached second must never leak into another second's text (or below 1000, or a fraction).
  fc.assert(fc.property(fc.array(fc.oneof(fc.integer({ min: 0, max: 2 ** 42 }), fc.integer({ min: START - 3000, max: START + 3000 }), fc.double({ min: 0, max: 1e13, noNaN: true })), { minLength: 1, maxLength: 20 }), (values) => {
    for (const ms of values) assert.equal(epochMsText(ms), String(ms));
  }));
  assert.equal(epochMsText(START + 1), `${START + 1}`);
  assert.equal(epochMsText(START - 250 + 5), `${START - 245}`);
});

test('log-json: a method or URI that needs escaping stays valid JSON in msg too', () => {
  const o = JSON.parse(jsonRenderer({ vassal: 'v', worker: 1 })(facts({ method: 'G"T\\', uri: '/x\u0002"' }))) as Record<string, unknown>;
  assert.equal(o.msg, 'G"T\\ /x\u0002" 200');
  assert.equal(o.method, 'G"T\\');
});

test('log-json: one JSON object in the event lines\' shape, escaping only what must be escaped', () => {
  const render = jsonRenderer({ vassal: 'shop.ini', worker: 2 });
  const line = render(facts({ uri: '/a"b\\c\u0001\ud800' }));
  assert.ok(line.endsWith('}\n'));
  const o = JSON.parse(line) as Record<string, unknown>;
  assert.deepEqual(Object.keys(o).slice(0, 6), ['level', 'time', 'pid', 'vassal', 'worker', 'msg']);
  assert.equal(o.uri, '/a"b\\c\u0001\ud800');
  assert.deepEqual({ ...o, time: 0 }, {
    level: 30, time: 0, pid: 16217, vassal: 'shop.ini', worker: 2, msg: `GET ${String(o.uri)} 200`, addr: '10.0.0.1', user: '', method: 'GET', uri: o.uri,
    proto: 'HTTP/1.1', status: 200, size: 6, hsize: 45, headers: 1, micros: 812, start: START, req: 1, host: 'example.com',
  });
});
