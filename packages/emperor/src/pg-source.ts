/**
 * The PostgreSQL vassal source: uWSGI's emperor-pg (plugins/emperor_pg/emperor_pg.c),
 * `emperor = pg://CONNINFO;QUERY`. Each row of the query is a vassal: its name, its
 * config text, its version (`ts`), and in tyrant mode the uid and gid it runs as.
 *
 * uWSGI connects, queries and disconnects on every scan (every `emperor-freq`). This
 * source keeps one connection open with node-postgres, LISTENs on `emperor-pg-channel`
 * and re-runs the query when notified, every `emperor-freq`, and after every
 * (re)connection, since a listener that was disconnected has missed notifications. It
 * keeps the last result it could read: {@link PgSource.scan} returns it, and `change` is
 * emitted when a new result differs.
 *
 * The database is not in the apps' path: while it is unreachable the vassals keep
 * running as they are (an error is never read as "every row deleted"), the outage is
 * logged once, the connection is retried with a growing delay, and its return is logged
 * once and followed by a full re-read.
 */
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { parsePgMonitor, type PgMonitor } from '@emperor/config';
import { InternalError, PrivilegeError, VassalRowError, VassalSourceError } from '@emperor/protocol';
import { type BackoffOptions, type BackoffState, type Clock, type Logger, type TimerHandle, INITIAL_BACKOFF, nextBackoff, systemClock } from '@emperor/process';
import { lookUpPassword, pgClientConfig, type PasswordLookup, type PgEnvironment } from './pg-connection.js';
import { readVassalRows, sameRowVersion, type VassalRow } from './pg-rows.js';
import { currentIdentity, type EmperorIdentity } from './privileges.js';
import { RowFiles, runtimeBase, vassalOwner, type FileOwner, type IdLookup } from './row-files.js';
import type { VassalFile, VassalSource } from './source.js';

/**
 * Reconnection delays: from 0.5 s, doubling, at most 5 s, each with ±25 % jitter so a
 * fleet does not reconnect in step. The cap bounds how late an emperor catches up after
 * a long outage (measured: 5 s after 10 s down with a 15 s cap, 2 s with 5 s); uWSGI's
 * emperor-pg connects every `emperor-freq` (3 s) whether the database is up or not.
 */
export const PG_RETRY: BackoffOptions = { initialMs: 500, maxMs: 5_000, healthyMs: Number.POSITIVE_INFINITY, curseAfter: Number.POSITIVE_INFINITY };

/** The query may take this long, or `emperor-freq` if longer, before the connection is deemed dead and replaced, ms. */
export const PG_QUERY_TIMEOUT_MS = 30_000;

/** What the source is doing: a closed union, one value at a time. */
export type PgSourceState = 'idle' | 'connecting' | 'connected' | 'retrying' | 'closed';

/** Options of {@link PgSource}. */
export interface PgSourceOptions {
  /** `emperor-freq`: how often the query runs besides notifications, ms. */
  readonly freqMs: number;
  /** `emperor-pg-channel`: the channel to LISTEN on (checked by the config loader: no quoting needed). */
  readonly channel: string;
  /** `emperor-tyrant`: rows need uid and gid columns, and each row's file is given to them. */
  readonly tyrant: boolean;
  /** `vassals-inherit`, for the user a row's master ends up as outside tyrant mode. */
  readonly inherit: readonly string[];
  readonly logger: Logger;
  /** Where the private directory of row files is made. @default runtimeBase() */
  readonly runtimeBase?: string;
  /**
   * The emperor's runtime directory when it can hand its vassals over (issue 19): the row
   * files then go to a fixed directory in it ({@link RowFiles.fixed}) that outlives this
   * emperor, for the masters it leaves (they re-read their file on reload) and the next
   * emperor, instead of a fresh one in `runtimeBase`.
   */
  readonly handoverDir?: string;
  /** The environment and defaults the connection settings read. */
  readonly environment?: PgEnvironment;
  /**
   * The emperor's identity: who row files belong to when a row asks for no user, and
   * whether they can be given to a vassal's user. @default currentIdentity()
   */
  readonly identity?: Pick<EmperorIdentity, 'uid' | 'gid' | 'canSwitchUsers'>;
  /** User and group lookups (the owner of row files outside tyrant mode). */
  readonly lookup?: IdLookup;
  /** @default systemClock */
  readonly clock?: Clock;
  /** A number in [0, 1) for the retry jitter. @default Math.random */
  readonly random?: () => number;
}

/**
 * node-postgres, loaded by the first pg source that connects: an emperor without one
 * does not pay for it (about 50 ms of CPU and 7 MiB of RSS, measured).
 */
let pgModule: Promise<typeof pg> | undefined;
const loadPg = (): Promise<typeof pg> => (pgModule ??= import('pg').then((m) => m.default));

/** Every column as PostgreSQL's text: `ts` compares as sent, numbers are parsed once, here. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value };

/** SQLSTATE classes that mean the connection, not the query, failed: 08 (connection exception), 57P (operator intervention). */
const CONNECTION_SQLSTATE = /^(?:08|57P)/;

/** One source per `pg://` value. */
export class PgSource extends EventEmitter<{ change: [] }> implements VassalSource {
  /** The value with its password removed: stats' `monitor` and every log line show this. */
  readonly monitor: string;
  readonly #spec: PgMonitor;
  readonly #options: PgSourceOptions;
  readonly #logger: Logger;
  readonly #clock: Clock;
  #state: PgSourceState = 'idle';
  #client: pg.Client | undefined;
  #files: RowFiles | undefined;
  /** The `emperor` value as written (names the fixed row directory of a handover). */
  readonly #value: string;
  /** A result has been applied: the vassals are known (until then an emperor keeps the ones it adopted). */
  #listed = false;
  /** The rows of the last result applied, by name, and the vassal files made of them. */
  #rows: ReadonlyMap<string, VassalRow> = new Map();
  #vassals = new Map<string, VassalFile>();
  #backoff: BackoffState = INITIAL_BACKOFF;
  /** Set while the database is unreachable: since when, and how many attempts failed. */
  #outage: { readonly since: number; attempts: number } | undefined;
  #retryTimer: TimerHandle | undefined;
  #freqTimer: NodeJS.Timeout | undefined;
  #querying = false;
  #again = false;
  /** Problems already logged, by what they are about, so each is logged once while it lasts. */
  readonly #reported = new Map<string, string>();
  #queryProblem: string | undefined;
  readonly #identity: Pick<EmperorIdentity, 'uid' | 'gid' | 'canSwitchUsers'>;

  /**
   * @param value a `pg://` or `pgsql://` value the config loader accepted
   * @throws {InternalError} a value the config loader would have refused
   */
  constructor(value: string, options: PgSourceOptions) {
    super();
    const parsed = parsePgMonitor(value);
    if (!parsed.ok) throw new InternalError(`PgSource got an emperor value the config loader refuses: ${parsed.problem}`);
    this.#spec = parsed.monitor;
    this.#value = value;
    this.monitor = parsed.monitor.display;
    this.#options = options;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#identity = options.identity ?? currentIdentity();
  }

  /** What the source is doing now. */
  get state(): PgSourceState {
    return this.#state;
  }

  /** The private directory of row files (after {@link start}). */
  get directory(): string | undefined {
    return this.#files?.dir;
  }

  /**
   * Makes the row directory (or opens the fixed one of a handover, files of a previous
   * emperor included) and starts connecting; returns at once.
   * @throws the file system's error when the row directory cannot be made
   */
  start(): void {
    if (this.#state !== 'idle') return;
    const handover = this.#options.handoverDir;
    this.#files = handover === undefined ? new RowFiles(this.#options.runtimeBase ?? runtimeBase()) : RowFiles.fixed(handover, this.#value, this.#identity.uid);
    this.#freqTimer = setInterval(() => void this.#refresh(), this.#options.freqMs);
    this.#logger.info({ monitor: this.monitor, channel: this.#options.channel, dir: this.#files.dir }, `${this.monitor}: reading vassals from PostgreSQL (LISTEN ${this.#options.channel}; row files in ${this.#files.dir})`);
    void this.#connect();
  }

  /**
   * The vassals of the last result read; before the first one none, and `unlisted`: the
   * emperor keeps the vassals it already runs from this source (adopted from a previous
   * emperor) until the table says otherwise.
   */
  scan(): { files: Map<string, VassalFile>; settleInMs: number; unlisted?: boolean } {
    return { files: new Map(this.#vassals), settleInMs: 0, ...(this.#listed ? {} : { unlisted: true }) };
  }

  /**
   * Disconnects, stops every timer and removes the row files, except at a `handover`
   * with a fixed directory: its masters keep serving and re-read their files, and the
   * next emperor takes the directory over. Idempotent.
   */
  close(how: 'stop' | 'handover' = 'stop'): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    if (this.#freqTimer !== undefined) clearInterval(this.#freqTimer);
    if (this.#retryTimer !== undefined) this.#clock.clearTimeout(this.#retryTimer);
    this.#drop(this.#client);
    this.#client = undefined;
    if (how === 'stop' || this.#options.handoverDir === undefined) this.#files?.close();
  }

  async #connect(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'connecting';
    let client: pg.Client;
    let describe: string;
    try {
      const { Client } = await loadPg();
      if (this.#state !== 'connecting') return;
      const settings = pgClientConfig(this.#spec.params, this.#options.environment);
      describe = settings.describe;
      const lookup = settings.passwordLookup;
      client = new Client({
        ...settings.config,
        // Called only when the server asks for a password.
        ...(lookup === undefined ? {} : { password: () => this.#passwordFrom(lookup) }),
        query_timeout: Math.max(PG_QUERY_TIMEOUT_MS, this.#options.freqMs),
      });
    } catch (err) {
      this.#lost(undefined, err);
      return;
    }
    this.#client = client;
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client, new VassalSourceError('the server closed the connection')));
    client.on('notification', (message) => {
      if (message.channel === this.#options.channel) void this.#refresh();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${this.#options.channel}`);
    } catch (err) {
      this.#lost(client, err);
      return;
    }
    if (this.#client !== client || this.#state !== 'connecting') return;
    this.#state = 'connected';
    this.#backoff = INITIAL_BACKOFF;
    const outage = this.#outage;
    this.#outage = undefined;
    if (outage === undefined) {
      this.#logger.info({ monitor: this.monitor }, `${this.monitor}: connected to ${describe}`);
    } else {
      const seconds = ((this.#clock.now() - outage.since) / 1000).toFixed(1);
      this.#logger.info({ monitor: this.monitor, outage_ms: this.#clock.now() - outage.since, attempts: outage.attempts },
        `${this.monitor}: the database is back after ${seconds} s (${outage.attempts} failed attempt(s)); re-reading the vassals`);
    }
    await this.#refresh();
  }

  /**
   * The connection failed or was lost: log it if it is the start of an outage, and try
   * again after a growing delay. Ignores late events of a client already given up.
   */
  #lost(client: pg.Client | undefined, err: unknown): void {
    if (this.#state === 'closed' || this.#state === 'retrying') return;
    if (client !== undefined && client !== this.#client) return;
    this.#drop(this.#client);
    this.#client = undefined;
    const now = this.#clock.now();
    this.#backoff = nextBackoff(this.#backoff, 0, now, PG_RETRY);
    const delayMs = Math.round(this.#backoff.delayMs * (0.75 + 0.5 * (this.#options.random ?? Math.random)()));
    const reason = (err as Error | undefined)?.message ?? String(err);
    if (this.#outage === undefined) {
      this.#outage = { since: now, attempts: 1 };
      const running = this.#vassals.size;
      const error = new VassalSourceError(
        `${this.monitor}: cannot read the vassals: ${reason}; ${running === 0 ? 'no vassal from it is running' : `the ${running} vassal(s) from it keep running as they are`}; ` +
          `retrying in ${(delayMs / 1000).toFixed(1)} s, then with a growing delay up to ${PG_RETRY.maxMs / 1000} s (logged again when it is back)`,
        { cause: err },
      );
      this.#logger.error({ code: error.code, monitor: this.monitor }, error.message);
    } else {
      this.#outage.attempts += 1;
      this.#logger.debug({ monitor: this.monitor, attempts: this.#outage.attempts }, `${this.monitor}: still cannot connect: ${reason}; retrying in ${(delayMs / 1000).toFixed(1)} s`);
    }
    this.#state = 'retrying';
    this.#retryTimer = this.#clock.setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#connect();
    }, delayMs);
  }

  /**
   * The password for a server that asks for one, from the password file; a file that
   * exists but cannot be used is a warning, logged once while it lasts.
   * @throws {VassalSourceError} none matches (libpq says "fe_sendauth: no password supplied")
   */
  async #passwordFrom(lookup: PasswordLookup): Promise<string> {
    const found = await lookUpPassword(lookup);
    this.#report(found.ignored === undefined ? [] : [['passfile:', found.ignored]], ['passfile:']);
    if (found.password !== undefined) return found.password;
    throw new VassalSourceError(
      `the server asks for a password and none was given: not in the connection string, no PGPASSWORD, and no line of ${lookup.passfile} ` +
        `(mode 0600, PGPASSFILE or passfile= to use another) matches ${lookup.host}:${lookup.port}:${lookup.database}:${lookup.user}`,
    );
  }

  /** Ends a client we are done with, ignoring whatever it still emits. */
  #drop(client: pg.Client | undefined): void {
    if (client === undefined) return;
    client.removeAllListeners();
    client.on('error', () => {});
    client.end().catch(() => {});
  }

  /** Runs the query and applies its result; a call while one runs makes it run once more after. */
  async #refresh(): Promise<void> {
    const client = this.#client;
    if (this.#state !== 'connected' || client === undefined) return;
    if (this.#querying) {
      this.#again = true;
      return;
    }
    this.#querying = true;
    try {
      do {
        this.#again = false;
        let result: pg.QueryArrayResult<Array<string | null>>;
        try {
          result = await client.query<Array<string | null>>({ text: this.#spec.query, rowMode: 'array', types: RAW_TEXT });
        } catch (err) {
          if (client !== this.#client) return;
          const sqlstate = err instanceof (await loadPg()).DatabaseError ? (err as pg.DatabaseError).code ?? '' : undefined;
          if (sqlstate === undefined || CONNECTION_SQLSTATE.test(sqlstate)) {
            this.#lost(client, err);
            return;
          }
          this.#queryFailed(`the query failed: ${(err as Error).message}${sqlstate === '' ? '' : ` (SQLSTATE ${sqlstate})`}`);
          continue;
        }
        if (client !== this.#client || this.#state !== 'connected') return;
        this.#apply(result.rows, result.fields.length);
      } while (this.#again);
    } finally {
      this.#querying = false;
    }
  }

  /** A result that cannot be used: logged once per distinct problem; the last good result stays. */
  #queryFailed(problem: string): void {
    if (this.#queryProblem === problem) return;
    this.#queryProblem = problem;
    const error = new VassalSourceError(`${this.monitor}: ${problem}; the ${this.#vassals.size} vassal(s) from it keep running as they are; trying again on the next notification or in ${this.#options.freqMs / 1000} s`);
    this.#logger.error({ code: error.code, monitor: this.monitor }, error.message);
  }

  #apply(values: ReadonlyArray<ReadonlyArray<string | null>>, columns: number): void {
    const read = readVassalRows(values, columns, this.#rows, { tyrant: this.#options.tyrant });
    if (!read.ok) {
      this.#queryFailed(read.problem);
      return;
    }
    if (this.#queryProblem !== undefined) {
      this.#logger.info({ monitor: this.monitor }, `${this.monitor}: the query works again`);
      this.#queryProblem = undefined;
    }
    this.#report(read.problems.map((p) => [`row:${p.key}`, p.message]));
    const files = this.#files;
    if (files === undefined) return;
    const rows = new Map<string, VassalRow>();
    let changed = false;
    const notes: Array<[string, string]> = [];
    for (const [name, row] of read.rows) {
      const before = this.#rows.get(name);
      if (row.socket !== '') notes.push([`socket:${name}`, `row ${JSON.stringify(name)}: the socket column (uWSGI's on-demand vassals) is not supported; the vassal starts at once`]);
      if (before !== undefined && sameRowVersion(before, row)) {
        rows.set(name, before);
        continue;
      }
      let owner: FileOwner | undefined;
      let path: string;
      try {
        owner = this.#ownerOf(row, files.pathOf(name));
        path = this.#write(files, name, row.config, owner);
      } catch (err) {
        // Nothing is lost: the vassal keeps its previous row, or is not started.
        notes.push([`write:${name}`, `row ${JSON.stringify(name)}: cannot write its file in ${files.dir}: ${(err as Error).message}`]);
        if (before !== undefined) rows.set(name, before);
        continue;
      }
      rows.set(name, row);
      this.#vassals.set(name, {
        name,
        path,
        format: row.format,
        monitor: this.monitor,
        kind: 'row',
        fingerprint: { dev: 0, ino: 0, mtimeMs: row.tsMs, size: Buffer.byteLength(row.config), hash: `ts ${row.ts}` },
        uid: this.#options.tyrant ? (row.uid ?? 0) : (owner?.uid ?? this.#identity.uid),
        gid: this.#options.tyrant ? (row.gid ?? 0) : (owner?.gid ?? this.#identity.gid),
      });
      changed = true;
    }
    for (const name of this.#rows.keys()) {
      if (rows.has(name)) continue;
      files.remove(name);
      this.#vassals.delete(name);
      changed = true;
    }
    this.#rows = rows;
    if (!this.#listed) {
      this.#listed = true;
      // The first result: what a previous emperor left for rows gone since is of no use.
      try {
        const removed = files.sweep(new Set(rows.keys()));
        if (removed.length > 0) this.#logger.info({ monitor: this.monitor }, `${this.monitor}: removed the row file(s) of ${removed.join(', ')}, no longer in the table`);
      } catch (err) {
        this.#logger.warn({ monitor: this.monitor }, `${this.monitor}: cannot clean ${files.dir}: ${(err as Error).message}`);
      }
      changed = true;
    }
    this.#report(notes, ['socket:', 'write:']);
    if (changed) this.emit('change');
  }

  /**
   * Logs each problem once while it lasts (keyed), and forgets those gone from the list;
   * only keys with one of `prefixes` are forgotten (default: the `row:` ones).
   */
  #report(problems: ReadonlyArray<readonly [string, string]>, prefixes: readonly string[] = ['row:']): void {
    const now = new Set<string>();
    for (const [key, message] of problems) {
      now.add(key);
      if (this.#reported.get(key) === message) continue;
      this.#reported.set(key, message);
      if (key.startsWith('row:')) {
        const error = new VassalRowError(`${this.monitor}: ${message}`);
        this.#logger.error({ code: error.code, monitor: this.monitor }, error.message);
      } else {
        this.#logger[key.startsWith('write:') ? 'error' : 'warn']({ monitor: this.monitor }, `${this.monitor}: ${message}`);
      }
    }
    for (const key of this.#reported.keys()) {
      if (!now.has(key) && prefixes.some((p) => key.startsWith(p))) this.#reported.delete(key);
    }
  }

  /**
   * Who a row's master runs as, and so who its file belongs to (the master re-reads it as
   * that user on every reload): the row's uid and gid in tyrant mode; otherwise its
   * config's `uid`/`gid`. Undefined: the emperor's own user.
   */
  #ownerOf(row: VassalRow, path: string): FileOwner | undefined {
    if (this.#options.tyrant) return row.uid === undefined || row.gid === undefined ? undefined : { uid: row.uid, gid: row.gid };
    return vassalOwner(row.config, path, row.format, this.#options.inherit, this.#options.lookup, this.#identity.uid);
  }

  /**
   * Writes a row's file, given to `owner`. Giving a file away needs root or CAP_CHOWN: an
   * emperor that dropped to its own user with `cap = setgid,setuid` can start the master
   * as the row's user but not hand it the file, so it says so (one line for the row)
   * instead of starting a master that cannot read its config. An emperor that cannot
   * switch users keeps the file: starting the master is refused with its own message.
   * @throws {PrivilegeError} naming the user and the fix; the file system's errors
   */
  #write(files: RowFiles, name: string, text: string, owner: FileOwner | undefined): string {
    const me = this.#identity;
    const giveAway = owner !== undefined && (owner.uid !== me.uid || owner.gid !== me.gid);
    if (!giveAway || (me.uid !== 0 && !me.canSwitchUsers)) return files.write(name, text, undefined);
    try {
      return files.write(name, text, owner);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
      throw new PrivilegeError(
        `its master runs as uid ${owner.uid} gid ${owner.gid}, but the emperor (uid ${me.uid} gid ${me.gid}) cannot give it its mode 0600 file: ` +
          'that needs root or the chown capability; add chown to the emperor\'s cap (cap = setgid,setuid,chown)',
        { cause: err },
      );
    }
  }
}
