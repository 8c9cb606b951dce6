/**
 * `emperor upgrade` (issue 19), the way nginx upgrades its binary: the running emperor
 * starts its own command line again (so the build now on disk, and its configuration
 * read anew), waits until the new process listens on the control socket, and exits
 * without stopping its vassals; their masters, seeing their emperor go, knock on the
 * control socket and the new emperor adopts them.
 *
 * The two emperors never listen at once: the old one closes its control socket and
 * stats servers first, and the new one tells it on an inherited pipe (fd 3, named by
 * `EMPEROR_UPGRADE_FD`) once it listens. A new emperor that fails before that hands
 * nothing over: the old one opens its sockets again and runs on.
 */
import { spawn } from 'node:child_process';
import { writeSync, closeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { UpgradeError } from '@emperor/protocol';

/** The variable telling a new emperor where to say it listens. */
export const UPGRADE_FD_ENV = 'EMPEROR_UPGRADE_FD';
const UPGRADE_FD = 3;

/** How long the new emperor may take to listen on the control socket, ms. */
export const UPGRADE_TIMEOUT_MS = 30_000;

/**
 * Starts the successor: this process's own command line (`process.execPath`,
 * `process.execArgv`, `process.argv`), the same environment minus the watchdog's owner
 * (WATCHDOG_PID names the old pid; the new emperor pings for the unit once it is the
 * main pid). Resolves with its pid once it listens.
 * @throws UpgradeError when it exits, or does not listen within {@link UPGRADE_TIMEOUT_MS}
 */
export function startSuccessor(env: NodeJS.ProcessEnv = process.env, timeoutMs = UPGRADE_TIMEOUT_MS): Promise<number> {
  const childEnv: NodeJS.ProcessEnv = { ...env, [UPGRADE_FD_ENV]: String(UPGRADE_FD) };
  delete childEnv.WATCHDOG_PID;
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    env: childEnv,
    cwd: process.cwd(),
    stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let said = '';
    const pipe = child.stdio[UPGRADE_FD] as Readable | null;
    const fail = (why: string): void => {
      clearTimeout(timer);
      pipe?.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      reject(new UpgradeError(`the new emperor ${why}; this one keeps running`));
    };
    const timer = setTimeout(() => fail(`(pid ${child.pid ?? '?'}) did not listen on the control socket within ${timeoutMs / 1000} s`), timeoutMs);
    child.once('error', (err) => fail(`could not start: ${err.message}`));
    child.once('exit', (code, signal) => fail(`(pid ${child.pid ?? '?'}) exited (${signal ?? `exit code ${code}`}) before it listened`));
    pipe?.setEncoding('utf8');
    pipe?.on('data', (chunk: string) => {
      said += chunk;
      if (!said.includes('listening\n')) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      pipe.destroy();
      child.unref();
      resolve(child.pid ?? 0);
    });
    pipe?.on('error', () => {});
  });
}

/**
 * In a new emperor started by {@link startSuccessor}: tells the old one it listens on the
 * control socket. A no-op in any other emperor.
 */
export function tellPredecessor(env: NodeJS.ProcessEnv = process.env): void {
  if (env[UPGRADE_FD_ENV] !== String(UPGRADE_FD)) return;
  delete env[UPGRADE_FD_ENV];
  try {
    writeSync(UPGRADE_FD, 'listening\n');
    closeSync(UPGRADE_FD);
  } catch {
    // The old emperor is gone already: nothing to tell.
  }
}
