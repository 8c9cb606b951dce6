/**
 * Tyrant mode (`emperor-tyrant`, uWSGI core/emperor.c): every vassal runs as the owner
 * uid/gid of its file, so whoever may write a file in the vassal directory can run code
 * only as themselves. This module judges a file; the emperor spawns the master with the
 * owner's ids, and the master refuses a `uid`/`gid` option that differs from them.
 */
import { readFileSync } from 'node:fs';
import { TyrantError } from '@emperor/protocol';
import { vassalOrigin, type VassalFile, type VassalOriginParts } from './source.js';

/** The identity a vassal is forced to run as. */
export interface TyrantIdentity {
  readonly uid: number;
  readonly gid: number;
}

/** What tyrant mode says about one vassal file. */
export type TyrantVerdict =
  | { readonly ok: true; readonly identity: TyrantIdentity }
  | { readonly ok: false; readonly error: TyrantError };

/** Options of {@link judgeTyrant}. */
export interface JudgeTyrantOptions {
  /** The emperor's own uid and gid. */
  readonly emperorUid: number;
  readonly emperorGid: number;
  /**
   * Whether the emperor can start a vassal as another user or group: root, or an emperor
   * that dropped to its own user keeping CAP_SETUID and CAP_SETGID (`cap = setgid,setuid`).
   * @default emperorUid === 0
   */
  readonly canSwitchUsers?: boolean;
  /** `emperor-tyrant-nofollow`: the file's owner is the symlink's own. */
  readonly nofollow: boolean;
  /** Names for the ids in messages. @default namesFromEtc */
  readonly names?: (uid: number, gid: number) => { user: string | undefined; group: string | undefined };
}

/**
 * Judges a vassal file (or a database row, by its uid and gid columns) in tyrant mode.
 * Refused: a file owned by uid 0 or gid 0 (it would
 * run as root, or with root's group: uWSGI's "invalid permissions"), and, when the emperor
 * cannot switch users (not root, no CAP_SETUID and CAP_SETGID), a file owned by any user
 * or group but the emperor's own (setuid/setgid would fail).
 * Pure apart from the optional name lookup.
 */
export function judgeTyrant(file: Pick<VassalFile, 'path' | 'uid' | 'gid'> & VassalOriginParts, options: JudgeTyrantOptions): TyrantVerdict {
  const { uid, gid } = file;
  const owner = (): string => describeOwner(uid, gid, options.names ?? namesFromEtc);
  const row = file.kind === 'row';
  // A row names its user in its uid and gid columns (uWSGI emperor-pg), a file by its owner.
  const whose = row ? 'its uid and gid columns say' : `${options.nofollow ? 'the symlink' : 'it'} is owned by`;
  if (uid === 0 || gid === 0) {
    return {
      ok: false,
      error: new TyrantError(
        row
          ? `${vassalOrigin(file)}: refused: ${whose} ${owner()}. In tyrant mode a vassal runs as its row's uid and gid, and uid 0 or gid 0 would run it as root; set them to the app's user and group`
          : `${file.path}: refused: ${whose} ${owner()}. In tyrant mode a vassal runs as the owner of its file, ` +
            'and a file owned by uid 0 or gid 0 would run as root; chown it to the app\'s user and group (e.g. chown shop:shop FILE)',
      ),
    };
  }
  const canSwitch = options.canSwitchUsers ?? options.emperorUid === 0;
  if (!canSwitch && (uid !== options.emperorUid || gid !== options.emperorGid)) {
    return {
      ok: false,
      error: new TyrantError(
        `${vassalOrigin(file)}: refused: ${whose} ${owner()}, but the emperor runs as uid ${options.emperorUid} gid ${options.emperorGid} ` +
          'without the setuid and setgid capabilities, and only root (or cap = setgid,setuid next to the emperor\'s uid) can start a vassal as another user or group',
      ),
    };
  }
  return { ok: true, identity: { uid, gid } };
}

function describeOwner(uid: number, gid: number, names: NonNullable<JudgeTyrantOptions['names']>): string {
  const { user, group } = names(uid, gid);
  return `uid ${uid}${user === undefined ? '' : ` (${user})`} gid ${gid}${group === undefined ? '' : ` (${group})`}`;
}

/**
 * Best-effort names from /etc/passwd and /etc/group, for messages only (read when a file
 * is refused, which is logged once). NSS users (LDAP, sssd) show as numbers.
 */
export function namesFromEtc(uid: number, gid: number): { user: string | undefined; group: string | undefined } {
  const lookup = (file: string, id: number): string | undefined => {
    try {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const fields = line.split(':');
        if (fields[2] === String(id)) return fields[0];
      }
    } catch {
      // no such file: numbers only
    }
    return undefined;
  };
  return { user: lookup('/etc/passwd', uid), group: lookup('/etc/group', gid) };
}
