/**
 * A worker runtime, as the master sees it: how to start one worker of this runtime for a
 * spec, the code the vassal's user must be able to read, how to ask a worker for its
 * stack (`harakiri-verbose`), which harakiri clock applies to it, and what to prepare
 * once per config. The pool never asks which runtime it drives; the master picks one by
 * the config's `runtime` name (vitest's `PoolWorker` adapters, chosen by name, are the
 * model). Today: `node`, and `python`, whose workers are forked from a template process
 * that imported the app once (or, with `lazy-apps`, each import it). Next: an ASGI
 * runtime (issue 21).
 */
import type { VassalConfig, WorkerRuntime } from '@emperor/config';
import type { Clock, ProcessLimits, WorkerChild } from '@emperor/process';
import type { WorkerSpec } from '../../shared/worker-spec.js';

/** Everything the master hands a runtime to start one worker. */
export interface LaunchRequest {
  /** The config the worker runs (a reload's new workers get the new one). */
  readonly config: VassalConfig;
  /** Worker id, 1-based. */
  readonly id: number;
  /** What the worker is told (also in `env`, as `EMPEROR_WORKER`). */
  readonly spec: WorkerSpec;
  /** Its environment: the master's, the vassal's `env`, `EMPEROR_WORKER`, `LISTEN_FDS`, `LISTEN_FDNAMES`. */
  readonly env: NodeJS.ProcessEnv;
  /**
   * Descriptors it must find from fd 3 on, in order: the listening sockets, then the
   * scoreboard (the spec's fd numbers say the same). A stack pipe, when the spec has
   * `stackPipeFd`, comes right after them; the IPC channel last.
   */
  readonly fds: readonly number[];
  /** Its stdout and stderr: the `logto` file's descriptor, or the master's own. */
  readonly log: number | 'inherit';
  /** Working directory (`chdir`, else the vassal file's directory). */
  readonly cwd: string;
  /** Kernel limits applied before the app loads: pdeathsig, `limit-as`, `cpu-affinity`. */
  readonly limits: ProcessLimits;
  /** The master's clock (the child's stop escalation runs on it). */
  readonly clock: Clock;
}

/** A worker a runtime started. */
export interface LaunchedWorker {
  readonly child: WorkerChild;
  /**
   * With `harakiri-verbose`: asks the worker to write its stack into the spec's
   * `stackFile` now. Returns false when the worker is gone. Never throws.
   */
  readonly askStack: (() => boolean) | undefined;
}

/** One worker runtime, master side. */
export interface Runtime {
  /** The config's `runtime` value it serves. */
  readonly name: WorkerRuntime;
  /**
   * True when a worker serves one request at a time (Python WSGI): harakiri times the
   * start of the request in its slot. False for an event loop (Node): the worker ends an
   * overdue request itself and the master judges it by its heartbeat.
   */
  readonly sync: boolean;
  /**
   * The files and directories its workers run (the program, a package beside it): the
   * vassal's user must be able to read them all (checked after the privilege drop).
   */
  readonly code: readonly string[];
  /** A worker with `harakiri-verbose` gets a pipe to be asked for its stack on (a signal cannot reach a blocked Node main thread). */
  readonly stackPipe: boolean;
  /**
   * Gets the runtime ready for `config`, once per config: at start, and for a reload
   * that re-reads the file. Logs what it found once (the Python interpreter).
   * @throws a coded error when the runtime cannot run this config (the start fails with
   *   exit code 69; a reload is abandoned and the running workers keep serving)
   */
  prepare(config: VassalConfig): void;
  /** The app part of the worker spec. */
  app(config: VassalConfig): WorkerSpec['app'];
  /**
   * Starts one worker. Errors of the program itself (EACCES on the working directory,
   * ENOENT) come later as the child's exit with `spawnError`. A runtime that learns the
   * pid later (a fork request to a template process) returns a promise: the pool keeps
   * the worker `spawning` until it settles.
   * @throws (or rejects with) a coded error when the worker cannot be started at all (a
   *   missing exec wrapper: `MissingToolError`; no interpreter: `PythonInterpreterError`)
   */
  launch(request: LaunchRequest): LaunchedWorker | Promise<LaunchedWorker>;
  /**
   * The generations the pool still needs (the serving one, a reload's, those of live
   * processes; empty once the master is done), each time that set changes: a runtime
   * that keeps a process per generation (the preloaded Python app's template) ends the
   * others. Optional: runtimes whose workers are all direct children keep nothing.
   */
  retain?(generations: ReadonlySet<number>): void;
}

/** The runtimes a master can drive, by name. */
export type Runtimes = Readonly<Record<WorkerRuntime, Runtime>>;
