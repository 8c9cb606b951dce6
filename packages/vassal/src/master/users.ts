/**
 * Users and groups, and dropping the master's privileges to the vassal's `uid`/`gid`.
 * Names are looked up with `getent` (the C library's NSS, so LDAP and sssd users work),
 * because Node has no getpwnam.
 */
import { execFileSync } from 'node:child_process';
import { userInfo } from 'node:os';
import type { Principal, VassalConfig } from '@emperor/config';
import { PrivilegeError, TyrantError } from '@emperor/protocol';

// Defined in the error registry (@emperor/protocol errors.ts); re-exported so existing imports keep working.
export { PrivilegeError };

/** A resolved user. */
export interface UserEntry {
  readonly name: string;
  readonly uid: number;
  /** The user's primary group. */
  readonly gid: number;
}

function getent(db: 'passwd' | 'group', key: string): string[] | undefined {
  try {
    const line = execFileSync('getent', [db, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const first = line.split('\n')[0];
    return first ? first.split(':') : undefined;
  } catch {
    return undefined; // exit 2: not found
  }
}

/** Looks up a user by name or number. @throws PrivilegeError when there is no such user. */
export function lookupUser(who: Principal): UserEntry {
  const f = getent('passwd', String(who));
  if (f === undefined || f.length < 4) {
    if (typeof who === 'number') return { name: String(who), uid: who, gid: who };
    throw new PrivilegeError(`uid ${JSON.stringify(who)}: no such user`);
  }
  return { name: f[0] as string, uid: Number(f[2]), gid: Number(f[3]) };
}

/** Looks up a group by name or number. @throws PrivilegeError when there is no such group. */
export function lookupGroup(which: Principal): number {
  if (typeof which === 'number') return which;
  const f = getent('group', which);
  if (f === undefined || f.length < 3) throw new PrivilegeError(`gid ${JSON.stringify(which)}: no such group`);
  return Number(f[2]);
}

/** The ids a vassal asks for, resolved. */
export interface Credentials {
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly user: UserEntry | undefined;
}

/** Resolves `uid`/`gid` options (a uid without gid means the user's primary group). */
export function resolveCredentials(uid: Principal | undefined, gid: Principal | undefined): Credentials {
  const user = uid === undefined ? undefined : lookupUser(uid);
  const g = gid !== undefined ? lookupGroup(gid) : user?.gid;
  return { uid: user?.uid, gid: g, user };
}

/**
 * Drops the current process to `creds`: setgid, the user's supplementary groups
 * (initgroups), then setuid, in that order (the reverse would lose the right to change
 * groups). Without root, asking for anything but the current ids is an error.
 * @throws PrivilegeError
 */
export function dropPrivileges(creds: Credentials): void {
  const { uid, gid, user } = creds;
  if (uid === undefined && gid === undefined) return;
  const myUid = process.getuid?.() ?? 0;
  const myGid = process.getgid?.() ?? 0;
  if (myUid !== 0) {
    if (uid !== undefined && uid !== myUid) {
      throw new PrivilegeError(`uid ${user?.name ?? uid}: running as ${userInfo().username} (uid ${myUid}); switching user needs root`);
    }
    if (gid !== undefined && gid !== myGid && !(process.getgroups?.() ?? []).includes(gid)) {
      throw new PrivilegeError(`gid ${gid}: running as gid ${myGid}; switching group needs root`);
    }
    return;
  }
  // POSIX-only methods; @types/node also lacks initgroups.
  const posix = process as unknown as {
    setgid(id: number): void;
    setuid(id: number): void;
    setgroups(groups: number[]): void;
    initgroups(user: string | number, extraGroup: number): void;
  };
  try {
    if (gid !== undefined) posix.setgid(gid);
    if (uid !== undefined) {
      posix.initgroups(user?.name ?? uid, gid ?? user?.gid ?? uid);
      posix.setuid(uid);
    } else if (gid !== undefined) {
      posix.setgroups([gid]);
    }
  } catch (err) {
    throw new PrivilegeError(`cannot switch to uid ${uid ?? '-'} gid ${gid ?? '-'}: ${(err as Error).message}`, { cause: err });
  }
}

/** The identity tyrant mode forces on a master (`--tyrant-uid`/`--tyrant-gid` from the emperor). */
export interface ForcedIdentity {
  readonly uid: number;
  readonly gid: number;
}

/**
 * Tyrant mode: the vassal runs as its file's owner, whatever its options say. A `uid` or
 * `gid` that resolves to anything else (written in the file, inherited through
 * `vassals-inherit`, or produced by a placeholder: all are resolved by now) is refused
 * with a message naming where it came from, instead of uWSGI's later "cannot setgid() as
 * non-root user". Asking for the owner's own ids is fine.
 * @throws TyrantError
 */
export function enforceTyrant(config: Pick<VassalConfig, 'uid' | 'gid' | 'resolved' | 'name'>, forced: ForcedIdentity): void {
  const check = (option: 'uid' | 'gid', asked: Principal | undefined, resolveId: (p: Principal) => number, want: number): void => {
    if (asked === undefined) return;
    let id: number | undefined;
    try {
      id = resolveId(asked);
    } catch {
      id = undefined; // no such user or group: certainly not the owner
    }
    if (id === want) return;
    const where = config.resolved.findLast((o) => o.name === option);
    const prefix = where === undefined ? config.name : where.line > 0 ? `${where.file}:${where.line}` : where.file;
    throw new TyrantError(
      `${prefix}: ${option}: tyrant mode runs this vassal as the owner of ${config.name} (uid ${forced.uid}, gid ${forced.gid}); ` +
        `${option} = ${JSON.stringify(String(asked))}${id === undefined ? ' (unknown)' : ` is ${id}`}. Remove the option, or chown the vassal file to the user it should run as`,
    );
  };
  check('uid', config.uid, (p) => lookupUser(p).uid, forced.uid);
  check('gid', config.gid, lookupGroup, forced.gid);
}
