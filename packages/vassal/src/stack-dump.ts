/**
 * `harakiri-verbose`: the worker's stack at the moment of the kill, logged with the
 * request (uWSGI only logs `/proc/PID/syscall` and `wchan`).
 *
 * - Python workers register `faulthandler` for SIGUSR2 on the stack file: the dump is
 *   written from a C signal handler, so it works while Python is stuck in C code.
 * - Node workers run a small watchdog thread that waits on a pipe from the master and,
 *   when asked, pauses the main thread through the inspector
 *   (`Session.connectToMainThread`, no debug port opened) and writes its call frames.
 *   A JavaScript signal handler would never run on a blocked event loop.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkerRuntime } from '@emperor/config';

/** How to ask one worker for its stack. */
export interface StackRequest {
  readonly runtime: WorkerRuntime;
  /** Where the worker writes the stack. */
  readonly file: string;
  /** Node only: the pipe its watchdog thread reads. */
  readonly pipe: Writable | undefined;
}

/** Longest wait for a stack before the kill goes ahead without it, ms. */
export const STACK_TIMEOUT_MS = 500;
/** Longest stack text logged, bytes. */
const MAX_STACK_BYTES = 64 * 1024;

/** A fresh path for a worker's stack file, in memory-backed storage when available. */
export function stackFileFor(masterPid: number, slot: number): string {
  const dir = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  return join(dir, `emperor-stack-${masterPid}-${slot}-${randomBytes(4).toString('hex')}.txt`);
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return -1;
  }
}

/**
 * Asks the worker for its stack and waits up to {@link STACK_TIMEOUT_MS} for it to be
 * written (the file's size stops growing). Never throws: on a timeout the text says so.
 */
export async function captureStack(pid: number, request: StackRequest): Promise<string> {
  const before = Math.max(0, sizeOf(request.file));
  try {
    if (request.runtime === 'python') process.kill(pid, 'SIGUSR2');
    else request.pipe?.write('S');
  } catch {
    return '(the worker is gone)';
  }
  const deadline = Date.now() + STACK_TIMEOUT_MS;
  let last = before;
  while (Date.now() < deadline) {
    await sleep(20);
    const size = sizeOf(request.file);
    if (size > before && size === last) break; // written and no longer growing
    last = size;
  }
  if (last <= before) return `(no stack within ${STACK_TIMEOUT_MS} ms)`;
  const text = readFileSync(request.file, 'utf8').slice(before);
  return text.length > MAX_STACK_BYTES ? `${text.slice(0, MAX_STACK_BYTES)}\n…(truncated)` : text.trimEnd();
}
