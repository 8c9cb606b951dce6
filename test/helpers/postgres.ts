/**
 * A throwaway PostgreSQL cluster for a test file: `initdb` and `pg_ctl` from Debian's
 * `postgresql` package (/usr/lib/postgresql/VERSION/bin), in a fresh temp directory, on
 * a private unix socket directory and a free port on 127.0.0.1, run as the `postgres`
 * user when the tests run as root (PostgreSQL refuses to run as root). Stopped by the
 * postmaster's pid (from `postmaster.pid`), never by name.
 *
 * Local (unix socket) connections are trusted; TCP connections need a password
 * (scram-sha-256), which the password-file tests use.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { freePort, isAlive, waitFor } from './index.js';

/** The newest installed PostgreSQL's bin directory, or undefined. */
export function findPostgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  let versions: string[];
  try {
    versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')));
  } catch {
    return undefined;
  }
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  return newest === undefined ? undefined : join(root, newest, 'bin');
}

/** For `test(..., { skip })`: why the PostgreSQL tests cannot run here, or false. */
export const POSTGRES_MISSING: string | false = findPostgresBin() === undefined
  ? 'PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql; .ci/run installs it'
  : false;

/** A running throwaway cluster. */
export interface Postgres {
  /** The cluster's temp directory (data in `data/`, sockets in `sock/`, log in `log`). */
  readonly dir: string;
  /** The unix socket directory. */
  readonly socketDir: string;
  /** The TCP port on 127.0.0.1 (and the socket's `.s.PGSQL.PORT`). */
  readonly port: number;
  /** The postmaster's pid now; 0 when stopped. */
  pid(): number;
  /** A libpq keyword string for the superuser over the socket, e.g. for `pg://`. */
  conninfo(database?: string, user?: string): string;
  /** Runs SQL as the superuser over the socket, on a fresh connection (several statements when there are no `values`). */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[], database?: string): Promise<pg.QueryResult<R>>;
  /** A fresh database, dropped with the cluster. */
  createDatabase(name: string, owner?: string): Promise<void>;
  /** Fast shutdown (SIGINT to the postmaster); resolves once it is gone. */
  stop(): Promise<void>;
  /** Starts it again on the same data, socket and port; resolves once it accepts connections. */
  start(): Promise<void>;
}

/** The `postgres` user's ids when we are root (PostgreSQL will not run as root), else undefined. */
function postgresIds(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).split(':');
  return { uid: Number(line[2]), gid: Number(line[3]) };
}

function run(file: string, args: readonly string[], ids: { uid: number; gid: number } | undefined, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C.UTF-8' }, ...(ids ?? {}) });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${file} ${args.join(' ')} exited ${code}: ${out}`))));
  });
}

/**
 * Creates and starts a cluster for the test (file); it is stopped and removed after it.
 * Takes about 2-3 s (initdb).
 */
export async function startPostgres(t: Pick<TestContext, 'after'>): Promise<Postgres> {
  const bin = findPostgresBin();
  if (bin === undefined) throw new Error(String(POSTGRES_MISSING));
  const ids = postgresIds();
  const dir = mkdtempSync(join(tmpdir(), 'emperor-pg-cluster-'));
  chmodSync(dir, 0o755);
  if (ids !== undefined) chownSync(dir, ids.uid, ids.gid);
  const data = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  const port = await freePort();
  await run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8'], ids, dir);
  await run('/bin/mkdir', ['-m', '0755', socketDir], ids, dir);
  const settings = `-k ${socketDir} -p ${port} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB -c max_connections=40`;
  const pidOf = (): number => {
    try {
      return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return 0;
    }
  };
  let pid = 0;
  const start = async (): Promise<void> => {
    await run(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-o', settings, '-w', '-t', '60', 'start'], ids, dir);
    pid = pidOf();
  };
  const stop = async (): Promise<void> => {
    if (pid === 0 || !isAlive(pid)) {
      pid = 0;
      return;
    }
    process.kill(pid, 'SIGINT'); // fast shutdown: ends every session, then exits
    const was = pid;
    await waitFor(() => !isAlive(was), { timeoutMs: 30_000, message: `postgres ${was} to exit` });
    pid = 0;
  };
  t.after(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  const conninfo = (database = 'postgres', user = 'postgres'): string => `host=${socketDir} port=${port} dbname=${database} user=${user}`;
  const sql = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = [], database = 'postgres'): Promise<pg.QueryResult<R>> => {
    const client = new pg.Client({ host: socketDir, port, user: 'postgres', database });
    await client.connect();
    try {
      // Without values, the simple protocol: several statements at once (`UPDATE ...; NOTIFY emperor`).
      return values.length === 0 ? await client.query<R>(text) : await client.query<R>(text, values);
    } finally {
      await client.end();
    }
  };
  return {
    dir,
    socketDir,
    port,
    pid: () => pid,
    conninfo,
    sql,
    createDatabase: async (name, owner = 'postgres') => {
      await sql(`CREATE DATABASE "${name}" OWNER "${owner}"`);
    },
    stop,
    start,
  };
}

/** uWSGI emperor-pg's table, as docs/fleet.md describes it, with a `host` column for per-host rows. */
export const VASSALS_TABLE = `
CREATE TABLE vassals (
  name   text PRIMARY KEY,
  config text NOT NULL,
  ts     timestamptz NOT NULL DEFAULT now(),
  uid    integer,
  gid    integer,
  host   text NOT NULL DEFAULT 'any'
)`;
