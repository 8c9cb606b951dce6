/**
 * Builds the filled, validated {@link EmperorConfig} from the options that apply to the
 * emperor (uWSGI core/emperor.c semantics).
 */
import { dirname, resolve } from 'node:path';
import { parseCapabilities } from './capabilities.js';
import type { CollectedOptions } from './collect.js';
import { ConfigValueError } from './errors.js';
import { createOptionReader, type OptionReader } from './option-reader.js';
import { isPgMonitor, maskPgMonitor, parsePgMonitor } from './pg-monitor.js';
import type { EmperorConfig, EmperorOnDemand, LogStyleChoice, ResolvedOption } from './types.js';
import { invalid, parsePath, parsePrincipal } from './values.js';

/** `emperor-pg-channel` when unset (the option table's default). */
const DEFAULT_PG_CHANNEL = 'emperor';
/**
 * A channel name that `LISTEN name` and `NOTIFY name` spell the same without quotes
 * (PostgreSQL folds unquoted names to lower case), at most NAMEDATALEN - 1 bytes.
 */
const PG_CHANNEL = /^[a-z_][a-z0-9_$]{0,62}$/;

/**
 * A `pg://` value, checked and kept as given (the source parses it again when it starts).
 * @throws {ConfigValueError} naming the problem; the value it quotes has its password removed
 */
function checkPgMonitor(option: ResolvedOption): string {
  const parsed = parsePgMonitor(option.value);
  if (parsed.ok) return option.value;
  throw new ConfigValueError({
    file: option.file, line: option.line, option: option.name, value: maskPgMonitor(option.value),
    expected: 'pg://CONNINFO;QUERY (a libpq connection string, then the query)', problem: parsed.problem,
  });
}

/**
 * The on-demand socket naming, from the first of `emperor-on-demand-extension`,
 * `emperor-on-demand-directory` and `emperor-on-demand-exec` that is set (the order
 * uWSGI core/emperor.c `emperor_check_on_demand_socket` tries them); the others are
 * reported as having no effect.
 */
function readOnDemand(read: OptionReader): EmperorOnDemand | undefined {
  const extension = read.last('emperor-on-demand-extension');
  const directory = read.path('emperor-on-demand-directory');
  const exec = read.last('emperor-on-demand-exec');
  let chosen: EmperorOnDemand | undefined;
  if (extension !== undefined && extension.value !== '') chosen = { kind: 'extension', extension: extension.value };
  else if (directory !== undefined) chosen = { kind: 'directory', directory };
  else if (exec !== undefined && exec.value !== '') chosen = { kind: 'exec', command: exec.value };
  if (chosen === undefined) return undefined;
  const set = [['extension', extension], ['directory', read.last('emperor-on-demand-directory')], ['exec', exec]] as const;
  for (const [kind, option] of set) {
    if (option !== undefined && kind !== chosen.kind) read.warn(option, 'no-effect', `has no effect: emperor-on-demand-${chosen.kind} is set and comes first`);
  }
  return chosen;
}

/**
 * @param where the file named when something is missing: the last config file, or `<command line>`
 * @throws {ConfigValueError} an invalid value, no `emperor` directory, or a throttle above the max throttle
 */
export function buildEmperorConfig(where: string, collected: CollectedOptions): EmperorConfig {
  // Paths in the emperor's own file are relative to that file, as in a vassal file.
  const read = createOptionReader(collected, (file) => dirname(resolve(file)));
  const emperor = read.all('emperor').map((option) => (isPgMonitor(option.value) ? checkPgMonitor(option) : parsePath(option, read.baseDirOf(option))));
  if (emperor.length === 0) {
    throw new ConfigValueError({
      file: where, line: 0, option: 'emperor', value: undefined, expected: 'a directory of vassal files', subject: 'no vassals',
      problem: 'set emperor = <directory of vassal files>',
    });
  }
  // uWSGI hands the value to glob(3), which allows wildcards anywhere; we watch one
  // directory per value, so only the file name part may have them.
  for (const option of read.all('emperor')) {
    if (!isPgMonitor(option.value) && /[*?[]/.test(dirname(option.value))) {
      invalid(option, 'a directory, or a pattern with wildcards in the file name only (DIR/*.ini)', 'wildcards are only allowed in the file name part, e.g. /etc/emperor.d/*.ini');
    }
  }
  const throttleMs = read.uint('emperor-throttle');
  const maxThrottleMs = read.uint('emperor-max-throttle');
  const throttle = read.last('emperor-throttle');
  if (throttle !== undefined && throttleMs > maxThrottleMs) {
    invalid(throttle, `at most emperor-max-throttle (${maxThrottleMs})`, `must be <= emperor-max-throttle (${maxThrottleMs})`);
  }
  const channel = read.last('emperor-pg-channel');
  if (channel !== undefined && !PG_CHANNEL.test(channel.value)) {
    invalid(channel, 'a channel name of at most 63 lower-case letters, digits, _ or $, starting with a letter or _ (so NOTIFY needs no quotes)');
  }
  if (channel !== undefined && !read.all('emperor').some((option) => isPgMonitor(option.value))) read.warn(channel, 'no-effect', 'has no effect without a pg:// emperor');
  const tyrant = read.bool('emperor-tyrant');
  const nofollow = read.last('emperor-tyrant-nofollow');
  if (nofollow !== undefined && !tyrant) read.warn(nofollow, 'no-effect', 'has no effect without emperor-tyrant');
  // `pidfile` and `emperor-pidfile` name the same file here; the later one wins.
  const pidfile = collected.applied.findLast(({ spec }) => spec.name === 'pidfile' || spec.name === 'emperor-pidfile')?.option;
  // uWSGI's `cap` as root without `uid` narrows root's capabilities; here the emperor
  // applies `cap` only when it drops to `uid`.
  const gid = read.last('gid');
  if (gid !== undefined && read.last('uid') === undefined) {
    read.warn(gid, 'no-effect', 'has no effect without uid: the emperor drops privileges only to a uid');
  }
  const cap = read.last('cap');
  if (cap !== undefined && read.last('uid') === undefined) {
    read.warn(cap, 'no-effect', 'has no effect without uid: the emperor keeps the privileges it was started with');
  }

  return {
    emperor,
    emperorPgChannel: channel?.value ?? DEFAULT_PG_CHANNEL,
    emperorStats: read.address('emperor-stats'),
    stats: read.address('stats'),
    statsHttp: read.bool('stats-http'),
    statsMinified: read.bool('stats-minified'),
    emperorPrometheus: read.address('emperor-prometheus'),
    emperorTyrant: tyrant,
    emperorTyrantNofollow: read.bool('emperor-tyrant-nofollow'),
    emperorFreqMs: read.uint('emperor-freq'),
    emperorThrottleMs: throttleMs,
    emperorMaxThrottleMs: maxThrottleMs,
    emperorOnDemand: readOnDemand(read),
    emperorRequiredHeartbeatMs: read.uint('emperor-required-heartbeat'),
    emperorAdoptTimeoutMs: read.uint('emperor-adopt-timeout'),
    emperorRuntimeDir: read.path('emperor-runtime-dir'),
    vassalsInherit: read.paths('vassals-inherit'),
    pidfile: pidfile === undefined ? undefined : parsePath(pidfile, read.baseDirOf(pidfile)),
    dieOnTerm: read.bool('die-on-term'),
    // The table's choices are exactly LogStyleChoice's members.
    logStyle: read.choice('log-style') as LogStyleChoice,
    uid: read.parsed('uid', parsePrincipal),
    gid: read.parsed('gid', parsePrincipal),
    cap: read.parsed('cap', parseCapabilities) ?? [],
    resolved: collected.resolved,
  };
}
