/**
 * Builds the filled, validated {@link EmperorConfig} from the options that apply to the
 * emperor (uWSGI core/emperor.c semantics).
 */
import { dirname, resolve } from 'node:path';
import { parseCapabilities } from './capabilities.js';
import type { CollectedOptions } from './collect.js';
import { ConfigValueError } from './errors.js';
import { createOptionReader } from './option-reader.js';
import type { EmperorConfig } from './types.js';
import { invalid, parsePath, parsePrincipal } from './values.js';

/**
 * @param where the file named when something is missing: the last config file, or `<command line>`
 * @throws {ConfigValueError} an invalid value, no `emperor` directory, or a throttle above the max throttle
 */
export function buildEmperorConfig(where: string, collected: CollectedOptions): EmperorConfig {
  // Paths in the emperor's own file are relative to that file, as in a vassal file.
  const read = createOptionReader(collected, (file) => dirname(resolve(file)));
  const emperor = read.paths('emperor');
  if (emperor.length === 0) {
    throw new ConfigValueError({
      file: where, line: 0, option: 'emperor', value: undefined, expected: 'a directory of vassal files', subject: 'no vassals',
      problem: 'set emperor = <directory of vassal files>',
    });
  }
  // uWSGI hands the value to glob(3), which allows wildcards anywhere; we watch one
  // directory per value, so only the file name part may have them.
  for (const option of read.all('emperor')) {
    if (/[*?[]/.test(dirname(option.value))) {
      invalid(option, 'a directory, or a pattern with wildcards in the file name only (DIR/*.ini)', 'wildcards are only allowed in the file name part, e.g. /etc/emperor.d/*.ini');
    }
  }
  const throttleMs = read.uint('emperor-throttle');
  const maxThrottleMs = read.uint('emperor-max-throttle');
  const throttle = read.last('emperor-throttle');
  if (throttle !== undefined && throttleMs > maxThrottleMs) {
    invalid(throttle, `at most emperor-max-throttle (${maxThrottleMs})`, `must be <= emperor-max-throttle (${maxThrottleMs})`);
  }
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
    emperorRequiredHeartbeatMs: read.uint('emperor-required-heartbeat'),
    vassalsInherit: read.paths('vassals-inherit'),
    pidfile: pidfile === undefined ? undefined : parsePath(pidfile, read.baseDirOf(pidfile)),
    dieOnTerm: read.bool('die-on-term'),
    uid: read.parsed('uid', parsePrincipal),
    gid: read.parsed('gid', parsePrincipal),
    cap: read.parsed('cap', parseCapabilities) ?? [],
    resolved: collected.resolved,
  };
}
