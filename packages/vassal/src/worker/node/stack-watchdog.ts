/**
 * Starts the Node worker's stack watchdog thread (harakiri-verbose; the thread's code
 * is in stack-thread.ts). A JavaScript signal handler cannot run on a blocked event
 * loop, so the master asks through a pipe that this thread reads.
 */
import { Worker } from 'node:worker_threads';

/** Starts the thread; it never keeps the process alive and its failures are ignored. */
export function startStackWatchdog(pipeFd: number, stackFile: string): Worker {
  const worker = new Worker(new URL('./stack-thread.js', import.meta.url), { workerData: { pipeFd, stackFile }, execArgv: [], stdout: false, stderr: false });
  worker.unref();
  worker.on('error', () => {}); // a failed dump must never take the worker down
  return worker;
}
