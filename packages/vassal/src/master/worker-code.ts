/**
 * The files a master's workers run, and whether the vassal's user can read them: after
 * the privilege drop a worker that cannot read its own code dies with a confusing
 * "Cannot find module" (Node) or ModuleNotFoundError (Python), again and again.
 */
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PrivilegeError } from '@emperor/protocol';

/** The Python worker's package, beside its launcher (packages/vassal/python/). */
export const PYTHON_WORKER_PACKAGE = 'emperor_worker';

/** Where the worker programs are: the file each runtime's interpreter is given. */
export interface WorkerEntries {
  /** The Node worker's entry module. */
  readonly node: string;
  /** The Python worker's launcher (`emperor-worker.py`); the package is beside it. */
  readonly python: string;
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

/**
 * After the privilege drop: the worker code of this vassal's runtime (`Runtime.code`)
 * must be readable by the vassal's user, or every worker would die with a confusing
 * "Cannot find module". Emperor installed in a home directory (mode 0700 on Debian 12
 * and later) is the usual cause.
 * @throws PrivilegeError naming the file, the uid and the fix
 */
export function checkCodeReadable(code: readonly string[]): void {
  const unreadable = findUnreadable(code);
  if (unreadable === undefined) return;
  throw new PrivilegeError(
    `uid ${process.getuid?.()} cannot read Emperor's worker code ${unreadable.path} (${unreadable.code}); ` +
      'install Emperor where every vassal user can read it (for example /opt/emperor, not a home directory of mode 0700)',
    { cause: unreadable.error },
  );
}
