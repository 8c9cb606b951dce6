/**
 * The `pg://` value of `emperor`: uWSGI's emperor-pg imperial monitor
 * (plugins/emperor_pg/emperor_pg.c). Everything after `pg://` up to the first `;` is a
 * libpq connection string, handed to `PQconnectdb`; what follows the `;` is the query
 * (default {@link DEFAULT_PG_QUERY}). We also take `pgsql://`, which uWSGI does not.
 *
 * The connection string is read here with libpq's own rules (keyword/value pairs, or a
 * `postgresql://` URI) into libpq keywords, so the emperor package can hand a database
 * client exactly what libpq would have used, and a typo is a config error with file and
 * line at start-up rather than a connection failure later. Pure: no I/O.
 */

/** The schemes that pick the PostgreSQL source: uWSGI's `pg`, and `pgsql` (ours). */
export const PG_SCHEMES = ['pg', 'pgsql'] as const;

/** uWSGI's default query (emperor_pg.c): name, config, and the last change as epoch seconds. */
export const DEFAULT_PG_QUERY = 'SELECT name,config,EXTRACT(epoch FROM ts) FROM vassals';

/**
 * The libpq connection keywords we can honour with node-postgres (libpq docs, "Parameter
 * Key Words"). Others (`target_session_attrs`, `gssencmode`, several hosts, ...) are
 * refused by name rather than silently ignored.
 */
export const PG_KEYWORDS = [
  'host', 'hostaddr', 'port', 'dbname', 'user', 'password', 'passfile', 'connect_timeout',
  'application_name', 'fallback_application_name', 'options', 'client_encoding',
  'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'keepalives', 'keepalives_idle',
] as const;

/** One libpq connection keyword we support. */
export type PgKeyword = (typeof PG_KEYWORDS)[number];

/** The `sslmode` values node-postgres can honour (it cannot fall back from TLS to plain text, so not `allow`/`prefer`). */
export const PG_SSLMODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;

/** A parsed `pg://` value. */
export interface PgMonitor {
  readonly scheme: (typeof PG_SCHEMES)[number];
  /** The libpq keywords the connection string sets (a URI's parts mapped to them), values decoded. */
  readonly params: Readonly<Partial<Record<PgKeyword, string>>>;
  /** The query that lists the vassals. */
  readonly query: string;
  /** The value as given with the password removed: what stats and logs show. */
  readonly display: string;
}

/** What {@link parsePgMonitor} makes of a value: the monitor, or why it is not one (never quoting a password). */
export type PgMonitorResult = { readonly ok: true; readonly monitor: PgMonitor } | { readonly ok: false; readonly problem: string };

/** True when an `emperor` value names a PostgreSQL source (`pg://` or `pgsql://`). */
export function isPgMonitor(value: string): boolean {
  return PG_SCHEMES.some((scheme) => value.startsWith(`${scheme}://`));
}

/** Splits `pg://CONNINFO;QUERY` at the first `;` (uWSGI's rule: a `;` in a password ends the connection string). */
function split(value: string): { scheme: PgMonitor['scheme']; conninfo: string; query: string | undefined } | undefined {
  const scheme = PG_SCHEMES.find((s) => value.startsWith(`${s}://`));
  if (scheme === undefined) return undefined;
  const rest = value.slice(scheme.length + 3);
  const semicolon = rest.indexOf(';');
  return semicolon === -1
    ? { scheme, conninfo: rest, query: undefined }
    : { scheme, conninfo: rest.slice(0, semicolon), query: rest.slice(semicolon + 1) };
}

const isUri = (conninfo: string): boolean => /^postgres(?:ql)?:\/\//.test(conninfo);

/**
 * Parses a `pg://` or `pgsql://` value. Refused, with the reason: a connection string
 * libpq would not parse, a keyword we cannot honour, a bad port, timeout or `sslmode`,
 * several hosts, or an empty query after the `;`.
 */
export function parsePgMonitor(value: string): PgMonitorResult {
  const parts = split(value);
  if (parts === undefined) return { ok: false, problem: 'expected pg:// or pgsql://' };
  const query = parts.query === undefined ? DEFAULT_PG_QUERY : parts.query.trim();
  if (query === '') return { ok: false, problem: 'the query after ";" is empty; leave out the ";" for the default query' };
  const pairs = isUri(parts.conninfo) ? readUri(parts.conninfo) : readKeywords(parts.conninfo);
  if (typeof pairs === 'string') return { ok: false, problem: pairs };
  const params: Partial<Record<PgKeyword, string>> = {};
  for (const [key, raw] of pairs) {
    const keyword = PG_KEYWORDS.find((k) => k === key);
    if (keyword === undefined) {
      return { ok: false, problem: `connection keyword ${JSON.stringify(key)} is not supported (supported: ${PG_KEYWORDS.join(', ')})` };
    }
    const problem = checkKeyword(keyword, raw);
    if (problem !== undefined) return { ok: false, problem };
    params[keyword] = raw;
  }
  return { ok: true, monitor: { scheme: parts.scheme, params, query, display: maskPgMonitor(value) } };
}

function checkKeyword(keyword: PgKeyword, value: string): string | undefined {
  const uint = (max: number): boolean => /^\d+$/.test(value) && Number(value) <= max;
  switch (keyword) {
    case 'host':
    case 'hostaddr':
      return value.includes(',') ? `${keyword}: several hosts are not supported; give one (node-postgres connects to one host)` : undefined;
    case 'port':
      return uint(65535) && Number(value) > 0 ? undefined : `port: expected 1-65535, got ${JSON.stringify(value)}`;
    case 'connect_timeout':
    case 'keepalives_idle':
      return uint(86_400) ? undefined : `${keyword}: expected whole seconds, got ${JSON.stringify(value)}`;
    case 'keepalives':
      return value === '0' || value === '1' ? undefined : `keepalives: expected 0 or 1, got ${JSON.stringify(value)}`;
    case 'sslmode':
      if ((PG_SSLMODES as readonly string[]).includes(value)) return undefined;
      return value === 'allow' || value === 'prefer'
        ? `sslmode=${value} is not supported: node-postgres cannot fall back between TLS and plain text; use ${PG_SSLMODES.join(', ')}`
        : `sslmode: expected one of ${PG_SSLMODES.join(', ')}, got ${JSON.stringify(value)}`;
    default:
      return undefined;
  }
}

/** Keyword/value pairs in order, or the problem (never quoting a value, which may be a password). */
type Pairs = Array<[string, string]> | string;

/**
 * libpq's keyword/value form (fe-connect.c `conninfo_parse`): `key = value` pairs split by
 * white space; a value in single quotes may hold spaces; a backslash escapes the next
 * character in either kind of value.
 */
function readKeywords(conninfo: string): Pairs {
  const pairs: Array<[string, string]> = [];
  let i = 0;
  const space = (): void => {
    while (i < conninfo.length && /\s/.test(conninfo[i] as string)) i++;
  };
  for (;;) {
    space();
    if (i >= conninfo.length) return pairs;
    const start = i;
    while (i < conninfo.length && conninfo[i] !== '=' && !/\s/.test(conninfo[i] as string)) i++;
    const key = conninfo.slice(start, i);
    space();
    if (conninfo[i] !== '=') return `missing "=" after ${JSON.stringify(key)} in the connection string`;
    i++;
    space();
    let value = '';
    if (conninfo[i] === "'") {
      i++;
      for (;;) {
        if (i >= conninfo.length) return `unterminated quoted value of ${JSON.stringify(key)} in the connection string`;
        const c = conninfo[i] as string;
        if (c === '\\' && i + 1 < conninfo.length) {
          value += conninfo[i + 1];
          i += 2;
        } else if (c === "'") {
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
    } else {
      while (i < conninfo.length && !/\s/.test(conninfo[i] as string)) {
        const c = conninfo[i] as string;
        if (c === '\\' && i + 1 < conninfo.length) {
          value += conninfo[i + 1];
          i += 2;
        } else {
          value += c;
          i++;
        }
      }
    }
    pairs.push([key, value]);
  }
}

/**
 * libpq's URI form: `postgresql://[user[:password]@][host][:port][/dbname][?keyword=value&...]`,
 * percent-encoded; a unix socket directory as an encoded host (`%2Fvar%2Frun%2Fpostgresql`)
 * or `?host=/var/run/postgresql`.
 */
function readUri(conninfo: string): Pairs {
  const rest = conninfo.replace(/^postgres(?:ql)?:\/\//, '');
  const queryAt = rest.indexOf('?');
  const beforeQuery = queryAt === -1 ? rest : rest.slice(0, queryAt);
  const slash = beforeQuery.indexOf('/', beforeQuery.lastIndexOf('@') + 1);
  const authority = slash === -1 ? beforeQuery : beforeQuery.slice(0, slash);
  const path = slash === -1 ? '' : beforeQuery.slice(slash + 1);
  const at = authority.lastIndexOf('@');
  const userinfo = at === -1 ? undefined : authority.slice(0, at);
  const hostport = at === -1 ? authority : authority.slice(at + 1);
  let badEncoding: string | undefined;
  const decode = (text: string, what: string): string => {
    try {
      return decodeURIComponent(text);
    } catch {
      badEncoding ??= `the ${what} in the connection URI is not valid percent-encoding`;
      return '';
    }
  };
  const pairs: Array<[string, string]> = [];
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    const user = colon === -1 ? userinfo : userinfo.slice(0, colon);
    if (user !== '') pairs.push(['user', decode(user, 'user name')]);
    if (colon !== -1) pairs.push(['password', decode(userinfo.slice(colon + 1), 'password')]);
  }
  if (hostport.includes(',')) return 'several hosts are not supported; give one (node-postgres connects to one host)';
  let host = hostport;
  let port: string | undefined;
  const bracket = /^\[([^\]]*)\](?::(.*))?$/.exec(hostport);
  if (bracket !== null) {
    host = bracket[1] as string;
    port = bracket[2];
  } else {
    const colon = hostport.lastIndexOf(':');
    if (colon !== -1) {
      host = hostport.slice(0, colon);
      port = hostport.slice(colon + 1);
    }
  }
  if (host !== '') pairs.push(['host', decode(host, 'host')]);
  if (port !== undefined && port !== '') pairs.push(['port', port]);
  if (path !== '') pairs.push(['dbname', decode(path, 'database name')]);
  if (queryAt !== -1) {
    for (const param of rest.slice(queryAt + 1).split('&')) {
      if (param === '') continue;
      const eq = param.indexOf('=');
      if (eq === -1) return 'missing "=" in a parameter of the connection URI';
      const key = decode(param.slice(0, eq), 'parameter name');
      // libpq takes ssl=true, as JDBC spells sslmode=require.
      if (key === 'ssl' && param.slice(eq + 1) === 'true') pairs.push(['sslmode', 'require']);
      else pairs.push([key, decode(param.slice(eq + 1), `value of ${key}`)]);
    }
  }
  return badEncoding ?? pairs;
}

/**
 * The value with any password removed, for stats and logs: a `password=` pair of the
 * keyword form (quoted or not), the `:password` of a URI's user part, and a `password`
 * parameter of a URI. Works on values {@link parsePgMonitor} refuses too, so an error
 * message about the value can show it.
 */
export function maskPgMonitor(value: string): string {
  const parts = split(value);
  if (parts === undefined) return value;
  let conninfo = parts.conninfo;
  if (isUri(conninfo)) {
    const prefix = /^postgres(?:ql)?:\/\//.exec(conninfo)?.[0] ?? '';
    let rest = conninfo.slice(prefix.length);
    const queryAt = rest.indexOf('?');
    let params = queryAt === -1 ? undefined : rest.slice(queryAt + 1);
    rest = queryAt === -1 ? rest : rest.slice(0, queryAt);
    const at = rest.lastIndexOf('@');
    if (at !== -1) {
      const userinfo = rest.slice(0, at);
      const colon = userinfo.indexOf(':');
      if (colon !== -1) rest = `${userinfo.slice(0, colon)}${rest.slice(at)}`;
    }
    if (params !== undefined) params = params.split('&').filter((p) => !/^password=/i.test(p)).join('&');
    conninfo = `${prefix}${rest}${params === undefined || params === '' ? '' : `?${params}`}`;
  } else {
    conninfo = conninfo
      .replace(/(^|\s)password\s*=\s*(?:'(?:[^'\\]|\\[\s\S])*(?:'|$)|(?:[^\s\\]|\\[\s\S])*)/g, '$1')
      .replace(/\s{2,}/g, ' ')
      .trim();
  }
  return `${parts.scheme}://${conninfo}${parts.query === undefined ? '' : `;${parts.query}`}`;
}
