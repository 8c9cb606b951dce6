/**
 * Users and groups, and dropping the master's privileges to the vassal's `uid`/`gid`.
 * Names are looked up with `getent` (the C library's NSS, so LDAP and sssd users work),
 * because Node has no getpwnam.
 */
import { userInfo } from 'node:os';
import type { Principal, VassalConfig } from '@emperor/config';
import { PrivilegeError, TyrantError } from '@emperor/protocol';
import { lookupGroup, lookupUser, type UserEntry } from '@emperor/process';

// Defined in the error registry (@emperor/protocol errors.ts); re-exported so existing imports keep working.
export { PrivilegeError };
// The lookups live in @emperor/process (the emperor resolves a vassal's user too); re-exported for existing imports.
export { lookupGroup, lookupUser, type UserEntry };

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
