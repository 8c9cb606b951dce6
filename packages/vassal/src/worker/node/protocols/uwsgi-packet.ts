/**
 * The uwsgi binary protocol's request packet (uWSGI proto/uwsgi.c, docs Protocol.rst),
 * as nginx's `uwsgi_pass` sends it:
 *
 * | bytes | field |
 * | ----- | ----- |
 * | 1     | modifier1 (0 = WSGI/HTTP request; nginx `uwsgi_modifier1`, default 0) |
 * | 2     | pktsize, little-endian: length of the variable block that follows |
 * | 1     | modifier2 |
 * | pktsize | vars: repeated `u16le keylen, key, u16le vallen, value` |
 *
 * The request body (CONTENT_LENGTH bytes) follows the packet and is not counted in
 * pktsize. The Python worker (`python/emperor_worker/protocols/uwsgi.py`) parses the same way and logs
 * the same reasons; change them together.
 */

/** A whole packet: the vars, and how many bytes of the input it took. */
export interface UwsgiPacket {
  readonly kind: 'packet';
  readonly modifier1: number;
  readonly modifier2: number;
  /** Vars in packet order; a repeated key keeps its last value (as a dict would). */
  readonly vars: ReadonlyMap<string, string>;
  /** Header plus variable block: the body starts at this offset. */
  readonly consumed: number;
}

/** Not enough bytes yet. `need` is the total the packet will take once known, else 4. */
export interface UwsgiIncomplete {
  readonly kind: 'incomplete';
  readonly need: number;
}

/** A packet we refuse: the connection is logged with `reason` and closed (uWSGI's "skip"). */
export interface UwsgiInvalid {
  readonly kind: 'invalid';
  readonly reason: string;
}

export type UwsgiParse = UwsgiPacket | UwsgiIncomplete | UwsgiInvalid;

/** Bytes of the fixed header. */
export const UWSGI_HEADER_SIZE = 4;

/**
 * Parses the packet at the start of `buf`.
 *
 * Refused, as uWSGI refuses them: modifier1 other than 0 (`unavailable modifier
 * requested`), pktsize over `bufferSize` (`invalid request block size`), a zero-length
 * key (`uwsgi key cannot be null`), a length running past the block (`invalid uwsgi
 * request`). Keys and values are decoded as latin-1, byte for byte (PEP 3333's
 * "bytes as latin-1" strings, and what nginx's raw bytes are).
 * @param bufferSize `buffer-size`: the largest variable block accepted, bytes
 */
export function parseUwsgiPacket(buf: Buffer, bufferSize: number): UwsgiParse {
  if (buf.length < UWSGI_HEADER_SIZE) return { kind: 'incomplete', need: UWSGI_HEADER_SIZE };
  const modifier1 = buf.readUInt8(0);
  const size = buf.readUInt16LE(1);
  const modifier2 = buf.readUInt8(3);
  if (modifier1 !== 0) return { kind: 'invalid', reason: `unavailable modifier requested: ${modifier1} (only 0, WSGI, is served)` };
  if (size > bufferSize) return { kind: 'invalid', reason: `invalid request block size: ${size} (max ${bufferSize}, buffer-size)` };
  const end = UWSGI_HEADER_SIZE + size;
  if (buf.length < end) return { kind: 'incomplete', need: end };
  const vars = new Map<string, string>();
  let pos = UWSGI_HEADER_SIZE;
  while (pos < end) {
    if (pos + 2 > end) return { kind: 'invalid', reason: `invalid uwsgi request (a key length runs past the end at byte ${pos})` };
    const keyLen = buf.readUInt16LE(pos);
    pos += 2;
    if (keyLen === 0) return { kind: 'invalid', reason: `uwsgi key cannot be null (at byte ${pos - 2})` };
    if (pos + keyLen + 2 > end) return { kind: 'invalid', reason: `invalid uwsgi request (current strsize: ${keyLen}) runs past the end` };
    const key = buf.toString('latin1', pos, pos + keyLen);
    pos += keyLen;
    const valueLen = buf.readUInt16LE(pos);
    pos += 2;
    if (pos + valueLen > end) return { kind: 'invalid', reason: `invalid uwsgi request (current strsize: ${valueLen}) runs past the end` };
    vars.set(key, buf.toString('latin1', pos, pos + valueLen));
    pos += valueLen;
  }
  return { kind: 'packet', modifier1, modifier2, vars, consumed: end };
}

/**
 * The reason logged for bytes a client sent before it closed its side without a whole
 * packet: how many came, of how many the packet needs so far ({@link UwsgiIncomplete.need}:
 * the header's 4 until the header is in, then header plus block), e.g.
 * "truncated packet (7 of 43 bytes)"; "?" when the bytes are not the start of a packet.
 */
export function truncatedReason(received: Buffer, bufferSize: number): string {
  const parsed = parseUwsgiPacket(received, bufferSize);
  return `truncated packet (${received.length} of ${parsed.kind === 'incomplete' ? parsed.need : '?'} bytes)`;
}

/**
 * Encodes a request packet (what nginx sends), for clients, tests and benchmarks.
 * @throws RangeError when a key, a value or the block exceeds 65535 bytes
 */
export function encodeUwsgiPacket(vars: Iterable<readonly [string, string]>, modifier1 = 0, modifier2 = 0): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of vars) {
    const k = Buffer.from(key, 'latin1');
    const v = Buffer.from(value, 'latin1');
    if (k.length > 0xffff || v.length > 0xffff) throw new RangeError(`uwsgi var ${key} is over 65535 bytes`);
    const kl = Buffer.alloc(2);
    kl.writeUInt16LE(k.length);
    const vl = Buffer.alloc(2);
    vl.writeUInt16LE(v.length);
    parts.push(kl, k, vl, v);
  }
  const block = Buffer.concat(parts);
  if (block.length > 0xffff) throw new RangeError(`uwsgi packet of ${block.length} bytes is over 65535`);
  const header = Buffer.alloc(UWSGI_HEADER_SIZE);
  header.writeUInt8(modifier1, 0);
  header.writeUInt16LE(block.length, 1);
  header.writeUInt8(modifier2, 3);
  return Buffer.concat([header, block]);
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What Node's HTTP parser refuses in a header value (control characters but HTAB): refused here, with a reason, rather than answered 400 by Node. */
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
/** What it refuses in a request target: controls and spaces. */
const BAD_URI = /[\x00-\x20\x7f]/;
/** Request headers that describe the uwsgi hop, not the client's request: we frame the body ourselves. */
const HOP_HEADERS = new Set(['content-length', 'content-type', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'upgrade', 'expect']);

/** An HTTP/1.x request head equivalent to a uwsgi packet, for Node's HTTP parser. */
export interface SyntheticHead {
  readonly head: Buffer;
  /** Body bytes that follow the packet (CONTENT_LENGTH). */
  readonly bodyLength: number;
}

/** How {@link uwsgiToHttpHead} frames the body. */
export interface SyntheticHeadOptions {
  /**
   * The body follows chunked (`Transfer-Encoding: chunked`) instead of framed by
   * `CONTENT_LENGTH`: a FastCGI body of unknown length, whose end is its empty STDIN
   * record. @default false
   */
  readonly chunkedBody?: boolean;
}

/**
 * Turns the vars nginx sends (the stock `uwsgi_params` plus `HTTP_*` headers), or a
 * FastCGI request's params, back into an HTTP/1.x request head, so the app is served by
 * Node's own HTTP machinery.
 * The request line is `REQUEST_METHOD REQUEST_URI SERVER_PROTOCOL` (REQUEST_URI is
 * rebuilt from SCRIPT_NAME, PATH_INFO and QUERY_STRING when absent); `HTTP_FOO_BAR`
 * becomes `foo-bar`; the body is framed by `CONTENT_LENGTH` alone (or chunked, see
 * {@link SyntheticHeadOptions}); `Connection: close`, since the connection the app sees
 * carries one request.
 * @returns the head, or a reason string when a var cannot be expressed in HTTP
 */
export function uwsgiToHttpHead(vars: ReadonlyMap<string, string>, options: SyntheticHeadOptions = {}): SyntheticHead | string {
  const method = vars.get('REQUEST_METHOD') || 'GET';
  if (!TOKEN.test(method)) return `bad REQUEST_METHOD ${JSON.stringify(method.slice(0, 20))}`;
  let uri = vars.get('REQUEST_URI') ?? '';
  if (uri === '') {
    const path = encodeURI(`${vars.get('SCRIPT_NAME') ?? ''}${vars.get('PATH_INFO') ?? ''}`) || '/';
    const query = vars.get('QUERY_STRING') ?? '';
    uri = query === '' ? path : `${path}?${query}`;
  }
  if (BAD_URI.test(uri) || uri === '') return `bad REQUEST_URI ${JSON.stringify(uri.slice(0, 60))}`;
  const protocol = vars.get('SERVER_PROTOCOL') || 'HTTP/1.0';
  if (protocol !== 'HTTP/1.0' && protocol !== 'HTTP/1.1') return `unsupported SERVER_PROTOCOL ${JSON.stringify(protocol.slice(0, 20))}`;
  const lengthText = vars.get('CONTENT_LENGTH') ?? '';
  const bodyLength = /^\d{1,15}$/.test(lengthText) ? Number(lengthText) : 0;
  const lines = [`${method} ${uri} ${protocol}`];
  let host = false;
  for (const [key, value] of vars) {
    if (!key.startsWith('HTTP_')) continue;
    const name = key.slice(5).toLowerCase().replaceAll('_', '-');
    if (HOP_HEADERS.has(name)) continue;
    if (!TOKEN.test(name) || BAD_VALUE.test(value)) return `var ${key} cannot be an HTTP header`;
    if (name === 'host') host = true;
    lines.push(`${name}: ${value}`);
  }
  if (!host) {
    const serverName = vars.get('SERVER_NAME') || 'localhost';
    const port = vars.get('SERVER_PORT');
    const hostValue = port ? `${serverName}:${port}` : serverName;
    if (!BAD_VALUE.test(hostValue)) lines.push(`host: ${hostValue}`);
  }
  const contentType = vars.get('CONTENT_TYPE');
  if (contentType !== undefined && contentType !== '') {
    if (BAD_VALUE.test(contentType)) return 'var CONTENT_TYPE cannot be an HTTP header';
    lines.push(`content-type: ${contentType}`);
  }
  if (options.chunkedBody === true) lines.push('transfer-encoding: chunked');
  else if (bodyLength > 0 || lengthText !== '') lines.push(`content-length: ${bodyLength}`);
  lines.push('connection: close', '', '');
  return { head: Buffer.from(lines.join('\r\n'), 'latin1'), bodyLength };
}
