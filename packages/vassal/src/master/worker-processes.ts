/**
 * The I/O side of the pool's processes: the pool names each process by a key; this
 * table maps the key to its child, its scoreboard slot and its stack file, starts
 * workers through their runtime, carries signals and messages to them, and turns what
 * they do (messages, exits) into pool events.
 */
import { unlinkSync } from 'node:fs';
import type { VassalConfig } from '@emperor/config';
import { parseWorkerToMaster, type MasterToWorker } from '@emperor/protocol';
import type { Clock, ExitInfo, Logger, WorkerChild } from '@emperor/process';
import { SlotStatus, type SlotData } from '../shared/scoreboard.js';
import type { ScoreboardPort } from './io.js';
import type { PoolEvent } from './pool/index.js';
import type { LaunchedWorker, Runtime } from './runtimes/runtime.js';
import type { BoundSocket } from './sockets.js';
import { captureStack, stackFileFor, type StackRequest } from './stack-dump.js';
import { cpusFor, launchRequest } from './worker-launch.js';

/** One live worker process. */
interface Entry {
  readonly child: WorkerChild;
  readonly sbIndex: number;
  readonly stack: StackRequest | undefined;
  /** `publish` messages sent and `published` answers received (see {@link WorkerProcesses.publishNow}). */
  asked: number;
  answered: number;
  /** Stats reads waiting: each resolves once `answered` reaches its `asked`. */
  waiters: { readonly asked: number; readonly resolve: () => void }[];
}

/** What {@link WorkerProcesses} needs from the master. */
export interface WorkerProcessesOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly scoreboard: ScoreboardPort;
  /** The worker's stdout and stderr now (the `logto` descriptor, or the master's own). */
  readonly logFd: () => number | undefined;
  /** Where a child's message or exit goes (the master feeds it to the pool). */
  readonly onEvent: (event: PoolEvent) => void;
}

/** The master's live worker processes, by the pool's key. */
export class WorkerProcesses {
  readonly #o: WorkerProcessesOptions;
  readonly #entries = new Map<number, Entry>();
  #closed = false;
  /** Launch errors already logged (one per cause, however many workers it failed). */
  readonly #logged = new WeakSet<object>();

  constructor(options: WorkerProcessesOptions) {
    this.#o = options;
  }

  /**
   * Starts process `key` (worker `id`) of `config` through `runtime`, with `sockets`
   * (the bound sockets, looked up by `config`'s).
   * @returns the pool's answer: `spawned`, or `spawn-failed` (logged here); a promise of
   *   it for a runtime that starts workers asynchronously
   */
  spawn(key: number, id: number, generation: number, config: VassalConfig, runtime: Runtime, sockets: readonly BoundSocket[]): PoolEvent | Promise<PoolEvent> {
    const { logger, scoreboard } = this.#o;
    const index = this.#closed ? undefined : scoreboard.allocate();
    if (index === undefined) {
      logger.error({ worker: id }, `cannot spawn worker ${id}: scoreboard full`);
      return { type: 'spawn-failed', key };
    }
    const mine = config.sockets.map((spec) => sockets.find((s) => s.spec.name === spec.name && s.spec.protocol === spec.protocol));
    const unbound = config.sockets.find((_, i) => mine[i] === undefined);
    if (unbound !== undefined) {
      scoreboard.release(index);
      logger.error({ worker: id }, `cannot spawn worker ${id}: socket ${unbound.name} is not bound`);
      return { type: 'spawn-failed', key };
    }
    let stackFile: string | undefined;
    if (config.harakiriVerbose) {
      try {
        stackFile = stackFileFor(process.pid, index);
      } catch (err) {
        logger.warn({ worker: id }, `harakiri-verbose: cannot make a private directory for stack files (${(err as Error).message}); harakiri lines will carry no stack`);
      }
    }
    const failed = (err: unknown): PoolEvent => {
      scoreboard.release(index);
      // One cause (a template that could not import the app) fails every worker asked of it: one line.
      if (typeof err !== 'object' || err === null || !this.#logged.has(err)) {
        logger.error({ worker: id, err }, `cannot spawn worker ${id}: ${(err as Error).message}`);
        if (typeof err === 'object' && err !== null) this.#logged.add(err);
      }
      return { type: 'spawn-failed', key };
    };
    const started = ({ child, askStack }: LaunchedWorker): PoolEvent => {
      this.#entries.set(key, { child, sbIndex: index, stack: stackFile === undefined ? undefined : { file: stackFile, ask: askStack ?? (() => false) }, asked: 0, answered: 0, waiters: [] });
      child.on('message', (raw) => this.#onMessage(key, id, child, raw));
      child.once('exit', (exit) => this.#onExit(key, exit));
      // A forked worker can be reported dead before its launch settles: the pool hears
      // `spawned` first (fed when this returns), then the exit.
      const early = child.exit;
      if (early !== undefined) setImmediate(() => this.#onExit(key, early));
      // Logged here, before the pool hears of it: its ready timeout counts from after this line.
      const cpus = cpusFor(id, config);
      const pinned = cpus !== undefined && cpus.length > 0;
      logger.info(
        { worker: id, worker_pid: child.pid, generation, ...(pinned ? { cpus } : {}) },
        `spawned worker ${id} (pid ${child.pid})${pinned ? `, pinned to CPUs ${cpus.join(' ')}` : ''}`,
      );
      return { type: 'spawned', key, pid: child.pid, spawnedAt: child.spawnedAt, sync: runtime.sync };
    };
    let launched;
    try {
      const log = this.#o.logFd() ?? 'inherit';
      launched = runtime.launch(launchRequest({
        config, id, generation, runtime, sockets: mine as BoundSocket[], scoreboard: { fd: scoreboard.fd, index }, stackFile, log, clock: this.#o.clock,
      }));
    } catch (err) {
      return failed(err);
    }
    return launched instanceof Promise ? launched.then(started, failed) : started(launched);
  }

  #onMessage(key: number, id: number, child: WorkerChild, raw: unknown): void {
    let message;
    try {
      message = parseWorkerToMaster(raw);
    } catch (err) {
      this.#o.logger.warn({ worker: id, worker_pid: child.pid }, (err as Error).message);
      return;
    }
    if (message.type === 'published') {
      const entry = this.#entries.get(key);
      if (entry !== undefined) {
        entry.answered += 1;
        entry.waiters = entry.waiters.filter((w) => (entry.answered >= w.asked ? (w.resolve(), false) : true));
      }
      return;
    }
    this.#o.onEvent({ type: 'message', key, message });
  }

  /**
   * Asks every serving worker to write its slot now (`publish`) and resolves once each has
   * answered (`published`), or after `timeoutMs`, whichever comes first; never rejects.
   * Workers whose slot shows them starting (no loop reads their channel yet) or whose
   * channel is closed are not asked. A worker in the middle of a long request (a sync
   * Python worker) answers when it ends: the read then uses the slot it has (busy).
   * Costs the workers nothing per request: only stats reads pay (issue 17).
   */
  async publishNow(timeoutMs: number): Promise<void> {
    if (this.#closed) return;
    const all = this.#o.scoreboard.readAll();
    const pending: Promise<void>[] = [];
    for (const entry of this.#entries.values()) {
      const slot = all[entry.sbIndex];
      if (slot === undefined || slot.pid !== entry.child.pid || (slot.status !== SlotStatus.IDLE && slot.status !== SlotStatus.BUSY)) continue;
      if (!entry.child.send({ v: 1, type: 'publish' } satisfies MasterToWorker)) continue;
      entry.asked += 1;
      const asked = entry.asked;
      pending.push(new Promise((resolve) => entry.waiters.push({ asked, resolve })));
    }
    if (pending.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(pending), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  #onExit(key: number, exit: ExitInfo): void {
    const entry = this.#entries.get(key);
    this.#entries.delete(key);
    for (const w of entry?.waiters ?? []) w.resolve(); // it will not answer: its final slot is read below
    let final: SlotData | undefined;
    if (entry !== undefined && !this.#closed) {
      // Final counters: the last reading of the slot, then the slot goes back to the pool.
      const last = this.#o.scoreboard.read(entry.sbIndex);
      if (last !== undefined && last.pid === entry.child.pid) final = last;
      this.#o.scoreboard.release(entry.sbIndex);
    }
    if (entry?.stack !== undefined) {
      try {
        unlinkSync(entry.stack.file);
      } catch {
        // never written
      }
    }
    this.#o.onEvent({ type: 'exit', key, exit, final });
  }

  send(key: number, message: MasterToWorker): void {
    this.#entries.get(key)?.child.send(message);
  }

  signal(key: number, signal: NodeJS.Signals): void {
    this.#entries.get(key)?.child.kill(signal);
  }

  /** The polite stop: the `stop` message, SIGTERM when the channel is closed. */
  stop(key: number): void {
    const child = this.#entries.get(key)?.child;
    if (child !== undefined && !child.send({ v: 1, type: 'stop' } satisfies MasterToWorker)) child.kill('SIGTERM');
  }

  /** Sends every live worker `message`. */
  broadcast(message: MasterToWorker): void {
    for (const entry of this.#entries.values()) entry.child.send(message);
  }

  /** Harakiri: logs the request (and with `harakiri-verbose` the worker's stack first), then SIGKILL (uWSGI `trigger_harakiri`). */
  async harakiri(key: number, msg: string, fields: Readonly<Record<string, unknown>>): Promise<void> {
    const entry = this.#entries.get(key);
    if (entry?.stack !== undefined) {
      const stack = await captureStack(entry.stack);
      this.#o.logger.error({ ...fields, stack }, `${msg}; stack:\n${stack}`);
    } else {
      this.#o.logger.error(fields, msg);
    }
    entry?.child.kill('SIGKILL');
  }

  /** Every live process's slot in one scoreboard read, by key (only slots its pid owns). */
  readings(): Map<number, SlotData> {
    const out = new Map<number, SlotData>();
    if (this.#closed) return out;
    const all = this.#o.scoreboard.readAll();
    for (const [key, entry] of this.#entries) {
      const data = all[entry.sbIndex];
      if (data !== undefined && data.pid === entry.child.pid) out.set(key, data);
    }
    this.#o.scoreboard.keep();
    return out;
  }

  /**
   * True when the scoreboard holds the same bytes as at the last {@link readings}: what
   * that reading gave is still what the workers publish (see `Scoreboard.unchanged`).
   */
  unchanged(): boolean {
    return !this.#closed && this.#o.scoreboard.unchanged();
  }

  /** Closes the scoreboard (the master is done; exits that follow are still reported). */
  close(): void {
    this.#closed = true;
    this.#o.scoreboard.close();
  }
}
