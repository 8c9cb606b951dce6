/**
 * Which Python runs a vassal's workers. uWSGI links one interpreter into its python
 * plugin and points it at `home` (`virtualenv`, `venv`, `pyhome`); what its users expect
 * from that is "the environment's Python, with its site-packages". Running the
 * environment's own `bin/python3` gives exactly that (the interpreter finds its
 * `pyvenv.cfg`), so: `home` → `<home>/bin/python3`, else `<home>/bin/python`; without
 * `home`, `python3` on the vassal's PATH.
 *
 * The master resolves it after dropping to the vassal's `uid`/`gid`, so the choice is the
 * one that user's shell would make: a PATH entry the user cannot search or execute (root's
 * `~/.pyenv/shims` under a 0700 home) is skipped, and named in the log line, rather than
 * chosen for workers that would then die with exit 126 in a loop. `emperor check`, run as
 * root, makes the same choice for the vassal's user by passing that user's view
 * ({@link InterpreterUser}).
 */
import { execFileSync } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readSync } from 'node:fs';
import { userInfo } from 'node:os';
import { basename, delimiter, dirname, isAbsolute, join } from 'node:path';
import type { VassalConfig } from '@emperor/config';
import { PythonInterpreterError } from '@emperor/protocol';

/** The oldest Python the worker (`python/emperor_worker/`, test/python checks its syntax against this) runs on. */
export const MIN_PYTHON: readonly [number, number] = [3, 9];

/**
 * How long asking the interpreter for its version may take, ms. A pyenv shim alone costs
 * about 300 ms of CPU; 50 vassals started at once through shims on 2 cores took over 10 s
 * each (the limit was 10 s: every one failed, exited 69 and retried together, for minutes).
 */
const VERSION_TIMEOUT_MS = 60_000;

// Defined in the error registry (@emperor/protocol errors.ts); re-exported so existing imports keep working.
export { PythonInterpreterError };

/** An interpreter that answered, and what it said. */
export interface PythonInterpreter {
  /**
   * Absolute path of the executable the workers run: the one found, or, when that is a
   * pyenv shim, the interpreter the shim chose (its `sys.executable`).
   */
  readonly path: string;
  /** The pyenv shim that chose {@link path}, when one did. */
  readonly shim?: string;
  /** `major.minor.micro`, e.g. `3.11.2`. */
  readonly version: string;
  /** Why this one: `home` or `PATH`. */
  readonly source: 'home' | 'PATH';
  /**
   * What was skipped before it on PATH because this process's user may not use it: a
   * directory it cannot search (`/root/.pyenv/shims`) or a `python3` it cannot execute.
   */
  readonly skipped: readonly string[];
}

/**
 * Whose view the interpreter is chosen from: what that user may search and execute, and
 * how the interpreter is run as that user to ask its version.
 */
export interface InterpreterUser {
  /** For messages: `uid 33 (www-data)`. */
  readonly name: string;
  /**
   * access(2) as that user (`constants.X_OK`, ...): undefined when allowed, else the
   * error code it fails with (`EACCES`, `ENOENT`, `ENOTDIR`).
   */
  readonly access: (path: string, mode: number) => string | undefined;
  /**
   * Runs `file` with `args` as that user and returns its stdout (utf8).
   * @throws as execFileSync does: an error with `status` and `stderr`
   */
  readonly run: (file: string, args: readonly string[], options: { readonly env: NodeJS.ProcessEnv; readonly timeout: number }) => string;
}

/** This process's user, which the master is once it dropped to the vassal's `uid`/`gid`. */
export function thisProcessUser(): InterpreterUser {
  return {
    name: describeUser(),
    access: (path, mode) => {
      try {
        accessSync(path, mode);
        return undefined;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code ?? 'EACCES';
      }
    },
    run: (file, args, options) => execFileSync(file, [...args], { encoding: 'utf8', timeout: options.timeout, stdio: ['ignore', 'pipe', 'pipe'], env: options.env }),
  };
}

function isExecutable(path: string, user: InterpreterUser): boolean {
  return user.access(path, constants.X_OK) === undefined;
}

/** `uid 33 (www-data)`: this process's user, for messages. */
export function describeUser(): string {
  const uid = process.getuid?.() ?? 0;
  let name: string | undefined;
  try {
    name = userInfo().username;
  } catch {
    name = undefined; // no passwd entry
  }
  return `uid ${uid}${name === undefined ? '' : ` (${name})`}`;
}

/**
 * The first `python3` on `path` `user` may execute, and what it skipped before it
 * because that user may not use it (access(2) answers EACCES): a directory it cannot
 * search (whether a `python3` is in there, that user cannot even tell), or a `python3` it
 * cannot execute. Also looks in /usr/bin and /bin, as the rest of Emperor does.
 */
function findPython3(path: string, user: InterpreterUser): { found: string | undefined; skipped: string[] } {
  const skipped: string[] = [];
  const dirs = [...path.split(delimiter), '/usr/bin', '/bin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, 'python3');
    const denied = user.access(candidate, constants.X_OK);
    if (denied === undefined) return { found: candidate, skipped };
    if (denied !== 'EACCES') continue;
    const what = isExecutable(dir, user) ? candidate : `${dir}/`;
    if (!skipped.includes(what)) skipped.push(what);
  }
  return { found: undefined, skipped };
}

/** The PATH the workers get: the vassal's `env = PATH=...` when set, else the master's. */
function workerPath(config: Pick<VassalConfig, 'env'>): string {
  const own = config.env.find(([key]) => key === 'PATH');
  return own?.[1] ?? process.env.PATH ?? '';
}

/**
 * Finds and runs the interpreter for `config` once, as `user` (this process's by
 * default), to check it exists, runs, and is new enough.
 * @throws PythonInterpreterError naming the interpreter (or what was looked for), the user and the fix
 */
export function resolvePythonInterpreter(config: Pick<VassalConfig, 'home' | 'env'>, user: InterpreterUser = thisProcessUser()): PythonInterpreter {
  let path: string | undefined;
  let source: PythonInterpreter['source'];
  let skipped: readonly string[] = [];
  const who = user.name;
  if (config.home !== undefined) {
    source = 'home';
    const candidates = ['python3', 'python'].map((name) => join(config.home as string, 'bin', name));
    path = candidates.find((candidate) => isExecutable(candidate, user));
    if (path === undefined) {
      // Absent (ENOENT), or there but not for this user (EACCES on the file or on the way).
      const forbidden = candidates.some((candidate) => {
        const denied = user.access(candidate, constants.F_OK);
        return denied === undefined || denied === 'EACCES';
      });
      throw new PythonInterpreterError(
        forbidden
          ? `home ${config.home}: no Python interpreter there that ${who} can execute (looked for ${candidates.join(' and ')}); ` +
            `let the vassal's user read and run the environment (chmod, chgrp), or fix home`
          : `home ${config.home}: no Python interpreter there (looked for ${candidates.join(' and ')}); create the environment (python3 -m venv ${config.home}) or fix home`,
      );
    }
  } else {
    source = 'PATH';
    const looked = findPython3(workerPath(config), user);
    path = looked.found;
    skipped = looked.skipped;
    if (path === undefined) {
      const denied = skipped.length === 0 ? '' : ` (skipped ${skipped.join(', ')}: ${who} cannot search or execute ${skipped.length === 1 ? 'it' : 'them'})`;
      throw new PythonInterpreterError(
        `no python3 on PATH that ${who} can execute${denied}: install Python 3 where that user can run it (apt-get install python3), ` +
          'set env = PATH=... in the vassal, or set home to a virtual environment that user can read',
      );
    }
  }
  let version: string;
  let executable: string;
  try {
    const said = user.run(path, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3]); print(sys.executable)'], {
      timeout: VERSION_TIMEOUT_MS,
      env: { ...process.env, PATH: workerPath(config) },
    }).split('\n');
    version = (said[0] ?? '').trim();
    executable = (said[1] ?? '').trim();
  } catch (err) {
    const e = err as { status?: number | null; stderr?: string | Buffer; message: string };
    const said = String(e.stderr ?? '').trim().split('\n').at(-1) ?? '';
    throw new PythonInterpreterError(
      `${path} (from ${source}) does not run as ${who}: ${e.status === undefined || e.status === null ? e.message.split('\n')[0] ?? '' : `exit code ${e.status}`}` +
        `${said === '' ? '' : ` (${said})`}; let that user run it (a pyenv shim needs its PYENV_ROOT readable), or set home to a virtual environment that user can read`,
      { cause: err },
    );
  }
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) {
    throw new PythonInterpreterError(`${path} is Python ${version}; the worker needs Python ${MIN_PYTHON.join('.')} or newer`);
  }
  // A pyenv shim is a shell script that runs `pyenv exec` (about 300 ms of CPU here) on
  // every start; the interpreter it picked for this user, environment and directory is
  // run directly instead, for the template and every worker.
  if (executable !== '' && executable !== path && isAbsolute(executable) && isPyenvShim(path) && isExecutable(executable, user)) {
    return { path: executable, shim: path, version, source, skipped };
  }
  return { path, version, source, skipped };
}

/** True when `path` is a pyenv shim: a script in a `shims` directory that runs pyenv. */
function isPyenvShim(path: string): boolean {
  if (basename(dirname(path)) !== 'shims') return false;
  try {
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.alloc(512);
      const n = readSync(fd, head, 0, head.length, 0);
      const text = head.subarray(0, n).toString('latin1');
      return text.startsWith('#!') && text.includes('pyenv');
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** Resolves once per distinct `home`/PATH and remembers the answer for the master's spawns. */
export class PythonInterpreters {
  readonly #known = new Map<string, PythonInterpreter>();

  static #key(config: Pick<VassalConfig, 'home' | 'env'>): string {
    return `${config.home ?? ''}\0${workerPath(config)}`;
  }

  /**
   * Resolves the interpreter of a Python vassal (a no-op for Node) and reports it through
   * `onResolved` the first time it is seen.
   * @throws PythonInterpreterError
   */
  prepare(config: VassalConfig, onResolved: (found: PythonInterpreter) => void): void {
    if (config.runtime !== 'python') return;
    const key = PythonInterpreters.#key(config);
    if (this.#known.has(key)) return;
    const found = resolvePythonInterpreter(config);
    this.#known.set(key, found);
    onResolved(found);
  }

  /** The interpreter of `config`, resolved now if {@link prepare} did not see it. @throws PythonInterpreterError */
  pathFor(config: VassalConfig): string {
    this.prepare(config, () => {});
    return this.#known.get(PythonInterpreters.#key(config))?.path ?? 'python3';
  }
}
