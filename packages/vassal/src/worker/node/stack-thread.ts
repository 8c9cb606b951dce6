/**
 * The body of the Node worker's stack watchdog thread (see stack-watchdog.ts). Runs in
 * a worker thread: it enables the debugger on the main thread at start, while the loop
 * is still responsive, then waits on the master's pipe. Each byte asks for one stack:
 * pause the main thread (the inspector interrupts even a busy loop), write its frames to
 * the stack file, resume.
 */
import { Session } from 'node:inspector';
import { readSync, writeFileSync } from 'node:fs';
import { workerData } from 'node:worker_threads';

interface Frame {
  functionName: string;
  url: string;
  location: { scriptId: string; lineNumber: number; columnNumber: number };
}

const { pipeFd, stackFile } = workerData as { pipeFd: number; stackFile: string };
const session = new Session();
session.connectToMainThread();
const byte = Buffer.alloc(1);
/** Call frames name their script by id; the URLs come with the scriptParsed events. */
const urls = new Map<string, string>();
session.on('Debugger.scriptParsed', (m) => {
  if (m.params.url) urls.set(m.params.scriptId, m.params.url);
});

function waitForRequest(): void {
  let n: number;
  try {
    n = readSync(pipeFd, byte, 0, 1, null);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
      setTimeout(waitForRequest, 50);
      return;
    }
    n = 0;
  }
  if (n === 0) {
    session.disconnect(); // the master is gone
    clearInterval(keepAlive);
    return;
  }
  session.post('Debugger.pause');
}

session.on('Debugger.paused', (message) => {
  const frames = (message.params.callFrames as Frame[]).map((f) => {
    const where = `${f.url || urls.get(f.location.scriptId) || '<anonymous>'}:${f.location.lineNumber + 1}:${f.location.columnNumber + 1}`;
    return `    at ${f.functionName || '<anonymous>'} (${where})`;
  });
  try {
    writeFileSync(stackFile, `JavaScript stack of the main thread:\n${frames.join('\n')}\n`, { mode: 0o600 });
  } catch {
    // the master logs that no stack came
  }
  session.post('Debugger.resume', () => setImmediate(waitForRequest));
});

// An inspector session does not keep this thread's event loop alive, so without a
// timer the thread would end before the debugger answers. (The thread itself is unref'd
// by its starter: it never keeps the worker process alive.)
const keepAlive = setInterval(() => {}, 1 << 30);
session.post('Debugger.enable', () => setImmediate(waitForRequest));
process.on('exit', () => clearInterval(keepAlive));
