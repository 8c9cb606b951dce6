/**
 * What the master hands a runtime to start one worker: the spec (`EMPEROR_WORKER`), the
 * environment, the descriptors and the kernel limits, from the worker's config.
 */
import { availableParallelism } from 'node:os';
import type { VassalConfig } from '@emperor/config';
import type { Clock } from '@emperor/process';
import { requestLogSpec } from '../shared/request-log.js';
import { WORKER_SPEC_ENV, WORKER_SPEC_VERSION, fastcgiValues, heartbeatIntervalMs, type WorkerSpec } from '../shared/worker-spec.js';
import { cpusForWorker } from './health.js';
import type { LaunchRequest, Runtime } from './runtimes/runtime.js';
import type { BoundSocket } from './sockets.js';

/** One worker to start. */
export interface WorkerToLaunch {
  readonly config: VassalConfig;
  readonly id: number;
  readonly generation: number;
  readonly runtime: Runtime;
  /** The bound sockets of `config`, in its order. */
  readonly sockets: readonly BoundSocket[];
  readonly scoreboard: { readonly fd: number; readonly index: number };
  /** With `harakiri-verbose`: where it writes its stack. */
  readonly stackFile: string | undefined;
  /** stdout and stderr (the `logto` descriptor, or the master's own). */
  readonly log: number | 'inherit';
  readonly clock: Clock;
}

/** CPUs for worker `id` under `cpu-affinity` (see {@link cpusForWorker}); undefined without. */
export function cpusFor(id: number, config: VassalConfig): number[] | undefined {
  if (config.cpuAffinity <= 0) return undefined;
  return cpusForWorker(id, config.cpuAffinity, availableParallelism());
}

/** The spec a worker is started with: sockets at fd 3, 4, …, the scoreboard next, then the stack pipe. */
export function workerSpec(w: WorkerToLaunch): WorkerSpec {
  const { config, id, sockets } = w;
  return {
    v: WORKER_SPEC_VERSION,
    vassal: config.name,
    id,
    generation: w.generation,
    scoreboard: { fd: 3 + sockets.length, index: w.scoreboard.index },
    sockets: sockets.map((s, i) => ({ fd: 3 + i, name: s.spec.name, protocol: s.spec.protocol })),
    backlog: config.listen,
    bufferSize: config.bufferSize,
    threads: config.threads,
    socketTimeoutMs: config.socketTimeoutMs,
    noDeferAccept: config.noDeferAccept,
    harakiriMs: config.harakiriMs,
    harakiriVerbose: config.harakiriVerbose,
    heartbeatIntervalMs: heartbeatIntervalMs(config.harakiriMs),
    maxRequests: config.maxRequests > 0 ? config.maxRequests + (id - 1) * config.maxRequestsDelta : 0,
    minWorkerLifetimeMs: config.minWorkerLifetimeMs,
    stackFile: w.stackFile,
    stackPipeFd: w.stackFile !== undefined && w.runtime.stackPipe ? 3 + sockets.length + 1 : undefined,
    requestLog: requestLogSpec(config),
    logto: config.logto,
    app: w.runtime.app(config),
    mount: { mountpoint: config.mountpoint, manageScriptName: config.manageScriptName },
    fastcgi: fastcgiValues(config),
  };
}

/** The launch request for `w`. */
export function launchRequest(w: WorkerToLaunch): LaunchRequest {
  const { config, sockets } = w;
  const spec = workerSpec(w);
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of config.env) env[k] = v;
  env[WORKER_SPEC_ENV] = JSON.stringify(spec);
  env.LISTEN_FDS = String(sockets.length);
  env.LISTEN_FDNAMES = sockets.map((s) => s.spec.name.replaceAll(':', '_')).join(':');
  return {
    config,
    id: w.id,
    spec,
    env,
    fds: [...sockets.map((s) => s.fd), w.scoreboard.fd],
    log: w.log,
    cwd: config.chdir ?? config.baseDir,
    limits: { pdeathsig: true, limitAsBytes: config.limitAsBytes, cpus: cpusFor(w.id, config) },
    clock: w.clock,
  };
}
