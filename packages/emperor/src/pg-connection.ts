/**
 * From libpq's connection keywords and environment to node-postgres's client settings,
 * with libpq's precedence: the connection string, then `PG*` variables, then libpq's
 * defaults (libpq docs, "Parameter Key Words" and "Environment Variables"). The password
 * comes from the connection string, `PGPASSWORD`, or a password file (`passfile`,
 * `PGPASSFILE`, `~/.pgpass`), whose lines the `pgpass` module parses (the module
 * node-postgres itself uses; node-postgres's own fallback to it is deprecated, and it
 * cannot take `passfile`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import type { ClientConfig } from 'pg';
import type pgpassHelper from 'pgpass/lib/helper.js';
import type { PgKeyword } from '@emperor/config';
import { VassalSourceError } from '@emperor/protocol';

/** How long a connection attempt may take when neither `connect_timeout` nor `PGCONNECT_TIMEOUT` says (libpq waits forever). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Unix socket directories libpq builds use as their default host, most likely first
 * (Debian's, then upstream's). libpq uses its compiled-in one when no host is given;
 * node-postgres would use TCP to localhost instead.
 */
export const DEFAULT_SOCKET_DIRS = ['/var/run/postgresql', '/tmp'] as const;

/** What {@link pgClientConfig} reads besides the keywords (injected for tests). */
export interface PgEnvironment {
  /** @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** The OS user name, libpq's default `user`. @default os.userInfo().username */
  readonly osUser?: string;
  /** Whether a path exists (default socket lookup). @default fs.existsSync */
  readonly exists?: (path: string) => boolean;
  /** Reads a TLS file (`sslrootcert`, `sslcert`, `sslkey`). @default fs.readFileSync as UTF-8 */
  readonly readFile?: (path: string) => string;
}

/** Where a password comes from, for the lookup (libpq's .pgpass fields). */
export interface PasswordLookup {
  /** The host as libpq matches it in a password file: the host name, or `localhost` for the default socket directory. */
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** The password file to read. */
  readonly passfile: string;
}

/** node-postgres settings, and how to find the password when the settings do not hold it. */
export interface PgClientSettings {
  /** Without `password` when it must be looked up in {@link PgClientSettings.passwordLookup}. */
  readonly config: ClientConfig;
  /** Set when no password was given: look in this password file. */
  readonly passwordLookup: PasswordLookup | undefined;
  /** `host:port/database as user`, for log lines (no secret). */
  readonly describe: string;
}

/**
 * The client settings for a connection string's keywords, as libpq would connect.
 * Reads the TLS files named (so call it for each connection attempt: certificates get
 * renewed).
 * @throws {VassalSourceError} `PGSSLMODE=allow|prefer` (node-postgres cannot fall back
 *   between TLS and plain text), a bad `PGPORT`, or a TLS file that cannot be read
 */
export function pgClientConfig(params: Readonly<Partial<Record<PgKeyword, string>>>, environment: PgEnvironment = {}): PgClientSettings {
  const env = environment.env ?? process.env;
  const exists = environment.exists ?? existsSync;
  const pick = (keyword: PgKeyword, variable: string): string | undefined => {
    const value = params[keyword] ?? env[variable];
    return value === '' ? undefined : value;
  };
  const named = pick('host', 'PGHOST');
  const address = pick('hostaddr', 'PGHOSTADDR');
  const host = address ?? named ?? DEFAULT_SOCKET_DIRS.find((dir) => exists(dir)) ?? 'localhost';
  const portText = pick('port', 'PGPORT') ?? '5432';
  if (!/^\d+$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new VassalSourceError(`PGPORT: expected 1-65535, got ${JSON.stringify(portText)}`);
  }
  const port = Number(portText);
  const user = pick('user', 'PGUSER') ?? environment.osUser ?? userInfo().username;
  const database = pick('dbname', 'PGDATABASE') ?? user;
  const timeout = pick('connect_timeout', 'PGCONNECT_TIMEOUT');
  const ssl = sslOptions(pick('sslmode', 'PGSSLMODE'), {
    rootcert: pick('sslrootcert', 'PGSSLROOTCERT'),
    cert: pick('sslcert', 'PGSSLCERT'),
    key: pick('sslkey', 'PGSSLKEY'),
    servername: named ?? host,
    readFile: environment.readFile ?? ((path) => readFileSync(path, 'utf8')),
  });
  const password = params.password ?? env.PGPASSWORD;
  const applicationName = pick('application_name', 'PGAPPNAME') ?? params.fallback_application_name ?? 'emperor';
  const options = pick('options', 'PGOPTIONS');
  const encoding = pick('client_encoding', 'PGCLIENTENCODING');
  const keepalivesIdle = params.keepalives_idle;
  const config: ClientConfig = {
    host,
    port,
    user,
    database,
    ssl,
    application_name: applicationName,
    connectionTimeoutMillis: timeout === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : Number(timeout) * 1000,
    keepAlive: params.keepalives !== '0',
    ...(keepalivesIdle === undefined ? {} : { keepAliveInitialDelayMillis: Number(keepalivesIdle) * 1000 }),
    ...(options === undefined ? {} : { options }),
    ...(encoding === undefined ? {} : { client_encoding: encoding }),
    ...(password === undefined ? {} : { password }),
  };
  // libpq matches a unix socket connection as "localhost" when it uses the default directory.
  const matched = named ?? address ?? host;
  const passHost = (DEFAULT_SOCKET_DIRS as readonly string[]).includes(matched) ? 'localhost' : matched;
  const passfile = pick('passfile', 'PGPASSFILE') ?? join(env.HOME ?? homedir(), '.pgpass');
  return {
    config,
    passwordLookup: password === undefined ? { host: passHost, port, database, user, passfile } : undefined,
    describe: `${host.startsWith('/') ? `${host}/.s.PGSQL.${port}` : `${host}:${port}`} database ${database} as ${user}`,
  };
}

/** TLS settings for an `sslmode` (libpq's meanings, as node-postgres can honour them). */
function sslOptions(
  mode: string | undefined,
  files: { rootcert: string | undefined; cert: string | undefined; key: string | undefined; servername: string; readFile: (path: string) => string },
): false | ConnectionOptions {
  if (mode === undefined || mode === 'disable') return false;
  if (mode === 'allow' || mode === 'prefer') {
    throw new VassalSourceError(`sslmode=${mode} (from PGSSLMODE) is not supported: node-postgres cannot fall back between TLS and plain text; set sslmode=disable or require in the connection string`);
  }
  const read = (path: string | undefined, what: string): string | undefined => {
    if (path === undefined) return undefined;
    try {
      return files.readFile(path);
    } catch (err) {
      throw new VassalSourceError(`${what} ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const ca = read(files.rootcert, 'sslrootcert');
  const cert = read(files.cert, 'sslcert');
  const key = read(files.key, 'sslkey');
  const common: ConnectionOptions = { ...(ca === undefined ? {} : { ca }), ...(cert === undefined ? {} : { cert }), ...(key === undefined ? {} : { key }) };
  switch (mode) {
    // libpq: "require" with a root certificate verifies the chain, as verify-ca does.
    case 'require':
      return ca === undefined ? { ...common, rejectUnauthorized: false } : { ...common, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-ca':
      return { ...common, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      return { ...common, rejectUnauthorized: true, servername: files.servername };
    default:
      throw new VassalSourceError(`sslmode: expected disable, require, verify-ca or verify-full, got ${JSON.stringify(mode)}`);
  }
}

/** What a password file gave: the password of the first matching line, and why the file was not used, if it was not. */
export interface PasswordFileResult {
  readonly password: string | undefined;
  /** Set when the file exists but was ignored (libpq warns the same way), e.g. its mode lets others read it. */
  readonly ignored: string | undefined;
}

/**
 * Looks the password up in a password file with libpq's rules: lines
 * `host:port:database:user:password` (`\:` and `\\` escaped), `*` matching anything, the
 * FIRST matching line wins; the file is ignored unless it is a regular file without group
 * or other access (0600). Lines are parsed and matched by the `pgpass` module (its own
 * reader keeps the last match of a small file instead of the first, and warns on stderr,
 * so the file is read and judged here).
 */
export async function lookUpPassword(lookup: PasswordLookup): Promise<PasswordFileResult> {
  let text: string;
  try {
    const stats = await stat(lookup.passfile);
    if (!stats.isFile()) return { password: undefined, ignored: `password file ${lookup.passfile} is not a plain file; ignored` };
    if ((stats.mode & 0o077) !== 0) {
      return { password: undefined, ignored: `password file ${lookup.passfile} has group or world access; permissions should be u=rw (0600) or less; ignored` };
    }
    text = await readFile(lookup.passfile, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { password: undefined, ignored: code === 'ENOENT' ? undefined : `password file ${lookup.passfile}: ${(err as Error).message}` };
  }
  const wanted = { host: lookup.host, port: lookup.port, database: lookup.database, user: lookup.user };
  // Loaded when a server first asks for a password, like node-postgres itself.
  const pgpass: typeof pgpassHelper = (await import('pgpass/lib/helper.js')).default;
  for (const line of text.split('\n')) {
    const entry = pgpass.parseLine(line.replace(/\r$/, ''));
    if (entry !== null && pgpass.isValidEntry(entry) && pgpass.match(wanted, entry)) return { password: entry.password, ignored: undefined };
  }
  return { password: undefined, ignored: undefined };
}
