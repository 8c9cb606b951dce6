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
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

/** How to ask one worker for its stack. */
export interface StackRequest {
  /** Where the worker writes the stack. */
  readonly file: string;
  /** Asks it (a signal, a byte on a pipe: the runtime's way); false when the worker is gone. */
  readonly ask: () => boolean;
}

/** Longest wait for a stack before the kill goes ahead without it, ms. */
export const STACK_TIMEOUT_MS = 500;
/** Longest stack text logged, bytes. */
const MAX_STACK_BYTES = 64 * 1024;

/** This master's private directory for stack files (created on first use). */
let stackDir: string | undefined;

/**
 * A fresh path for a worker's stack file. The file lives in a directory private to this
 * master (mode 0700, owned by the vassal's uid, since masters call this after dropping
 * privileges), created on first use in memory-backed storage when available: /dev/shm and
 * the temp dir are world-writable and listable, and a stack can carry request data.
 * @throws the `mkdtemp` error (ENOSPC, EACCES) when the directory cannot be made
 */
export function stackFileFor(masterPid: number, slot: number): string {
  stackDir ??= mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `emperor-${masterPid}-`));
  return join(stackDir, `stack-${slot}-${randomBytes(4).toString('hex')}.txt`);
}

/** Removes this master's stack directory and what is left in it; for the master's exit. Never throws. */
export function removeStackDir(): void {
  if (stackDir === undefined) return;
  try {
    rmSync(stackDir, { recursive: true, force: true });
  } catch {
    // best effort: memory-backed storage is cleared at boot anyway
  }
  stackDir = undefined;
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
export async function captureStack(request: StackRequest): Promise<string> {
  const before = Math.max(0, sizeOf(request.file));
  if (!request.ask()) return '(the worker is gone)';
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
