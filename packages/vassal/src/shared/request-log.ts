/**
 * Request log lines, the same for every worker runtime: uWSGI's default line
 * (core/logging.c `uwsgi_logit_simple`, byte for byte), a `log-format` template with
 * uWSGI's `%(var)` variables, or a JSON object; and uWSGI's rule for which requests are
 * logged (`log_request`: `disable-logging` unless `log-4xx`, `log-5xx`, `log-slow`,
 * `log-zero` or `log-big` asks for the request). The Python worker implements the same
 * functions; docs/logging.md describes the output.
 */
import { readFileSync } from 'node:fs';
import type { VassalConfig } from '@emperor/config';
// The subpath: Node workers load this module, and not the whole config package.
import { parseLogFormat, type LOG_FORMAT_VARIABLES } from '@emperor/config/log-format';

/** What the master tells each worker about request logging (part of the worker spec). */
export interface RequestLogSpec {
  /** false with `disable-logging`: only the requests the `log*` exceptions ask for are logged. */
  readonly enabled: boolean;
  readonly log4xx: boolean;
  readonly log5xx: boolean;
  /** `log-slow` in ms; 0 = off. */
  readonly slowMs: number;
  /** `log-zero`: log responses with an empty body. */
  readonly zero: boolean;
  /** `log-big` in bytes; 0 = off. */
  readonly bigBytes: number;
  /** `log-format` template; undefined = uWSGI's default line. */
  readonly format: string | undefined;
  /** `log-json`: one JSON object per line. */
  readonly json: boolean;
  /** `log-micros`: the default line says `in N micros`. */
  readonly micros: boolean;
  /** `log-x-forwarded-for`: the client address is the first X-Forwarded-For entry. */
  readonly xForwardedFor: boolean;
}

/** The request log part of a worker spec, from the vassal's config. */
export function requestLogSpec(config: VassalConfig): RequestLogSpec {
  return {
    enabled: !config.disableLogging,
    log4xx: config.log4xx,
    log5xx: config.log5xx,
    slowMs: config.logSlowMs,
    zero: config.logZero,
    bigBytes: config.logBigBytes,
    format: config.logFormat,
    json: config.logJson,
    micros: config.logMicros,
    xForwardedFor: config.logXForwardedFor,
  };
}

/** True when uWSGI would log this request: logging is on, or one of the exceptions matches. */
export function shouldLog(spec: RequestLogSpec, status: number, durationUs: number, bodyBytes: number): boolean {
  if (spec.enabled) return true;
  if (spec.zero && bodyBytes === 0) return true;
  if (spec.slowMs > 0 && durationUs >= spec.slowMs * 1000) return true;
  if (spec.log4xx && status >= 400 && status <= 499) return true;
  if (spec.log5xx && status >= 500 && status <= 599) return true;
  return spec.bigBytes > 0 && bodyBytes >= spec.bigBytes;
}

/** Everything a log line can say about one finished request. Times in ms/µs, sizes in bytes. */
export interface RequestFacts {
  /** The worker's pid and id, and how many requests this process has finished (this one included). */
  readonly pid: number;
  readonly wid: number;
  readonly n: number;
  readonly method: string;
  /** The request URI as received (path and query). */
  readonly uri: string;
  /** `HTTP/1.1`. */
  readonly proto: string;
  /** The response status; 0 when no response was sent (the client went away, or harakiri ended it). */
  readonly status: number;
  readonly addr: string;
  readonly port: number;
  /** REMOTE_USER; "" over HTTP. */
  readonly user: string;
  /** When the request started, epoch ms. */
  readonly startMs: number;
  readonly durationUs: number;
  /** Response body bytes. */
  readonly rsize: number;
  /** Response header bytes (status line included, as uWSGI counts them). */
  readonly hsize: number;
  /** Response header count. */
  readonly headers: number;
  /** Request variables as uWSGI counts them (two slots per variable) and their size as a uwsgi packet. */
  readonly vars: number;
  readonly pktsize: number;
  /** A request header by lower-case name; "" when absent. */
  header(name: string): string;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** Formatting a date costs more than the rest of a line: both forms are cached per second. */
let cachedSecond = -1;
let cachedCtime = '';
let cachedLtime = '';
function cacheSecond(ms: number): void {
  const second = Math.floor(ms / 1000);
  if (second === cachedSecond) return;
  const d = new Date(second * 1000);
  const [day, date, month, year] = [d.getDay(), d.getDate(), d.getMonth(), d.getFullYear()];
  const time = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  // ctime(3): "Sun Nov 22 03:09:30 2026", day of month space-padded.
  cachedCtime = `${DAYS[day]} ${MONTHS[month]} ${date < 10 ? ` ${date}` : date} ${time} ${year}`;
  const offset = -d.getTimezoneOffset();
  const sign = offset < 0 ? '-' : '+';
  cachedLtime = `${two(date)}/${MONTHS[month]}/${year}:${time} ${sign}${two(Math.floor(Math.abs(offset) / 60))}${two(Math.abs(offset) % 60)}`;
  cachedSecond = second;
}

let epochSecond = -1;
let epochSecondText = '';
/**
 * Epoch milliseconds as decimal text, as `String(ms)` gives it, with the seconds' digits
 * cached: a 13-digit number is not a small integer to V8, and turning one into text cost
 * 137 ns against 14 (measured), twice in every JSON line.
 * @param ms whole milliseconds since the epoch
 */
export function epochMsText(ms: number): string {
  if (ms < 1000 || !Number.isInteger(ms)) return String(ms);
  const second = Math.floor(ms / 1000);
  if (second !== epochSecond) {
    epochSecond = second;
    epochSecondText = String(second);
  }
  const rest = ms - second * 1000;
  return epochSecondText + (rest >= 100 ? String(rest) : rest >= 10 ? `0${rest}` : `00${rest}`);
}

/** `Sun Nov 22 03:09:30 2026`, local time (ctime(3) without its newline). */
export function ctime(ms: number): string {
  cacheSecond(ms);
  return cachedCtime;
}

/** `22/Nov/2026:03:09:30 +0000`, local time (uWSGI's `%(ltime)`, Apache's `%t`). */
export function ltime(ms: number): string {
  cacheSecond(ms);
  return cachedLtime;
}

/**
 * uWSGI's default request line, byte for byte (`DEFAULT_REQUEST_LINE` of
 * packages/protocol, which the Python worker's line is generated from; a test renders
 * both and compares):
 * `[pid: 16217|app: 0|req: 1/1] 10.0.0.1 () {20 vars in 216 bytes} [Sun Nov 22 03:09:30 2026] GET /hello?x=1 => generated 6 bytes in 0 msecs (HTTP/1.1 200) 1 headers in 45 bytes (1 switches on core 0)`.
 * `req: N/N` both count this worker process's requests (uWSGI's second number is the
 * instance's total, which no worker here knows without a message per request).
 */
export function formatDefaultLine(f: RequestFacts, micros: boolean): string {
  const time = micros ? `${Math.round(f.durationUs)} micros` : `${Math.floor(f.durationUs / 1000)} msecs`;
  return `[pid: ${f.pid}|app: 0|req: ${f.n}/${f.n}] ${f.addr} (${f.user}) {${f.vars} vars in ${f.pktsize} bytes} [${ctime(f.startMs)}] ${f.method} ${f.uri} => generated ${f.rsize} bytes in ${time} (${f.proto} ${f.status}) ${f.headers} headers in ${f.hsize} bytes (1 switches on core 0)\n`;
}

/**
 * `log-json`: a renderer of one JSON object per request, in the shape of the event lines
 * (pino's `level`, `time`, `pid`, then the bindings, then `msg`), so one parser reads
 * both. `time` is when the response ended (epoch ms). Written by hand: pino's generic serialiser costs 2.2 µs per line here, this 0.5.
 * @param bindings fixed fields after `pid`, e.g. `{ vassal: 'shop.ini', worker: 2 }`
 */
export function jsonRenderer(bindings: Readonly<Record<string, string | number>>): (f: RequestFacts) => string {
  const fixed = Object.entries(bindings).map(([k, v]) => `,${JSON.stringify(k)}:${JSON.stringify(v)}`).join('');
  return (f) => {
    const method = q(f.method);
    const uri = q(f.uri);
    // msg is "METHOD URI STATUS": the two literals' escaped insides, so each is scanned once.
    const msg = `${method.slice(0, -1)} ${uri.slice(1, -1)} ${f.status}"`;
    return `{"level":30,"time":${epochMsText(Math.round(f.startMs + f.durationUs / 1000))},"pid":${f.pid}${fixed},"msg":${msg},"addr":${q(f.addr)},"user":${q(f.user)}` +
      `,"method":${method},"uri":${uri},"proto":${q(f.proto)},"status":${f.status},"size":${f.rsize},"hsize":${f.hsize}` +
      `,"headers":${f.headers},"micros":${Math.round(f.durationUs)},"start":${epochMsText(f.startMs)},"req":${f.n},"host":${q(f.header('host'))}}\n`;
  };
}

/** Characters a JSON string must escape (and surrogates, which JSON.stringify escapes when alone). */
const JSON_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A JSON string literal; the common case (nothing to escape) without JSON.stringify. */
function q(text: string): string {
  return JSON_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`;
}

type Render = (f: RequestFacts) => string;

/** The value of each uWSGI variable (LOG_FORMAT_VARIABLES in @emperor/config documents them). */
const VARIABLES: Readonly<Record<keyof typeof LOG_FORMAT_VARIABLES, Render>> = {
  uri: (f) => f.uri,
  method: (f) => f.method,
  user: (f) => f.user,
  addr: (f) => f.addr,
  host: (f) => f.header('host'),
  proto: (f) => f.proto,
  uagent: (f) => f.header('user-agent'),
  referer: (f) => f.header('referer'),
  status: (f) => String(f.status),
  rsize: (f) => String(f.rsize),
  hsize: (f) => String(f.hsize),
  size: (f) => String(f.rsize + f.hsize),
  cl: (f) => f.header('content-length') || '0',
  micros: (f) => String(Math.round(f.durationUs)),
  msecs: (f) => String(Math.floor(f.durationUs / 1000)),
  secs: (f) => (f.durationUs / 1e6).toFixed(6),
  tmsecs: (f) => epochMsText(Math.floor(f.startMs)),
  tmicros: (f) => String(Math.floor(f.startMs * 1000)),
  time: (f) => String(Math.floor(f.startMs / 1000)),
  epoch: () => String(Math.floor(Date.now() / 1000)),
  ctime: (f) => ctime(f.startMs),
  ltime: (f) => ltime(f.startMs),
  pid: (f) => String(f.pid),
  wid: (f) => String(f.wid),
  core: () => '0',
  switches: () => '1',
  vars: (f) => String(f.vars),
  pktsize: (f) => String(f.pktsize),
  headers: (f) => String(f.headers),
  rss: () => String(process.memoryUsage.rss()),
  vsz: () => String(addressSpace()),
  rssM: () => String(Math.floor(process.memoryUsage.rss() / 1048576)),
  vszM: () => String(Math.floor(addressSpace() / 1048576)),
  modifier1: () => '0',
  modifier2: () => '0',
  werr: () => '0',
  rerr: () => '0',
  ioerr: () => '0',
};

/** CGI names (uWSGI looks any request var up by name). */
const REQUEST_VARS: Readonly<Record<string, Render>> = {
  REQUEST_METHOD: (f) => f.method,
  REQUEST_URI: (f) => f.uri,
  PATH_INFO: (f) => pathOf(f.uri),
  QUERY_STRING: (f) => queryOf(f.uri),
  SERVER_PROTOCOL: (f) => f.proto,
  REMOTE_ADDR: (f) => f.addr,
  REMOTE_PORT: (f) => String(f.port),
  REMOTE_USER: (f) => f.user,
};

/**
 * Compiles a `log-format` template once; the result renders a line (with its newline)
 * per request. Unknown variables render as "" (the config check warned about them).
 */
export function compileLogFormat(template: string): Render {
  const parts: Render[] = parseLogFormat(template).map((part) => {
    if (part.kind === 'text') return () => part.text;
    const name = part.name;
    if (Object.hasOwn(VARIABLES, name)) return VARIABLES[name as keyof typeof VARIABLES];
    const cgi = REQUEST_VARS[name];
    if (cgi !== undefined) return cgi;
    if (name.startsWith('HTTP_')) {
      const header = name.slice(5).toLowerCase().replaceAll('_', '-');
      return (f) => f.header(header);
    }
    return () => '';
  });
  return (f) => {
    let line = '';
    for (const part of parts) line += part(f);
    return `${line}\n`;
  };
}

function pathOf(uri: string): string {
  const q = uri.indexOf('?');
  return q === -1 ? uri : uri.slice(0, q);
}

function queryOf(uri: string): string {
  const q = uri.indexOf('?');
  return q === -1 ? '' : uri.slice(q + 1);
}

/** This process's address space in bytes (`/proc/self/statm` pages), for `%(vsz)`. */
function addressSpace(): number {
  try {
    return Number(readFileSync('/proc/self/statm', 'latin1').split(' ')[0]) * 4096;
  } catch {
    return 0;
  }
}

/**
 * The CGI variables uWSGI's HTTP parser would build for a request (REQUEST_METHOD,
 * REQUEST_URI, QUERY_STRING, PATH_INFO, SERVER_PROTOCOL, SCRIPT_NAME, SERVER_NAME,
 * SERVER_PORT, REMOTE_ADDR, REMOTE_PORT, then one per header), counted as uWSGI counts
 * them in its log line: two slots per variable, and 4 bytes of lengths plus the key and
 * value per variable.
 * @param headers raw header names and values, alternating (Node's `rawHeaders`)
 */
export function countVars(method: string, uri: string, proto: string, addr: string, port: number, host: string, headers: readonly string[]): { vars: number; pktsize: number } {
  return { vars: 2 * varCount(headers), pktsize: packetSize(method, uri, proto, addr, port, host, headers) };
}

/** The request's variables: the 10 CGI ones, then one per header (`headers` as in {@link countVars}). */
function varCount(headers: readonly string[]): number {
  return 10 + (headers.length >> 1);
}

/** The `vars` of {@link countVars} alone: two slots per variable, as uWSGI's line counts them. */
export function varSlots(headers: readonly string[]): number {
  return 2 * varCount(headers);
}

/**
 * The size {@link countVars} gives as `pktsize`, without the object: a Node worker counts
 * it for every logged request. Lengths only; no string is made.
 */
export function packetSize(method: string, uri: string, proto: string, addr: string, port: number, host: string, headers: readonly string[]): number {
  const colon = host.lastIndexOf(':');
  // SERVER_NAME and SERVER_PORT come from Host; the port is "80" without one.
  const hostBytes = colon > 0 ? host.length - 1 : host.length + 2;
  const q = uri.indexOf('?');
  const path = q === -1 ? uri.length : q;
  const query = q === -1 ? 0 : uri.length - q - 1;
  // Key lengths: REQUEST_METHOD 14, REQUEST_URI 11, QUERY_STRING 12, PATH_INFO 9,
  // SERVER_PROTOCOL 15, SCRIPT_NAME 11, SERVER_NAME 11, SERVER_PORT 11, REMOTE_ADDR 11, REMOTE_PORT 11.
  let bytes = 116 + method.length + uri.length + query + path + proto.length + hostBytes + addr.length + digits(port);
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i] as string;
    // CONTENT_TYPE and CONTENT_LENGTH lose their HTTP_ prefix, as in CGI.
    const cgi = (name.length === 12 || name.length === 14) && /^content-(?:type|length)$/i.test(name);
    bytes += name.length + (cgi ? 0 : 5) + (headers[i + 1] as string).length;
  }
  return bytes + varCount(headers) * 4;
}

/** Decimal digits of a port (0..65535). */
function digits(n: number): number {
  return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : 5;
}
