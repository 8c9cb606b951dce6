/**
 * `uid`, `gid` and `cap` in the emperor's own configuration: the emperor binds and writes
 * what needs root, then runs on as that user keeping only the capabilities `cap` names,
 * as uWSGI's emperor does (core/uwsgi.c `uwsgi_as_root` binds first, `uwsgi_apply_cap`
 * sets PR_SET_KEEPCAPS and the capability sets around its setuid()).
 *
 * Node can neither keep capabilities across setuid() (no prctl, no capset) nor replace
 * itself with exec(). So the process started as root (the launcher) does the root part:
 * it binds the stats and metrics sockets (a unix socket in a root-owned directory, a port
 * below 1024), writes the pidfile, and starts the emperor proper through util-linux
 * `setpriv --reuid --regid --groups --inh-caps +CAPS --ambient-caps +CAPS`, handing it the
 * bound sockets as inherited descriptors 3, 4, … and its configuration in
 * {@link HANDOFF_ENV}. Ambient capabilities survive that exec as the new process's
 * permitted and effective sets; a plain setuid() would have cleared them. The launcher
 * then drops to the same user itself (losing every capability), passes on the signals it
 * gets (SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR2) and exits with the emperor's
 * exit code, so a terminal, systemd (its main pid) or a container runtime (pid 1) sees one
 * long-lived process as before. The emperor dies with it (pdeathsig SIGTERM).
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { capabilityNumber, formatListenAddress, type CapabilityName, type EmperorConfig, type ListenAddress } from '@emperor/config';
import {
  bindListenSocket,
  canSetPdeathsig,
  hasCapability,
  initGroups,
  lookupGroup,
  lookupUser,
  readCapabilitySets,
  spawnChild,
  type CapabilitySets,
  type Logger,
} from '@emperor/process';
import { ExitCode, InternalError, MissingToolError, PrivilegeError } from '@emperor/protocol';

/** The environment variable that carries a {@link Handoff} from the launcher to the emperor it starts. */
export const HANDOFF_ENV = 'EMPEROR_HANDOFF';

/** What the launcher hands the emperor it started as the configured user. */
export interface Handoff {
  readonly v: 1;
  /** The configuration the launcher loaded (the emperor may not be able to read the file). */
  readonly config: EmperorConfig;
  /** Inherited descriptors of the sockets the launcher bound, by option. */
  readonly fds: HandedFds;
}

/** Descriptors of bound sockets, by the option they were bound for. */
export interface HandedFds {
  readonly emperorStats?: number;
  readonly stats?: number;
  readonly emperorPrometheus?: number;
}

/**
 * Reads the {@link Handoff} from `env` and removes it, so the vassal masters never see it.
 * @returns undefined when this process was not started by the launcher
 * @throws InternalError when the variable is set but not a handoff (a bug, or set by hand)
 */
export function takeHandoff(env: NodeJS.ProcessEnv = process.env): Handoff | undefined {
  const text = env[HANDOFF_ENV];
  if (text === undefined) return undefined;
  delete env[HANDOFF_ENV];
  let parsed: Partial<Handoff>;
  try {
    parsed = JSON.parse(text) as Partial<Handoff>;
  } catch (err) {
    throw new InternalError(`${HANDOFF_ENV} is not JSON; it is set by the emperor for the emperor it starts, never by hand`, { cause: err });
  }
  if (parsed.v !== 1 || typeof parsed.config !== 'object' || parsed.config === null || typeof parsed.fds !== 'object' || parsed.fds === null) {
    throw new InternalError(`${HANDOFF_ENV} is not a handoff; it is set by the emperor for the emperor it starts, never by hand`);
  }
  // JSON has no `undefined`: unset optional fields come back absent, which reads the same.
  return parsed as Handoff;
}

/** The user, groups and capabilities the emperor drops to. */
export interface DropPlan {
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups: initgroups(user, gid), as uWSGI and the vassal master do. */
  readonly groups: readonly number[];
  readonly capabilities: readonly CapabilityName[];
}

/** Who is deciding: this process's ids and capabilities (injected by tests). */
export interface CurrentProcess {
  readonly uid: number;
  readonly gid: number;
  readonly capabilities: CapabilitySets;
}

/** What {@link planEmperorDrop} decided. */
export type DropDecision =
  /** Nothing to drop: no `uid`, or already running as it. `warnings` say what does not apply. */
  | { readonly kind: 'stay'; readonly warnings: readonly string[] }
  | { readonly kind: 'drop'; readonly plan: DropPlan };

/**
 * Decides whether the emperor drops privileges. As root with a `uid` other than root: drop
 * to it, keeping `cap` (each must be in the bounding set, or setpriv could not raise it).
 * Already running as that user (systemd `User=` with `AmbientCapabilities=`): stay, and
 * warn about each capability of `cap` it does not have. Not root and asked for another
 * user: refused.
 * @throws PrivilegeError an unknown user or group, another user without root, a capability outside the bounding set
 * @throws MissingToolError setpriv (util-linux) is not installed
 */
export function planEmperorDrop(config: EmperorConfig, me: CurrentProcess = currentProcess()): DropDecision {
  if (config.uid === undefined) return { kind: 'stay', warnings: [] };
  const located = <T>(option: 'uid' | 'gid', value: string | number, lookup: () => T): T => {
    try {
      return lookup();
    } catch (err) {
      const fix = option === 'uid' ? `create it (useradd --system --no-create-home ${String(value)})` : `create it (groupadd --system ${String(value)})`;
      throw new PrivilegeError(`${where(config, option)}: no such ${option === 'uid' ? 'user' : 'group'} ${JSON.stringify(String(value))}: ${fix}, or fix ${option}`, { cause: err });
    }
  };
  const uidOption = config.uid;
  const user = located('uid', uidOption, () => lookupUser(uidOption));
  const gidOption = config.gid;
  const gid = gidOption === undefined ? user.gid : located('gid', gidOption, () => lookupGroup(gidOption));
  const caps = config.cap;
  const cap = where(config, 'cap');
  if (user.uid === 0) {
    return { kind: 'stay', warnings: caps.length === 0 ? [] : [`${cap}: ignored: uid = ${String(config.uid)} keeps the emperor root, with every capability`] };
  }
  if (me.uid !== 0) {
    if (me.uid !== user.uid || me.gid !== gid) {
      throw new PrivilegeError(
        `${where(config, 'uid')}: ${String(config.uid)}${config.gid === undefined ? '' : ` (gid ${String(config.gid)})`}: the emperor runs as uid ${me.uid} gid ${me.gid}; ` +
          'dropping to another user needs root: start it as root, or as that user (systemd User=)',
      );
    }
    const missing = caps.filter((name) => !hasCapability(me.capabilities.effective, capabilityNumber(name)));
    return {
      kind: 'stay',
      warnings: missing.length === 0 ? [] : [
        `${cap}: the emperor already runs as ${user.name} but without ${missing.join(', ')}; a process that is not root cannot gain capabilities: ` +
          'start it as root (it drops to uid itself), or give them with systemd AmbientCapabilities=',
      ],
    };
  }
  const outside = caps.filter((name) => !hasCapability(me.capabilities.bounding, capabilityNumber(name)));
  if (outside.length > 0) {
    throw new PrivilegeError(
      `${cap}: ${outside.join(', ')} not in the emperor's capability bounding set, so it cannot keep ${outside.length === 1 ? 'it' : 'them'}; ` +
        'the service manager or container removed them (systemd CapabilityBoundingSet=, docker --cap-drop): allow them there, or remove them from cap',
    );
  }
  if (!canSetPdeathsig()) throw new MissingToolError('uid in the emperor\'s configuration needs setpriv (util-linux), which is not installed');
  return { kind: 'drop', plan: { user: user.name, uid: user.uid, gid, groups: initGroups(user.name, gid), capabilities: caps } };
}

/** `file:line: option` of the option's winning occurrence, for messages (`option` alone when unset). */
function where(config: EmperorConfig, option: string): string {
  const found = config.resolved.findLast((o) => o.name === option);
  if (found === undefined) return option;
  return `${found.line > 0 ? `${found.file}:${found.line}` : found.file}: ${option}`;
}

function currentProcess(): CurrentProcess {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, capabilities: readCapabilitySets() };
}

/** The `emperor` bin: the launcher starts the emperor proper with the same program. */
function emperorBin(): string {
  return fileURLToPath(new URL('./bin/emperor.js', import.meta.url));
}

/** Signals the launcher passes on to the emperor. */
// Not SIGUSR1: Node opens its inspector on it, which the launcher must not pass on to the emperor.
const RELAYED: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR2'];

/**
 * The launcher: binds the stats and metrics sockets, writes the pidfile (this process's
 * pid: it is the one signals reach), starts the emperor as `plan`'s user with `plan`'s
 * capabilities, drops its own privileges, passes signals on and waits.
 * Resolves to the emperor's exit code ({@link ExitCode.FAILURE} when it was killed by a
 * signal, or when a stats socket cannot be bound).
 */
export async function runLauncher(config: EmperorConfig, plan: DropPlan, logger: Logger): Promise<ExitCode> {
  const fds: { emperorStats?: number; stats?: number; emperorPrometheus?: number } = {};
  const inherited: number[] = [];
  const bind = async (key: keyof HandedFds, option: string, address: ListenAddress | undefined, required: boolean): Promise<boolean> => {
    if (address === undefined) return true;
    try {
      // Unix sockets go to the emperor's user, so it can remove them at exit.
      const bound = await bindListenSocket(address, { uid: plan.uid, gid: plan.gid });
      if (bound.ownerWarning !== undefined) logger.warn(`${option}: ${bound.ownerWarning}: the emperor cannot remove it at exit, and only root can connect`);
      fds[key] = 3 + inherited.length;
      inherited.push(bound.fd);
      return true;
    } catch (err) {
      const rest = required ? '' : '; the emperor runs without metrics';
      logger.error(`${option}: cannot listen on ${formatListenAddress(address)}: ${(err as Error).message}${rest}`);
      return !required;
    }
  };
  if (!(await bind('emperorStats', 'emperor-stats', config.emperorStats, true))) return ExitCode.FAILURE;
  if (!(await bind('stats', 'stats', config.stats, true))) return ExitCode.FAILURE;
  await bind('emperorPrometheus', 'emperor-prometheus', config.emperorPrometheus, false);
  if (config.pidfile !== undefined) writeFileSync(config.pidfile, `${process.pid}\n`);

  const handoff: Handoff = { v: 1, config, fds };
  const env: NodeJS.ProcessEnv = { ...process.env, [HANDOFF_ENV]: JSON.stringify(handoff) };
  // systemd's watchdog was set up for this process; the emperor proper pings it now.
  if (env.WATCHDOG_PID === String(process.pid)) delete env.WATCHDOG_PID;
  const emperor = spawnChild(
    process.execPath,
    [...process.execArgv, emperorBin()],
    {
      env,
      // Its own process group: a terminal's Ctrl-C reaches the launcher only, which passes
      // it on once.
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', ...inherited],
    },
    { credentials: { uid: plan.uid, gid: plan.gid, groups: plan.groups }, capabilities: plan.capabilities, pdeathsig: 'SIGTERM' },
  );
  const caps = plan.capabilities.length === 0 ? 'no capabilities' : `capabilities ${plan.capabilities.join(', ')}`;
  logger.info(
    { emperor_pid: emperor.pid, uid: plan.uid, gid: plan.gid, capabilities: plan.capabilities },
    `dropping privileges: the emperor runs on as ${plan.user} (uid ${plan.uid} gid ${plan.gid}) with ${caps}, pid ${emperor.pid}; ` +
      `this process (pid ${process.pid}) drops to ${plan.user} too and passes signals on`,
  );
  for (const signal of RELAYED) process.on(signal, () => emperor.kill(signal));
  // No inspector in the launcher either: it holds the emperor's bound sockets.
  process.on('SIGUSR1', () => logger.info('SIGUSR1 ignored by the launcher (no inspector here)'));
  dropSelf(plan);
  process.title = 'emperor launcher';
  const exit = await emperor.exited;
  for (const signal of RELAYED) process.removeAllListeners(signal);
  if (config.pidfile !== undefined) {
    try {
      if (readFileSync(config.pidfile, 'utf8').trim() === String(process.pid)) unlinkSync(config.pidfile);
    } catch {
      // gone, or in a directory only root may change (uWSGI leaves it too after a drop)
    }
  }
  if (exit.spawnError !== undefined || exit.code === null) {
    logger.error(`the emperor (pid ${emperor.pid}) ${exit.spawnError === undefined ? `was killed by ${exit.signal ?? 'a signal'}` : `could not start: ${exit.spawnError}`}`);
    return ExitCode.FAILURE;
  }
  return exit.code as ExitCode;
}

/**
 * Drops this (root) process to `plan`'s user: setgroups, setgid, setuid, in that order.
 * Leaving uid 0 clears every capability (capabilities(7)), which is what the launcher
 * wants: it only waits and passes signals on.
 * @throws PrivilegeError when a call fails
 */
function dropSelf(plan: DropPlan): void {
  const posix = process as unknown as { setgroups(groups: number[]): void; setgid(id: number): void; setuid(id: number): void };
  try {
    posix.setgroups([...plan.groups]);
    posix.setgid(plan.gid);
    posix.setuid(plan.uid);
  } catch (err) {
    throw new PrivilegeError(`cannot drop the launcher to uid ${plan.uid} gid ${plan.gid}: ${(err as Error).message}`, { cause: err });
  }
}
