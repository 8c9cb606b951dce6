/**
 * Python WSGI workers, one request at a time per thread. By default a template process
 * imports the app once and forks every worker (uWSGI's preload; `python-fork.ts`); with
 * `lazy-apps` (or `lazy`) the interpreter runs the worker program for each worker, which
 * imports the app itself.
 */
import { dirname, join } from 'node:path';
import type { Logger, WorkerChild } from '@emperor/process';
import { PythonInterpreters, describeUser } from '../python-interpreter.js';
import { PYTHON_WORKER_PACKAGE } from '../worker-code.js';
import { execWorker } from './exec.js';
import { PythonTemplates, type TemplateOptions } from './python-fork.js';
import type { LaunchRequest, Runtime } from './runtime.js';

/** Set in a template's environment (and removed by it): import the app, then fork workers on request. */
export const TEMPLATE_ENV = 'EMPEROR_TEMPLATE';

/** Test seams of {@link pythonRuntime}. */
export interface PythonRuntimeOptions {
  /** Replaces how a template process is started (a fake in unit tests). */
  readonly spawnTemplate?: TemplateOptions['spawnTemplate'];
  readonly processToken?: TemplateOptions['processToken'];
  readonly signal?: TemplateOptions['signal'];
}

/**
 * The Python runtime running the worker launcher at `entry` (the `emperor_worker`
 * package is beside it). The interpreter of each config is resolved in `prepare` and
 * logged once, in `logger`.
 */
export function pythonRuntime(entry: string, logger: Logger, options: PythonRuntimeOptions = {}): Runtime {
  const pythons = new PythonInterpreters();
  const spawnTemplate = (request: LaunchRequest, generation: number): WorkerChild => {
    // The template runs as the workers would (same fds, environment, working directory,
    // limit-as and pdeathsig); each worker is pinned to its CPUs after the fork.
    const args = ['-u', entry, `vassal=${request.config.name}`, `template=${generation}`];
    const env = { ...request.env, [TEMPLATE_ENV]: '1' };
    const limits = { ...request.limits, cpus: undefined };
    return execWorker(pythons.pathFor(request.config), args, { ...request, env, limits }, false).child;
  };
  const templates = new PythonTemplates({ logger, spawnTemplate: options.spawnTemplate ?? spawnTemplate, processToken: options.processToken, signal: options.signal });
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
        logger.info({ python: found.path, python_version: found.version, ...(found.shim === undefined ? {} : { python_shim: found.shim }) }, `python interpreter: ${found.path} (Python ${found.version}, from ${found.source}${found.shim === undefined ? '' : ` through the pyenv shim ${found.shim}`}${skipped})`);
      });
    },
    app: (config) => ({
      runtime: 'python', module: config.module, wsgiFile: config.wsgiFile, callable: config.callable, asgi: config.asgi, asyncLimit: config.asyncLimit,
      websocketsMaxBytes: config.websocketsMaxSizeBytes, pythonpath: config.pythonpath, home: config.home,
      lazy: config.lazyApps, processes: config.processes, masterPid: process.pid, options: config.resolved.map((o) => [o.name, o.value] as const),
    }),
    launch(request) {
      if (!request.config.lazyApps) return templates.launch(request);
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
    retain: (generations) => templates.retain(generations),
  };
}
