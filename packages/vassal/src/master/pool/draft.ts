/**
 * The working copy one {@link step} edits: the pool's maps are copied and its records
 * replaced (never changed in place), so the pool passed in stays as it was, and the
 * commands are collected in order. Internal to the pool.
 */
import type { CheaperState } from '../cheaper.js';
import type {
  EmitCommand,
  Pool,
  PoolCommand,
  PoolPhase,
  QueuedReload,
  ReloadState,
  StepResult,
  WorkerProc,
  WorkerSlot,
} from './types.js';

/** An emit command without its `type`. */
type Emit = EmitCommand extends infer C ? (C extends EmitCommand ? Omit<C, 'type'> : never) : never;

export class Draft {
  readonly now: number;
  phase: PoolPhase;
  config: Pool['config'];
  generation: number;
  serving: number;
  uid: number | undefined;
  nextKey: number;
  reload: ReloadState | undefined;
  queuedReload: QueuedReload | undefined;
  cheaper: CheaperState;
  touched: ReadonlyMap<string, number>;
  announced: Pool['announced'];
  nextTickAt: number | undefined;
  lastBeat: number;
  stopBy: number | undefined;
  cheapWatchedAt: number;
  readonly slots: Map<number, WorkerSlot>;
  readonly procs: Map<number, WorkerProc>;
  readonly commands: PoolCommand[] = [];
  answer: string | undefined;

  constructor(pool: Pool, now: number) {
    this.now = now;
    this.phase = pool.phase;
    this.config = pool.config;
    this.generation = pool.generation;
    this.serving = pool.serving;
    this.uid = pool.uid;
    this.nextKey = pool.nextKey;
    this.reload = pool.reload;
    this.queuedReload = pool.queuedReload;
    this.cheaper = pool.cheaper;
    this.touched = pool.touched;
    this.announced = pool.announced;
    this.nextTickAt = pool.nextTickAt;
    this.lastBeat = pool.lastBeat;
    this.stopBy = pool.stopBy;
    this.cheapWatchedAt = pool.cheapWatchedAt;
    this.slots = new Map(pool.slots);
    this.procs = new Map(pool.procs);
  }

  /** Starting or running: the phases in which workers are checked and replaced. */
  get live(): boolean {
    return this.phase === 'starting' || this.phase === 'running';
  }

  slot(id: number): WorkerSlot | undefined {
    return this.slots.get(id);
  }

  proc(key: number | undefined): WorkerProc | undefined {
    return key === undefined ? undefined : this.procs.get(key);
  }

  /** Replaces worker id `id`'s record with `patch` applied (the latest record: patches add up); undefined if there is no such id. */
  setSlot(id: number, patch: Partial<Omit<WorkerSlot, 'id'>>): WorkerSlot | undefined {
    const before = this.slots.get(id);
    if (before === undefined) return undefined;
    const after = { ...before, ...patch };
    this.slots.set(id, after);
    return after;
  }

  /** Replaces process `key`'s record with `patch` applied; undefined if it is not in the pool. */
  setProc(key: number, patch: Partial<Omit<WorkerProc, 'key' | 'id'>>): WorkerProc | undefined {
    const before = this.procs.get(key);
    if (before === undefined) return undefined;
    const after = { ...before, ...patch };
    this.procs.set(key, after);
    return after;
  }

  run(command: PoolCommand): void {
    this.commands.push(command);
  }

  info(msg: string, fields?: Readonly<Record<string, unknown>>): void {
    this.commands.push(fields === undefined ? { type: 'log', level: 'info', msg } : { type: 'log', level: 'info', msg, fields });
  }

  warn(msg: string, fields?: Readonly<Record<string, unknown>>): void {
    this.commands.push(fields === undefined ? { type: 'log', level: 'warn', msg } : { type: 'log', level: 'warn', msg, fields });
  }

  error(msg: string, fields?: Readonly<Record<string, unknown>>): void {
    this.commands.push(fields === undefined ? { type: 'log', level: 'error', msg } : { type: 'log', level: 'error', msg, fields });
  }

  emit(command: Emit): void {
    this.commands.push({ type: 'emit', ...command });
  }

  done(): StepResult {
    const pool: Pool = {
      phase: this.phase,
      config: this.config,
      generation: this.generation,
      serving: this.serving,
      uid: this.uid,
      slots: this.slots,
      procs: this.procs,
      nextKey: this.nextKey,
      reload: this.reload,
      queuedReload: this.queuedReload,
      cheaper: this.cheaper,
      touched: this.touched,
      announced: this.announced,
      nextTickAt: this.nextTickAt,
      lastBeat: this.lastBeat,
      stopBy: this.stopBy,
      cheapWatchedAt: this.cheapWatchedAt,
    };
    return this.answer === undefined ? { pool, commands: this.commands } : { pool, commands: this.commands, answer: this.answer };
  }
}
