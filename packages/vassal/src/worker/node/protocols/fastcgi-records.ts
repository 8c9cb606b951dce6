/**
 * FastCGI 1.0 records (the spec's sections 3-5 and 8; uWSGI proto/fastcgi.c), parsed
 * without I/O: bytes in, events out. One {@link FastcgiParser} per connection; the
 * connection glue (fastcgi.ts) feeds it what it reads and acts on what comes out.
 *
 * A record is an 8-byte header (version 1, type, request id and content length big-endian,
 * padding length, a reserved byte), then the content (0-65535 bytes) and the padding
 * (0-255 bytes, skipped). A request is `BEGIN_REQUEST` (role, flags), a `PARAMS` stream
 * of name-value pairs ended by an empty `PARAMS` record, then a `STDIN` stream ended by
 * an empty `STDIN` record (an authorizer gets no body). This worker serves one request at
 * a time per connection (`FCGI_MPXS_CONNS` 0), as uWSGI, flup and PHP-FPM do.
 *
 * The Python worker (`python/emperor_worker/protocols/fastcgi.py`) parses the same way
 * and logs the same reasons; change them together.
 */

import { InternalError } from '@emperor/protocol';

/** Bytes of a record header. */
export const FCGI_HEADER_LEN = 8;
/** The only protocol version. */
export const FCGI_VERSION_1 = 1;
/** Largest content of one record: STDOUT is cut into records of at most this. */
export const FCGI_MAX_CONTENT = 0xffff;

/** Record types (spec section 8). */
export const FCGI_BEGIN_REQUEST = 1;
export const FCGI_ABORT_REQUEST = 2;
export const FCGI_END_REQUEST = 3;
export const FCGI_PARAMS = 4;
export const FCGI_STDIN = 5;
export const FCGI_STDOUT = 6;
export const FCGI_STDERR = 7;
export const FCGI_DATA = 8;
export const FCGI_GET_VALUES = 9;
export const FCGI_GET_VALUES_RESULT = 10;
export const FCGI_UNKNOWN_TYPE = 11;

/** Roles (`FCGI_BeginRequestBody.role`). A filter is answered `FCGI_UNKNOWN_ROLE`. */
export const FCGI_RESPONDER = 1;
export const FCGI_AUTHORIZER = 2;
export const FCGI_FILTER = 3;
/** `FCGI_BeginRequestBody.flags`: the application keeps the connection open after the request. */
export const FCGI_KEEP_CONN = 1;

/** `FCGI_EndRequestBody.protocolStatus`. */
export const FCGI_REQUEST_COMPLETE = 0;
export const FCGI_CANT_MPX_CONN = 1;
export const FCGI_OVERLOADED = 2;
export const FCGI_UNKNOWN_ROLE = 3;

/** The roles served, by number, with the name `FCGI_ROLE` carries (flup's environ key). */
export const SERVED_ROLES: ReadonlyMap<number, 'RESPONDER' | 'AUTHORIZER'> = new Map([
  [FCGI_RESPONDER, 'RESPONDER'],
  [FCGI_AUTHORIZER, 'AUTHORIZER'],
]);

/** A request whose head (BEGIN_REQUEST and the whole PARAMS stream) is in. */
export interface FastcgiRequestHead {
  readonly requestId: number;
  readonly role: 'RESPONDER' | 'AUTHORIZER';
  /** `FCGI_KEEP_CONN`: the connection stays open after the request (the front end's to close). */
  readonly keepConn: boolean;
  /** The params in stream order; a repeated name keeps its last value. Latin-1, byte for byte. */
  readonly params: ReadonlyMap<string, string>;
  /** Bytes of the PARAMS stream (what buffer-size bounds), for the request log's pktsize. */
  readonly paramsBytes: number;
}

/** What the parser found; the glue acts on each in order. */
export type FastcgiEvent =
  /** A request's head is complete: serve it. For an authorizer no `stdin` follows. */
  | { readonly kind: 'request'; readonly head: FastcgiRequestHead }
  /** Body bytes of the active request (never empty). */
  | { readonly kind: 'stdin'; readonly data: Buffer }
  /** The active request's body is complete (the empty STDIN record). */
  | { readonly kind: 'stdin-end' }
  /** The front end aborted the active request (`FCGI_ABORT_REQUEST`). */
  | { readonly kind: 'abort' }
  /**
   * Records answered without the app: `FCGI_GET_VALUES_RESULT`, `FCGI_UNKNOWN_TYPE`,
   * `FCGI_END_REQUEST` with `FCGI_CANT_MPX_CONN` or `FCGI_UNKNOWN_ROLE`. `close`: the
   * connection is to be closed once they are written (a refused request without
   * `FCGI_KEEP_CONN`).
   */
  | { readonly kind: 'reply'; readonly data: Buffer; readonly close: boolean }
  /** Input refused: log `reason` once, close the connection; the parser takes no more. */
  | { readonly kind: 'invalid'; readonly reason: string };

/** What FCGI_GET_VALUES is answered with (see worker-spec.ts `FastcgiValues`). */
export interface FastcgiParserOptions {
  /** `buffer-size`: the most bytes a request's whole PARAMS stream may have. */
  readonly bufferSize: number;
  /** `FCGI_MAX_CONNS`. */
  readonly maxConns: number;
  /** `FCGI_MAX_REQS`. */
  readonly maxReqs: number;
}

interface Active {
  readonly requestId: number;
  readonly role: 'RESPONDER' | 'AUTHORIZER';
  readonly keepConn: boolean;
  params: Buffer[] | undefined;
  paramsBytes: number;
  /** The STDIN stream is over (or, for an authorizer, there is none). */
  stdinDone: boolean;
}

/**
 * The records of one connection, parsed as they arrive (split or coalesced reads alike).
 *
 * The request ids follow the spec's section 3.3: a request becomes active with its
 * `BEGIN_REQUEST` and inactive when the glue calls {@link FastcgiParser.ended} (after
 * it wrote `FCGI_END_REQUEST`); records of inactive requests are ignored, so the rest of a
 * body the app never read is skipped. Refused, with these reasons (and nothing after):
 * a version other than 1, a `BEGIN_REQUEST` whose body is not 8 bytes, a second
 * `BEGIN_REQUEST` for the active request, `STDIN` before the end of `PARAMS`, params
 * larger than buffer-size, a malformed name-value pair.
 */
export class FastcgiParser {
  readonly #options: FastcgiParserOptions;
  #buf: Buffer = Buffer.alloc(0);
  #active: Active | undefined;
  #failed = false;

  constructor(options: FastcgiParserOptions) {
    this.#options = options;
  }

  /** Bytes received and not parsed yet (a partial record). */
  get buffered(): number {
    return this.#buf.length;
  }

  /** Whether a request is active and its head complete (the glue is serving it). */
  get serving(): boolean {
    return this.#active !== undefined && this.#active.params === undefined;
  }

  /** Whether a request has begun and its head is not complete yet. */
  get inHead(): boolean {
    return this.#active !== undefined && this.#active.params !== undefined;
  }

  /**
   * The active request is over: the glue wrote its `FCGI_END_REQUEST`. Its later records
   * are ignored.
   */
  ended(): void {
    this.#active = undefined;
  }

  /** Parses what `chunk` completes; returns the events in order (none for a partial record). */
  push(chunk: Buffer): FastcgiEvent[] {
    if (this.#failed) return [];
    const buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const events: FastcgiEvent[] = [];
    let pos = 0;
    while (buf.length - pos >= FCGI_HEADER_LEN) {
      const version = buf[pos] as number;
      const type = buf[pos + 1] as number;
      const requestId = buf.readUInt16BE(pos + 2);
      const length = buf.readUInt16BE(pos + 4);
      const padding = buf[pos + 6] as number;
      if (version !== FCGI_VERSION_1) {
        this.#fail(events, `unsupported FastCGI version ${version} (type ${type}, at byte ${pos}; only 1 exists)`);
        break;
      }
      const end = pos + FCGI_HEADER_LEN + length + padding;
      if (buf.length < end) break;
      const content = buf.subarray(pos + FCGI_HEADER_LEN, pos + FCGI_HEADER_LEN + length);
      pos = end;
      this.#record(type, requestId, content, events);
      if (this.#failed) break;
    }
    this.#buf = this.#failed ? Buffer.alloc(0) : pos === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
    return events;
  }

  #fail(events: FastcgiEvent[], reason: string): void {
    this.#failed = true;
    events.push({ kind: 'invalid', reason });
  }

  #record(type: number, requestId: number, content: Buffer, events: FastcgiEvent[]): void {
    if (requestId === 0) {
      events.push({ kind: 'reply', data: this.#management(type, content), close: false });
      return;
    }
    const active = this.#active;
    switch (type) {
      case FCGI_BEGIN_REQUEST: {
        if (content.length !== 8) return this.#fail(events, `BEGIN_REQUEST of ${content.length} bytes for request ${requestId} (8 expected)`);
        const role = content.readUInt16BE(0);
        const keepConn = ((content[2] as number) & FCGI_KEEP_CONN) !== 0;
        if (active !== undefined) {
          if (active.requestId === requestId) return this.#fail(events, `a second BEGIN_REQUEST for request ${requestId}, which is active`);
          // One request at a time (FCGI_MPXS_CONNS 0): the spec's answer to a multiplexing front end.
          events.push({ kind: 'reply', data: encodeEndRequest(requestId, 0, FCGI_CANT_MPX_CONN), close: false });
          return;
        }
        const served = SERVED_ROLES.get(role);
        if (served === undefined) {
          events.push({ kind: 'reply', data: encodeEndRequest(requestId, 0, FCGI_UNKNOWN_ROLE), close: !keepConn });
          return;
        }
        this.#active = { requestId, role: served, keepConn, params: [], paramsBytes: 0, stdinDone: served === 'AUTHORIZER' };
        return;
      }
      case FCGI_PARAMS: {
        if (active === undefined || active.requestId !== requestId || active.params === undefined) return; // inactive, or the stream is over
        if (content.length > 0) {
          active.paramsBytes += content.length;
          if (active.paramsBytes > this.#options.bufferSize) {
            return this.#fail(events, `params of request ${requestId} larger than buffer-size (${this.#options.bufferSize} bytes)`);
          }
          active.params.push(Buffer.from(content));
          return;
        }
        const params = decodeNameValuePairs(Buffer.concat(active.params));
        if (typeof params === 'string') return this.#fail(events, `request ${requestId}: ${params}`);
        active.params = undefined;
        events.push({ kind: 'request', head: { requestId, role: active.role, keepConn: active.keepConn, params, paramsBytes: active.paramsBytes } });
        return;
      }
      case FCGI_STDIN: {
        if (active === undefined || active.requestId !== requestId || active.stdinDone) return;
        if (active.params !== undefined) return this.#fail(events, `STDIN before the end of PARAMS for request ${requestId}`);
        if (content.length === 0) {
          active.stdinDone = true;
          events.push({ kind: 'stdin-end' });
        } else {
          events.push({ kind: 'stdin', data: Buffer.from(content) });
        }
        return;
      }
      case FCGI_ABORT_REQUEST:
        if (active !== undefined && active.requestId === requestId) events.push({ kind: 'abort' });
        return;
      default:
        // DATA (the filter role's), and types a front end never sends: ignored, as the
        // spec has an application ignore records of requests it does not serve.
        return;
    }
  }

  /** The answer to a management record (request id 0). */
  #management(type: number, content: Buffer): Buffer {
    if (type !== FCGI_GET_VALUES) return encodeUnknownType(type);
    const asked = decodeNameValuePairs(content);
    const known: Record<string, string> = {
      FCGI_MAX_CONNS: String(this.#options.maxConns),
      FCGI_MAX_REQS: String(this.#options.maxReqs),
      FCGI_MPXS_CONNS: '0',
    };
    // Names it does not know are left out of the answer (spec 4.1); a malformed query gets an empty one.
    const pairs = typeof asked === 'string' ? [] : [...asked.keys()].flatMap((name): [string, string][] => (known[name] === undefined ? [] : [[name, known[name]]]));
    return encodeRecord(FCGI_GET_VALUES_RESULT, 0, encodeNameValuePairs(pairs));
  }
}

/** One length of a name-value pair (1 byte below 128, else 4 bytes with the top bit set). */
function readLength(buf: Buffer, pos: number): [length: number, next: number] | undefined {
  if (pos >= buf.length) return undefined;
  const first = buf[pos] as number;
  if (first < 0x80) return [first, pos + 1];
  if (pos + 4 > buf.length) return undefined;
  return [buf.readUInt32BE(pos) & 0x7fffffff, pos + 4];
}

/**
 * The name-value pairs of a PARAMS stream or a GET_VALUES record (spec 3.4), decoded as
 * latin-1; a repeated name keeps its last value.
 * @returns the pairs, or why they do not parse
 */
export function decodeNameValuePairs(buf: Buffer): Map<string, string> | string {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const name = readLength(buf, pos);
    const value = name === undefined ? undefined : readLength(buf, name[1]);
    if (name === undefined || value === undefined) return `malformed name-value pair at byte ${start} (a length runs past the end)`;
    pos = value[1];
    if (name[0] === 0) return `malformed name-value pair at byte ${start} (an empty name)`;
    if (pos + name[0] + value[0] > buf.length) return `malformed name-value pair at byte ${start} (name of ${name[0]} and value of ${value[0]} bytes run past the end)`;
    out.set(buf.toString('latin1', pos, pos + name[0]), buf.toString('latin1', pos + name[0], pos + name[0] + value[0]));
    pos += name[0] + value[0];
  }
  return out;
}

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0);
  return b;
}

/** Name-value pairs (spec 3.4), latin-1: lengths below 128 in one byte, others in four (a string is never 2^31 bytes long). */
export function encodeNameValuePairs(pairs: Iterable<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of pairs) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(lengthBytes(n.length), lengthBytes(v.length), n, v);
  }
  return Buffer.concat(parts);
}

/**
 * One record. @param padding padding bytes to add (0-255), zeros
 * @throws InternalError for content over 65535 bytes (callers cut streams with {@link encodeStream})
 */
export function encodeRecord(type: number, requestId: number, content: Buffer = Buffer.alloc(0), padding = 0): Buffer {
  if (content.length > FCGI_MAX_CONTENT) throw new InternalError(`FastCGI record content of ${content.length} bytes is over ${FCGI_MAX_CONTENT}`);
  const out = Buffer.alloc(FCGI_HEADER_LEN + content.length + padding);
  out[0] = FCGI_VERSION_1;
  out[1] = type;
  out.writeUInt16BE(requestId, 2);
  out.writeUInt16BE(content.length, 4);
  out[6] = padding;
  content.copy(out, FCGI_HEADER_LEN);
  return out;
}

/** A stream's records for `data` (cut at 65535 bytes), without the empty record that ends it. */
export function encodeStream(type: number, requestId: number, data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += FCGI_MAX_CONTENT) out.push(encodeRecord(type, requestId, data.subarray(at, at + FCGI_MAX_CONTENT)));
  return out;
}

/** `FCGI_END_REQUEST` with `appStatus` and `protocolStatus`. */
export function encodeEndRequest(requestId: number, appStatus: number, protocolStatus: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt32BE(appStatus >>> 0, 0);
  body[4] = protocolStatus;
  return encodeRecord(FCGI_END_REQUEST, requestId, body);
}

/** The end of a response: the empty `STDOUT` record that ends the stream, then `FCGI_END_REQUEST` (complete, appStatus 0), as uWSGI sends them. */
export function encodeResponseEnd(requestId: number): Buffer {
  return Buffer.concat([encodeRecord(FCGI_STDOUT, requestId), encodeEndRequest(requestId, 0, FCGI_REQUEST_COMPLETE)]);
}

/** `FCGI_UNKNOWN_TYPE` for a management record of type `type`. */
export function encodeUnknownType(type: number): Buffer {
  const body = Buffer.alloc(8);
  body[0] = type;
  return encodeRecord(FCGI_UNKNOWN_TYPE, 0, body);
}

/** What {@link encodeRequest} sends. */
export interface EncodeRequestOptions {
  readonly requestId?: number;
  readonly role?: number;
  readonly keepConn?: boolean;
  /** Body bytes per STDIN record. @default 65535 */
  readonly stdinRecord?: number;
  /** Padding added to every record, 0-255. @default 0 */
  readonly padding?: number;
}

/**
 * A whole request as a front end sends it (BEGIN_REQUEST, PARAMS, the empty PARAMS,
 * STDIN records, the empty STDIN), for clients, tests and benchmarks.
 */
export function encodeRequest(params: Iterable<readonly [string, string]>, body: Buffer = Buffer.alloc(0), options: EncodeRequestOptions = {}): Buffer {
  const id = options.requestId ?? 1;
  const padding = options.padding ?? 0;
  const begin = Buffer.alloc(8);
  begin.writeUInt16BE(options.role ?? FCGI_RESPONDER, 0);
  begin[2] = options.keepConn === true ? FCGI_KEEP_CONN : 0;
  const parts = [encodeRecord(FCGI_BEGIN_REQUEST, id, begin, padding)];
  const block = encodeNameValuePairs(params);
  for (let at = 0; at < block.length; at += FCGI_MAX_CONTENT) parts.push(encodeRecord(FCGI_PARAMS, id, block.subarray(at, at + FCGI_MAX_CONTENT), padding));
  parts.push(encodeRecord(FCGI_PARAMS, id, Buffer.alloc(0), padding));
  const step = options.stdinRecord ?? FCGI_MAX_CONTENT;
  for (let at = 0; at < body.length; at += step) parts.push(encodeRecord(FCGI_STDIN, id, body.subarray(at, at + step), padding));
  parts.push(encodeRecord(FCGI_STDIN, id, Buffer.alloc(0), padding));
  return Buffer.concat(parts);
}

/** One record read back, for clients and tests. */
export interface FastcgiRecord {
  readonly type: number;
  readonly requestId: number;
  readonly content: Buffer;
}

/**
 * Splits `buf` into the records it holds (what an application sends), for clients and
 * tests. @returns the whole records and the bytes of a trailing partial one
 */
export function decodeRecords(buf: Buffer): { records: FastcgiRecord[]; rest: Buffer } {
  const records: FastcgiRecord[] = [];
  let pos = 0;
  while (buf.length - pos >= FCGI_HEADER_LEN) {
    const length = buf.readUInt16BE(pos + 4);
    const end = pos + FCGI_HEADER_LEN + length + (buf[pos + 6] as number);
    if (buf.length < end) break;
    records.push({ type: buf[pos + 1] as number, requestId: buf.readUInt16BE(pos + 2), content: buf.subarray(pos + FCGI_HEADER_LEN, pos + FCGI_HEADER_LEN + length) });
    pos = end;
  }
  return { records, rest: buf.subarray(pos) };
}
