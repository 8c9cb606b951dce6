/**
 * Which Python runs a vassal's workers. uWSGI links one interpreter into its python
 * plugin and points it at `home` (`virtualenv`, `venv`, `pyhome`); what its users expect
 * from that is "the environment's Python, with its site-packages". Running the
 * environment's own `bin/python3` gives exactly that (the interpreter finds its
 * `pyvenv.cfg`), so: `home` → `<home>/bin/python3`, else `<home>/bin/python`; without
 * `home`, `python3` on the vassal's PATH.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import type { VassalConfig } from '@emperor/config';
import { PythonInterpreterError } from '@emperor/protocol';
import { findExecutable } from '@emperor/process';

/** The oldest Python the worker (`python/emperor_worker/`, test/python checks its syntax against this) runs on. */
export const MIN_PYTHON: readonly [number, number] = [3, 9];

/** How long asking the interpreter for its version may take, ms (a cold pyenv shim takes ~100 ms). */
const VERSION_TIMEOUT_MS = 10_000;

// Defined in the error registry (@emperor/protocol errors.ts); re-exported so existing imports keep working.
export { PythonInterpreterError };

/** An interpreter that answered, and what it said. */
export interface PythonInterpreter {
  /** Absolute path of the executable. */
  readonly path: string;
  /** `major.minor.micro`, e.g. `3.11.2`. */
  readonly version: string;
  /** Why this one: `home` or `PATH`. */
  readonly source: 'home' | 'PATH';
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The PATH the workers get: the vassal's `env = PATH=...` when set, else the master's. */
function workerPath(config: Pick<VassalConfig, 'env'>): string {
  const own = config.env.find(([key]) => key === 'PATH');
  return own?.[1] ?? process.env.PATH ?? '';
}

/**
 * Finds and runs the interpreter for `config` once, to check it exists and is new enough.
 * @throws PythonInterpreterError naming what was looked for and why it does not do.
 */
export function resolvePythonInterpreter(config: Pick<VassalConfig, 'home' | 'env'>): PythonInterpreter {
  let path: string | undefined;
  let source: PythonInterpreter['source'];
  if (config.home !== undefined) {
    source = 'home';
    const candidates = ['python3', 'python'].map((name) => join(config.home as string, 'bin', name));
    path = candidates.find(isExecutable);
    if (path === undefined) {
      throw new PythonInterpreterError(
        `home ${config.home}: no Python interpreter there (looked for ${candidates.join(' and ')}); ` +
          `create the environment (python3 -m venv ${config.home}) or fix home`,
      );
    }
  } else {
    source = 'PATH';
    path = findExecutable('python3', workerPath(config));
    if (path === undefined) {
      throw new PythonInterpreterError('no python3 on PATH: install Python 3 (apt-get install python3) or set home to a virtual environment');
    }
  }
  let version: string;
  try {
    version = execFileSync(path, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], {
      encoding: 'utf8',
      timeout: VERSION_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PATH: workerPath(config) },
    }).trim();
  } catch (err) {
    throw new PythonInterpreterError(`${path} (from ${source}) does not run: ${(err as Error).message.split('\n')[0] ?? ''}`, { cause: err });
  }
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) {
    throw new PythonInterpreterError(`${path} is Python ${version}; the worker needs Python ${MIN_PYTHON.join('.')} or newer`);
  }
  return { path, version, source };
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
