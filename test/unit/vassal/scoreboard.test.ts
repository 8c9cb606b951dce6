import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fstatSync } from 'node:fs';
import { EMPTY_SLOT, SLOT_SIZE, Scoreboard, ScoreboardWriter, SlotStatus, decodeSlot, encodeSlot, type SlotData } from '@emperor/vassal';

const sample: SlotData = {
  ...EMPTY_SLOT,
  pid: 4242,
  status: SlotStatus.BUSY,
  accepting: true,
  inFlight: 3,
  heartbeatMs: 1_790_000_000_123.5,
  requests: 1234,
  exceptions: 2,
  txBytes: 98765,
  runningTimeUs: 55555.25,
  avgRtUs: 44.5,
  requestStartMs: 1_790_000_000_000,
  harakiriCount: 1,
  lastRequestEndMs: 1_790_000_000_100,
  method: 'POST',
  uri: '/checkout?cart=1',
};

test('a slot round-trips through its encoding', () => {
  const buf = Buffer.alloc(SLOT_SIZE);
  encodeSlot(buf, sample, 7);
  assert.deepEqual(decodeSlot(buf), sample);
});

test('a torn slot (sequence numbers differ) decodes as undefined', () => {
  const buf = Buffer.alloc(SLOT_SIZE);
  encodeSlot(buf, sample, 7);
  buf.writeUInt32LE(8, 0);
  assert.equal(decodeSlot(buf), undefined);
});

test('long URIs and multibyte text are cut to the field, not past it', () => {
  const buf = Buffer.alloc(SLOT_SIZE);
  encodeSlot(buf, { ...sample, method: 'PROPPATCHXXXXXXXXXXXXXX', uri: `/${'é'.repeat(2000)}` }, 1);
  const back = decodeSlot(buf);
  assert.ok(back);
  assert.equal(back.method, 'PROPPATCHXXXXXXX');
  assert.ok(Buffer.byteLength(back.uri) <= 900);
  assert.ok(back.uri.startsWith('/éé'));
  assert.ok(!back.uri.includes('\uFFFD'));
});

test('the scoreboard file is unlinked at once and slots are independent', (t) => {
  const sb = Scoreboard.create(4);
  t.after(() => sb.close());
  assert.equal(fstatSync(sb.fd).nlink, 0);
  const a = sb.allocate();
  const b = sb.allocate();
  assert.equal(a, 0);
  assert.equal(b, 1);
  new ScoreboardWriter(sb.fd, 1).write(sample);
  const all = sb.readAll();
  assert.equal(all.length, 2, 'only the slots in use are read');
  assert.deepEqual(all[1], sample);
  assert.equal(all[0]?.pid, 0);
  sb.release(1);
  sb.release(0);
  assert.equal(sb.allocate(), 0, 'the lowest free slot is taken first');
  assert.equal(sb.allocate(), 1);
  assert.equal(sb.read(1)?.pid, 0, 'a reallocated slot is zeroed');
});
