/**
 * The emperor: knows vassal files, never requests. It turns the files its sources find
 * into running vassal masters (start, reload on change, stop on removal), respawns
 * masters that die with a growing delay, and serves its stats.
 */
import { dirname } from 'node:path';
import type { EmperorConfig } from '@emperor/config';
import { VERSION, type EmperorStats, type EmperorVassalStats } from '@emperor/protocol';
import { type Child, type Logger, emperorMetrics, renderStats, serveStats, spawnChild, type StatsServer } from '@emperor/process';
import { reconcile, type ReconcileAction } from './reconcile.js';
import { DirectorySource, type VassalFile, type VassalSource } from './source.js';
import { Vassal, type SpawnMaster } from './vassal.js';

/** Options for {@link Emperor}. */
export interface EmperorOptions {
  readonly config: EmperorConfig;
  readonly logger: Logger;
  /** Absolute path of the vassal master entry (`@emperor/vassal` bin/master.js). */
  readonly masterEntry: string;
  /** Replaces how masters are spawned (tests). */
  readonly spawnMaster?: SpawnMaster;
}

const sec = (ms: number): number => Math.floor(ms / 1000);

/** The emperor. `start()`, then `reloadAll()` on SIGHUP and `shutdown()` on SIGTERM. */
export class Emperor {
  readonly #config: EmperorConfig;
  readonly #logger: Logger;
  readonly #sources: VassalSource[] = [];
  readonly #vassals = new Map<string, Vassal>();
  readonly #spawn: SpawnMaster;
  #stats: StatsServer | undefined;
  #shuttingDown: Promise<void> | undefined;
  #settleTimer: NodeJS.Timeout | undefined;

  constructor(options: EmperorOptions) {
    this.#config = options.config;
    this.#logger = options.logger;
    this.#spawn = options.spawnMaster ?? ((file) => this.#spawnMaster(options.masterEntry, file));
  }

  /** The vassals the emperor manages now, by name. */
  get vassals(): ReadonlyMap<string, Vassal> {
    return this.#vassals;
  }

  #spawnMaster(entry: string, file: VassalFile): Child {
    const args = [entry, file.path];
    for (const inherit of this.#config.vassalsInherit) args.push('--inherit', inherit);
    return spawnChild(
      process.execPath,
      args,
      {
        cwd: dirname(file.path),
        // Own process group: a terminal's Ctrl-C reaches the emperor only, which stops vassals in order.
        detached: true,
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        serialization: 'json',
      },
      // Dies with the emperor even on SIGKILL, unless it drops privileges (which clears
      // pdeathsig); then the closed IPC channel tells it.
      { pdeathsig: true },
    );
  }

  /** Starts watching, spawns the vassals found, and serves stats when configured. */
  async start(): Promise<void> {
    for (const spec of this.#config.emperor) {
      const source = new DirectorySource(spec, this.#config.emperorFreqMs, (err) =>
        this.#logger.warn(`watching ${spec} failed (${err.message}); rescanning every ${this.#config.emperorFreqMs / 1000} s`),
      );
      source.on('change', () => this.#scan());
      this.#sources.push(source);
      source.start();
    }
    this.#logger.info({ emperor: this.#sources.map((s) => s.monitor) }, `emperor started, watching ${this.#sources.map((s) => s.monitor).join(', ')}`);
    this.#scan();
    if (this.#config.emperorStats !== undefined) {
      this.#stats = await serveStats(this.#config.emperorStats, () => renderStats(this.stats(), this.#config.statsMinified), {
        http: this.#config.statsHttp,
        metrics: emperorMetrics(() => this.stats()),
      });
      this.#logger.info(`emperor stats server on ${this.#stats.address}`);
    }
  }

  /** One reconciliation pass over every source. */
  #scan(): void {
    if (this.#shuttingDown !== undefined) return;
    const desired = new Map<string, VassalFile>();
    let settleInMs = 0;
    for (const source of this.#sources) {
      const found = source.scan();
      if (found.settleInMs > 0) settleInMs = settleInMs === 0 ? found.settleInMs : Math.min(settleInMs, found.settleInMs);
      for (const [name, file] of found.files) {
        if (desired.has(name)) {
          this.#logger.warn(`${file.path}: a vassal named ${name} is already managed from ${desired.get(name)?.path}; ignored`);
          continue;
        }
        desired.set(name, file);
      }
    }
    for (const action of reconcile(desired, this.#vassals)) this.#apply(action);
    // A file still being written: look again the moment it has been quiet long enough.
    if (settleInMs > 0 && this.#settleTimer === undefined) {
      this.#settleTimer = setTimeout(() => {
        this.#settleTimer = undefined;
        this.#scan();
      }, settleInMs);
    }
  }

  #apply(action: ReconcileAction): void {
    switch (action.kind) {
      case 'start': {
        const vassal = new Vassal(action.file, {
          spawn: this.#spawn,
          logger: this.#logger,
          throttleMs: this.#config.emperorThrottleMs,
          maxThrottleMs: this.#config.emperorMaxThrottleMs,
        });
        this.#vassals.set(vassal.name, vassal);
        vassal.once('dead', () => {
          if (this.#vassals.get(vassal.name) === vassal) this.#vassals.delete(vassal.name);
          this.#scan(); // uWSGI's fast restart: a file that came back is started at once
        });
        vassal.start();
        return;
      }
      case 'reload':
        this.#vassals.get(action.file.name)?.reload(action.file);
        return;
      case 'stop':
        void this.#vassals.get(action.name)?.stop();
        return;
      default: {
        const never: never = action;
        void never;
      }
    }
  }

  /** SIGHUP: every vassal reloads gracefully. */
  reloadAll(): void {
    this.#logger.info('reloading every vassal');
    for (const vassal of this.#vassals.values()) vassal.reloadInPlace();
  }

  /**
   * Stops every vassal gracefully and closes the sources and the stats server.
   * Resolves when every master is gone. Idempotent; a second call while stopping
   * kills the masters at once.
   */
  shutdown(): Promise<void> {
    if (this.#shuttingDown !== undefined) {
      this.#logger.warn('stop requested again: killing every vassal now');
      for (const vassal of this.#vassals.values()) vassal.kill();
      return this.#shuttingDown;
    }
    this.#logger.info(`emperor stopping ${this.#vassals.size} vassal(s)`);
    for (const source of this.#sources) source.close();
    if (this.#settleTimer !== undefined) clearTimeout(this.#settleTimer);
    this.#shuttingDown = (async () => {
      await Promise.all([...this.#vassals.values()].map((v) => v.stop()));
      await this.#stats?.close();
      this.#logger.info('emperor stopped');
    })();
    return this.#shuttingDown;
  }

  /** The emperor's stats document (uWSGI's shape plus our fields). */
  stats(): EmperorStats {
    const now = Date.now();
    const vassals: EmperorVassalStats[] = [...this.#vassals.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((v) => ({
        id: v.name,
        pid: v.pid,
        born: sec(v.born),
        last_mod: sec(v.lastMod),
        last_heartbeat: sec(v.lastHeartbeat),
        loyal: v.loyal ? 1 : 0,
        ready: v.ready ? 1 : 0,
        accepting: v.accepting ? 1 : 0,
        last_loyal: sec(v.lastLoyal),
        last_ready: sec(v.lastReady),
        last_accepting: sec(v.lastAccepting),
        first_run: sec(v.firstRun),
        last_run: sec(v.lastRun),
        cursed: sec(v.cursedAt),
        zerg: 0,
        on_demand: '',
        uid: v.file.uid,
        gid: v.file.gid,
        monitor: v.file.monitor,
        respawns: v.respawns,
        state: v.state,
        path: v.file.path,
        throttle_ms: v.nextAttemptAt > 0 ? Math.max(0, v.nextAttemptAt - now) : 0,
        last_error: v.lastError,
      }));
    const blacklist = [...this.#vassals.values()]
      .filter((v) => v.backoff.failures > 0)
      .map((v) => ({
        id: v.name,
        throttle_level: v.backoff.delayMs,
        attempt: v.backoff.failures,
        first_attempt: sec(v.backoff.firstFailureAt),
        last_attempt: sec(v.backoff.lastFailureAt),
      }));
    return {
      version: VERSION,
      pid: process.pid,
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      cwd: process.cwd(),
      emperor: this.#sources.map((s) => s.monitor),
      emperor_tyrant: this.#config.emperorTyrant ? 1 : 0,
      throttle_level: 0,
      vassals,
      blacklist,
    };
  }
}
