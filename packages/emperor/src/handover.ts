/**
 * Apps outlive the emperor (issue 19): the emperor's side of the handover.
 *
 * At spawn, each master gets a lease (control socket path, its own secret, the adopt
 * timeout) on an inherited pipe, and the emperor keeps the same lease in its runtime
 * directory ({@link LeaseStore}). When the emperor goes (crash, restart, upgrade), its
 * masters serve on and knock on the control socket; the next emperor reads the leases,
 * waits briefly for each live master to prove its lease ({@link ControlServer}) and
 * adopts it, with the figures the stats report (born, respawns, last_mod) taken from the
 * lease. Then the emperor reconciles against its sources as usual.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_KEY_FILE, CONTROL_VERSION, UpgradeError, type MasterLease } from '@emperor/protocol';
import { pidAlive, randomHex, signalAsUser, systemClock, type Clock, type JsonLines, type Logger, type SpawnCredentials, type WorkerChild } from '@emperor/process';
import { AdoptedMaster } from './adopted-master.js';
import { ControlServer, type AdoptionFlags } from './control-server.js';
import { LeaseStore, prepareRuntimeDir, type LeaseRecord } from './leases.js';
import type { Vassal } from './vassal.js';

/**
 * How long a new emperor waits for the live masters its leases name before it
 * reconciles, ms: masters knock every 200 ms, so this is many attempts; a master that
 * has not come by then is replaced gracefully.
 */
export const ADOPT_WAIT_MS = 3000;

/** How long a master replacing an older one may retry binding the address that one holds, ms. */
export const REPLACE_BIND_WAIT_MS = 70_000;

/** The runtime directory the emperor uses: `emperor-runtime-dir`, else systemd's `$RUNTIME_DIRECTORY` (its first entry). */
export function runtimeDirOf(configured: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (configured !== undefined) return configured;
  const fromSystemd = env.RUNTIME_DIRECTORY?.split(':')[0];
  return fromSystemd === undefined || fromSystemd === '' ? undefined : fromSystemd;
}

/** A master adopted at start, for the emperor to give a {@link Vassal}. */
export interface Adoption {
  readonly record: LeaseRecord;
  readonly master: AdoptedMaster;
  readonly flags: AdoptionFlags;
}

/** A master of another version (or one that did not come), to be replaced gracefully. */
export interface Retiree {
  readonly vassal: string;
  readonly master: AdoptedMaster;
}

/** Options of {@link Handover.open}. */
export interface HandoverOptions {
  readonly runtimeDir: string;
  /** `emperor-adopt-timeout`, ms (> 0). */
  readonly adoptTimeoutMs: number;
  readonly logger: Logger;
  /** The emperor's uid: the only one that may own the runtime directory. */
  readonly uid: number;
  /** @default systemClock */
  readonly clock?: Clock;
  /** @default ADOPT_WAIT_MS */
  readonly adoptWaitMs?: number;
  /** `emperor upgrade` asked (with the right key): resolves with the new emperor's pid. */
  readonly onUpgrade?: () => Promise<number>;
  /**
   * The control version this emperor's masters speak, written in their leases. Tests set
   * it (`EMPEROR_CONTROL_VERSION`, which masters read too) to leave masters of an older
   * version behind. @default CONTROL_VERSION
   */
  readonly version?: number;
}

interface Known {
  readonly secret: string;
  readonly credentials: SpawnCredentials | undefined;
}

/** True when `pid` is, as far as /proc shows, a vassal master (its title is `emperor vassal NAME`). */
function looksLikeMaster(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').startsWith('emperor vassal ');
  } catch {
    return pidAlive(pid); // hidden from us (ProtectProc=invisible): the lease is all we have
  }
}

/** The emperor's side of the handover; see the module comment. */
export class Handover {
  readonly runtimeDir: string;
  readonly controlPath: string;
  readonly leases: LeaseStore;
  readonly #options: HandoverOptions;
  readonly #clock: Clock;
  #server: ControlServer | undefined;
  /** Masters this emperor spawned or adopted, by handle: their secrets. */
  readonly #known = new WeakMap<WorkerChild, Known>();
  /** Leases found at start whose master has not come yet, by vassal. */
  readonly #waiting = new Map<string, { readonly record: LeaseRecord; readonly done: (adoption: Adoption) => void }>();
  /** Adopted masters by vassal, to take a new connection from one (its socket dropped). */
  readonly #adopted = new Map<string, AdoptedMaster>();
  /** Vassals whose next master must wait for the old one's sockets. */
  readonly #bindWait = new Set<string>();
  /** Lease write failures already said, by vassal. */
  readonly #writeFailed = new Set<string>();

  private constructor(options: HandoverOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.runtimeDir = options.runtimeDir;
    this.controlPath = join(options.runtimeDir, 'control.sock');
    this.leases = new LeaseStore(options.runtimeDir);
  }

  /**
   * Prepares the runtime directory and listens on the control socket.
   * @throws RuntimeDirError for a directory that cannot be trusted; Error when another
   *   emperor answers on its control socket
   */
  static async open(options: HandoverOptions): Promise<Handover> {
    prepareRuntimeDir(options.runtimeDir, options.uid);
    const handover = new Handover(options);
    // A fresh key per emperor, readable by the emperor's user only: `emperor upgrade` reads it.
    await handover.reopen();
    return handover;
  }

  /** Listens on the control socket (again, after {@link close}, e.g. an upgrade that failed). */
  async reopen(): Promise<void> {
    if (this.#server !== undefined) return;
    const options = this.#options;
    const adminKey = randomHex(32);
    writeFileSync(join(options.runtimeDir, ADMIN_KEY_FILE), `${adminKey}\n`, { mode: 0o600 });
    this.#server = await ControlServer.listen({
      path: this.controlPath,
      logger: options.logger,
      adoptTimeoutMs: options.adoptTimeoutMs,
      lookup: (vassal, pid) => this.#lookup(vassal, pid),
      onAdopt: (vassal, pid, channel, flags) => this.#onAdopt(vassal, pid, channel, flags),
      adminKey,
      onUpgrade: options.onUpgrade ?? (() => Promise.reject(new UpgradeError('this emperor cannot upgrade itself'))),
    });
  }

  #lookup(vassal: string, pid: number): { secret: string } | { refused: string } {
    const waiting = this.#waiting.get(vassal);
    if (waiting !== undefined && waiting.record.pid === pid) return { secret: waiting.record.secret };
    const adopted = this.#adopted.get(vassal);
    const known = adopted === undefined ? undefined : this.#known.get(adopted);
    if (adopted !== undefined && known !== undefined && known.secret !== '' && adopted.pid === pid && !adopted.isDead()) return { secret: known.secret };
    return { refused: `this emperor holds no lease for vassal ${JSON.stringify(vassal)} with master pid ${pid}` };
  }

  #onAdopt(vassal: string, pid: number, channel: JsonLines, flags: AdoptionFlags): void {
    const waiting = this.#waiting.get(vassal);
    if (waiting !== undefined && waiting.record.pid === pid) {
      this.#waiting.delete(vassal);
      const master = this.#adoptedMaster(waiting.record);
      master.attach(channel);
      waiting.done({ record: waiting.record, master, flags });
      return;
    }
    const adopted = this.#adopted.get(vassal);
    if (adopted !== undefined && adopted.pid === pid) {
      this.#options.logger.info({ vassal, master_pid: pid }, `vassal ${vassal}: its master (pid ${pid}) reconnected to the control socket`);
      adopted.attach(channel);
      return;
    }
    channel.close('no longer expected');
  }

  #adoptedMaster(record: LeaseRecord): AdoptedMaster {
    const credentials = record.credentials;
    const master = new AdoptedMaster(record.pid, {
      spawnedAt: record.born,
      clock: this.#clock,
      signalAs: credentials === undefined || process.getuid?.() === 0 ? undefined : signalAsUser(record.pid, credentials),
    });
    this.#known.set(master, { secret: record.secret, credentials });
    this.#adopted.set(record.vassal, master);
    void master.exited.then(() => {
      if (this.#adopted.get(record.vassal) === master) this.#adopted.delete(record.vassal);
    });
    return master;
  }

  /**
   * Reads the leases a previous emperor left and adopts every live master that proves
   * its lease within {@link ADOPT_WAIT_MS}. Masters of another lease version, and live
   * ones that did not come, are returned to be replaced gracefully; leases of dead
   * masters are removed.
   */
  async adoptLeft(): Promise<{ adopted: Adoption[]; retire: Retiree[] }> {
    const { logger } = this.#options;
    const { leases, problems } = this.leases.readAll();
    for (const problem of problems) logger.warn(problem);
    const retire: Retiree[] = [];
    const waits: Promise<Adoption | undefined>[] = [];
    for (const lease of leases) {
      if (!pidAlive(lease.pid)) {
        logger.info({ vassal: lease.vassal, master_pid: lease.pid }, `vassal ${lease.vassal}: its master (pid ${lease.pid}) did not outlive the last emperor; it starts anew`);
        this.leases.remove(lease.vassal);
        continue;
      }
      if (lease.record === undefined) {
        this.leases.remove(lease.vassal);
        if (!looksLikeMaster(lease.pid)) continue;
        logger.warn(
          { vassal: lease.vassal, master_pid: lease.pid, version: lease.v },
          `vassal ${lease.vassal}: its master (pid ${lease.pid}) speaks control version ${JSON.stringify(lease.v)}, this emperor speaks ${CONTROL_VERSION}: replacing it gracefully (a new master first, then the old one stops)`,
        );
        retire.push({ vassal: lease.vassal, master: this.#adoptedMaster({ ...placeholderRecord(lease.vassal, lease.pid) }) });
        continue;
      }
      const record = lease.record;
      waits.push(new Promise<Adoption | undefined>((resolve) => {
        const timer = this.#clock.setTimeout(() => {
          if (this.#waiting.get(record.vassal)?.record !== record) return;
          this.#waiting.delete(record.vassal);
          this.leases.remove(record.vassal);
          if (pidAlive(record.pid) && looksLikeMaster(record.pid)) {
            logger.warn(
              { vassal: record.vassal, master_pid: record.pid },
              `vassal ${record.vassal}: its master (pid ${record.pid}) is alive but did not come to be adopted within ${(this.#options.adoptWaitMs ?? ADOPT_WAIT_MS) / 1000} s; replacing it gracefully`,
            );
            retire.push({ vassal: record.vassal, master: this.#adoptedMaster(record) });
          }
          resolve(undefined);
        }, this.#options.adoptWaitMs ?? ADOPT_WAIT_MS);
        this.#waiting.set(record.vassal, {
          record,
          done: (adoption) => {
            this.#clock.clearTimeout(timer);
            resolve(adoption);
          },
        });
      }));
    }
    const adopted = (await Promise.all(waits)).filter((a): a is Adoption => a !== undefined);
    for (const r of retire) this.#bindWait.add(r.vassal);
    return { adopted, retire };
  }

  /**
   * The lease for a master about to be spawned for `vassal`; call {@link remember} with
   * its handle once spawned.
   */
  leaseFor(vassal: string): MasterLease {
    const bindWaitMs = this.#bindWait.delete(vassal) ? REPLACE_BIND_WAIT_MS : 0;
    return { v: CONTROL_VERSION, vassal, control: this.controlPath, secret: randomHex(32), adoptTimeoutMs: this.#options.adoptTimeoutMs, bindWaitMs };
  }

  /** Keeps the secret of a master just spawned with `lease`. */
  remember(child: WorkerChild, lease: MasterLease, credentials: SpawnCredentials | undefined): void {
    this.#known.set(child, { secret: lease.secret, credentials });
  }

  /** Writes `vassal`'s lease as it stands now (after a start, reload or respawn). Failures are logged once per vassal. */
  record(vassal: Vassal): void {
    const master = vassal.master;
    const known = master === undefined ? undefined : this.#known.get(master);
    if (master === undefined || master.isDead() || known === undefined) return;
    try {
      this.leases.write({
        vassal: vassal.name,
        pid: master.pid,
        secret: known.secret,
        file: vassal.file,
        born: vassal.born,
        respawns: vassal.respawns,
        lastMod: vassal.lastMod,
        firstRun: vassal.firstRun,
        lastRun: vassal.lastRun,
        credentials: known.credentials,
      }, this.#options.version);
      this.#writeFailed.delete(vassal.name);
    } catch (err) {
      if (this.#writeFailed.has(vassal.name)) return;
      this.#writeFailed.add(vassal.name);
      this.#options.logger.error(`cannot write the lease of vassal ${vassal.name} in ${this.leases.dir}: ${(err as Error).message}; a new emperor will not adopt it`);
    }
  }

  /** The vassal is gone: so is its lease. */
  forget(vassal: string): void {
    this.leases.remove(vassal);
  }

  /** Stops listening on the control socket (and removes it). Leases stay. */
  async close(): Promise<void> {
    await this.#server?.close();
    this.#server = undefined;
  }
}

/** A lease record for a master known only by vassal and pid (another version's lease). */
function placeholderRecord(vassal: string, pid: number): LeaseRecord {
  const now = Date.now();
  return {
    v: 0,
    vassal,
    pid,
    secret: '',
    file: { name: vassal, path: '', format: 'ini', monitor: '', fingerprint: { dev: 0, ino: 0, mtimeMs: 0, size: 0, hash: '' }, uid: 0, gid: 0 },
    born: now,
    respawns: 0,
    lastMod: 0,
    firstRun: now,
    lastRun: now,
  };
}
