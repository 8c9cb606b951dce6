/**
 * The emperor: knows vassal files, never requests. It turns the files its sources find
 * into running vassal masters (start, reload on change, stop on removal), respawns
 * masters that die with a growing delay, and serves its stats.
 */
import { dirname } from 'node:path';
import { loadVassalConfig, type EmperorConfig, type ListenAddress } from '@emperor/config';
import { LEASE_FD, LEASE_FD_ENV, UpgradeError, type EmperorStats } from '@emperor/protocol';
import {
  type Child,
  type Logger,
  emperorMetrics,
  initGroups,
  lookupGroup,
  lookupUser,
  renderStats,
  serveStats,
  spawnChild,
  type StatsServer,
  userName,
} from '@emperor/process';
import { Handover, runtimeDirOf, type Retiree } from './handover.js';
import { startSuccessor } from './upgrade.js';
import { type Notifier } from './notify.js';
import { currentIdentity, planMasterLaunch, type EmperorIdentity, type MasterIdentity } from './privileges.js';
import { reconcile, type ReconcileAction } from './reconcile.js';
import { emperorStats } from './stats-document.js';
import { MASTER_NODE_ARGS } from './master-flags.js';
import { SETTLE_MS, createSource, vassalOrigin, type VassalFile, type VassalSource } from './source.js';
import { judgeTyrant, type TyrantIdentity } from './tyrant.js';
import { OnDemandSocket, onDemandSocketName } from './on-demand.js';
import { VASSAL_STOP_MERCY_MS, Vassal, nextHeartbeatCheck, type OnDemandHandoff, type SpawnMaster, type VassalState } from './vassal.js';

/** Options for {@link Emperor}. */
export interface EmperorOptions {
  readonly config: EmperorConfig;
  readonly logger: Logger;
  /** Absolute path of the vassal master entry (`@emperor/vassal` bin/master.js). */
  readonly masterEntry: string;
  /** Replaces how masters are spawned (tests). */
  readonly spawnMaster?: SpawnMaster;
  /** Tells systemd about readiness, reloads, stops and the vassals' states (sd_notify). */
  readonly notifier?: Notifier | undefined;
  /** Who the emperor is (tests). @default currentIdentity() */
  readonly identity?: EmperorIdentity;
  /**
   * Sockets bound for the stats servers before a privilege drop (inherited descriptors,
   * see packages/cli/src/privilege-drop.ts): served instead of binding `emperor-stats` and
   * `stats` here.
   */
  readonly listenFds?: { readonly emperorStats?: number | undefined; readonly stats?: number | undefined };
  /** The environment (`RUNTIME_DIRECTORY`, passed on to masters). @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * The emperor handed its vassals over to a new one (`emperor upgrade`, or a SIGTERM
   * during `systemctl restart`) and stopped everything else: the process should exit 0.
   */
  readonly onHandedOver?: () => void;
  /** The control socket listens (a new emperor tells its predecessor, see upgrade.ts). */
  readonly onControlListening?: () => void;
  /** Started by the privilege-drop launcher (which cannot be re-executed): no `emperor upgrade`. */
  readonly launched?: boolean;
}

/**
 * Variables for the emperor only, not its vassals: systemd's notification socket and
 * watchdog (a master writing READY=1 there would confuse systemd; uWSGI unsets
 * NOTIFY_SOCKET for vassals too) and socket activation, which is the emperor's.
 */
const EMPEROR_ONLY_ENV = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'];

/** The order states are listed in the systemd STATUS line. */
const STATUS_ORDER: readonly VassalState[] = ['ready', 'starting', 'reloading', 'on-demand', 'idle', 'throttled', 'cursed', 'config-error', 'stopping', 'dead'];

/**
 * One line for systemd's STATUS=: how many vassals and how many in each state, e.g.
 * `3 vassals: 2 ready, 1 cursed; 1 file refused by tyrant mode`.
 */
export function statusLine(states: readonly VassalState[], refused: number): string {
  const counts = new Map<VassalState, number>();
  for (const state of states) counts.set(state, (counts.get(state) ?? 0) + 1);
  const parts = STATUS_ORDER.filter((state) => counts.has(state)).map((state) => `${counts.get(state)} ${state}`);
  let line = `${states.length} vassal${states.length === 1 ? '' : 's'}${parts.length > 0 ? `: ${parts.join(', ')}` : ''}`;
  if (refused > 0) line += `; ${refused} file${refused === 1 ? '' : 's'} refused by tyrant mode`;
  return line;
}

/** The emperor. `start()`, then `reloadAll()` on SIGHUP and `shutdown()` on SIGTERM. */
export class Emperor {
  readonly #config: EmperorConfig;
  readonly #logger: Logger;
  readonly #sources: VassalSource[] = [];
  readonly #vassals = new Map<string, Vassal>();
  readonly #spawn: SpawnMaster;
  readonly #stats: StatsServer[] = [];
  #shuttingDown: Promise<void> | undefined;
  #settleTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  readonly #notifier: Notifier | undefined;
  /** A SIGHUP reload is in progress: READY=1 goes to systemd once no vassal is reloading. */
  #reloading = false;
  /**
   * Files tyrant mode refuses, by name, with what the refusal was judged on. The refusal
   * is logged once and again only when the file or its owner changes (uWSGI logs it on
   * every scan, every 3 s).
   */
  readonly #refused = new Map<string, string>();
  /** Name collisions between sources already logged: what collides → the line. */
  #collisions = new Map<string, string>();
  readonly #identity: EmperorIdentity;
  readonly #listenFds: NonNullable<EmperorOptions['listenFds']>;
  /** Handover to a next emperor (issue 19): set when a runtime directory is usable and `emperor-adopt-timeout` > 0. */
  #handover: Handover | undefined;
  /** Old masters being replaced gracefully (another version, or they did not come to be adopted). */
  readonly #retiring: Retiree[] = [];
  readonly #env: NodeJS.ProcessEnv;
  readonly #options: EmperorOptions;
  /** An upgrade is under way (one at a time). */
  #upgrading = false;
  /** Handing over to a next emperor: nothing is stopped, everything else closes. */
  #handingOver: Promise<void> | undefined;

  constructor(options: EmperorOptions) {
    this.#config = options.config;
    this.#logger = options.logger;
    this.#notifier = options.notifier;
    this.#identity = options.identity ?? currentIdentity();
    this.#listenFds = options.listenFds ?? {};
    this.#env = options.env ?? process.env;
    this.#options = options;
    this.#spawn = options.spawnMaster ?? ((file, onDemand) => this.#spawnMaster(options.masterEntry, file, onDemand));
  }

  /** The vassals the emperor manages now, by name. */
  get vassals(): ReadonlyMap<string, Vassal> {
    return this.#vassals;
  }

  /** The identity tyrant mode forces on a file's vassal, or undefined when it is refused or tyrant mode is off. */
  #tyrantIdentity(file: VassalFile): TyrantIdentity | undefined {
    if (!this.#config.emperorTyrant) return undefined;
    const verdict = judgeTyrant(file, this.#tyrantOptions());
    return verdict.ok ? verdict.identity : undefined;
  }

  #tyrantOptions(): Parameters<typeof judgeTyrant>[1] {
    const me = this.#identity;
    return { emperorUid: me.uid, emperorGid: me.gid, canSwitchUsers: me.canSwitchUsers, nofollow: this.#config.emperorTyrantNofollow };
  }

  /**
   * The user a vassal's own `uid`/`gid` ask for (its file, `vassals-inherit` and
   * placeholders resolved as its master will), for an emperor that is not root and so
   * must start the master as that user. Undefined when the vassal asks for none, or when
   * its file or user cannot be had: the master, started as the emperor's user, then
   * reports that error itself.
   */
  #vassalIdentity(file: VassalFile): MasterIdentity | undefined {
    if (file.kind === 'row') {
      // The source read the row's uid/gid and gave its file to that user: the emperor may
      // not be able to read it any more (mode 0600).
      if (file.uid === this.#identity.uid && file.gid === this.#identity.gid) return undefined;
      const name = userName(file.uid);
      return { uid: file.uid, gid: file.gid, groups: name === undefined ? [file.gid] : initGroups(name, file.gid) };
    }
    try {
      const { config } = loadVassalConfig(file.path, { inherit: this.#config.vassalsInherit });
      if (config.uid === undefined && config.gid === undefined) return undefined;
      const user = config.uid === undefined ? undefined : lookupUser(config.uid);
      const gid = config.gid !== undefined ? lookupGroup(config.gid) : (user?.gid ?? this.#identity.gid);
      // The master's own drop (users.ts dropPrivileges): setgid, initgroups(user, gid), setuid.
      return { uid: user?.uid ?? this.#identity.uid, gid, groups: user === undefined ? [gid] : initGroups(user.name, gid) };
    } catch {
      return undefined;
    }
  }

  /**
   * @throws PrivilegeError when this emperor cannot start the vassal as the user it asks
   *   for (the vassal then waits for its file to change, see {@link Vassal.start})
   */
  #spawnMaster(entry: string, file: VassalFile, onDemand?: OnDemandHandoff): Child {
    // A row's master gets the bare name (its cwd is the row file's directory), so its
    // config errors name the row: `shop.ini:7: harakiri: ...`.
    const args = [...MASTER_NODE_ARGS, entry, file.kind === 'row' ? file.name : file.path];
    // On demand: the listening socket is its fd 0 (uWSGI dup2()s it there), and argv names it.
    if (onDemand !== undefined) args.push('--on-demand', onDemand.name);
    const tyrant = this.#tyrantIdentity(file);
    // A root emperor leaves the vassal's own uid/gid to its master, which binds as root
    // first; one that is not root must start the master as that user already.
    const wanted: MasterIdentity | undefined = tyrant !== undefined
      ? { uid: tyrant.uid, gid: tyrant.gid, groups: [] }
      : this.#identity.uid === 0 ? undefined : this.#vassalIdentity(file);
    const plan = planMasterLaunch(this.#identity, wanted, { file: vassalOrigin(file) });
    if (!plan.ok) throw plan.error;
    const { launch } = plan;
    // On argv, where the vassal file cannot reach: the master refuses a uid/gid option
    // (from the file, an inherited file or a placeholder) that differs from these.
    if (tyrant !== undefined) args.push('--tyrant-uid', String(tyrant.uid), '--tyrant-gid', String(tyrant.gid));
    for (const inherit of this.#config.vassalsInherit) args.push('--inherit', inherit);
    const env = { ...this.#env };
    for (const name of EMPEROR_ONLY_ENV) delete env[name];
    // With handover, the master's lease travels on a pipe at fd 4 (read once, then closed).
    const lease = this.#handover?.leaseFor(file.name);
    if (lease !== undefined) env[LEASE_FD_ENV] = String(LEASE_FD);
    const child = spawnChild(
      process.execPath,
      args,
      {
        cwd: dirname(file.path),
        env,
        // Own process group: a terminal's Ctrl-C reaches the emperor only, which stops vassals in order.
        detached: true,
        // stdout and stderr are the emperor's own (the journal under systemd), not a pipe
        // the emperor reads: a master that outlives the emperor keeps logging there.
        stdio: [onDemand === undefined ? 'ignore' : onDemand.fd, 'inherit', 'inherit', 'ipc', ...(lease === undefined ? [] : ['pipe' as const])],
        serialization: 'json',
        // Tyrant mode under a root emperor: libuv calls setgid, setgroups(0, NULL) and
        // setuid in the child before exec, exactly uWSGI's privilege drop (no
        // supplementary groups).
        ...(launch.spawnIds ?? {}),
      },
      // Without handover it dies with the emperor even on SIGKILL, unless it drops
      // privileges (which clears pdeathsig) or runs as a user the emperor may not signal;
      // then the closed IPC channel tells it. With handover it must outlive the emperor.
      { pdeathsig: lease === undefined, credentials: launch.credentials, capabilities: launch.capabilities },
    );
    if (lease !== undefined && this.#handover !== undefined) {
      const pipe = child.process.stdio[LEASE_FD] as import('node:stream').Writable | null | undefined;
      pipe?.on('error', () => {}); // a master that died at once: its lease no longer matters
      pipe?.end(JSON.stringify(lease));
      this.#handover.remember(child, lease, launch.credentials);
    }
    return child;
  }

  /**
   * Opens the handover (runtime directory, control socket) and adopts the masters a
   * previous emperor left. Any failure is one log line, and the emperor runs without
   * handover (its vassals stop with it).
   */
  async #openHandover(): Promise<void> {
    const config = this.#config;
    const dir = runtimeDirOf(config.emperorRuntimeDir, this.#env);
    if (dir === undefined || config.emperorAdoptTimeoutMs === 0) return;
    try {
      const version = this.#env.EMPEROR_CONTROL_VERSION;
      this.#handover = await Handover.open({
        runtimeDir: dir,
        adoptTimeoutMs: config.emperorAdoptTimeoutMs,
        logger: this.#logger,
        uid: this.#identity.uid,
        onUpgrade: () => this.#upgrade(),
        ...(version !== undefined && /^\d+$/.test(version) ? { version: Number(version) } : {}),
      });
    } catch (err) {
      const code = (err as { code?: string }).code;
      this.#logger.error({ code }, `handover off: ${(err as Error).message}; vassals stop with this emperor`);
      return;
    }
    this.#logger.info(
      { control: this.#handover.controlPath, adopt_timeout_ms: config.emperorAdoptTimeoutMs },
      `control socket on ${this.#handover.controlPath}: vassals outlive this emperor by up to ${config.emperorAdoptTimeoutMs / 1000} s (emperor-adopt-timeout) for a new one to adopt them`,
    );
    this.#options.onControlListening?.();
    const { adopted, retire } = await this.#handover.adoptLeft();
    for (const { record, master, flags } of adopted) {
      const vassal = this.#track(new Vassal(record.file, this.#vassalOptions(record.file)));
      vassal.adopt(master, record, flags);
      this.#handover.record(vassal);
    }
    if (adopted.length > 0) this.#logger.info(`adopted ${adopted.length} vassal(s) left by the previous emperor`);
    this.#retiring.push(...retire);
  }

  /** Stops the old masters being replaced, once their successors have been started. */
  #retireOld(): void {
    for (const old of this.#retiring) {
      this.#logger.info({ vassal: old.vassal, master_pid: old.master.pid }, `vassal ${old.vassal}: stopping its old master (pid ${old.master.pid}) gracefully`);
      void old.master.stop({ signal: 'SIGTERM', mercyMs: VASSAL_STOP_MERCY_MS }).then(() => {
        this.#logger.info({ vassal: old.vassal, master_pid: old.master.pid }, `vassal ${old.vassal}: its old master (pid ${old.master.pid}) is gone`);
      });
    }
  }

  /**
   * The options of `file`'s vassal; with `emperor-on-demand-*`, its on-demand socket when
   * it has one. A socket name that cannot be had (the command fails, the name is no
   * address) is returned as `refused`: the vassal waits for its file to change.
   */
  #vassalOptions(file: VassalFile): ConstructorParameters<typeof Vassal>[1] & { readonly refused?: string } {
    const options = {
      spawn: this.#spawn,
      logger: this.#logger,
      throttleMs: this.#config.emperorThrottleMs,
      maxThrottleMs: this.#config.emperorMaxThrottleMs,
    };
    const how = this.#config.emperorOnDemand;
    if (how === undefined) return options;
    try {
      const found = onDemandSocketName(file, how);
      if ('problem' in found) return { ...options, refused: `${vassalOrigin(file)}: ${found.problem}` };
      if (found.name === undefined) return options;
      return { ...options, onDemand: new OnDemandSocket(found.name, `${vassalOrigin(file)}: on-demand socket "${found.name}"`) };
    } catch (err) {
      return { ...options, refused: `${vassalOrigin(file)}: ${(err as Error).message}` };
    }
  }

  /** Manages `vassal` from now on: its events keep the lease, stats and systemd up to date. */
  #track(vassal: Vassal): Vassal {
    this.#vassals.set(vassal.name, vassal);
    vassal.on('change', () => {
      // No master runs on demand or after an idle exit: nothing for a next emperor to adopt.
      if (vassal.state === 'on-demand' || vassal.state === 'idle') this.#handover?.forget(vassal.name);
      else this.#handover?.record(vassal);
      this.#onVassalChange();
    });
    vassal.once('dead', () => {
      if (this.#vassals.get(vassal.name) === vassal) {
        this.#vassals.delete(vassal.name);
        this.#handover?.forget(vassal.name);
      }
      this.#onVassalChange();
      // uWSGI's fast restart: a file that came back (or changed owner) is started at once.
      this.#scan();
    });
    return vassal;
  }

  /** Starts watching, spawns the vassals found, and serves stats when configured. */
  async start(): Promise<void> {
    const config = this.#config;
    await this.#openHandover();
    for (const spec of config.emperor) {
      const source = createSource(spec, {
        freqMs: config.emperorFreqMs,
        pg: {
          channel: config.emperorPgChannel, tyrant: config.emperorTyrant, inherit: config.vassalsInherit, logger: this.#logger, identity: this.#identity,
          ...(this.#handover === undefined ? {} : { handoverDir: this.#handover.runtimeDir }),
        },
        ownerOfLink: config.emperorTyrant && config.emperorTyrantNofollow,
        onError: (err) => this.#logger.warn(`watching ${spec} failed (${err.message}); rescanning every ${config.emperorFreqMs / 1000} s`),
        onSkip: (path, reason) => this.#logger.warn({ file: path }, `${path}: ${reason}`),
        onSettling: (path, waitMs) => this.#logger.debug({ file: path }, `${path}: modified less than ${SETTLE_MS} ms ago, maybe still being written; read in ${Math.ceil(waitMs)} ms`),
      });
      source.on('change', () => this.#scan());
      this.#sources.push(source);
      source.start();
    }
    const monitors = this.#sources.map((s) => s.monitor);
    this.#logger.info({ emperor: monitors }, `emperor started, watching ${monitors.join(', ')}`);
    if (config.emperorTyrant) {
      this.#logger.info(
        `tyrant mode: each vassal runs as the owner of its file${config.emperorTyrantNofollow ? ' (of the symlink itself, emperor-tyrant-nofollow)' : ''}; files owned by uid 0 or gid 0 are refused`,
      );
      const me = this.#identity;
      if (!me.canSwitchUsers) {
        this.#logger.warn(`tyrant mode without root or the setuid and setgid capabilities (uid ${me.uid}): only files owned by uid ${me.uid} gid ${me.gid} can run`);
      }
    }
    this.#logIdentity();
    this.#scan();
    this.#retireOld();
    if (config.emperorRequiredHeartbeatMs > 0) this.#checkHeartbeats();
    await this.#serveStats();
    // Every vassal found at start has been spawned (not necessarily ready: one slow or
    // broken app must not hold the whole unit in "activating").
    this.#notifier?.ready(this.#statusLine());
  }

  /**
   * `emperor-required-heartbeat`: kills the masters that are overdue (uWSGI checks on every
   * loop of its emperor), then sleeps until the next one can be (`nextHeartbeatCheck`), so
   * a master is judged when it is overdue, not up to a second later, and the timer costs
   * an idle emperor one wake-up per heartbeat period instead of one a second.
   */
  #checkHeartbeats(): void {
    const requiredMs = this.#config.emperorRequiredHeartbeatMs;
    const now = Date.now();
    for (const vassal of this.#vassals.values()) vassal.checkHeartbeat(requiredMs);
    const next = nextHeartbeatCheck(Array.from(this.#vassals.values(), (v) => v.lastHeartbeat), now, requiredMs);
    this.#heartbeatTimer = setTimeout(() => this.#checkHeartbeats(), next - now);
  }

  /** Serves `emperor-stats` and `stats`. */
  async #serveStats(): Promise<void> {
    const config = this.#config;
    // `stats` in the emperor's file serves the same document as `emperor-stats`, so the
    // address an operator wrote for uWSGI answers; with both set, both do.
    const addresses: ['emperor-stats' | 'stats', ListenAddress | undefined, number | undefined][] = [
      ['emperor-stats', config.emperorStats, this.#listenFds.emperorStats],
      ['stats', config.stats, this.#listenFds.stats],
    ];
    for (const [option, address, fd] of addresses) {
      if (address === undefined) continue;
      const server = await serveStats(address, () => renderStats(this.stats(), config.statsMinified), {
        http: config.statsHttp,
        metrics: emperorMetrics(() => this.stats()),
        fd,
      });
      this.#stats.push(server);
      this.#logger.info(`emperor stats server on ${server.address}${option === 'stats' ? ' (stats)' : ''}`);
    }
  }

  /**
   * `emperor upgrade`: starts this emperor's command line anew, waits until it listens
   * on the control socket, then hands the vassals over and exits (see upgrade.ts).
   * Resolves with the new emperor's pid.
   * @throws UpgradeError when it cannot (the old emperor runs on, its sockets reopened)
   */
  async #upgrade(): Promise<number> {
    if (this.#shuttingDown !== undefined || this.#handingOver !== undefined) throw new UpgradeError('the emperor is stopping');
    if (this.#upgrading) throw new UpgradeError('an upgrade is already under way');
    if (this.#options.launched === true) {
      throw new UpgradeError('an emperor started through the privilege-drop launcher (uid in its configuration, started as root) cannot start itself again: restart it instead (its vassals are adopted)');
    }
    const handover = this.#handover;
    if (handover === undefined) throw new UpgradeError('this emperor has no handover');
    this.#upgrading = true;
    this.#logger.info(`upgrade requested: starting a new emperor (${process.argv.slice(1).join(' ')})`);
    // The new emperor binds the same addresses: let go of them first.
    await Promise.all(this.#stats.splice(0).map((server) => server.close()));
    await handover.close();
    let pid: number;
    try {
      pid = await startSuccessor(this.#env);
    } catch (err) {
      this.#logger.error({ code: (err as { code?: string }).code }, `upgrade failed: ${(err as Error).message}`);
      await handover.reopen();
      await this.#serveStats();
      this.#upgrading = false;
      throw err;
    }
    this.#logger.info({ new_pid: pid }, `upgrade: the new emperor (pid ${pid}) listens on the control socket; handing ${this.#vassals.size} vassal(s) over to it`);
    this.#notifier?.mainPid(pid, `handing over to pid ${pid}`);
    setImmediate(() => void this.handOver());
    return pid;
  }

  /**
   * Exits without stopping the vassals, for a next emperor to adopt them: closes the
   * sources, the stats servers and the control socket, keeps every lease, then calls
   * `onHandedOver`. Their masters, once this process is gone, wait up to
   * `emperor-adopt-timeout` for the next emperor. Idempotent.
   * @throws UpgradeError when this emperor has no handover (its vassals would die with it)
   */
  handOver(): Promise<void> {
    if (this.#handover === undefined) return Promise.reject(new UpgradeError('this emperor has no handover; stop it instead'));
    this.#handingOver ??= (async () => {
      for (const source of this.#sources) source.close('handover');
      // Idle on-demand sockets close; the next emperor binds them again.
      for (const vassal of this.#vassals.values()) vassal.releaseOnDemand();
      if (this.#settleTimer !== undefined) clearTimeout(this.#settleTimer);
      if (this.#heartbeatTimer !== undefined) clearTimeout(this.#heartbeatTimer);
      await Promise.all(this.#stats.splice(0).map((server) => server.close()));
      await this.#handover?.close();
      for (const vassal of this.#vassals.values()) this.#handover?.record(vassal);
      await this.#notifier?.close();
      this.#logger.info(`emperor exiting; ${this.#vassals.size} vassal(s) keep serving for the next emperor to adopt`);
      this.#options.onHandedOver?.();
    })();
    return this.#handingOver;
  }

  /** True when this emperor can hand its vassals over (a runtime directory and `emperor-adopt-timeout` > 0). */
  get canHandOver(): boolean {
    return this.#handover !== undefined;
  }

  /** One line at start when the emperor is not root: who it is and what that allows. */
  #logIdentity(): void {
    const me = this.#identity;
    if (me.uid === 0) return;
    const name = userName(me.uid) ?? String(me.uid);
    const caps = me.capabilities.length === 0 ? 'no capabilities' : `capabilities ${me.capabilities.join(', ')}`;
    this.#logger.info(
      { uid: me.uid, gid: me.gid, capabilities: me.capabilities },
      `emperor running as ${name} (uid ${me.uid} gid ${me.gid}) with ${caps}: ` +
        (me.canSwitchUsers ? 'vassals start as their own users, with no capabilities' : `every vassal runs as ${name}`),
    );
  }

  #statusLine(): string {
    return statusLine([...this.#vassals.values()].map((v) => v.state), this.#refused.size);
  }

  /** A vassal changed state: refresh systemd's STATUS=, and finish a reload once none is reloading. */
  #onVassalChange(): void {
    if (this.#notifier === undefined) return;
    if (this.#reloading && ![...this.#vassals.values()].some((v) => v.state === 'reloading')) {
      this.#reloading = false;
      this.#notifier.ready(this.#statusLine());
      return;
    }
    this.#notifier.status(this.#statusLine());
  }

  /** Drops the files tyrant mode refuses from `desired`, logging each refusal once. */
  #applyTyranny(desired: Map<string, VassalFile>): void {
    const before = this.#refused.size;
    for (const name of this.#refused.keys()) if (!desired.has(name)) this.#refused.delete(name);
    for (const [name, file] of desired) {
      const verdict = judgeTyrant(file, this.#tyrantOptions());
      if (verdict.ok) {
        if (this.#refused.delete(name)) this.#logger.info(`${vassalOrigin(file)}: now ${file.kind === 'row' ? 'runs as' : 'owned by'} uid ${file.uid} gid ${file.gid}; tyrant mode allows it`);
        continue;
      }
      desired.delete(name);
      const judged = `${file.uid}:${file.gid}:${file.fingerprint.ino}:${file.fingerprint.mtimeMs}`;
      if (this.#refused.get(name) === judged) continue;
      this.#refused.set(name, judged);
      this.#logger.error({ code: verdict.error.code, file: file.path, uid: file.uid, gid: file.gid }, verdict.error.message);
    }
    if (this.#refused.size !== before) this.#onVassalChange();
  }

  /** One reconciliation pass over every source. */
  #scan(): void {
    if (this.#shuttingDown !== undefined || this.#handingOver !== undefined) return;
    const found: VassalFile[] = [];
    let settleInMs = 0;
    for (const source of this.#sources) {
      const scanned = source.scan();
      if (scanned.settleInMs > 0) settleInMs = settleInMs === 0 ? scanned.settleInMs : Math.min(settleInMs, scanned.settleInMs);
      found.push(...scanned.files.values());
      // Not read yet (a database): the vassals adopted from it run on as they are.
      if (scanned.unlisted === true) {
        for (const vassal of this.#vassals.values()) if (vassal.file.monitor === source.monitor) found.push(vassal.file);
      }
    }
    const desired = this.#withoutCollisions(found);
    if (this.#config.emperorTyrant) this.#applyTyranny(desired);
    for (const action of reconcile(desired, this.#vassals, { tyrant: this.#config.emperorTyrant })) this.#apply(action);
    // A file still being written: look again the moment it has been quiet long enough.
    if (settleInMs > 0 && this.#settleTimer === undefined) {
      this.#settleTimer = setTimeout(() => {
        this.#settleTimer = undefined;
        this.#scan();
      }, settleInMs);
    }
  }

  /**
   * The vassals by name, one per name: when two sources (two directories, a directory and
   * a database) have the same name, the one already running keeps it, else the first
   * source in `emperor` order; the other is refused with one error line, logged again
   * only when what collides changes.
   */
  #withoutCollisions(found: readonly VassalFile[]): Map<string, VassalFile> {
    const desired = new Map<string, VassalFile>();
    const running = (file: VassalFile): boolean => this.#vassals.get(file.name)?.file.monitor === file.monitor;
    for (const file of found) {
      const held = desired.get(file.name);
      if (held === undefined || (!running(held) && running(file))) desired.set(file.name, file);
    }
    const collisions = new Map<string, string>();
    for (const file of found) {
      const kept = desired.get(file.name);
      if (kept === undefined || kept === file) continue;
      const key = `${file.name}\0${vassalOrigin(file)}`;
      const message = `${vassalOrigin(file)}: refused: a vassal named ${file.name} already comes from ${vassalOrigin(kept)}; vassal names must be unique across every emperor source (rename one)`;
      collisions.set(key, message);
      if (this.#collisions.get(key) !== message) this.#logger.error({ vassal: file.name, monitor: file.monitor }, message);
    }
    this.#collisions = collisions;
    return desired;
  }

  #apply(action: ReconcileAction): void {
    switch (action.kind) {
      case 'start': {
        const options = this.#vassalOptions(action.file);
        const vassal = this.#track(new Vassal(action.file, options));
        if (options.refused === undefined) vassal.start();
        else vassal.refuse(options.refused);
        return;
      }
      case 'reload': {
        const vassal = this.#vassals.get(action.file.name);
        if (vassal !== undefined && this.#config.emperorOnDemand !== undefined) {
          // Into or out of on-demand mode, or another socket: stopped, then started anew by
          // the scan after it is gone (uWSGI's `uwsgi_emperor_simple_do` stops it too).
          const options = this.#vassalOptions(action.file);
          if (options.refused !== undefined || options.onDemand?.name !== vassal.onDemand?.name) {
            this.#logger.info({ file: action.file.path }, `vassal ${vassal.name}: its on-demand socket changed ("${vassal.onDemand?.name ?? ''}" -> "${options.onDemand?.name ?? ''}"); stopping it to start it again`);
            void vassal.stop();
            return;
          }
        }
        vassal?.reload(action.file);
        if (vassal !== undefined) this.#handover?.record(vassal);
        return;
      }
      case 'stop': {
        const vassal = this.#vassals.get(action.name);
        if (vassal === undefined) return;
        if (action.reason === 'source-changed') {
          this.#logger.warn({ file: vassal.file.path }, `vassal ${vassal.name} no longer comes from ${vassalOrigin(vassal.file)}; stopping it, to start it again from where its name is found now`);
        }
        if (action.reason === 'owner-changed') {
          this.#logger.warn(
            { file: vassal.file.path },
            `${vassalOrigin(vassal.file)}: owner changed from uid ${vassal.file.uid} gid ${vassal.file.gid}; stopping vassal ${vassal.name}, which tyrant mode ran as the old owner (it starts again as the new owner if allowed)`,
          );
        }
        void vassal.stop();
        return;
      }
      default: {
        const never: never = action;
        void never;
      }
    }
  }

  /** SIGHUP: every vassal reloads gracefully. */
  reloadAll(): void {
    this.#logger.info('reloading every vassal');
    this.#reloading = true;
    this.#notifier?.reloading();
    for (const vassal of this.#vassals.values()) vassal.reloadInPlace();
    this.#onVassalChange(); // READY=1 at once when no vassal had anything to reload
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
    this.#notifier?.stopping(this.#statusLine());
    for (const source of this.#sources) source.close();
    if (this.#settleTimer !== undefined) clearTimeout(this.#settleTimer);
    if (this.#heartbeatTimer !== undefined) clearTimeout(this.#heartbeatTimer);
    // Set before the first stop: a vassal that was not running dies at once, and its
    // 'dead' handler's scan must not start it again (nor any other).
    let stopped: () => void = () => {};
    this.#shuttingDown = new Promise<void>((resolve) => {
      stopped = resolve;
    });
    void (async () => {
      await Promise.all([...this.#vassals.values()].map((v) => v.stop()));
      await Promise.all(this.#retiring.map((r) => r.master.exited));
      await this.#handover?.close();
      await Promise.all(this.#stats.map((server) => server.close()));
      await this.#notifier?.close();
      this.#logger.info('emperor stopped');
    })().then(stopped);
    return this.#shuttingDown;
  }

  /** The emperor's stats document (uWSGI's shape plus our fields; see {@link emperorStats}). */
  stats(): EmperorStats {
    return emperorStats(this.#vassals.values(), this.#sources.map((s) => s.monitor), this.#config.emperorTyrant);
  }
}
