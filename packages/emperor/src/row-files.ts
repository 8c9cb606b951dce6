/**
 * Where a database source puts each row's config so that a vassal master can read it: a
 * file per vassal, named by the row (`shop.ini`), in a private directory of the emperor's.
 * The master is started on that file exactly as on a file from a vassal directory, and
 * re-reads it on every reload, after it dropped to the vassal's user: so each file is
 * mode 0600 and owned by the user the master ends up as.
 *
 * uWSGI hands such a config through a pipe instead (`emperor://NAME`, core/emperor.c),
 * which its master asks for again on reload; a file keeps our master unchanged.
 *
 * With a handover (issue 19) the masters outlive the emperor, and so must their files: the
 * directory is then a fixed one in the emperor's runtime directory, named by the source
 * ({@link RowFiles.fixed}), which the next emperor opens again and finds them in.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, fchownSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RuntimeDirError } from '@emperor/protocol';
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
  /**
   * The directory: `BASE/emperor-pg-XXXXXX` (made anew, removed at close), or with
   * {@link RowFiles.fixed} `RUNTIME/emperor-pg-HASH`; mode 0711 either way: masters can
   * reach their file, nobody can list the names.
   */
  readonly dir: string;

  /**
   * Makes a fresh directory (and `base`, mode 0755, if missing), or takes `fixed` as it is.
   * @throws the file system's error
   */
  constructor(base: string, fixed?: string) {
    if (fixed !== undefined) {
      this.dir = fixed;
      return;
    }
    mkdirSync(base, { recursive: true, mode: 0o755 });
    this.dir = mkdtempSync(join(base, 'emperor-pg-'));
    chmodSync(this.dir, 0o711);
  }

  /**
   * The directory of a source's row files that outlives this emperor, for a handover:
   * `runtimeDir/emperor-pg-HASH`, HASH from the source's whole `emperor` value (so two
   * sources, or two emperors with other queries, never share one, and the next emperor on
   * the same runtime directory and value finds the files the adopted masters re-read).
   * Made mode 0711 when missing; an existing one must be a directory of this user (not a
   * symlink), as the runtime directory itself is trusted.
   * @param runtimeDir the emperor's runtime directory (`emperor-runtime-dir`), already checked
   * @param uid the emperor's own uid
   * @throws {RuntimeDirError} naming the path when it exists as something else; the file system's errors
   */
  static fixed(runtimeDir: string, value: string, uid: number = process.getuid?.() ?? 0): RowFiles {
    const dir = join(runtimeDir, `emperor-pg-${createHash('sha256').update(value).digest('hex').slice(0, 16)}`);
    try {
      mkdirSync(dir, { mode: 0o711 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const stat = lstatSync(dir);
      if (!stat.isDirectory() || stat.uid !== uid) throw new RuntimeDirError(`${dir} exists but is not a directory of uid ${uid}; remove it`);
    }
    chmodSync(dir, 0o711);
    return new RowFiles(runtimeDir, dir);
  }

  /**
   * Removes every file but those of `keep` (by vassal name): files left by a previous
   * emperor for rows gone since, and temporary files of a write it did not finish.
   * @returns the names of the vassal files removed (not the temporary ones)
   */
  sweep(keep: ReadonlySet<string>): string[] {
    const removed: string[] = [];
    for (const entry of readdirSync(this.dir)) {
      if (keep.has(entry)) continue;
      rmSync(join(this.dir, entry), { recursive: true, force: true });
      if (!entry.startsWith('.')) removed.push(entry);
    }
    return removed;
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
