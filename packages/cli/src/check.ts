/**
 * `emperor check FILE...`: every problem of every file as `file:line: option: message`
 * (errors, then warnings), a verdict line per file, and with `--print` the options as
 * the master would see them: placeholders expanded, then the defaults of what is unset.
 *
 * A vassal file whose values are valid is then checked as its user would run it
 * (check-app.ts): its app, `chdir`, `home` and `pythonpath` on disk, and with `--tyrant`
 * the rules of tyrant mode (the file's owner is the user; root's files are refused).
 */
import { statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { checkConfigFile, type CheckResult, type ConfigProblem, type VassalConfig } from '@emperor/config';
import { namesFromEtc, judgeTyrant } from '@emperor/emperor';
import { ExitCode, isEmperorError } from '@emperor/protocol';
import { checkApp, interpreterUser, type AppCheckHost, type VassalIdentity } from './check-app.js';

/** Options of {@link runCheck}. */
export interface RunCheckOptions {
  /** Also print the resolved options of each file. */
  readonly print: boolean;
  /** `vassals-inherit` files applied before each vassal file. */
  readonly inherit: readonly string[];
  /** Judge each vassal as `emperor-tyrant` runs it: as its file's owner. */
  readonly tyrant?: boolean;
}

/** Checks each file; resolves to {@link ExitCode.OK} when all are valid (warnings allowed), else {@link ExitCode.FAILURE}. */
export async function runCheck(files: readonly string[], options: RunCheckOptions, out: NodeJS.WritableStream): Promise<ExitCode> {
  let invalid = 0;
  for (const file of files) {
    const result = checkConfigFile(file, { inherit: options.inherit });
    const problems = [...result.problems];
    // The app's problems after the values', in file order.
    if (result.vassal !== undefined) problems.push(...(await checkVassalApp(result.vassal, file, options.tyrant === true)).sort((a, b) => a.line - b.line));
    const errors = problems.filter((p) => p.severity === 'error');
    for (const p of [...errors, ...problems.filter((q) => q.severity === 'warning')]) out.write(`${p.text}\n`);
    const warnings = problems.length - errors.length;
    const counts = [plural(errors.length, 'error'), plural(warnings, 'warning')].filter((s) => s !== '').join(', ');
    out.write(`${file}: ${errors.length > 0 ? 'invalid' : 'valid'} ${result.kind} file${counts === '' ? '' : ` (${counts})`}\n`);
    if (errors.length > 0) invalid += 1;
    if (options.print) out.write(renderResolved(file, result));
  }
  if (files.length > 1) out.write(`${files.length} files checked, ${invalid} invalid\n`);
  return invalid > 0 ? ExitCode.FAILURE : ExitCode.OK;
}

/** The vassal's identity (tyrant mode, `uid`/`gid`, or whoever runs the check), then its app's checks. */
async function checkVassalApp(config: VassalConfig, file: string, tyrant: boolean): Promise<ConfigProblem[]> {
  // The vassal package knows users and interpreters as the master does; loaded only here.
  const vassal = await import('@emperor/vassal');
  const refuse = (err: unknown, option: string, line = 0): ConfigProblem[] => {
    if (!isEmperorError(err)) throw err;
    return [{ severity: 'error', code: err.code, file, line, option, text: err.message }];
  };
  let who: VassalIdentity;
  if (tyrant) {
    const stats = statSync(file);
    // As an emperor that may start vassals as any user judges it: root, or the shipped
    // unit's emperor, its own user keeping CAP_SETUID and CAP_SETGID.
    const verdict = judgeTyrant({ path: file, uid: stats.uid, gid: stats.gid }, { emperorUid: 0, emperorGid: 0, canSwitchUsers: true, nofollow: false });
    if (!verdict.ok) return refuse(verdict.error, 'emperor-tyrant');
    try {
      vassal.enforceTyrant(config, verdict.identity);
    } catch (err) {
      const where = config.resolved.findLast((o) => o.name === 'uid' || o.name === 'gid');
      return refuse(err, where?.name ?? 'uid', where?.line ?? 0);
    }
    const { user } = namesFromEtc(stats.uid, stats.gid);
    who = { uid: stats.uid, gid: stats.gid, groups: [], name: `${user ?? 'uid'} (uid ${stats.uid})` };
  } else if (config.uid !== undefined || config.gid !== undefined) {
    let creds;
    try {
      creds = vassal.resolveCredentials(config.uid, config.gid);
    } catch (err) {
      const option = config.uid !== undefined ? 'uid' : 'gid';
      return refuse(err, option, config.resolved.findLast((o) => o.name === option)?.line ?? 0);
    }
    const uid = creds.uid ?? process.getuid?.() ?? 0;
    const gid = creds.gid ?? process.getgid?.() ?? 0;
    const name = creds.user?.name ?? String(uid);
    who = { uid, gid, groups: [...new Set([gid, ...groupsOf(name)])], name: `${name} (uid ${uid})` };
  } else {
    const uid = process.getuid?.() ?? 0;
    who = { uid, gid: process.getgid?.() ?? 0, groups: process.getgroups?.() ?? [], name: `${namesFromEtc(uid, 0).user ?? 'uid'} (uid ${uid})` };
  }
  // The interpreter the master picks once it runs as that user (python-interpreter.ts).
  const host: AppCheckHost = { python: (c) => vassal.resolvePythonInterpreter(c, interpreterUser(who)).path, names: namesFromEtc };
  return checkApp(config, file, who, host);
}

/** The supplementary groups of a user, as initgroups(3) gives them (`id -G`); none when unknown. */
function groupsOf(user: string): number[] {
  try {
    return execFileSync('id', ['-G', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/).map(Number).filter(Number.isInteger);
  } catch {
    return [];
  }
}

function plural(n: number, noun: string): string {
  return n === 0 ? '' : `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** The options as an INI file, each with where it came from, then the defaults that apply. */
export function renderResolved(file: string, result: CheckResult): string {
  if (result.resolved === undefined) return `; ${file}: nothing to print, the file could not be read\n`;
  const set = result.resolved.map((o) => `${o.name} = ${o.value}`);
  const width = Math.min(60, Math.max(0, ...set.map((s) => s.length)));
  const lines = [`; ${file}, resolved (placeholders expanded)`, '[uwsgi]'];
  result.resolved.forEach((o, i) => lines.push(`${(set[i] as string).padEnd(width)}  ; ${o.line > 0 ? `${o.file}:${o.line}` : o.file}`));
  if (result.defaults.length > 0) {
    lines.push(`; defaults of the ${result.kind} options not set above`);
    for (const d of result.defaults) lines.push(`${d.name} = ${d.value}`);
  }
  return `${lines.join('\n')}\n`;
}
