/**
 * uWSGI's request log templates (`log-format` / `logformat`, core/logging.c): text with
 * `%(name)` variables. Parsed here once so that `emperor check` reports unknown names and
 * every worker runtime (Node and Python) renders the same variables the same way.
 */

/**
 * The variables we render, with what each one is (uWSGI's names and meanings). Besides
 * these, `%(HTTP_NAME)` is the request header `Name` (`HTTP_X_REQUEST_ID` → `x-request-id`),
 * and the CGI names in {@link LOG_FORMAT_REQUEST_VARS} are the request's values.
 */
export const LOG_FORMAT_VARIABLES = {
  uri: 'the request URI (path and query)',
  method: 'the request method',
  user: 'REMOTE_USER (empty over HTTP)',
  addr: 'the client address (the first X-Forwarded-For entry with log-x-forwarded-for)',
  host: 'the Host header',
  proto: 'the protocol, e.g. HTTP/1.1',
  uagent: 'the User-Agent header',
  referer: 'the Referer header',
  status: 'the response status code',
  rsize: 'response body bytes',
  hsize: 'response header bytes',
  size: 'response bytes, headers and body',
  cl: 'the request Content-Length (0 when absent)',
  micros: 'response time, microseconds',
  msecs: 'response time, milliseconds',
  secs: 'response time, seconds (a decimal)',
  tmsecs: 'request start, epoch milliseconds',
  tmicros: 'request start, epoch microseconds',
  time: 'request start, epoch seconds',
  epoch: 'now, epoch seconds',
  ctime: 'request start as ctime(3): Sun Nov 22 03:09:30 2026',
  ltime: 'request start as 22/Nov/2026:03:09:30 +0000 (Apache\'s %t without brackets)',
  pid: 'the worker\'s pid',
  wid: 'the worker id',
  core: 'always 0',
  switches: 'always 1',
  vars: 'request variables, counted as uWSGI does (two per variable)',
  pktsize: 'size of those variables as a uwsgi packet, bytes',
  headers: 'response header count',
  rss: 'the worker\'s resident memory now, bytes',
  vsz: 'the worker\'s address space now, bytes',
  rssM: 'rss in megabytes',
  vszM: 'vsz in megabytes',
  modifier1: 'always 0',
  modifier2: 'always 0',
  werr: 'always 0',
  rerr: 'always 0',
  ioerr: 'always 0',
} as const satisfies Readonly<Record<string, string>>;

/** CGI variable names a template may use, as uWSGI looks up any request var by name. */
export const LOG_FORMAT_REQUEST_VARS: readonly string[] = [
  'REQUEST_METHOD', 'REQUEST_URI', 'PATH_INFO', 'QUERY_STRING', 'SERVER_PROTOCOL', 'REMOTE_ADDR', 'REMOTE_PORT', 'REMOTE_USER',
];

/** One piece of a parsed template. */
export type LogFormatPart = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'var'; readonly name: string };

const VARIABLE = /%\(([^()\s]+)\)/g;

/**
 * Splits a template into text and `%(name)` variables. Any other `%` is literal text, as
 * in uWSGI. Adjacent text is merged; an empty template is one empty text part.
 */
export function parseLogFormat(template: string): LogFormatPart[] {
  const parts: LogFormatPart[] = [];
  let at = 0;
  for (const match of template.matchAll(VARIABLE)) {
    if (match.index > at) parts.push({ kind: 'text', text: template.slice(at, match.index) });
    parts.push({ kind: 'var', name: match[1] ?? '' });
    at = match.index + match[0].length;
  }
  if (at < template.length || parts.length === 0) parts.push({ kind: 'text', text: template.slice(at) });
  return parts;
}

/** True for a name we render: a {@link LOG_FORMAT_VARIABLES} key, a CGI name, or `HTTP_*`. */
export function isLogFormatVariable(name: string): boolean {
  return Object.hasOwn(LOG_FORMAT_VARIABLES, name) || LOG_FORMAT_REQUEST_VARS.includes(name) || /^HTTP_[A-Z0-9_]+$/.test(name);
}
