/**
 * `emperor check`, past the values: can the vassal's user run this app? A `module` or
 * `wsgi-file` that does not exist or that user cannot read, a `chdir` or `home` that is
 * missing (or that user cannot enter), a `pythonpath` entry that does not exist: each is
 * one problem, `file:line: option: ...`, on the line of that option.
 *
 * Who "the vassal's user" is: with `--tyrant`, the owner of the file (as an emperor with
 * `emperor-tyrant` runs it, without supplementary groups); else the `uid`/`gid` options
 * (with the user's groups, as the master's initgroups gives them); else whoever runs the
 * check. Permissions are judged from the mode bits of the path and every directory above
 * it (the kernel's rules for owner, group and others; root reads anything), or asked of
 * the kernel (`access(2)`) when the user is the one running the check. ACLs and security
 * modules are not considered.
 *
 * The interpreter is the one the master would choose after dropping to the vassal's user
 * (python-interpreter.ts, given that user's view by {@link interpreterUser}): a `python3`
 * on PATH that user cannot search or execute (root's `~/.pyenv/shims`) is skipped.
 *
 * A Python `module = pkg.mod` is looked for without importing anything of the app: the
 * vassal's interpreter (as the vassal's user, when the check runs as root) asks
 * importlib's `PathFinder` for `pkg`, then for `pkg.mod` inside the package it found, on
 * the `sys.path` the worker builds (pythonpath, then chdir, then the interpreter's own).
 * `importlib.util.find_spec('pkg.mod')` would import `pkg` and run its `__init__.py`;
 * this does not. The interpreter's own start-up runs (`site`, `.pth` files), as at every
 * worker start.
 */
import { accessSync, constants, realpathSync, statSync, type Stats } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, parse as parsePath, resolve } from 'node:path';
import { findOption, type ConfigProblem, type ResolvedOption, type VassalConfig } from '@emperor/config';
import { findExecutable } from '@emperor/process';
import { ConfigValueError } from '@emperor/protocol';
import type { InterpreterUser } from '@emperor/vassal';

/** Who the vassal's workers run as, for the checks. */
export interface VassalIdentity {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups (none in tyrant mode). */
  readonly groups: readonly number[];
  /** For messages: `www-data (uid 33)`. */
  readonly name: string;
}

/** The owner, group and mode of a path: what {@link permits} judges. */
export interface PathMode {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

/** The permission bits asked for: 4 read, 2 write, 1 execute (search, for a directory). */
export type AccessBits = 4 | 1 | 5;

/**
 * The kernel's permission rule (path_resolution(7), without ACLs): root may read and
 * search anything, and execute a file with any execute bit; anyone else gets the owner's,
 * the group's (primary or supplementary) or the others' bits, the first class that applies.
 */
export function permits(path: PathMode & { readonly isDirectory: boolean }, who: Pick<VassalIdentity, 'uid' | 'gid' | 'groups'>, bits: AccessBits): boolean {
  if (who.uid === 0) return (bits & 1) === 0 || path.isDirectory || (path.mode & 0o111) !== 0;
  const granted = path.uid === who.uid ? (path.mode >> 6) & 7 : path.gid === who.gid || who.groups.includes(path.gid) ? (path.mode >> 3) & 7 : path.mode & 7;
  return (granted & bits) === bits;
}

/** `drwx------`, as `ls -l` shows a mode. */
export function modeString(stats: Pick<Stats, 'mode'> & { isDirectory(): boolean }): string {
  const bits = 'rwxrwxrwx';
  let out = stats.isDirectory() ? 'd' : '-';
  for (let i = 0; i < 9; i++) out += (stats.mode & (0o400 >> i)) !== 0 ? bits[i] : '-';
  return out;
}

/** What to look up about the system (replaced in tests). */
export interface AppCheckHost {
  /** The Python interpreter the master would pick as the vassal's user; throws a coded error when there is none. */
  readonly python: (config: VassalConfig) => string;
  /** Names for ids in messages. */
  readonly names: (uid: number, gid: number) => { user: string | undefined; group: string | undefined };
}

/** One problem, with the line of the last occurrence of `option` (canonical name). */
type Report = (option: string, problem: string, severity?: 'error' | 'warning') => void;

/**
 * Checks the app of a valid vassal config as `who` would run it.
 * @param config the vassal's config (every value already valid)
 * @param file the vassal file as given on the command line
 * @returns the problems found, errors and warnings, in the order checked
 */
export function checkApp(config: VassalConfig, file: string, who: VassalIdentity, host: AppCheckHost): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const report: Report = (option, problem, severity = 'error') => {
    const where = lastOccurrence(config.resolved, option) ?? { file, line: 0, name: option, value: '' };
    if (severity === 'error') {
      const err = new ConfigValueError({ file: where.file, line: where.line, option: where.name, value: undefined, expected: 'a path the vassal\'s user can use', problem });
      problems.push({ severity, code: err.code, file: where.file, line: where.line, option: where.name, text: err.message });
    } else {
      const prefix = where.line > 0 ? `${where.file}:${where.line}` : where.file;
      problems.push({ severity, code: 'no-effect', file: where.file, line: where.line, option: where.name, text: `${prefix}: ${where.name}: ${problem}` });
    }
  };
  const judge = (path: string, kind: 'file' | 'directory', bits: AccessBits, verb: string): string | undefined => judgePath(path, kind, bits, verb, who, host);

  let workdirOk = true;
  if (config.chdir !== undefined) {
    const problem = judge(config.chdir, 'directory', 1, 'enter');
    if (problem !== undefined) {
      report('chdir', problem);
      workdirOk = false;
    }
  }
  if (config.runtime === 'node') {
    if (config.module !== undefined) {
      const problem = judge(config.module, 'file', 4, 'read');
      if (problem !== undefined) report('module', problem);
    }
    return problems;
  }
  let homeOk = true;
  if (config.home !== undefined) {
    const problem = judge(config.home, 'directory', 1, 'enter');
    if (problem !== undefined) {
      report('home', problem);
      homeOk = false;
    }
  }
  for (const entry of config.pythonpath) {
    const problem = judge(entry, 'directory', 5, 'read');
    if (problem !== undefined) report('pythonpath', `${problem}; the worker skips it`, 'warning');
  }
  if (config.wsgiFile !== undefined) {
    const problem = judge(config.wsgiFile, 'file', 4, 'read');
    if (problem !== undefined) report('wsgi-file', problem);
  }
  if (config.module === undefined || !homeOk || !workdirOk) return problems;
  let python: string;
  try {
    python = host.python(config);
  } catch (err) {
    report(config.home !== undefined ? 'home' : 'module', (err as Error).message);
    return problems;
  }
  const runnable = judge(python, 'file', 1, 'run');
  if (runnable !== undefined) {
    report(config.home !== undefined ? 'home' : 'module', `the interpreter ${python}: ${runnable}`);
    return problems;
  }
  const found = findPythonModule(python, config, file, who);
  if (found.kind === 'found') {
    if (found.origin !== undefined) {
      const problem = judge(found.origin, 'file', 4, 'read');
      if (problem !== undefined) report('module', problem);
    }
  } else if (found.kind === 'unknown') {
    report('module', `cannot tell whether ${JSON.stringify(moduleName(config.module))} can be imported: ${found.reason}`, 'warning');
  } else {
    report('module', found.problem);
  }
  return problems;
}

/** `pkg.mod` of `pkg.mod:callable`. */
function moduleName(module: string): string {
  return module.split(':')[0] ?? module;
}

/** The last occurrence of the option whose canonical name is `name` (any alias), for its line. */
function lastOccurrence(resolved: readonly ResolvedOption[], name: string): ResolvedOption | undefined {
  return resolved.findLast((o) => findOption(o.name)?.name === name);
}

/** True when `who` is this process's user and group: the kernel itself can answer for it. */
function isThisProcess(who: Pick<VassalIdentity, 'uid' | 'gid'>): boolean {
  return who.uid === (process.getuid?.() ?? -1) && who.gid === (process.getgid?.() ?? -1);
}

/**
 * The first directory on the way to `path` that `who` cannot search, with its stats, or
 * undefined when every one can be (or cannot be looked at by this check). The way is the
 * path as written and, when a symlink leads elsewhere, its target's: the kernel walks both.
 */
function blockedDirectory(path: string, who: VassalIdentity): { dir: string; stats: Stats } | undefined {
  const absolute = resolve(path);
  let real: string;
  try {
    real = realpathSync(absolute);
  } catch {
    real = absolute;
  }
  const seen = new Set<string>();
  for (const target of [absolute, real]) {
    const root = parsePath(target).root;
    const ancestors: string[] = [];
    for (let dir = dirname(target); ; dir = dirname(dir)) {
      ancestors.unshift(dir);
      if (dir === root) break;
    }
    for (const dir of ancestors) {
      if (seen.has(dir)) continue;
      seen.add(dir);
      let stats: Stats;
      try {
        stats = statSync(dir);
      } catch {
        return undefined;
      }
      if (!permits({ mode: stats.mode, uid: stats.uid, gid: stats.gid, isDirectory: true }, who, 1)) return { dir, stats };
    }
  }
  return undefined;
}

/**
 * access(2) as `who` (`constants.R_OK`, `X_OK`, `F_OK` or a sum): the kernel's answer when
 * `who` is this process's user, else judged from the mode bits of `path` and of every
 * directory on the way ({@link permits}). Undefined when allowed, else the error code
 * access(2) would fail with (`ENOENT`, `ENOTDIR`, `EACCES`); a path this check cannot
 * look at counts as allowed.
 */
export function accessAs(who: VassalIdentity): InterpreterUser['access'] {
  const errorCode = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? 'EACCES';
  if (isThisProcess(who)) {
    return (path, mode) => {
      try {
        accessSync(path, mode);
        return undefined;
      } catch (err) {
        return errorCode(err);
      }
    };
  }
  return (path, mode) => {
    if (blockedDirectory(path, who) !== undefined) return 'EACCES';
    let stats: Stats;
    try {
      stats = statSync(path);
    } catch (err) {
      const code = errorCode(err);
      return code === 'EACCES' ? undefined : code;
    }
    const bits = mode & (constants.R_OK | constants.X_OK);
    const allowed = bits === 0 || permits({ mode: stats.mode, uid: stats.uid, gid: stats.gid, isDirectory: stats.isDirectory() }, who, bits as AccessBits);
    return allowed ? undefined : 'EACCES';
  };
}

/**
 * Runs a program as `who`: directly when `who` is this process's user, else (the check
 * runs as root) through util-linux `setpriv` with `who`'s ids and groups, as the master
 * would after its drop.
 * @returns its stdout (utf8)
 * @throws as execFileSync does (`status`, `stderr`)
 */
export function runAs(who: VassalIdentity): (file: string, args: readonly string[], options: { readonly env: NodeJS.ProcessEnv; readonly timeout: number; readonly cwd?: string }) => string {
  return (file, args, options) => {
    const asUser = !isThisProcess(who) && (process.getuid?.() ?? -1) === 0;
    // Found on the check's own PATH: the vassal's `env = PATH=...` is the program's, not setpriv's.
    const command = asUser ? (findExecutable('setpriv') ?? 'setpriv') : file;
    const argv = asUser
      ? [`--reuid=${who.uid}`, `--regid=${who.gid}`, who.groups.length > 0 ? `--groups=${who.groups.join(',')}` : '--clear-groups', '--', file, ...args]
      : [...args];
    return execFileSync(command, argv, { ...options, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  };
}

/** The vassal's user as the interpreter's choice sees it (python-interpreter.ts {@link InterpreterUser}). */
export function interpreterUser(who: VassalIdentity): InterpreterUser {
  return { name: who.name, access: accessAs(who), run: runAs(who) };
}

/**
 * Why `who` cannot use `path` (read a file, enter a directory, run a program), or
 * undefined when it can (or when the check itself is not allowed to look).
 */
function judgePath(path: string, kind: 'file' | 'directory', bits: AccessBits, verb: string, who: VassalIdentity, host: AppCheckHost): string | undefined {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `${path} does not exist`;
    if (code === 'ENOTDIR') return `${path} does not exist (a part of it is not a directory)`;
    return undefined; // EACCES and the like: this check cannot see it, so it cannot judge
  }
  if (kind === 'directory' && !stats.isDirectory()) return `${path} is not a directory`;
  if (kind === 'file' && stats.isDirectory()) return `${path} is a directory, not a file`;
  if (isThisProcess(who)) {
    try {
      accessSync(path, bits === 1 ? constants.X_OK : bits === 4 ? constants.R_OK : constants.R_OK | constants.X_OK);
      return undefined;
    } catch {
      return `${who.name} cannot ${verb} ${path} (${describeMode(stats, host)})`;
    }
  }
  // Every directory on the way needs search (x) permission, then the path itself `bits`.
  const blocked = blockedDirectory(path, who);
  if (blocked !== undefined) return `${who.name} cannot ${verb} ${path}: it cannot enter ${blocked.dir} (${describeMode(blocked.stats, host)})`;
  if (!permits({ mode: stats.mode, uid: stats.uid, gid: stats.gid, isDirectory: stats.isDirectory() }, who, bits)) {
    return `${who.name} cannot ${verb} ${path} (${describeMode(stats, host)})`;
  }
  return undefined;
}

/** `drwx------ root:root`. */
function describeMode(stats: Stats, host: AppCheckHost): string {
  const { user, group } = host.names(stats.uid, stats.gid);
  return `${modeString(stats)} ${user ?? stats.uid}:${group ?? stats.gid}`;
}

/** What looking for a Python module found. */
type ModuleLookup =
  | { readonly kind: 'found'; readonly origin: string | undefined }
  | { readonly kind: 'missing'; readonly problem: string }
  | { readonly kind: 'unknown'; readonly reason: string };

/**
 * Run by the vassal's interpreter: argv is the JSON list of paths to put first on
 * sys.path (the worker's order) and the dotted module name. Prints one JSON object.
 * PathFinder.find_spec never imports: a package's `__init__` does not run.
 */
const FIND_MODULE = `
import sys, os, json
from importlib.machinery import PathFinder
first = json.loads(sys.argv[1])
name = sys.argv[2]
sys.path[:] = first + [p for p in sys.path[1:]]
parts = name.split(".")
search = None
spec = None
for i in range(len(parts)):
    full = ".".join(parts[:i + 1])
    spec = PathFinder.find_spec(full, search)
    if spec is None:
        print(json.dumps({"missing": full, "searched": search if search is not None else sys.path}))
        sys.exit(0)
    if i < len(parts) - 1:
        if spec.submodule_search_locations is None:
            print(json.dumps({"notPackage": full, "origin": spec.origin}))
            sys.exit(0)
        search = list(spec.submodule_search_locations)
origin = spec.origin if spec.has_location else None
print(json.dumps({"origin": origin, "readable": origin is None or os.access(origin, os.R_OK)}))
`;

/** Looks for `config.module` with the vassal's interpreter, as the vassal's user when possible. */
function findPythonModule(python: string, config: VassalConfig, file: string, who: VassalIdentity): ModuleLookup {
  const name = moduleName(config.module ?? '');
  const cwd = config.chdir ?? dirname(file);
  const first = [...config.pythonpath, cwd];
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of config.env) env[key] = value;
  const me = process.getuid?.() ?? -1;
  // As root, ask as the vassal's user: what it may list and read is what the worker finds.
  const asUser = me === 0 && who.uid !== 0;
  let out: string;
  try {
    out = runAs(who)(python, ['-c', FIND_MODULE, JSON.stringify(first), name], { cwd, env, timeout: 10_000 });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim().split('\n').at(-1) ?? '';
    return { kind: 'unknown', reason: `${python} failed (${stderr || (err as Error).message.split('\n')[0] || 'no output'})` };
  }
  let answer: { missing?: string; searched?: string[]; notPackage?: string; origin?: string | null; readable?: boolean };
  try {
    answer = JSON.parse(out.trim().split('\n').at(-1) ?? '') as typeof answer;
  } catch {
    return { kind: 'unknown', reason: `${python} answered ${JSON.stringify(out.slice(0, 80))}` };
  }
  const as = asUser || who.uid === me ? `, as ${who.name}` : '';
  if (answer.missing !== undefined) {
    const searched = (answer.searched ?? []).filter((p) => p !== '');
    const shown = searched.length > 4 ? `${searched.slice(0, 4).join(', ')}, ...` : searched.join(', ');
    const within = answer.missing === name.split('.')[0] ? 'on the worker\'s sys.path' : `in package ${JSON.stringify(answer.missing.slice(0, answer.missing.lastIndexOf('.')))}`;
    return { kind: 'missing', problem: `no module ${JSON.stringify(answer.missing)} ${within} (searched ${shown}${as})` };
  }
  if (answer.notPackage !== undefined) {
    return { kind: 'missing', problem: `${JSON.stringify(answer.notPackage)} is a module (${answer.origin ?? '?'}), not a package, so it has no ${JSON.stringify(name)}` };
  }
  if (answer.readable === false && typeof answer.origin === 'string') {
    return { kind: 'missing', problem: `${who.name} cannot read ${answer.origin}` };
  }
  return { kind: 'found', origin: typeof answer.origin === 'string' ? answer.origin : undefined };
}
