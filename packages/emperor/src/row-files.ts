/**
 * Where a database source puts each row's config so that a vassal master can read it: a
 * file per vassal, named by the row (`shop.ini`), in a private directory of the emperor's.
 * The master is started on that file exactly as on a file from a vassal directory, and
 * re-reads it on every reload, after it dropped to the vassal's user: so each file is
 * mode 0600 and owned by the user the master ends up as.
 *
 * uWSGI hands such a config through a pipe instead (`emperor://NAME`, core/emperor.c),
 * which its master asks for again on reload; a file keeps our master unchanged.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, fchownSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigText, readConfigFile, resolveVassalConfig, type ConfigFormat, type Principal } from '@emperor/config';

/** A user and group to give a file to. */
export interface FileOwner {
  readonly uid: number;
  readonly gid: number;
}

/**
 * The directory under which the private row directories are made: systemd's
 * `RuntimeDirectory=` (`$RUNTIME_DIRECTORY`, the first when it lists several), else
 * `/run/emperor` for root, else `$XDG_RUNTIME_DIR`, else the temp directory.
 */
export function runtimeBase(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? 0): string {
  const systemd = env.RUNTIME_DIRECTORY?.split(':')[0];
  if (systemd !== undefined && systemd !== '') return systemd;
  if (uid === 0) return '/run/emperor';
  return env.XDG_RUNTIME_DIR !== undefined && env.XDG_RUNTIME_DIR !== '' ? env.XDG_RUNTIME_DIR : tmpdir();
}

/** One source's directory of row files. */
export class RowFiles {
  /** The directory, `BASE/emperor-pg-XXXXXX`, mode 0711: masters can reach their file, nobody can list the names. */
  readonly dir: string;

  /** Makes the directory (and `base`, mode 0755, if missing). @throws the file system's error */
  constructor(base: string) {
    mkdirSync(base, { recursive: true, mode: 0o755 });
    this.dir = mkdtempSync(join(base, 'emperor-pg-'));
    chmodSync(this.dir, 0o711);
  }

  /** The path of a vassal's file. */
  pathOf(name: string): string {
    return join(this.dir, name);
  }

  /**
   * Writes a vassal's file atomically (a hidden temporary file, renamed over the old
   * one), mode 0600, given to `owner` when set (which needs root or CAP_CHOWN).
   * @throws the file system's error (EPERM from fchown without the right to give files away)
   */
  write(name: string, text: string, owner: FileOwner | undefined): string {
    const path = this.pathOf(name);
    const temporary = join(this.dir, `.${name}.${process.pid}.${Math.random().toString(36).slice(2)}`);
    const fd = openSync(temporary, 'wx', 0o600);
    try {
      writeSync(fd, text);
      if (owner !== undefined) fchownSync(fd, owner.uid, owner.gid);
    } catch (err) {
      closeSync(fd);
      rmSync(temporary, { force: true });
      throw err;
    }
    closeSync(fd);
    renameSync(temporary, path);
    return path;
  }

  /** Removes a vassal's file (a stopping master does not read it). */
  remove(name: string): void {
    rmSync(this.pathOf(name), { force: true });
  }

  /** Removes the directory and every file in it. */
  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Looks a user or group up: `[id, primary gid]` for a user, `[id]` for a group; undefined when unknown. */
export type IdLookup = (db: 'passwd' | 'group', who: Principal) => readonly number[] | undefined;

/** {@link IdLookup} through `getent` (the C library's NSS: LDAP and sssd users too), as the vassal master resolves `uid`/`gid`. */
export const getentLookup: IdLookup = (db, who) => {
  try {
    const line = execFileSync('getent', [db, String(who)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).split('\n')[0] ?? '';
    const fields = line.split(':');
    if (fields.length < 3) return undefined;
    return db === 'passwd' ? [Number(fields[2]), Number(fields[3])] : [Number(fields[2])];
  } catch {
    return undefined;
  }
};

/**
 * The user and group a vassal's master ends up as, read from the config's `uid` and
 * `gid` (inherited files and placeholders included): a `uid` without `gid` means the
 * user's primary group, a `gid` alone keeps the emperor's user (root's, for a root
 * emperor). Undefined when the config sets neither, or cannot be read or resolved: the
 * file stays the emperor's, and the master reports the problem itself.
 *
 * @param path the path the master will read the config from (anchors relative paths and placeholders)
 * @param emperorUid the emperor's own uid, the user of a config with a `gid` alone
 */
export function vassalOwner(
  text: string, path: string, format: ConfigFormat, inherit: readonly string[], lookup: IdLookup = getentLookup, emperorUid = 0,
): FileOwner | undefined {
  let uid: Principal | undefined;
  let gid: Principal | undefined;
  try {
    const sources = [...inherit.map((file) => readConfigFile(file)), parseConfigText(text, path, format)];
    ({ uid, gid } = resolveVassalConfig(sources).config);
  } catch {
    return undefined;
  }
  if (uid === undefined && gid === undefined) return undefined;
  const user = uid === undefined ? undefined : (lookup('passwd', uid) ?? (typeof uid === 'number' ? [uid, uid] : undefined));
  if (uid !== undefined && user === undefined) return undefined;
  const group = gid === undefined ? user?.[1] : (lookup('group', gid)?.[0] ?? (typeof gid === 'number' ? gid : undefined));
  if (group === undefined) return undefined;
  return { uid: user?.[0] ?? emperorUid, gid: group };
}
