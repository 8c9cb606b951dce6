/**
 * Users, groups and capabilities of processes. Names are looked up with `getent` (the C
 * library's NSS, so LDAP and sssd users work), because Node has no getpwnam; capabilities
 * are read from /proc/PID/status, because Node has no capget.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { PrivilegeError } from '@emperor/protocol';

/** A user or group as a config names it: a name (`www-data`) or a number. */
export type UserOrGroup = string | number;

/** A resolved user. */
export interface UserEntry {
  readonly name: string;
  readonly uid: number;
  /** The user's primary group. */
  readonly gid: number;
}

function getent(db: 'passwd' | 'group' | 'initgroups', key: string): string[] | undefined {
  try {
    const line = execFileSync('getent', [db, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const first = line.split('\n')[0];
    return first ? first.split(db === 'initgroups' ? /\s+/ : ':') : undefined;
  } catch {
    return undefined; // exit 2: not found
  }
}

/**
 * Looks up a user by name or number. A number without a passwd entry is accepted as is
 * (its name is the number, its group the same number), as setuid() would.
 * @throws PrivilegeError when a name has no such user
 */
export function lookupUser(who: UserOrGroup): UserEntry {
  const f = getent('passwd', String(who));
  if (f === undefined || f.length < 4) {
    if (typeof who === 'number') return { name: String(who), uid: who, gid: who };
    throw new PrivilegeError(`uid ${JSON.stringify(who)}: no such user`);
  }
  return { name: f[0] as string, uid: Number(f[2]), gid: Number(f[3]) };
}

/** Looks up a group by name or number. @throws PrivilegeError when a name has no such group */
export function lookupGroup(which: UserOrGroup): number {
  if (typeof which === 'number') return which;
  const f = getent('group', which);
  if (f === undefined || f.length < 3) throw new PrivilegeError(`gid ${JSON.stringify(which)}: no such group`);
  return Number(f[2]);
}

/** A user name for messages: the passwd name of `uid`, or undefined. Never throws. */
export function userName(uid: number): string | undefined {
  const f = getent('passwd', String(uid));
  return f !== undefined && f.length >= 4 ? f[0] : undefined;
}

/**
 * The groups initgroups(3) gives `user` with `gid` added: the groups that list the user as
 * a member, plus `gid`, each once, sorted. What a process dropping to that user with
 * `setgid(gid); initgroups(user, gid); setuid(uid)` ends with (the vassal master's drop,
 * and uWSGI's `uwsgi_as_root`).
 */
export function initGroups(user: string, gid: number): readonly number[] {
  const f = getent('initgroups', user) ?? [];
  const ids = f.slice(1).filter((x) => /^\d+$/.test(x)).map(Number);
  return [...new Set([...ids, gid])].sort((a, b) => a - b);
}

/** The capability sets of a process, as bit masks (bit N is capability N: CAP_SETUID is 7). */
export interface CapabilitySets {
  readonly inheritable: bigint;
  readonly permitted: bigint;
  readonly effective: bigint;
  readonly bounding: bigint;
  readonly ambient: bigint;
}

/**
 * Parses the `CapInh`, `CapPrm`, `CapEff`, `CapBnd` and `CapAmb` lines of a
 * /proc/PID/status text (hex masks). A missing line reads as 0.
 */
export function parseCapabilitySets(statusText: string): CapabilitySets {
  const mask = (field: string): bigint => {
    const m = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(statusText);
    return m === null ? 0n : BigInt(`0x${m[1] ?? '0'}`);
  };
  return { inheritable: mask('CapInh'), permitted: mask('CapPrm'), effective: mask('CapEff'), bounding: mask('CapBnd'), ambient: mask('CapAmb') };
}

/** The capability sets of `pid` (default: this process); all 0 when /proc cannot be read. */
export function readCapabilitySets(pid: number | 'self' = 'self'): CapabilitySets {
  try {
    return parseCapabilitySets(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return parseCapabilitySets('');
  }
}

/** True when capability number `n` is in `mask`. */
export function hasCapability(mask: bigint, n: number): boolean {
  return ((mask >> BigInt(n)) & 1n) === 1n;
}
