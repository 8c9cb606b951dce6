import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeUwsgiPacket, parseUwsgiPacket, uwsgiToHttpHead } from '@emperor/vassal';

const header = (m1: number, size: number, m2 = 0): Buffer => Buffer.from([m1, size & 0xff, size >> 8, m2]);

test('a packet round-trips, byte for byte as nginx lays it out', () => {
  const packet = encodeUwsgiPacket([
    ['REQUEST_METHOD', 'GET'],
    ['PATH_INFO', '/caf\u00e9'],
  ]);
  // modifier1 0, size 39 (2+14+2+3 + 2+9+2+5) little-endian, modifier2 0, then the first u16le key length
  assert.deepEqual([...packet.subarray(0, 6)], [0, 39, 0, 0, 14, 0]);
  assert.equal(packet.length, 4 + 39);
  const body = Buffer.from('the body');
  const parsed = parseUwsgiPacket(Buffer.concat([packet, body]), 4096);
  assert.equal(parsed.kind, 'packet');
  if (parsed.kind !== 'packet') return;
  assert.equal(parsed.consumed, packet.length, 'the body starts after the variable block');
  assert.deepEqual([...parsed.vars], [['REQUEST_METHOD', 'GET'], ['PATH_INFO', '/caf\u00e9']]);
});

test('incomplete input asks for more: the header first, then the whole block', () => {
  const packet = encodeUwsgiPacket([['A', 'b']]);
  assert.deepEqual(parseUwsgiPacket(packet.subarray(0, 3), 4096), { kind: 'incomplete', need: 4 });
  assert.deepEqual(parseUwsgiPacket(packet.subarray(0, 6), 4096), { kind: 'incomplete', need: packet.length });
  assert.equal(parseUwsgiPacket(Buffer.from([0, 0, 0, 0]), 4096).kind, 'packet', 'an empty block is a packet with no vars');
});

test("malformed packets are refused with uWSGI's reasons", () => {
  const reason = (buf: Buffer, bufferSize = 4096): string => {
    const r = parseUwsgiPacket(buf, bufferSize);
    assert.equal(r.kind, 'invalid', JSON.stringify(r));
    return r.kind === 'invalid' ? r.reason : '';
  };
  assert.match(reason(Buffer.from('GET / HTTP/1.1\r\n')), /^unavailable modifier requested: 71/);
  assert.match(reason(header(0, 5000)), /^invalid request block size: 5000 \(max 4096/);
  assert.match(reason(header(0, 100), 99), /max 99/);
  assert.match(reason(Buffer.concat([header(0, 4), Buffer.from([0, 0, 0, 0])])), /^uwsgi key cannot be null/);
  assert.match(reason(Buffer.concat([header(0, 6), Buffer.from([1, 0, 0x41, 200, 0, 0x42])])), /current strsize: 200/);
  assert.match(reason(Buffer.concat([header(0, 5), Buffer.from([9, 0, 0x41, 0, 0])])), /current strsize: 9/);
  assert.match(reason(Buffer.concat([header(0, 1), Buffer.from([1])])), /key length runs past the end/);
  assert.equal(parseUwsgiPacket(header(0, 4096), 4096).kind, 'incomplete', 'exactly buffer-size is allowed');
});

test('no input of any shape makes the parser throw (deterministic fuzz)', () => {
  let seed = 42;
  const next = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let i = 0; i < 5000; i++) {
    const len = next() % 64;
    const buf = Buffer.alloc(len);
    for (let j = 0; j < len; j++) buf[j] = next() & 0xff;
    if (len >= 4 && i % 2 === 0) {
      buf[0] = 0;
      buf.writeUInt16LE(len - 4, 1);
    }
    const r = parseUwsgiPacket(buf, 4096);
    assert.ok(['packet', 'incomplete', 'invalid'].includes(r.kind));
  }
});

test('vars become an HTTP request head for Node: request line, headers, body framing, Connection: close', () => {
  const head = uwsgiToHttpHead(
    new Map([
      ['REQUEST_METHOD', 'POST'],
      ['REQUEST_URI', '/a%20b?x=1'],
      ['PATH_INFO', '/a b'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
      ['CONTENT_TYPE', 'text/plain'],
      ['CONTENT_LENGTH', '5'],
      ['HTTP_HOST', 'example.test'],
      ['HTTP_X_FORWARDED_FOR', '10.0.0.1'],
      ['HTTP_CONNECTION', 'keep-alive'],
      ['HTTP_CONTENT_LENGTH', '999'],
      ['HTTP_TRANSFER_ENCODING', 'chunked'],
    ]),
  );
  assert.notEqual(typeof head, 'string');
  if (typeof head === 'string') return;
  assert.equal(head.bodyLength, 5);
  assert.equal(
    head.head.toString('latin1'),
    'POST /a%20b?x=1 HTTP/1.1\r\nhost: example.test\r\nx-forwarded-for: 10.0.0.1\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\n',
  );
  const rebuilt = uwsgiToHttpHead(new Map([['PATH_INFO', '/a b'], ['QUERY_STRING', 'q=1'], ['SERVER_NAME', 'h'], ['SERVER_PORT', '8080']]));
  assert.notEqual(typeof rebuilt, 'string');
  if (typeof rebuilt !== 'string') {
    assert.equal(rebuilt.head.toString('latin1'), 'GET /a%20b?q=1 HTTP/1.0\r\nhost: h:8080\r\nconnection: close\r\n\r\n');
  }
  assert.match(String(uwsgiToHttpHead(new Map([['REQUEST_METHOD', 'G E T']]))), /bad REQUEST_METHOD/);
  assert.match(String(uwsgiToHttpHead(new Map([['HTTP_X', 'a\r\nInjected: 1']]))), /HTTP_X cannot be an HTTP header/);
  assert.match(String(uwsgiToHttpHead(new Map([['SERVER_PROTOCOL', 'HTTP/2.0']]))), /unsupported SERVER_PROTOCOL/);
});
