/**
 * The scoreboard: how workers tell the master what they are doing without a message
 * per request (docs/architecture.md). One fixed-size slot per worker process in a small
 * file the master creates, opens and immediately unlinks; workers inherit the open fd,
 * so the file can never leak, whatever kills whom. Each worker writes only its own slot
 * with one positional write (about 2 µs); the master reads the whole file on each tick.
 *
 * Slot layout (little-endian, {@link SLOT_SIZE} bytes). The Python worker
 * (`python/emperor_worker/scoreboard.py`) writes the same layout; change both together.
 *
 * | offset | type   | field |
 * | -----: | ------ | ----- |
 * | 0      | u32    | seq: bumped on every write; equal to the u32 at 1020 when the slot is whole |
 * | 4      | u32    | pid |
 * | 8      | u8     | status: 0 empty, 1 starting, 2 idle, 3 busy, 4 stopping |
 * | 9      | u8     | flags: bit 0 accepting |
 * | 12     | u32    | requests in flight |
 * | 16     | f64    | heartbeat, epoch ms (the worker's loop is alive) |
 * | 24     | f64    | requests completed since spawn |
 * | 32     | f64    | exceptions |
 * | 40     | f64    | bytes sent |
 * | 48     | f64    | sum of response times, µs |
 * | 56     | f64    | average response time, µs (uWSGI's running `(avg + rt) / 2`) |
 * | 64     | f64    | start of the oldest request in flight, epoch ms; 0 when idle |
 * | 72     | f64    | requests ended by the worker's own harakiri |
 * | 80     | f64    | end of the last request, epoch ms |
 * | 96     | u16    | method length |
 * | 98     | u16    | uri length |
 * | 100    | 16 B   | method of the oldest request in flight (UTF-8) |
 * | 116    | 900 B  | uri of the oldest request in flight (UTF-8, truncated) |
 * | 1020   | u32    | seq again |
 */
import { closeSync, ftruncateSync, openSync, readSync, unlinkSync, writeSync, constants, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Bytes per slot. */
export const SLOT_SIZE = 1024;
const METHOD_MAX = 16;
const URI_MAX = 900;

/** Slot status codes. */
export const SlotStatus = { EMPTY: 0, STARTING: 1, IDLE: 2, BUSY: 3, STOPPING: 4 } as const;
export type SlotStatus = (typeof SlotStatus)[keyof typeof SlotStatus];

/** What a worker publishes about itself. */
export interface SlotData {
  readonly pid: number;
  readonly status: SlotStatus;
  readonly accepting: boolean;
  readonly inFlight: number;
  /** Epoch ms of the last write from the worker's event/accept loop. */
  readonly heartbeatMs: number;
  readonly requests: number;
  readonly exceptions: number;
  readonly txBytes: number;
  /** Sum of response times, µs. */
  readonly runningTimeUs: number;
  /** Average response time, µs. */
  readonly avgRtUs: number;
  /** Start of the oldest request in flight, epoch ms; 0 when none. */
  readonly requestStartMs: number;
  /** Requests the worker ended itself for exceeding harakiri. */
  readonly harakiriCount: number;
  /** End of the last completed request, epoch ms; 0 when none. */
  readonly lastRequestEndMs: number;
  readonly method: string;
  readonly uri: string;
}

/** A slot with nothing in it. */
export const EMPTY_SLOT: SlotData = {
  pid: 0, status: SlotStatus.EMPTY, accepting: false, inFlight: 0, heartbeatMs: 0, requests: 0, exceptions: 0,
  txBytes: 0, runningTimeUs: 0, avgRtUs: 0, requestStartMs: 0, harakiriCount: 0, lastRequestEndMs: 0, method: '', uri: '',
};

/** Encodes `data` into `buf` (SLOT_SIZE bytes) with sequence number `seq`. */
export function encodeSlot(buf: Buffer, data: SlotData, seq: number): void {
  buf.fill(0);
  buf.writeUInt32LE(seq >>> 0, 0);
  buf.writeUInt32LE(data.pid >>> 0, 4);
  buf.writeUInt8(data.status, 8);
  buf.writeUInt8(data.accepting ? 1 : 0, 9);
  buf.writeUInt32LE(Math.min(data.inFlight, 0xffffffff) >>> 0, 12);
  buf.writeDoubleLE(data.heartbeatMs, 16);
  buf.writeDoubleLE(data.requests, 24);
  buf.writeDoubleLE(data.exceptions, 32);
  buf.writeDoubleLE(data.txBytes, 40);
  buf.writeDoubleLE(data.runningTimeUs, 48);
  buf.writeDoubleLE(data.avgRtUs, 56);
  buf.writeDoubleLE(data.requestStartMs, 64);
  buf.writeDoubleLE(data.harakiriCount, 72);
  buf.writeDoubleLE(data.lastRequestEndMs, 80);
  const methodLen = buf.write(data.method, 100, METHOD_MAX, 'utf8');
  const uriLen = buf.write(data.uri, 116, URI_MAX, 'utf8');
  buf.writeUInt16LE(methodLen, 96);
  buf.writeUInt16LE(uriLen, 98);
  buf.writeUInt32LE(seq >>> 0, 1020);
}

/** Decodes one slot; undefined when it is torn (the two sequence numbers differ). */
export function decodeSlot(buf: Buffer, offset = 0): SlotData | undefined {
  const seq = buf.readUInt32LE(offset);
  if (seq !== buf.readUInt32LE(offset + 1020)) return undefined;
  const methodLen = Math.min(buf.readUInt16LE(offset + 96), METHOD_MAX);
  const uriLen = Math.min(buf.readUInt16LE(offset + 98), URI_MAX);
  return {
    pid: buf.readUInt32LE(offset + 4),
    status: (buf.readUInt8(offset + 8) as SlotStatus) ?? SlotStatus.EMPTY,
    accepting: (buf.readUInt8(offset + 9) & 1) === 1,
    inFlight: buf.readUInt32LE(offset + 12),
    heartbeatMs: buf.readDoubleLE(offset + 16),
    requests: buf.readDoubleLE(offset + 24),
    exceptions: buf.readDoubleLE(offset + 32),
    txBytes: buf.readDoubleLE(offset + 40),
    runningTimeUs: buf.readDoubleLE(offset + 48),
    avgRtUs: buf.readDoubleLE(offset + 56),
    requestStartMs: buf.readDoubleLE(offset + 64),
    harakiriCount: buf.readDoubleLE(offset + 72),
    lastRequestEndMs: buf.readDoubleLE(offset + 80),
    method: buf.toString('utf8', offset + 100, offset + 100 + methodLen),
    uri: buf.toString('utf8', offset + 116, offset + 116 + uriLen),
  };
}

/** The worker's side: writes its own slot. */
export class ScoreboardWriter {
  readonly #fd: number;
  readonly #position: number;
  readonly #buf = Buffer.alloc(SLOT_SIZE);
  #seq = 0;

  /** @param fd the inherited scoreboard fd; @param index this worker's slot. */
  constructor(fd: number, index: number) {
    this.#fd = fd;
    this.#position = index * SLOT_SIZE;
  }

  /** One positional write of the whole slot. */
  write(data: SlotData): void {
    this.#seq = (this.#seq + 1) >>> 0;
    encodeSlot(this.#buf, data, this.#seq);
    writeSync(this.#fd, this.#buf, 0, SLOT_SIZE, this.#position);
  }
}

/**
 * The master's side: creates the file, clears slots for new workers, reads them all.
 * Slots are allocated per worker *process*, not per worker id: during a reload the old
 * and the new process of worker 1 both run and each needs its own slot.
 */
export class Scoreboard {
  /** The open, already unlinked file; inherited by workers. */
  readonly fd: number;
  readonly slots: number;
  /** Read buffer, grown to the slots in use: zero-filling all of them cost every master 2 MiB of RSS. */
  #buf: Buffer = Buffer.alloc(0);
  readonly #free: number[];
  readonly #zero = Buffer.alloc(SLOT_SIZE);
  /** One past the highest slot ever allocated: reads stop there (free slots are taken lowest first). */
  #high = 0;

  private constructor(fd: number, slots: number) {
    this.fd = fd;
    this.slots = slots;
    this.#free = Array.from({ length: slots }, (_, i) => slots - 1 - i);
  }

  /**
   * Creates a scoreboard of `slots` slots in memory-backed storage (/dev/shm when
   * present, else the temp dir), mode 0600, unlinked at once.
   */
  static create(slots: number, dir?: string): Scoreboard {
    const base = dir ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir());
    const path = join(base, `emperor-scoreboard-${process.pid}-${randomBytes(6).toString('hex')}`);
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      unlinkSync(path);
      ftruncateSync(fd, slots * SLOT_SIZE);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return new Scoreboard(fd, slots);
  }

  /** Takes a free slot and zeroes it; undefined when all are in use. */
  allocate(): number | undefined {
    const index = this.#free.pop();
    if (index !== undefined) {
      writeSync(this.fd, this.#zero, 0, SLOT_SIZE, index * SLOT_SIZE);
      this.#high = Math.max(this.#high, index + 1);
    }
    return index;
  }

  /** Returns a slot to the free list (kept sorted so the lowest free slot is taken next). */
  release(index: number): void {
    if (this.#free.includes(index)) return;
    this.#free.push(index);
    this.#free.sort((a, b) => b - a);
  }

  /**
   * Reads every slot in use in one read; torn slots are undefined (keep the previous
   * reading). Slots past the highest one ever allocated are not read.
   */
  readAll(): (SlotData | undefined)[] {
    const bytes = this.#high * SLOT_SIZE;
    if (this.#buf.length < bytes) this.#buf = Buffer.alloc(bytes);
    if (bytes > 0) readSync(this.fd, this.#buf, 0, bytes, 0);
    const out: (SlotData | undefined)[] = [];
    for (let i = 0; i < this.#high; i++) out.push(decodeSlot(this.#buf, i * SLOT_SIZE));
    return out;
  }

  /** Reads one slot. */
  read(index: number): SlotData | undefined {
    const buf = Buffer.alloc(SLOT_SIZE);
    readSync(this.fd, buf, 0, SLOT_SIZE, index * SLOT_SIZE);
    return decodeSlot(buf);
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}
