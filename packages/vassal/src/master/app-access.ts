/**
 * Before the first worker starts, after the master dropped to the vassal's `uid`/`gid`:
 * can that user enter the working directory and read the app? Otherwise every worker
 * dies at start (a spawn EACCES, or an import error) and is respawned with a growing
 * delay, each death logged as a crash. One error naming the path, the option, the user
 * and the fix says it better, once.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import type { VassalConfig } from '@emperor/config';
import { PrivilegeError } from '@emperor/protocol';
import { describeUser } from './python-interpreter.js';

type AppConfig = Pick<VassalConfig, 'runtime' | 'chdir' | 'baseDir' | 'module' | 'wsgiFile' | 'pythonpath'>;

/** The access(2) error code for `path` with `mode`, or undefined when allowed. */
function denied(path: string, mode: number): string | undefined {
  try {
    accessSync(path, mode);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'EACCES';
  }
}

/**
 * Checks, as this process's user, that the workers' directory (`chdir`, else the vassal
 * file's directory) can be entered, and that the app can be read: `wsgi-file`, a Node
 * `module`, and for a Python `module` the first of `pkg/mod.py` / `pkg/mod/__init__.py`
 * found under `pythonpath` and the working directory (a module not found there is left
 * to Python, which also looks in site-packages). A path that does not exist is left to
 * the worker, which reports it (exit 22); only a path this user may not use is an error.
 * @throws PrivilegeError naming the option, the path, the user and the fix
 */
export function checkAppAccess(config: AppConfig): void {
  const who = describeUser();
  const fail = (option: string, path: string, what: string, change = `change ${option}`): never => {
    throw new PrivilegeError(`${option} ${path}: ${who} cannot ${what}, and the workers run as that user: give it access (chmod, chgrp) or ${change}`);
  };
  const workDir = config.chdir ?? config.baseDir;
  if (denied(workDir, constants.X_OK) === 'EACCES') {
    if (config.chdir === undefined) fail('the vassal file\'s directory', workDir, 'enter it (the workers start there without chdir)', 'set chdir');
    else fail('chdir', workDir, 'enter it');
  }
  if (config.wsgiFile !== undefined && denied(config.wsgiFile, constants.R_OK) === 'EACCES') fail('wsgi-file', config.wsgiFile, 'read it');
  if (config.module === undefined) return;
  if (config.runtime === 'node') {
    if (denied(config.module, constants.R_OK) === 'EACCES') fail('module', config.module, 'read it');
    return;
  }
  for (const dir of config.pythonpath) {
    if (denied(dir, constants.R_OK | constants.X_OK) === 'EACCES') fail('pythonpath', dir, 'read it');
  }
  const parts = (config.module.split(':')[0] ?? '').split('.');
  for (const base of [...config.pythonpath, workDir]) {
    for (const candidate of [`${join(base, ...parts)}.py`, join(base, ...parts, '__init__.py')]) {
      const code = denied(candidate, constants.R_OK);
      if (code === undefined) return;
      if (code === 'EACCES') fail('module', `${config.module} (${candidate})`, 'read it');
    }
  }
}
