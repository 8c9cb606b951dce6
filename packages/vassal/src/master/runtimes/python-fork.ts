/**
 * Python workers forked from a preloaded app (uWSGI's default; `lazy-apps` turns it off):
 * one **template** process per generation imports the app once, freezes its heap
 * (`gc.freeze()`), and forks a worker each time the master asks. The master side is here:
 * the templates by generation, and {@link ForkedChild}, the `WorkerChild` of a worker that
 * is the template's child, not ours.
 *
 * Over the template's one IPC channel (packages/protocol `MasterToTemplate` /
 * `TemplateToMaster`): `fork` → `forked` (pid) or `fork-failed`; `worker-exit` when the
 * template reaped a worker (code or signal); `from-worker` / `to-worker` carry each
 * worker's own messages (`ready`, `recycle`; `stop`, `reopen-logs`), which travel on a
 * socket pair between the template and that worker. Signals go to a worker by pid (the
 * master, the template and its workers run as the same user).
 *
 * If a template dies, each of its workers dies with it (`PR_SET_PDEATHSIG`, set in the
 * worker right after the fork); the master reports each one's exit only once /proc says
 * its pid is gone, then the pool respawns them with the usual backoff, from a new
 * template. gunicorn's `--preload` and uWSGI's master (which is itself the template) are
 * the prior art; uWSGI core/master_utils.c `uwsgi_respawn_worker` forks from the master.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { AppTemplateError, parseTemplateToMaster, type MasterToTemplate, type TemplateToMaster } from '@emperor/protocol';
import { StopEscalation, describeExit, type ChildEvents, type Clock, type ExitInfo, type Logger, type StopOptions, type TimerHandle, type WorkerChild } from '@emperor/process';
import type { LaunchRequest, LaunchedWorker } from './runtime.js';

/** How often the master looks in /proc for the workers of a dead template, ms. */
export const GONE_POLL_MS = 20;
/** After this long a worker of a dead template that is still alive (no pdeathsig?) is SIGKILLed by pid, ms. */
export const GONE_KILL_AFTER_MS = 2000;
/** A template asked to stop (no worker left) is SIGKILLed after this, ms. */
export const TEMPLATE_STOP_MERCY_MS = 5000;

/** The pid's start time (/proc/PID/stat field 22, clock ticks since boot); undefined when it is gone. */
function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); a zombie or dead task has finished running.
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** What {@link PythonTemplates} needs: how to start a template, and the process table. */
export interface TemplateOptions {
  readonly logger: Logger;
  /**
   * Starts the template process of `generation` for `request` (its config's sockets,
   * scoreboard, environment, working directory, `limit-as`), with an IPC channel.
   * @throws MissingToolError (an exec wrapper), PythonInterpreterError
   */
  readonly spawnTemplate: (request: LaunchRequest, generation: number) => WorkerChild;
  /**
   * A token naming process `pid` now (its start time), or undefined when no live process
   * has that pid (missing, a zombie). @default a read of /proc/PID/stat
   */
  readonly processToken?: ((pid: number) => string | undefined) | undefined;
  /** Sends `signal` to `pid`; false when it is gone. @default process.kill */
  readonly signal?: ((pid: number, signal: NodeJS.Signals) => boolean) | undefined;
}

function killPid(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false; // ESRCH
  }
}

/** The master's end of one forked worker's link: what {@link ForkedChild} asks of its template. */
interface ForkPort {
  /** Passes a message to the worker; false when the template is gone. */
  send(id: number, message: unknown): boolean;
  signal(pid: number, signal: NodeJS.Signals): void;
}

/**
 * A worker forked by a template: a {@link WorkerChild} whose messages come through the
 * template and whose exit the template reports (or the master, once /proc shows a dead
 * template's worker gone). Stop escalation as {@link Child}'s, on the master's clock.
 */
export class ForkedChild extends EventEmitter<ChildEvents> implements WorkerChild {
  readonly pid: number;
  readonly spawnedAt: number;
  readonly exited: Promise<ExitInfo>;
  /** The template's name for it. */
  readonly id: number;
  /** Its /proc start time when forked: a later process with its pid is not it. */
  readonly token: string | undefined;
  readonly #port: ForkPort;
  readonly #clock: Clock;
  #exit: ExitInfo | undefined;
  #resolve: (exit: ExitInfo) => void = () => {};
  readonly #stopping: StopEscalation;
  /** Messages held until the master listens (see {@link received}); undefined when none are. */
  #held: unknown[] | undefined;

  constructor(id: number, pid: number, token: string | undefined, port: ForkPort, clock: Clock) {
    super();
    this.id = id;
    this.pid = pid;
    this.token = token;
    this.#port = port;
    this.#clock = clock;
    this.#stopping = new StopEscalation(this, this.#clock);
    this.spawnedAt = clock.now();
    this.exited = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  get exit(): ExitInfo | undefined {
    return this.#exit;
  }

  isDead(): boolean {
    return this.#exit !== undefined;
  }

  send(message: unknown): boolean {
    return !this.isDead() && this.#port.send(this.id, message);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.isDead()) this.#port.signal(this.pid, signal);
  }

  stop(options: StopOptions = {}): Promise<ExitInfo> {
    return this.#stopping.stop(options);
  }

  hurry(ms: number): void {
    this.#stopping.hurry(ms);
  }

  /**
   * The template passed on a message of this worker. The worker's `ready` can come in the
   * same read as the template's `forked`, before the launch that awaits `forked` settles
   * and the master listens: such messages are held and delivered, in order, once the
   * promise continuations have run (as the early exit is, worker-processes.ts). Dropped,
   * the `ready` left a forked worker serving but "starting" in the pool, which killed it
   * at worker-ready-timeout (seen after a harakiri respawn on a loaded host).
   */
  received(message: unknown): void {
    if (this.isDead()) return;
    if (this.#held !== undefined) {
      this.#held.push(message);
      return;
    }
    if (this.listenerCount('message') > 0) {
      this.emit('message', message);
      return;
    }
    this.#held = [message];
    setImmediate(() => {
      const held = this.#held ?? [];
      this.#held = undefined;
      for (const m of held) if (!this.isDead()) this.emit('message', m);
    });
  }

  /** It exited (reported once; later reports are ignored). */
  ended(exit: ExitInfo): void {
    if (this.#exit !== undefined) return;
    this.#exit = exit;
    this.#stopping.cancel();
    this.emit('exit', exit);
    this.#resolve(exit);
  }
}

/** A fork asked for and not answered yet. */
interface PendingFork {
  readonly resolve: (child: ForkedChild) => void;
  readonly reject: (err: Error) => void;
  readonly clock: Clock;
}

/** One template process: the app of one generation, imported once. */
class Template {
  readonly generation: number;
  readonly child: WorkerChild;
  readonly #o: TemplateOptions;
  readonly #clock: Clock;
  /**
   * Resolves once the app is imported (undefined), or with the template's exit if it died
   * first (it could not import the app, or did not within `worker-ready-timeout`).
   */
  readonly loaded: Promise<ExitInfo | undefined>;
  #loaded = false;
  #stopping = false;
  #loadTimer: TimerHandle | undefined;
  readonly #pending = new Map<number, PendingFork>();
  readonly workers = new Map<number, ForkedChild>();
  readonly #onGone: () => void;

  constructor(generation: number, child: WorkerChild, loadTimeoutMs: number, clock: Clock, options: TemplateOptions, onGone: () => void) {
    this.generation = generation;
    this.child = child;
    this.#o = options;
    this.#clock = clock;
    this.#onGone = onGone;
    let settle: (exit: ExitInfo | undefined) => void = () => {};
    this.loaded = new Promise((resolve) => {
      settle = resolve;
    });
    if (loadTimeoutMs > 0) {
      // Node arms a timer from the loop's cached time, which can be a few ms old: a timer
      // that fires before the deadline by the clock waits out the rest.
      const deadline = clock.now() + loadTimeoutMs;
      const check = (): void => {
        const left = deadline - clock.now();
        if (left > 0) {
          this.#loadTimer = clock.setTimeout(check, left);
          return;
        }
        options.logger.error({ generation, template_pid: child.pid },
          `app template of generation ${generation} (pid ${child.pid}) did not load the app within worker-ready-timeout (${loadTimeoutMs / 1000} s); killing it`);
        child.kill('SIGKILL');
      };
      this.#loadTimer = clock.setTimeout(check, loadTimeoutMs);
    }
    child.on('message', (raw) => this.#onMessage(raw, () => settle(undefined)));
    child.once('exit', (exit) => this.#onExit(exit, settle));
  }

  get live(): boolean {
    return !this.child.isDead();
  }

  /** Workers alive or asked for. */
  get busy(): boolean {
    return this.#pending.size > 0 || [...this.workers.values()].some((w) => !w.isDead());
  }

  #onMessage(raw: unknown, loaded: () => void): void {
    let m: TemplateToMaster;
    try {
      m = parseTemplateToMaster(raw);
    } catch (err) {
      if (typeof raw === 'object' && raw !== null && 'cmd' in raw) return; // Node's own
      this.#o.logger.warn({ template_pid: this.child.pid }, (err as Error).message);
      return;
    }
    switch (m.type) {
      case 'loaded':
        if (this.#loadTimer !== undefined) this.#clock.clearTimeout(this.#loadTimer);
        this.#loaded = true;
        loaded();
        return;
      case 'forked': {
        const pending = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        if (pending === undefined) return;
        const token = (this.#o.processToken ?? procStart)(m.pid);
        const worker = new ForkedChild(m.id, m.pid, token, {
          send: (id, message) => this.send({ v: 1, type: 'to-worker', id, message: message as never }),
          signal: (pid, signal) => (this.#o.signal ?? killPid)(pid, signal),
        }, pending.clock);
        this.workers.set(m.id, worker);
        pending.resolve(worker);
        return;
      }
      case 'fork-failed': {
        const pending = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        pending?.reject(new AppTemplateError(`the app template of generation ${this.generation} (pid ${this.child.pid}) could not fork: ${m.reason}`));
        return;
      }
      case 'worker-exit': {
        const worker = this.workers.get(m.id);
        this.workers.delete(m.id);
        worker?.ended({ code: m.code, signal: m.signal as NodeJS.Signals | null });
        return;
      }
      case 'from-worker':
        this.workers.get(m.id)?.received(m.message);
        return;
      default: {
        const never: never = m;
        void never;
      }
    }
  }

  #onExit(exit: ExitInfo, settleLoad: (exit: ExitInfo) => void): void {
    if (this.#loadTimer !== undefined) this.#clock.clearTimeout(this.#loadTimer);
    const how = describeExit(exit);
    const what = `the app template of generation ${this.generation} (pid ${this.child.pid})`;
    // Its own "cannot load app" line, just before, names the file and the exception.
    if (!this.#loaded) settleLoad(exit);
    // A fork asked of a template that died is a worker that died at once, with its exit.
    for (const pending of this.#pending.values()) pending.resolve(this.stillborn(exit, pending.clock));
    this.#pending.clear();
    const orphans = [...this.workers.values()].filter((w) => !w.isDead());
    this.workers.clear();
    if (this.#loaded && !this.#stopping) {
      this.#o.logger.error({ generation: this.generation, template_pid: this.child.pid, exit_code: exit.code, signal: exit.signal },
        `${what} died: ${how}${orphans.length > 0 ? `; its ${orphans.length} worker(s) die with it` : ''}`);
    }
    for (const worker of orphans) this.#whenGone(worker, this.#clock.now());
    this.#onGone();
  }

  /**
   * Reports `worker`'s exit once no live process has its pid: each worker of a dead
   * template gets SIGKILL from the kernel (pdeathsig); one still there after
   * {@link GONE_KILL_AFTER_MS} gets it from us.
   */
  #whenGone(worker: ForkedChild, since: number): void {
    const token = (this.#o.processToken ?? procStart)(worker.pid);
    if (token === undefined || (worker.token !== undefined && token !== worker.token)) {
      worker.ended({ code: null, signal: 'SIGKILL' });
      return;
    }
    if (this.#clock.now() - since >= GONE_KILL_AFTER_MS) (this.#o.signal ?? killPid)(worker.pid, 'SIGKILL');
    this.#clock.setTimeout(() => this.#whenGone(worker, since), GONE_POLL_MS);
  }

  /**
   * A worker that never ran because this template died first (it could not import the
   * app, or crashed): reported as dead at once with the template's pid and exit, so the
   * pool treats it as it treats a lazy worker that could not import the app (respawn
   * with backoff; a reload abandoned).
   */
  stillborn(exit: ExitInfo, clock: Clock): ForkedChild {
    const worker = new ForkedChild(0, this.child.pid, undefined, { send: () => false, signal: () => {} }, clock);
    worker.ended(exit);
    return worker;
  }

  send(message: MasterToTemplate): boolean {
    return this.live && this.child.send(message);
  }

  /** Asks for one worker; resolves with it once forked. @throws (rejects with) AppTemplateError */
  fork(id: number, request: LaunchRequest): Promise<ForkedChild> {
    return new Promise((resolve, reject) => {
      const sent = this.send({
        v: 1, type: 'fork', id, spec: request.spec, cpus: request.limits.cpus ?? [], limitAsBytes: request.limits.limitAsBytes ?? 0,
      });
      if (!sent) {
        resolve(this.stillborn(this.child.exit ?? { code: null, signal: 'SIGKILL' }, request.clock));
        return;
      }
      this.#pending.set(id, { resolve, reject, clock: request.clock });
    });
  }

  /** No more forks: the template exits (SIGKILL after {@link TEMPLATE_STOP_MERCY_MS}). */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    void this.child.stop({ message: { v: 1, type: 'stop' } satisfies MasterToTemplate, mercyMs: TEMPLATE_STOP_MERCY_MS });
  }
}

/**
 * The templates of one master, by generation: {@link launch} forks a worker from the
 * template of the request's generation (started on first need), {@link retain} stops
 * those of generations the pool no longer needs.
 */
export class PythonTemplates {
  readonly #o: TemplateOptions;
  readonly #byGeneration = new Map<number, Template>();
  #nextId = 1;

  constructor(options: TemplateOptions) {
    this.#o = options;
  }

  /**
   * Forks one worker for `request` from its generation's template, starting that first
   * if there is none (the app is imported there, once).
   * A template that cannot import the app (or dies first) answers with a worker already
   * dead with the template's exit (code 22 after its `cannot load app` line), so the pool
   * treats it as a lazy worker that could not import.
   * @throws (rejects with) AppTemplateError when the template cannot fork (fork() or
   *   socketpair() failed); MissingToolError or PythonInterpreterError when it cannot be started
   */
  async launch(request: LaunchRequest): Promise<LaunchedWorker> {
    const generation = request.spec.generation;
    let template = this.#byGeneration.get(generation);
    if (template === undefined || !template.live) {
      const child = this.#o.spawnTemplate(request, generation);
      // Logged before the template's load timer is armed, so the worker-ready-timeout
      // line can never come sooner than the timeout after this one.
      this.#o.logger.info({ generation, template_pid: child.pid }, `app template of generation ${generation} started (pid ${child.pid}): importing the app once for its workers`);
      const created: Template = new Template(generation, child, request.config.workerReadyTimeoutMs, request.clock, this.#o, () => {
        if (this.#byGeneration.get(generation) === created) this.#byGeneration.delete(generation);
      });
      template = created;
      this.#byGeneration.set(generation, template);
    }
    const died = await template.loaded;
    const child = died === undefined ? await template.fork(this.#nextId++, request) : template.stillborn(died, request.clock);
    return {
      child,
      askStack: () => {
        if (child.isDead()) return false;
        return (this.#o.signal ?? killPid)(child.pid, 'SIGUSR2');
      },
    };
  }

  /**
   * The generations the pool still needs: a template of any other generation is stopped
   * once it has no worker left (called again as they exit).
   */
  retain(generations: ReadonlySet<number>): void {
    for (const [generation, template] of this.#byGeneration) {
      if (generations.has(generation) || template.busy) continue;
      this.#byGeneration.delete(generation);
      template.stop();
    }
  }
}
