/**
 * Who the emperor is, and as whom it starts each vassal master.
 *
 * A root emperor starts a master as root (it binds its sockets, then drops to its own
 * `uid`/`gid`), or in tyrant mode directly as its file's owner. An emperor that dropped to
 * a user of its own (`uid`/`gid`/`cap` in its configuration, as uWSGI's emperor.ini does)
 * keeps at most the capabilities `cap` names; it starts every master already as the
 * master's user, through util-linux `setpriv`, with the inheritable and ambient sets
 * cleared, because a non-root → non-root setuid() keeps capabilities (only leaving uid 0
 * clears them, capabilities(7)) and ambient ones survive exec. Masters and workers so run
 * with none. Without CAP_SETUID and CAP_SETGID such an emperor can start vassals only as
 * itself. uWSGI core/emperor.c does the setgid/setgroups/setuid in the forked child instead
 * (Node cannot), and its vassals keep the emperor's inheritable set.
 */
import { capabilityName, capabilityNumber, type CapabilityName } from '@emperor/config';
import { PrivilegeError } from '@emperor/protocol';
import { hasCapability, readCapabilitySets, userName, type CapabilitySets, type SpawnCredentials } from '@emperor/process';

/** The emperor's own identity and what it may do with it. */
export interface EmperorIdentity {
  readonly uid: number;
  readonly gid: number;
  /** Root, or CAP_SETUID and CAP_SETGID in the effective set: it can start a master as any user. */
  readonly canSwitchUsers: boolean;
  /** The capabilities in its effective set (all of them for root). */
  readonly capabilities: readonly CapabilityName[];
}

/** The identity of this process, from its ids and /proc/self/status. */
export function currentIdentity(sets: CapabilitySets = readCapabilitySets()): EmperorIdentity {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const capabilities: CapabilityName[] = [];
  for (let n = 0; n < 64; n++) {
    const name = capabilityName(n);
    if (name !== undefined && hasCapability(sets.effective, n)) capabilities.push(name);
  }
  const switches = hasCapability(sets.effective, capabilityNumber('setuid')) && hasCapability(sets.effective, capabilityNumber('setgid'));
  return { uid, gid, canSwitchUsers: uid === 0 || switches, capabilities };
}

/** The user a master is to run as. */
export interface MasterIdentity {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups: the user's (initgroups) for a `uid` option, none in tyrant mode. */
  readonly groups: readonly number[];
}

/** How the emperor spawns one master: spawn() options and exec-wrapper limits. */
export interface MasterLaunch {
  /** Node's spawn({ uid, gid }): setgroups(0), setgid, setuid in the child. Only a root emperor uses it. */
  readonly spawnIds: { readonly uid: number; readonly gid: number } | undefined;
  /** `setpriv` user change (a non-root emperor with CAP_SETUID/CAP_SETGID). */
  readonly credentials: SpawnCredentials | undefined;
  /** `[]`: clear the inheritable and ambient sets, so the master starts with no capability. */
  readonly capabilities: readonly string[] | undefined;
}

/** What {@link planMasterLaunch} decided. */
export type LaunchPlan = { readonly ok: true; readonly launch: MasterLaunch } | { readonly ok: false; readonly error: PrivilegeError };

/** Options of {@link planMasterLaunch}. */
export interface PlanOptions {
  /** The vassal file, for the refusal message. */
  readonly file: string;
  /** Names for ids in messages. @default userName (getent) */
  readonly nameOf?: (uid: number) => string | undefined;
}

/**
 * Decides how a master is started. `wanted` is the identity it must run as (tyrant mode:
 * the file's owner; otherwise the vassal's `uid`/`gid`, when the emperor is not root), or
 * undefined for "as the emperor" (a root emperor leaves the drop to the master).
 * Refused by a non-root emperor: root, or root's group (that would undo its own drop), and
 * without CAP_SETUID and CAP_SETGID any other user or group. Pure apart from the name
 * lookup for the message.
 */
export function planMasterLaunch(emperor: EmperorIdentity, wanted: MasterIdentity | undefined, options: PlanOptions): LaunchPlan {
  if (emperor.uid === 0) {
    return { ok: true, launch: { spawnIds: wanted === undefined ? undefined : { uid: wanted.uid, gid: wanted.gid }, credentials: undefined, capabilities: undefined } };
  }
  if (wanted === undefined) return { ok: true, launch: { spawnIds: undefined, credentials: undefined, capabilities: [] } };
  if (wanted.uid === 0 || wanted.gid === 0 || wanted.groups.includes(0)) {
    // A root master would have every capability again (exec as uid 0 fills the permitted
    // set), undoing the emperor's own drop; uWSGI's dropped emperor cannot start one either.
    return {
      ok: false,
      error: new PrivilegeError(
        `${options.file}: refused: its uid/gid ask to run it as root (uid ${wanted.uid} gid ${wanted.gid}${wanted.uid !== 0 && wanted.gid !== 0 ? ', root\'s group among its groups' : ''}), ` +
          'and an emperor that dropped its own privileges never starts a vassal as root or with root\'s group. Run the vassal as a user of its own',
      ),
    };
  }
  if (emperor.canSwitchUsers) return { ok: true, launch: { spawnIds: undefined, credentials: wanted, capabilities: [] } };
  if (wanted.uid === emperor.uid && wanted.gid === emperor.gid) return { ok: true, launch: { spawnIds: undefined, credentials: undefined, capabilities: [] } };
  const nameOf = options.nameOf ?? userName;
  const me = nameOf(emperor.uid) ?? `uid ${emperor.uid}`;
  const them = nameOf(wanted.uid);
  return {
    ok: false,
    error: new PrivilegeError(
      `${options.file}: refused: its uid/gid ask to run it as ${them === undefined ? '' : `${them} `}(uid ${wanted.uid} gid ${wanted.gid}), ` +
        `but the emperor runs as ${me} (uid ${emperor.uid} gid ${emperor.gid}) without the setuid and setgid capabilities, so it can start vassals only as ${me}. ` +
        'Add cap = setgid,setuid next to uid in the emperor\'s configuration, or remove uid and gid from this vassal',
    ),
  };
}
