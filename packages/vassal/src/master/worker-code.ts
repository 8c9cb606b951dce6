/**
 * The files a master's workers run, and whether the vassal's user can read them: after
 * the privilege drop a worker that cannot read its own code dies with a confusing
 * "Cannot find module" (Node) or ModuleNotFoundError (Python), again and again.
 */
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The Python worker's package, beside its launcher (packages/vassal/python/). */
export const PYTHON_WORKER_PACKAGE = 'emperor_worker';

/** Where the worker programs are: the file each runtime's interpreter is given. */
export interface WorkerEntries {
  /** The Node worker's entry module. */
  readonly node: string;
  /** The Python worker's launcher (`emperor-worker.py`); the package is beside it. */
  readonly python: string;
}

/**
 * The paths a worker of `runtime` needs to read: the entry, and for Python the package
 * directory beside the launcher (all of it: see {@link findUnreadable}).
 */
export function workerCode(runtime: 'node' | 'python', entries: WorkerEntries): readonly string[] {
  return runtime === 'node' ? [entries.node] : [entries.python, join(dirname(entries.python), PYTHON_WORKER_PACKAGE)];
}

/** A path this process cannot read, and why: the errno code (e.g. `EACCES`) and the error. */
export interface Unreadable {
  readonly path: string;
  readonly code: string;
  readonly error: Error;
}

/**
 * The first of `paths` this process cannot read: a file it cannot open for reading, or
 * a directory it cannot list and enter, or anything inside one (`__pycache__` aside:
 * Python works without its byte-code cache). Undefined when all can be read.
 */
export function findUnreadable(paths: readonly string[]): Unreadable | undefined {
  for (const path of paths) {
    try {
      if (statSync(path).isDirectory()) {
        accessSync(path, constants.R_OK | constants.X_OK);
        const inside = readdirSync(path).filter((name) => name !== '__pycache__').map((name) => join(path, name));
        const found = findUnreadable(inside);
        if (found !== undefined) return found;
      } else {
        accessSync(path, constants.R_OK);
      }
    } catch (err) {
      return { path, code: (err as NodeJS.ErrnoException).code ?? (err as Error).message, error: err as Error };
    }
  }
  return undefined;
}
