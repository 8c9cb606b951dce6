/**
 * The scoreboard: how workers tell the master what they are doing without a message
 * per request (docs/architecture.md). One fixed-size slot per worker process in a small
 * file the master creates, opens and immediately unlinks; workers inherit the open fd,
 * so the file can never leak, whatever kills whom. Each worker writes only its own slot
 * with one positional write (about 2 µs); the master reads the whole file on each tick.
 *
 * Slot layout: {@link SLOT} in packages/protocol/src/contract.ts, the one definition the
 * Python worker's `contract.py` is generated from (a golden test checks both ways).
 */
import { closeSync, ftruncateSync, openSync, readSync, unlinkSync, writeSync, constants, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SLOT, SLOT_STATUS } from '@emperor/protocol';

/** Bytes per slot. */
export const SLOT_SIZE = SLOT.size;
const F = SLOT.fields;
const METHOD_MAX = F.method.length;
const URI_MAX = F.uri.length;

/** Slot status codes. */
export const SlotStatus = SLOT_STATUS;
export type SlotStatus = (typeof SlotStatus)[keyof typeof SlotStatus];

/** What a worker publishes about itself. */
export interface SlotData {
  readonly pid: number;
  readonly status: SlotStatus;
  readonly accepting: boolean;
  /**
   * The worker serves requests from an event loop (a Python ASGI worker; flags bit 1):
   * it ends an overdue request itself, and harakiri judges it by its heartbeat, as a
   * Node worker, whatever its runtime's `sync` says. Absent: false.
   */
  readonly eventLoop?: boolean;
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
  /** WebSocket sessions open (a Python ASGI worker's); absent: 0. */
  readonly websockets?: number;
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
  buf.writeUInt32LE(seq >>> 0, F.seq.offset);
  buf.writeUInt32LE(data.pid >>> 0, F.pid.offset);
  buf.writeUInt8(data.status, F.status.offset);
  buf.writeUInt8((data.accepting ? 1 : 0) | (data.eventLoop === true ? 2 : 0), F.flags.offset);
  buf.writeUInt32LE(Math.min(data.inFlight, 0xffffffff) >>> 0, F.inFlight.offset);
  buf.writeDoubleLE(data.heartbeatMs, F.heartbeatMs.offset);
  buf.writeDoubleLE(data.requests, F.requests.offset);
  buf.writeDoubleLE(data.exceptions, F.exceptions.offset);
  buf.writeDoubleLE(data.txBytes, F.txBytes.offset);
  buf.writeDoubleLE(data.runningTimeUs, F.runningTimeUs.offset);
  buf.writeDoubleLE(data.avgRtUs, F.avgRtUs.offset);
  buf.writeDoubleLE(data.requestStartMs, F.requestStartMs.offset);
  buf.writeDoubleLE(data.harakiriCount, F.harakiriCount.offset);
  buf.writeDoubleLE(data.lastRequestEndMs, F.lastRequestEndMs.offset);
  buf.writeUInt32LE(Math.min(data.websockets ?? 0, 0xffffffff) >>> 0, F.websockets.offset);
  const methodLen = buf.write(data.method, F.method.offset, METHOD_MAX, 'utf8');
  const uriLen = buf.write(data.uri, F.uri.offset, URI_MAX, 'utf8');
  buf.writeUInt16LE(methodLen, F.methodLength.offset);
  buf.writeUInt16LE(uriLen, F.uriLength.offset);
  buf.writeUInt32LE(seq >>> 0, F.seqEnd.offset);
}

/** Decodes one slot; undefined when it is torn (the two sequence numbers differ). */
export function decodeSlot(buf: Buffer, offset = 0): SlotData | undefined {
  const seq = buf.readUInt32LE(offset);
  if (seq !== buf.readUInt32LE(offset + F.seqEnd.offset)) return undefined;
  const methodLen = Math.min(buf.readUInt16LE(offset + F.methodLength.offset), METHOD_MAX);
  const uriLen = Math.min(buf.readUInt16LE(offset + F.uriLength.offset), URI_MAX);
  const websockets = buf.readUInt32LE(offset + F.websockets.offset);
  return {
    pid: buf.readUInt32LE(offset + F.pid.offset),
    status: (buf.readUInt8(offset + F.status.offset) as SlotStatus) ?? SlotStatus.EMPTY,
    accepting: (buf.readUInt8(offset + F.flags.offset) & 1) === 1,
    ...((buf.readUInt8(offset + F.flags.offset) & 2) === 2 ? { eventLoop: true } : {}),
    inFlight: buf.readUInt32LE(offset + F.inFlight.offset),
    heartbeatMs: buf.readDoubleLE(offset + F.heartbeatMs.offset),
    requests: buf.readDoubleLE(offset + F.requests.offset),
    exceptions: buf.readDoubleLE(offset + F.exceptions.offset),
    txBytes: buf.readDoubleLE(offset + F.txBytes.offset),
    runningTimeUs: buf.readDoubleLE(offset + F.runningTimeUs.offset),
    avgRtUs: buf.readDoubleLE(offset + F.avgRtUs.offset),
    requestStartMs: buf.readDoubleLE(offset + F.requestStartMs.offset),
    harakiriCount: buf.readDoubleLE(offset + F.harakiriCount.offset),
    lastRequestEndMs: buf.readDoubleLE(offset + F.lastRequestEndMs.offset),
    method: buf.toString('utf8', offset + F.method.offset, offset + F.method.offset + methodLen),
    uri: buf.toString('utf8', offset + F.uri.offset, offset + F.uri.offset + uriLen),
    ...(websockets > 0 ? { websockets } : {}),
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
  /** The bytes of the last {@link readAll} that was {@link keep}-ed, and how many are meaningful. */
  #kept: Buffer = Buffer.alloc(0);
  #keptBytes = -1;
  /** Where {@link unchanged} reads the slots, so the comparison allocates nothing. */
  #scratch: Buffer = Buffer.alloc(0);
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

  /**
   * Remembers the bytes of the last {@link readAll} (the reading the master's pool now
   * holds), for {@link unchanged}.
   */
  keep(): void {
    const bytes = this.#high * SLOT_SIZE;
    if (this.#kept.length < bytes) this.#kept = Buffer.alloc(this.#buf.length);
    this.#buf.copy(this.#kept, 0, 0, bytes);
    this.#keptBytes = bytes;
  }

  /**
   * True when every slot in use holds exactly the bytes {@link keep} remembered: no
   * worker wrote its slot since (each write bumps the slot's sequence numbers), and no
   * slot was allocated. One read into a buffer kept for it and a comparison; nothing is
   * decoded or allocated, which is what a settled master's tick costs (issue 23).
   */
  unchanged(): boolean {
    const bytes = this.#high * SLOT_SIZE;
    if (bytes !== this.#keptBytes) return false;
    if (bytes === 0) return true;
    if (this.#scratch.length < bytes) this.#scratch = Buffer.alloc(this.#kept.length);
    readSync(this.fd, this.#scratch, 0, bytes, 0);
    return this.#scratch.compare(this.#kept, 0, bytes, 0, bytes) === 0;
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
