/**
 * The emperor's runtime directory and the vassals' leases in it (issue 19).
 *
 * ```
 * RUNTIME_DIR/            0755, the emperor's user: only it can create files here
 *   control.sock          0666: masters of any user connect; the lease proof decides
 *   leases/               0700
 *     shop.ini.lease      0600 JSON: the master's pid and secret, and what the stats
 *                         report about the vassal (born, respawns, last_mod), so that
 *                         the next emperor can adopt it and list it unchanged
 * ```
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTROL_VERSION, RuntimeDirError } from '@emperor/protocol';
import type { SpawnCredentials } from '@emperor/process';
import type { VassalFile } from './source.js';

/** A vassal's lease as the emperor keeps it. Times are epoch ms. */
export interface LeaseRecord {
  readonly v: number;
  readonly vassal: string;
  readonly pid: number;
  /** 32 random bytes, hex, also handed to the master at spawn. */
  readonly secret: string;
  /** The file as the master was last started or reloaded with. */
  readonly file: VassalFile;
  readonly born: number;
  readonly respawns: number;
  readonly lastMod: number;
  readonly firstRun: number;
  readonly lastRun: number;
  /** Who the master was started as, when an emperor that is not root must signal it as that user. */
  readonly credentials?: SpawnCredentials | undefined;
}

/**
 * A lease file as found: of this version (`record` set), or of another one, of which
 * only the vassal and pid are read (enough to replace that master gracefully).
 */
export interface FoundLease {
  readonly vassal: string;
  readonly pid: number;
  readonly v: unknown;
  readonly record: LeaseRecord | undefined;
}

/**
 * Creates `dir` (0755) and its `leases/` (0700) if missing, and checks that only `uid`
 * can write there: a directory others can write would let them put a socket of their
 * own in the control socket's place. @throws RuntimeDirError
 */
export function prepareRuntimeDir(dir: string, uid: number): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    mkdirSync(join(dir, 'leases'), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new RuntimeDirError(`cannot create ${dir}: ${(err as Error).message}`);
  }
  for (const path of [dir, join(dir, 'leases')]) {
    const st = lstatSync(path);
    if (!st.isDirectory()) throw new RuntimeDirError(`${path} is not a directory`);
    if (st.uid !== uid) throw new RuntimeDirError(`${path} belongs to uid ${st.uid}, not to the emperor's uid ${uid}`);
    if ((st.mode & 0o022) !== 0) throw new RuntimeDirError(`${path} is writable by others (mode ${(st.mode & 0o777).toString(8)}); it must be writable by the emperor's user only`);
  }
  chmodSync(join(dir, 'leases'), 0o700);
}

/** Lease files in `RUNTIME_DIR/leases`, one per vassal. */
export class LeaseStore {
  readonly dir: string;

  constructor(runtimeDir: string) {
    this.dir = join(runtimeDir, 'leases');
  }

  #path(vassal: string): string {
    return join(this.dir, `${encodeURIComponent(vassal)}.lease`);
  }

  /**
   * Writes (replaces atomically) a vassal's lease, mode 0600. `version` is the control
   * version its master speaks. @throws the fs error
   */
  write(record: Omit<LeaseRecord, 'v'>, version = CONTROL_VERSION): void {
    const path = this.#path(record.vassal);
    const temp = `${path}.${process.pid}.tmp`;
    writeFileSync(temp, `${JSON.stringify({ v: version, ...record })}\n`, { mode: 0o600 });
    renameSync(temp, path);
  }

  /** Removes a vassal's lease; no error when there is none. */
  remove(vassal: string): void {
    try {
      unlinkSync(this.#path(vassal));
    } catch {
      // gone
    }
  }

  /** Every lease found, and one line per file that could not be read (then removed). */
  readAll(): { leases: FoundLease[]; problems: string[] } {
    const leases: FoundLease[] = [];
    const problems: string[] = [];
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return { leases, problems };
    }
    for (const name of names.sort()) {
      const path = join(this.dir, name);
      if (!name.endsWith('.lease')) {
        if (name.endsWith('.tmp')) this.#drop(path);
        continue;
      }
      try {
        const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
        if (typeof raw.vassal !== 'string' || !Number.isSafeInteger(raw.pid)) {
          problems.push(`${path}: not a lease (no vassal or pid); removed`);
          this.#drop(path);
          continue;
        }
        leases.push({ vassal: raw.vassal, pid: raw.pid as number, v: raw.v, record: raw.v === CONTROL_VERSION && isRecord(raw) ? (raw as unknown as LeaseRecord) : undefined });
      } catch (err) {
        problems.push(`${path}: not a lease (${(err as Error).message}); removed`);
        this.#drop(path);
      }
    }
    return { leases, problems };
  }

  #drop(path: string): void {
    try {
      unlinkSync(path);
    } catch {
      // gone
    }
  }
}

function isRecord(raw: Record<string, unknown>): boolean {
  const file = raw.file as Record<string, unknown> | undefined;
  return typeof raw.secret === 'string' && typeof file === 'object' && file !== null && typeof file.path === 'string' && typeof file.fingerprint === 'object' &&
    ['born', 'respawns', 'lastMod', 'firstRun', 'lastRun'].every((k) => typeof raw[k] === 'number');
}
