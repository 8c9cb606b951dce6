/**
 * FastCGI records in the Node worker (protocols/fastcgi-records.ts, and the CGI response
 * writer of protocols/fastcgi.ts): parsed split at every byte and coalesced, with padding,
 * 1- and 4-byte lengths, management records, refused roles, multiplexing, aborts and
 * hostile input; the response turned into CGI and cut into records.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FastcgiParser, decodeNameValuePairs, decodeRecords, encodeNameValuePairs, encodeRecord, encodeRequest, encodeStream, uwsgiToHttpHead,
  FCGI_ABORT_REQUEST, FCGI_AUTHORIZER, FCGI_BEGIN_REQUEST, FCGI_CANT_MPX_CONN, FCGI_END_REQUEST, FCGI_FILTER, FCGI_GET_VALUES,
  FCGI_GET_VALUES_RESULT, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_UNKNOWN_ROLE, FCGI_UNKNOWN_TYPE,
  type FastcgiEvent,
} from '@emperor/vassal';
import { CgiResponseWriter } from '@emperor/vassal/node-worker/protocols/fastcgi';
import { unmount } from '@emperor/vassal/node-worker/mount';

const OPTIONS = { bufferSize: 4096, maxConns: 1024, maxReqs: 8 };
/** What nginx's stock fastcgi_params send for `GET /a?b=1`, plus a header. */
const NGINX: [string, string][] = [
  ['QUERY_STRING', 'b=1'], ['REQUEST_METHOD', 'GET'], ['CONTENT_TYPE', ''], ['CONTENT_LENGTH', ''], ['SCRIPT_NAME', '/a'],
  ['REQUEST_URI', '/a?b=1'], ['DOCUMENT_URI', '/a'], ['DOCUMENT_ROOT', '/srv'], ['SERVER_PROTOCOL', 'HTTP/1.1'], ['REQUEST_SCHEME', 'http'],
  ['GATEWAY_INTERFACE', 'CGI/1.1'], ['SERVER_SOFTWARE', 'nginx/1.22.1'], ['REMOTE_ADDR', '10.1.2.3'], ['REMOTE_PORT', '40000'],
  ['SERVER_ADDR', '127.0.0.1'], ['SERVER_PORT', '80'], ['SERVER_NAME', 'example.test'], ['HTTP_HOST', 'example.test'],
];

/** Feeds `data` to a fresh parser in pieces of `size` bytes; every event, and the parser. */
function parse(data: Buffer, size = data.length, options = OPTIONS): { events: FastcgiEvent[]; parser: FastcgiParser } {
  const parser = new FastcgiParser(options);
  const events: FastcgiEvent[] = [];
  for (let at = 0; at < data.length; at += size) events.push(...parser.push(data.subarray(at, at + size)));
  return { events, parser };
}

/** Events with the stdin pieces joined, for comparing feeds of different sizes. */
function summary(events: readonly FastcgiEvent[]): unknown[] {
  const out: unknown[] = [];
  for (const e of events) {
    const last = out.at(-1) as { kind?: string; data?: string } | undefined;
    if (e.kind === 'stdin' && last?.kind === 'stdin') last.data += e.data.toString('latin1');
    else if (e.kind === 'stdin') out.push({ kind: 'stdin', data: e.data.toString('latin1') });
    else if (e.kind === 'request') out.push({ kind: 'request', ...e.head, params: [...e.head.params] });
    else if (e.kind === 'reply') out.push({ kind: 'reply', records: decodeRecords(e.data).records.map((r) => [r.type, r.requestId, r.content.toString('hex')]), close: e.close });
    else out.push(e);
  }
  return out;
}

const begin = (id: number, role = 1, flags = 0): Buffer => encodeRecord(FCGI_BEGIN_REQUEST, id, Buffer.from([role >> 8, role & 0xff, flags, 0, 0, 0, 0, 0]));

test('a request as nginx sends it: the head with its params, then the body, split at every byte alike', () => {
  const body = Buffer.from('x'.repeat(70_000));
  const params: [string, string][] = [...NGINX, ['CONTENT_LENGTH', '70000']];
  const data = encodeRequest(params, body);
  const whole = summary(parse(data).events);
  assert.deepEqual(whole, [
    { kind: 'request', requestId: 1, role: 'RESPONDER', keepConn: false, params: [...new Map(params)], paramsBytes: encodeNameValuePairs(params).length },
    { kind: 'stdin', data: body.toString('latin1') },
    { kind: 'stdin-end' },
  ]);
  for (const size of [1, 2, 3, 7, 8, 9, 100, 4096]) assert.deepEqual(summary(parse(data, size).events), whole, `pieces of ${size}`);
});

test('padding of 0 to 255 bytes on every record is skipped', () => {
  const want = summary(parse(encodeRequest(NGINX, Buffer.from('body'))).events);
  for (const padding of [0, 1, 7, 8, 200, 255]) {
    const data = encodeRequest(NGINX, Buffer.from('body'), { padding, stdinRecord: 1 });
    assert.deepEqual(summary(parse(data, 5).events), want, `padding ${padding}`);
  }
});

test('1- and 4-byte name and value lengths', () => {
  const long = 'v'.repeat(128);
  const data = encodeNameValuePairs([['A', ''], ['N'.repeat(127), 'x'], ['M'.repeat(128), long], ['BIG', 'b'.repeat(70_000)]]);
  assert.deepEqual([...data.subarray(0, 3)], [1, 0, 0x41]);
  const decoded = decodeNameValuePairs(data);
  assert.ok(typeof decoded !== 'string');
  assert.equal(decoded.get('N'.repeat(127)), 'x');
  assert.equal(decoded.get('M'.repeat(128)), long);
  assert.equal(decoded.get('BIG')?.length, 70_000);
  // A 4-byte length is big-endian with the top bit set.
  const four = encodeNameValuePairs([['K', 'z'.repeat(200)]]);
  assert.deepEqual([...four.subarray(0, 5)], [1, 0x80, 0, 0, 200]);
  assert.match(String(decodeNameValuePairs(Buffer.from([5, 0, 0x41]))), /name of 5 and value of 0 bytes run past the end/);
  assert.match(String(decodeNameValuePairs(Buffer.from([0x80, 0]))), /a length runs past the end/);
  assert.match(String(decodeNameValuePairs(Buffer.from([0, 0]))), /an empty name/);
});

test('FCGI_KEEP_CONN: coalesced requests on one connection, one after the other', () => {
  const first = encodeRequest(NGINX, Buffer.alloc(0), { keepConn: true, requestId: 1 });
  const second = encodeRequest([['REQUEST_URI', '/two']], Buffer.from('2'), { keepConn: true, requestId: 1 });
  const parser = new FastcgiParser(OPTIONS);
  const events = parser.push(Buffer.concat([first, second]));
  // The second BEGIN_REQUEST arrives while the first is active: a front end multiplexing.
  assert.deepEqual(events.map((e) => e.kind), ['request', 'stdin-end', 'invalid']);
  const again = new FastcgiParser(OPTIONS);
  assert.deepEqual(again.push(first).map((e) => e.kind), ['request', 'stdin-end']);
  again.ended();
  const next = again.push(second);
  assert.deepEqual(next.map((e) => e.kind), ['request', 'stdin', 'stdin-end']);
  assert.equal(next[0]?.kind === 'request' && next[0].head.keepConn, true);
});

test('FCGI_GET_VALUES is answered with the names it knows; other management records get FCGI_UNKNOWN_TYPE', () => {
  const query = encodeRecord(FCGI_GET_VALUES, 0, encodeNameValuePairs([['FCGI_MAX_CONNS', ''], ['FCGI_NO_SUCH', ''], ['FCGI_MPXS_CONNS', ''], ['FCGI_MAX_REQS', '']]));
  const { events } = parse(Buffer.concat([query, encodeRecord(42, 0, Buffer.from('??'))]), 3);
  assert.equal(events.length, 2);
  const [values, unknown] = events.map((e) => (e.kind === 'reply' ? decodeRecords(e.data).records : []));
  assert.equal(values?.[0]?.type, FCGI_GET_VALUES_RESULT);
  assert.equal(values?.[0]?.requestId, 0);
  assert.deepEqual([...(decodeNameValuePairs(values?.[0]?.content ?? Buffer.alloc(0)) as Map<string, string>)], [['FCGI_MAX_CONNS', '1024'], ['FCGI_MPXS_CONNS', '0'], ['FCGI_MAX_REQS', '8']]);
  assert.equal(unknown?.[0]?.type, FCGI_UNKNOWN_TYPE);
  assert.deepEqual([...(unknown?.[0]?.content ?? [])], [42, 0, 0, 0, 0, 0, 0, 0]);
});

test('a second BEGIN_REQUEST while one is in flight gets FCGI_CANT_MPX_CONN; its records are ignored', () => {
  const parser = new FastcgiParser(OPTIONS);
  const head = Buffer.concat([begin(1), encodeRecord(FCGI_PARAMS, 1, encodeNameValuePairs(NGINX)), encodeRecord(FCGI_PARAMS, 1)]);
  assert.deepEqual(parser.push(head).map((e) => e.kind), ['request']);
  const other = encodeRequest(NGINX, Buffer.from('other body'), { requestId: 2 });
  const events = parser.push(Buffer.concat([other, encodeRecord(FCGI_STDIN, 1, Buffer.from('mine')), encodeRecord(FCGI_STDIN, 1)]));
  assert.deepEqual(summary(events), [
    // END_REQUEST's body: appStatus 0 (4 bytes), protocolStatus FCGI_CANT_MPX_CONN, 3 reserved bytes.
    { kind: 'reply', records: [[FCGI_END_REQUEST, 2, Buffer.from([0, 0, 0, 0, FCGI_CANT_MPX_CONN, 0, 0, 0]).toString('hex')]], close: false },
    { kind: 'stdin', data: 'mine' },
    { kind: 'stdin-end' },
  ]);
});

test('roles: a responder and an authorizer are served; a filter gets FCGI_UNKNOWN_ROLE, and the connection closes unless kept', () => {
  const auth = parse(encodeRequest(NGINX, Buffer.alloc(0), { role: FCGI_AUTHORIZER }));
  assert.equal(auth.events[0]?.kind === 'request' && auth.events[0].head.role, 'AUTHORIZER');
  const filter = parse(encodeRequest(NGINX, Buffer.from('data'), { role: FCGI_FILTER }));
  assert.deepEqual(summary(filter.events), [{ kind: 'reply', records: [[FCGI_END_REQUEST, 1, '0000000003000000']], close: true }]);
  const kept = parse(Buffer.concat([begin(3, 99, 1), encodeRequest(NGINX, Buffer.alloc(0), { requestId: 4 })]));
  assert.deepEqual(summary(kept.events).map((e) => (e as { kind: string; close?: boolean }).close ?? (e as { kind: string }).kind), [false, 'request', 'stdin-end']);
  assert.equal(FCGI_UNKNOWN_ROLE, 3);
});

test('FCGI_ABORT_REQUEST of the request in flight ends it; of another id it is ignored', () => {
  const parser = new FastcgiParser(OPTIONS);
  parser.push(Buffer.concat([begin(1), encodeRecord(FCGI_PARAMS, 1), encodeRecord(FCGI_STDIN, 1, Buffer.from('a'))]));
  assert.deepEqual(parser.push(Buffer.concat([encodeRecord(FCGI_ABORT_REQUEST, 7), encodeRecord(FCGI_ABORT_REQUEST, 1)])).map((e) => e.kind), ['abort']);
});

test('records of requests not in flight are ignored: the rest of a body the app never read', () => {
  const parser = new FastcgiParser(OPTIONS);
  const stale = Buffer.concat([encodeRecord(FCGI_STDIN, 1, Buffer.from('left over')), encodeRecord(FCGI_STDIN, 1), encodeRecord(FCGI_STDOUT, 5, Buffer.from('?'))]);
  assert.deepEqual(parser.push(Buffer.concat([stale, encodeRequest(NGINX)])).map((e) => e.kind), ['request', 'stdin-end']);
});

test('refused input: one reason each, and nothing is parsed after it', () => {
  const reason = (data: Buffer, options = OPTIONS): string => {
    const { events, parser } = parse(data, 1, options);
    const invalid = events.filter((e) => e.kind === 'invalid');
    assert.equal(invalid.length, 1, JSON.stringify(summary(events)));
    assert.deepEqual(parser.push(encodeRequest(NGINX)), [], 'nothing after a refusal');
    return invalid[0]?.kind === 'invalid' ? invalid[0].reason : '';
  };
  assert.equal(reason(Buffer.from('GET / HTTP/1.1\r\n\r\n')), 'unsupported FastCGI version 71 (type 69, at byte 0; only 1 exists)');
  assert.equal(reason(encodeRecord(FCGI_BEGIN_REQUEST, 1, Buffer.alloc(7))), 'BEGIN_REQUEST of 7 bytes for request 1 (8 expected)');
  assert.equal(reason(Buffer.concat([begin(1), begin(1)])), 'a second BEGIN_REQUEST for request 1, which is active');
  assert.equal(reason(Buffer.concat([begin(1), encodeRecord(FCGI_STDIN, 1, Buffer.from('x'))])), 'STDIN before the end of PARAMS for request 1');
  assert.equal(reason(Buffer.concat([begin(1), encodeRecord(FCGI_PARAMS, 1, Buffer.from([3, 0, 0x41])), encodeRecord(FCGI_PARAMS, 1)])),
    'request 1: malformed name-value pair at byte 0 (name of 3 and value of 0 bytes run past the end)');
  const big = encodeRequest([['HTTP_COOKIE', 'c'.repeat(5000)]]);
  assert.equal(reason(big), 'params of request 1 larger than buffer-size (4096 bytes)');
  assert.equal(parse(big, big.length, { ...OPTIONS, bufferSize: 8192 }).events[0]?.kind, 'request', 'within a larger buffer-size');
  // The params are bounded as they come: the parser refuses before the stream ends.
  const parser = new FastcgiParser(OPTIONS);
  const events = parser.push(Buffer.concat([begin(1), encodeRecord(FCGI_PARAMS, 1, Buffer.alloc(4097, 1))]));
  assert.equal(events[0]?.kind, 'invalid');
});

test('no input of any shape makes the parser throw, and it holds at most one record (deterministic fuzz)', () => {
  let seed = 7;
  const next = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  const valid = encodeRequest(NGINX, Buffer.from('body'), { keepConn: true });
  for (let i = 0; i < 3000; i++) {
    const parser = new FastcgiParser(OPTIONS);
    const buf = Buffer.from(valid);
    for (let j = next() % 6; j > 0; j--) buf[next() % buf.length] = next() & 0xff;
    const cut = buf.subarray(0, next() % (buf.length + 1));
    for (let at = 0; at < cut.length; at += 1 + (next() % 50)) parser.push(cut.subarray(at, at + 1 + (next() % 50)));
    assert.ok(parser.buffered <= 8 + 0xffff + 255, `buffered ${parser.buffered}`);
  }
});

test('STDOUT is cut into records of at most 65535 bytes', () => {
  const records = encodeStream(FCGI_STDOUT, 3, Buffer.alloc(150_000, 1));
  assert.deepEqual(records.map((r) => r.readUInt16BE(4)), [65535, 65535, 18930]);
  assert.ok(records.every((r) => r[1] === FCGI_STDOUT && r.readUInt16BE(2) === 3 && r[6] === 0));
  assert.deepEqual(encodeStream(FCGI_STDOUT, 1, Buffer.alloc(0)), []);
  assert.throws(() => encodeRecord(FCGI_STDOUT, 1, Buffer.alloc(65536)), /over 65535/);
});

test("Node's HTTP response becomes a CGI response: Status, no hop-by-hop headers, un-chunked, no 1xx", () => {
  const cgi = (...writes: string[]): string => {
    const w = new CgiResponseWriter();
    return writes.map((s) => w.write(Buffer.from(s, 'latin1')).toString('latin1')).join('');
  };
  assert.equal(cgi('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi'),
    'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi');
  assert.equal(cgi('HTTP/1.1 404 Not', ' Found\r\nX-A: 1\r\n', '\r', '\nbo', 'dy'), 'Status: 404 Not Found\r\nX-A: 1\r\n\r\nbody');
  assert.equal(cgi('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nLocation: /x\r\n\r\n'),
    'Status: 201 Created\r\nLocation: /x\r\n\r\n');
  assert.equal(cgi('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n5\r\nhel', 'lo\r\n3;ext=1\r\n wo\r\n', '0\r\nX-Trailer: 1\r\n\r\n'),
    'Status: 200 OK\r\n\r\nhello wo');
});

test('a FastCGI request head for Node: framed by CONTENT_LENGTH, or chunked when the body has no length', () => {
  const params = new Map(NGINX);
  const plain = uwsgiToHttpHead(params);
  assert.ok(typeof plain !== 'string');
  assert.equal(plain.head.toString('latin1'), 'GET /a?b=1 HTTP/1.1\r\nhost: example.test\r\nconnection: close\r\n\r\n', 'nginx sends CONTENT_LENGTH "" for no body');
  const posted = uwsgiToHttpHead(new Map([...NGINX, ['CONTENT_LENGTH', '5']]));
  assert.ok(typeof posted !== 'string');
  assert.match(posted.head.toString('latin1'), /\r\ncontent-length: 5\r\nconnection: close\r\n\r\n$/);
  const chunked = uwsgiToHttpHead(params, { chunkedBody: true });
  assert.ok(typeof chunked !== 'string');
  assert.match(chunked.head.toString('latin1'), /\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n$/);
  assert.doesNotMatch(chunked.head.toString('latin1'), /content-length/);
});

test('manage-script-name in a Node worker: the mountpoint comes off the URL, a whole segment at a time', () => {
  assert.equal(unmount('/blog', '/blog'), '/');
  assert.equal(unmount('/blog/', '/blog'), '/');
  assert.equal(unmount('/blog/a/b?c=1', '/blog'), '/a/b?c=1');
  assert.equal(unmount('/blog?x', '/blog'), '/?x');
  assert.equal(unmount('/blogger', '/blog'), undefined);
  assert.equal(unmount('/other', '/blog'), undefined);
});
