/**
 * Starting a worker as a direct child process: the shape both of today's runtimes share
 * (a program and its arguments, the sockets and the scoreboard as fds 3, 4, …, an IPC
 * channel last), with the exec wrappers for the kernel limits.
 */
import type { Writable } from 'node:stream';
import { spawnChild, type Child } from '@emperor/process';
import type { LaunchRequest } from './runtime.js';

/**
 * Spawns `command args` for `request` in its own process group (a terminal's Ctrl-C
 * reaches the master, which stops the workers in order).
 * @returns the child, and with `stackPipe` the master's end of the stack pipe
 * @throws MissingToolError when a limit needs a wrapper that is not installed
 */
export function execWorker(command: string, args: readonly string[], request: LaunchRequest, stackPipe: boolean): { child: Child; pipe: Writable | undefined } {
  const child = spawnChild(
    command,
    args,
    {
      cwd: request.cwd,
      env: request.env,
      detached: true,
      stdio: ['ignore', request.log, request.log, ...request.fds, ...(stackPipe ? ['pipe' as const] : []), 'ipc'],
      serialization: 'json',
    },
    request.limits,
    request.clock,
  );
  const fd = request.spec.stackPipeFd;
  const pipe = stackPipe && fd !== undefined ? ((child.process.stdio[fd] as Writable | null) ?? undefined) : undefined;
  // The master's end of the pipe sees ECONNRESET when the worker dies: never let that throw.
  pipe?.on('error', () => {});
  return { child, pipe };
}
