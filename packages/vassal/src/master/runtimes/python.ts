/**
 * Python WSGI workers: the vassal's interpreter runs the worker program, which imports
 * the app itself (uWSGI's `lazy-apps`); one request at a time per thread.
 */
import { dirname, join } from 'node:path';
import type { Logger } from '@emperor/process';
import { PythonInterpreters, describeUser } from '../python-interpreter.js';
import { PYTHON_WORKER_PACKAGE } from '../worker-code.js';
import { execWorker } from './exec.js';
import type { Runtime } from './runtime.js';

/**
 * The Python runtime running the worker launcher at `entry` (the `emperor_worker`
 * package is beside it). The interpreter of each config is resolved in `prepare` and
 * logged once, in `logger`.
 */
export function pythonRuntime(entry: string, logger: Logger): Runtime {
  const pythons = new PythonInterpreters();
  return {
    name: 'python',
    sync: true,
    code: [entry, join(dirname(entry), PYTHON_WORKER_PACKAGE)],
    // faulthandler on SIGUSR2 writes every thread's stack from a C signal handler.
    stackPipe: false,
    prepare(config) {
      // Called as the vassal's user: the interpreter is the one that user's shell would pick.
      pythons.prepare(config, (found) => {
        const skipped = found.skipped.length === 0 ? '' : `; skipped ${found.skipped.join(', ')}: ${describeUser()} cannot search or execute ${found.skipped.length === 1 ? 'it' : 'them'}`;
        logger.info({ python: found.path, python_version: found.version }, `python interpreter: ${found.path} (Python ${found.version}, from ${found.source}${skipped})`);
      });
    },
    app: (config) => ({ runtime: 'python', module: config.module, wsgiFile: config.wsgiFile, callable: config.callable, pythonpath: config.pythonpath, home: config.home }),
    launch(request) {
      // -u, so what the app prints reaches the log at once, as under uWSGI. The vassal and
      // worker id follow on the command line, unread, so `ps` tells a Python worker's app
      // (a Node worker sets its title instead; the app sees neither).
      const args = ['-u', entry, `vassal=${request.config.name}`, `worker=${request.id}`];
      const { child } = execWorker(pythons.pathFor(request.config), args, request, false);
      return {
        child,
        askStack: () => {
          if (child.isDead() || child.pid <= 0) return false;
          try {
            process.kill(child.pid, 'SIGUSR2');
            return true;
          } catch {
            return false; // ESRCH: it died in between
          }
        },
      };
    },
  };
}
