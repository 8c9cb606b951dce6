/**
 * The contracts between the TypeScript side (emperor, master, Node worker) and the Python
 * worker, each defined once, here: the scoreboard slot's layout, the version of the worker
 * spec, and uWSGI's default request line. Exit codes and the IPC version live beside the
 * messages in ipc.ts and are part of the same contract.
 *
 * The Python side is generated from this module: `npm run docs` writes
 * `packages/vassal/python/emperor_worker/contract.py` with {@link renderPythonContract},
 * and a unit test fails while that file is stale. A golden test has Python write a slot
 * that TypeScript reads, and the reverse (test/unit/protocol/contract.test.ts).
 */
import { ExitCode, IPC_VERSION } from './ipc.js';

/** A field type in a slot: little-endian integers, an IEEE double, or raw bytes. */
export type SlotFieldType = 'u8' | 'u16' | 'u32' | 'f64' | 'bytes';

/** One field of a slot: its byte offset and type (`length` in bytes for `bytes`). */
export interface SlotField {
  readonly offset: number;
  readonly type: SlotFieldType;
  readonly length?: number;
  /** What it holds, with its unit. */
  readonly doc: string;
}

/**
 * The scoreboard slot (docs/architecture.md, "How state flows"): one per worker process,
 * written whole by the worker with one positional write, read by the master. Little-endian;
 * gaps between fields are zero padding. `seq` and `seqEnd` frame the slot: equal when it
 * is whole, different while a write is torn.
 */
export const SLOT = {
  /** Bytes per slot. */
  size: 1024,
  fields: {
    seq: { offset: 0, type: 'u32', doc: 'bumped on every write' },
    pid: { offset: 4, type: 'u32', doc: 'the worker process id' },
    status: { offset: 8, type: 'u8', doc: 'SLOT_STATUS' },
    flags: { offset: 9, type: 'u8', doc: 'bit 0: accepting; bit 1: an event loop (ASGI), judged by its heartbeat' },
    inFlight: { offset: 12, type: 'u32', doc: 'requests in flight' },
    heartbeatMs: { offset: 16, type: 'f64', doc: 'last write from the worker loop, epoch ms' },
    requests: { offset: 24, type: 'f64', doc: 'requests completed since spawn' },
    exceptions: { offset: 32, type: 'f64', doc: 'exceptions raised by the app' },
    txBytes: { offset: 40, type: 'f64', doc: 'bytes sent' },
    runningTimeUs: { offset: 48, type: 'f64', doc: 'sum of response times, µs' },
    avgRtUs: { offset: 56, type: 'f64', doc: "average response time, µs (uWSGI's running (avg + rt) / 2)" },
    requestStartMs: { offset: 64, type: 'f64', doc: 'start of the oldest request in flight, epoch ms; 0 when idle' },
    harakiriCount: { offset: 72, type: 'f64', doc: "requests ended by the worker's own harakiri" },
    lastRequestEndMs: { offset: 80, type: 'f64', doc: 'end of the last request, epoch ms; 0 when none' },
    websockets: { offset: 88, type: 'u32', doc: 'WebSocket sessions open (ASGI workers); 0 otherwise' },
    methodLength: { offset: 96, type: 'u16', doc: 'bytes of method used' },
    uriLength: { offset: 98, type: 'u16', doc: 'bytes of uri used' },
    method: { offset: 100, type: 'bytes', length: 16, doc: 'method of the oldest request in flight, UTF-8' },
    uri: { offset: 116, type: 'bytes', length: 900, doc: 'URI of the oldest request in flight, UTF-8, cut at a character boundary' },
    seqEnd: { offset: 1020, type: 'u32', doc: 'seq again' },
  },
} as const satisfies { size: number; fields: Record<string, SlotField> };

/** The slot's status byte. */
export const SLOT_STATUS = { EMPTY: 0, STARTING: 1, IDLE: 2, BUSY: 3, STOPPING: 4 } as const;

/** Version of the worker spec (`EMPEROR_WORKER`); a worker refuses any other. 2: `mount` and `fastcgi` (issue 18). */
export const WORKER_SPEC_VERSION = 2;

/**
 * uWSGI's default request line (core/logging.c `uwsgi_logit_simple`) as a printf template,
 * in this order: pid, requests, requests, remote address, remote user, vars, packet size,
 * ctime of the start, method, URI, response body bytes, duration, `{unit}` (`msecs`, or
 * `micros` with `log-micros`), protocol, status, headers, header bytes.
 */
export const DEFAULT_REQUEST_LINE =
  '[pid: %d|app: 0|req: %d/%d] %s (%s) {%d vars in %d bytes} [%s] %s %s => generated %d bytes in %d {unit} (%s %d) %d headers in %d bytes (1 switches on core 0)\n';

const STRUCT_CODE: Readonly<Record<Exclude<SlotFieldType, 'bytes'>, { code: string; size: number }>> = {
  u8: { code: 'B', size: 1 },
  u16: { code: 'H', size: 2 },
  u32: { code: 'I', size: 4 },
  f64: { code: 'd', size: 8 },
};

/**
 * The slot as a Python `struct` format (`<` little-endian, `Nx` for padding) and its field
 * names in order of offset. The fields tile the slot without overlap (the contract test
 * checks it, and that Python's `struct.calcsize` of the format is {@link SLOT}'s size).
 */
export function slotStructFormat(): { format: string; names: string[] } {
  const fields = Object.entries(SLOT.fields as Record<string, SlotField>).sort((a, b) => a[1].offset - b[1].offset);
  let format = '<';
  let at = 0;
  const names: string[] = [];
  for (const [name, f] of fields) {
    if (f.offset > at) format += `${f.offset - at}x`;
    const size = f.type === 'bytes' ? (f.length ?? 0) : STRUCT_CODE[f.type].size;
    format += f.type === 'bytes' ? `${size}s` : STRUCT_CODE[f.type].code;
    at = f.offset + size;
    names.push(name);
  }
  return { format, names };
}

/** The text of `emperor_worker/contract.py`, generated from this module (see the module doc). */
export function renderPythonContract(): string {
  const { format, names } = slotStructFormat();
  const py = (s: string): string => JSON.stringify(s);
  const lines = [
    '"""Values the worker shares with the TypeScript side.',
    '',
    'GENERATED from packages/protocol/src/contract.ts and ipc.ts by `npm run docs`; do not edit.',
    'A unit test (test/unit/protocol/contract.test.ts) fails while this file is stale.',
    '"""',
    '',
    '# Exit codes (packages/protocol/src/ipc.ts ExitCode).',
    ...Object.entries(ExitCode).map(([k, v]) => `EXIT_${k} = ${v}`),
    '',
    `SPEC_VERSION = ${WORKER_SPEC_VERSION}`,
    `IPC_VERSION = ${IPC_VERSION}`,
    '',
    '# The scoreboard slot: a struct format and its fields in order.',
    `SLOT_SIZE = ${SLOT.size}`,
    `SLOT_FORMAT = ${py(format)}`,
    `SLOT_FIELDS = (${names.map(py).join(', ')},)`,
    `METHOD_MAX = ${SLOT.fields.method.length}`,
    `URI_MAX = ${SLOT.fields.uri.length}`,
    '# The slot\'s status byte.',
    ...Object.entries(SLOT_STATUS).map(([k, v]) => `${k} = ${v}`),
    '',
    "# uWSGI's default request line; {unit} is msecs, or micros with log-micros.",
    `DEFAULT_REQUEST_LINE = ${py(DEFAULT_REQUEST_LINE)}`,
    '',
  ];
  return lines.join('\n');
}
