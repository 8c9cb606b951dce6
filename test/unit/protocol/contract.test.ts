/**
 * The cross-language contracts (packages/protocol/src/contract.ts): the Python worker's
 * generated contract.py is current, and golden tests across the two languages: Python
 * writes a slot that TypeScript reads and the reverse, and both render uWSGI's default
 * request line to the same bytes for the same facts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SLOT, SLOT_STATUS, renderPythonContract, slotStructFormat } from '@emperor/protocol';
import { EMPTY_SLOT, SLOT_SIZE, SlotStatus, decodeSlot, encodeSlot, formatDefaultLine, type RequestFacts, type SlotData } from '@emperor/vassal';
import { ROOT } from '../../helpers/index.js';

const PACKAGE_PARENT = join(ROOT, 'packages', 'vassal', 'python');

/** Runs `code` with python3 (the package importable), returning its stdout; fails the test on any error. */
function python(code: string): string {
  const r = spawnSync('python3', ['-B', '-c', code], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: PACKAGE_PARENT, PYTHONDONTWRITEBYTECODE: '1' } });
  assert.equal(r.status, 0, `python3 failed:\n${r.stderr}`);
  return r.stdout;
}

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
  harakiriCount: 0,
  lastRequestEndMs: 1_790_000_000_100,
  eventLoop: true,
  websockets: 7,
  method: 'POST',
  uri: '/checkout/é?cart=1',
};

test('contract.py is generated from packages/protocol (run `npm run docs` after changing a contract)', () => {
  const file = join(PACKAGE_PARENT, 'emperor_worker', 'contract.py');
  assert.equal(readFileSync(file, 'utf8'), renderPythonContract());
});

test('the slot fields tile the slot without overlap, and Python computes the same size', () => {
  const { format, names } = slotStructFormat();
  assert.equal(names.length, Object.keys(SLOT.fields).length);
  let end = 0;
  for (const name of names) {
    const f = SLOT.fields[name as keyof typeof SLOT.fields];
    assert.ok(f.offset >= end, `${name} at ${f.offset} overlaps the field before it (which ends at ${end})`);
    end = f.offset + ('length' in f ? f.length : { u8: 1, u16: 2, u32: 4, f64: 8 }[f.type as 'u8']);
  }
  assert.equal(end, SLOT.size, 'the last field ends the slot');
  const size = python(`import struct; print(struct.calcsize(${JSON.stringify(format)}))`).trim();
  assert.equal(Number(size), SLOT.size);
  assert.equal(SLOT_SIZE, SLOT.size);
  assert.deepEqual(SlotStatus, SLOT_STATUS);
});

test('golden: a slot TypeScript writes reads back field by field in Python', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emperor-contract-'));
  try {
    const buf = Buffer.alloc(SLOT_SIZE);
    encodeSlot(buf, sample, 77);
    writeFileSync(join(dir, 'slot'), buf);
    const out = python(`
import json
from emperor_worker.scoreboard import SLOT
from emperor_worker.contract import SLOT_FIELDS
values = SLOT.unpack(open(${JSON.stringify(join(dir, 'slot'))}, 'rb').read())
print(json.dumps({k: (v.decode('utf-8', 'replace') if isinstance(v, bytes) else v) for k, v in zip(SLOT_FIELDS, values)}))
`);
    const got = JSON.parse(out) as Record<string, number | string>;
    const uriBytes = Buffer.byteLength(sample.uri);
    assert.deepEqual(
      { ...got, method: String(got.method).replace(/\0+$/, ''), uri: String(got.uri).replace(/\0+$/, '') },
      {
        seq: 77, pid: 4242, status: SlotStatus.BUSY, flags: 3, inFlight: 3, heartbeatMs: sample.heartbeatMs, requests: 1234, exceptions: 2,
        txBytes: 98765, runningTimeUs: 55555.25, avgRtUs: 44.5, requestStartMs: sample.requestStartMs, harakiriCount: 0,
        lastRequestEndMs: sample.lastRequestEndMs, websockets: 7, methodLength: 4, uriLength: uriBytes, method: 'POST', uri: sample.uri, seqEnd: 77,
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('golden: a slot the Python worker writes (its Scoreboard, slot 2) decodes in TypeScript', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emperor-contract-'));
  try {
    const file = join(dir, 'board');
    writeFileSync(file, Buffer.alloc(SLOT_SIZE * 3));
    const pid = Number(python(`
import os
from emperor_worker.scoreboard import Scoreboard, BUSY
class Log:
    def error(self, msg): raise SystemExit(msg)
fd = os.open(${JSON.stringify(file)}, os.O_RDWR)
board = Scoreboard(fd, 2, Log())
board.write(BUSY, True, 3, (1790000000000.0, "POST", ${JSON.stringify(sample.uri)}), 1234, 2, 98765, 55555.25, 44.5, 1790000000100.0, event_loop=True, websockets=7)
print(os.getpid())
`).trim());
    const buf = readFileSync(file);
    assert.deepEqual(decodeSlot(buf, 0), { ...EMPTY_SLOT }, 'slot 0 untouched');
    const slot = decodeSlot(buf, 2 * SLOT_SIZE);
    assert.ok(slot !== undefined, 'slot 2 is whole');
    const { heartbeatMs, ...rest } = slot;
    const { heartbeatMs: _h, ...expected } = sample;
    assert.deepEqual(rest, { ...expected, pid });
    assert.ok(heartbeatMs > Date.now() - 60_000 && heartbeatMs <= Date.now(), `heartbeat is the write's time: ${heartbeatMs}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("golden: both runtimes render uWSGI's default request line to the same bytes", () => {
  const facts: RequestFacts = {
    pid: 31337, wid: 1, n: 12, method: 'GET', uri: '/hello?x=1', proto: 'HTTP/1.1', status: 200, addr: '10.0.0.1', port: 5555, user: '',
    startMs: 1_790_000_000_250, durationUs: 2345.6, rsize: 6, hsize: 45, headers: 1, vars: 20, pktsize: 216, header: () => '',
  };
  for (const micros of [false, true]) {
    const ts = formatDefaultLine(facts, micros);
    // The Python worker's own fields, as its WSGI layer hands them to RequestLog.default.
    const py = python(`
import sys
from emperor_worker.request_log import DEFAULT_LINE_MICROS, DEFAULT_LINE_MSECS, _dates
line = DEFAULT_LINE_MICROS if ${micros ? 'True' : 'False'} else DEFAULT_LINE_MSECS
t = ${micros ? 'round(2345.6)' : 'int(2345.6 // 1000)'}
sys.stdout.write(line % (31337, 12, 12, "10.0.0.1", "", 20, 216, _dates(1790000000250)[0], "GET", "/hello?x=1", 6, t, "HTTP/1.1", 200, 1, 45))
`);
    assert.equal(py, ts, micros ? 'log-micros' : 'msecs');
  }
});
