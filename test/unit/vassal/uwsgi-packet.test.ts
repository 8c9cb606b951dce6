import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeUwsgiPacket, parseUwsgiPacket, uwsgiToHttpHead } from '@emperor/vassal';
import { truncatedReason } from '@emperor/vassal/node-worker/protocols/uwsgi-packet';

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

// The parser is sans-IO: the tests below feed it the byte streams a socket delivers
// (split, coalesced, cut short, too big, malformed) without a socket.

/** A packet as nginx's stock uwsgi_params sends it, and a body after it. */
const nginxPacket = encodeUwsgiPacket([
  ['QUERY_STRING', 'x=1'],
  ['REQUEST_METHOD', 'POST'],
  ['CONTENT_TYPE', 'text/plain'],
  ['CONTENT_LENGTH', '4'],
  ['REQUEST_URI', '/up?x=1'],
  ['PATH_INFO', '/up'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['REMOTE_ADDR', '10.0.0.7'],
  ['HTTP_HOST', 'example.test'],
]);

test('split: a packet arriving in pieces is incomplete at every cut, then whole, with the same vars', () => {
  const whole = parseUwsgiPacket(nginxPacket, 4096);
  assert.equal(whole.kind, 'packet');
  if (whole.kind !== 'packet') return;
  // Every split point, as a connection accumulates reads (one byte at a time is the worst case).
  for (let cut = 0; cut < nginxPacket.length; cut++) {
    const r = parseUwsgiPacket(nginxPacket.subarray(0, cut), 4096);
    assert.deepEqual(r, { kind: 'incomplete', need: cut < 4 ? 4 : nginxPacket.length }, `cut at ${cut}`);
  }
  // Reads of uneven sizes, concatenated as the connection glue does.
  let received = Buffer.alloc(0);
  let result = parseUwsgiPacket(received, 4096);
  for (const size of [1, 2, 3, 7, 50, 1000]) {
    const from = received.length;
    received = Buffer.concat([received, nginxPacket.subarray(from, from + size)]);
    result = parseUwsgiPacket(received, 4096);
    if (result.kind !== 'incomplete') break;
  }
  assert.deepEqual(result, whole);
});

test('coalesced: a packet and its body in one read, or two packets in one buffer, parse from the offset consumed', () => {
  const body = Buffer.from('data');
  const withBody = parseUwsgiPacket(Buffer.concat([nginxPacket, body]), 4096);
  assert.equal(withBody.kind, 'packet');
  if (withBody.kind !== 'packet') return;
  assert.equal(withBody.consumed, nginxPacket.length, 'the body is not part of the packet');
  assert.equal(withBody.vars.get('CONTENT_LENGTH'), '4');

  const second = encodeUwsgiPacket([['REQUEST_METHOD', 'GET'], ['REQUEST_URI', '/two']]);
  const both = Buffer.concat([nginxPacket, second]);
  const first = parseUwsgiPacket(both, 4096);
  assert.equal(first.kind, 'packet');
  if (first.kind !== 'packet') return;
  assert.equal(first.vars.get('REQUEST_URI'), '/up?x=1', 'the first packet stops at its own block');
  assert.equal(first.vars.has('/two'), false);
  const next = parseUwsgiPacket(both.subarray(first.consumed), 4096);
  assert.equal(next.kind, 'packet');
  if (next.kind !== 'packet') return;
  assert.deepEqual([...next.vars], [['REQUEST_METHOD', 'GET'], ['REQUEST_URI', '/two']]);
  assert.equal(first.consumed + next.consumed, both.length);
});

test('truncated: input that ends early is never a packet; its log reason says how much came of how much', () => {
  for (let cut = 1; cut < nginxPacket.length; cut++) {
    const kind = parseUwsgiPacket(nginxPacket.subarray(0, cut), 4096).kind;
    assert.equal(kind, 'incomplete', `cut at ${cut}`);
  }
  assert.equal(truncatedReason(nginxPacket.subarray(0, 2), 4096), 'truncated packet (2 of 4 bytes)');
  assert.equal(truncatedReason(nginxPacket.subarray(0, 7), 4096), `truncated packet (7 of ${nginxPacket.length} bytes)`);
  assert.equal(truncatedReason(Buffer.from('GET /'), 4096), 'truncated packet (5 of ? bytes)', 'not the start of a packet');
});

test('oversized: a block over buffer-size is refused from its 4-byte header, before the block is read', () => {
  const big = encodeUwsgiPacket([['HTTP_COOKIE', 'c'.repeat(5000)]]);
  const size = big.length - 4;
  const r = parseUwsgiPacket(big.subarray(0, 4), 4096);
  assert.deepEqual(r, { kind: 'invalid', reason: `invalid request block size: ${size} (max 4096, buffer-size)` });
  assert.equal(parseUwsgiPacket(big, size).kind, 'packet', 'a buffer-size of the block size lets it through');
  assert.equal(parseUwsgiPacket(big, size - 1).kind, 'invalid', 'one byte less does not');
  assert.equal(parseUwsgiPacket(header(0, 0xffff), 0xffff).kind, 'incomplete', 'the largest block the header can announce');
  // The body does not count against buffer-size: it follows the packet.
  const withBigBody = Buffer.concat([nginxPacket, Buffer.alloc(100_000)]);
  assert.equal(parseUwsgiPacket(withBigBody, nginxPacket.length - 4).kind, 'packet');
});

test('malformed: modifiers, key and value lengths that lie, and bytes as latin-1', () => {
  assert.match(String((parseUwsgiPacket(encodeUwsgiPacket([['A', 'b']], 5), 4096) as { reason?: string }).reason), /^unavailable modifier requested: 5/);
  const m2 = parseUwsgiPacket(encodeUwsgiPacket([['A', 'b']], 0, 9), 4096);
  assert.equal(m2.kind === 'packet' && m2.modifier2, 9, 'modifier2 is carried, not judged');
  // A value length that runs exactly one byte past the block.
  const block = Buffer.from([1, 0, 0x41, 2, 0, 0x42]);
  assert.match(String((parseUwsgiPacket(Buffer.concat([header(0, block.length), block]), 4096) as { reason?: string }).reason), /current strsize: 2\) runs past the end/);
  // A key whose value length field is cut by the end of the block.
  const cutValueLength = Buffer.from([1, 0, 0x41, 0]);
  assert.match(String((parseUwsgiPacket(Buffer.concat([header(0, cutValueLength.length), cutValueLength]), 4096) as { reason?: string }).reason), /current strsize: 1\) runs past the end/);
  // Raw bytes over 0x7f come through one character per byte; a repeated key keeps its last value.
  const raw = Buffer.from([4, 0, 0x50, 0x41, 0x54, 0x48, 2, 0, 0xc3, 0xa9, 4, 0, 0x50, 0x41, 0x54, 0x48, 1, 0, 0x2f]);
  const latin = parseUwsgiPacket(Buffer.concat([header(0, raw.length), raw]), 4096);
  assert.equal(latin.kind, 'packet');
  if (latin.kind === 'packet') assert.deepEqual([...latin.vars], [['PATH', '/']]);
  const utf8 = Buffer.from([4, 0, 0x50, 0x41, 0x54, 0x48, 2, 0, 0xc3, 0xa9]);
  const once = parseUwsgiPacket(Buffer.concat([header(0, utf8.length), utf8]), 4096);
  assert.equal(once.kind === 'packet' && once.vars.get('PATH'), '\u00c3\u00a9', 'UTF-8 "é" is two latin-1 characters, as PEP 3333 wants');
});
