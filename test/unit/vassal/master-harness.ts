/**
 * A vassal master with nothing real under it, for unit tests of its loop: the shared
 * ManualClock, FakeChild workers from a fake runtime, an in-memory scoreboard the test
 * writes slots into, and memory, accept queues and file mtimes the test sets. Nothing
 * binds, spawns or sleeps.
 */
import { pino, type Logger } from 'pino';
import { parseConfigText, resolveVassalConfig, type VassalConfig } from '@emperor/config';
import {
  EMPTY_SLOT,
  Master,
  type BoundSocket,
  type LaunchRequest,
  type MasterIo,
  type Runtime,
  type ScoreboardPort,
  type SlotData,
} from '@emperor/vassal';
import { FakeChild, ManualClock, flushMicrotasks } from '../../helpers/fakes.js';

/** A config from INI lines after `[uwsgi]` (a socket and a Node app are added first). */
export function vassalConfig(body: string, name = 'v.ini'): VassalConfig {
  const text = `[uwsgi]\nhttp-socket = 127.0.0.1:8080\nmodule = /srv/app.mjs\n${body}`;
  return resolveVassalConfig([parseConfigText(text, `/srv/${name}`, 'ini')], { env: {} }).config;
}

/** An in-memory scoreboard. */
class FakeScoreboard implements ScoreboardPort {
  readonly fd = -1;
  readonly #slots: (SlotData | undefined)[] = [];
  readonly #free: number[] = Array.from({ length: 64 }, (_, i) => 63 - i);

  allocate(): number | undefined {
    const index = this.#free.pop();
    if (index !== undefined) this.#slots[index] = EMPTY_SLOT;
    return index;
  }

  release(index: number): void {
    if (!this.#free.includes(index)) this.#free.push(index);
    this.#free.sort((a, b) => b - a);
  }

  #kept: (SlotData | undefined)[] | undefined;

  readAll(): (SlotData | undefined)[] {
    return [...this.#slots];
  }

  keep(): void {
    this.#kept = [...this.#slots];
  }

  /** Every write is a change, as a real slot's sequence number makes it, even with the same data. */
  unchanged(): boolean {
    const kept = this.#kept;
    return kept !== undefined && kept.length === this.#slots.length && kept.every((d, i) => d === this.#slots[i]);
  }

  read(index: number): SlotData | undefined {
    return this.#slots[index];
  }

  write(index: number, data: SlotData): void {
    this.#slots[index] = data;
  }

  close(): void {}
}

/** One worker the fake runtime started. */
export interface Launched {
  readonly child: FakeChild;
  readonly request: LaunchRequest;
}

/** A log line as the master wrote it. */
export interface Line {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** A master on fakes, and the handles a test drives it with. */
export interface Harness {
  readonly master: Master;
  readonly clock: ManualClock;
  /** Every worker started, in order. */
  readonly launched: Launched[];
  readonly lines: Line[];
  /** Events the master emitted, in order (`reloaded:true`, `exit:0`, …). */
  readonly events: string[];
  /** Workers of id `id`, oldest first. */
  workers(id: number): FakeChild[];
  /** The newest worker of id `id`. */
  last(id: number): FakeChild;
  /** Messages it says as `ready`. */
  ready(child: FakeChild): void;
  /** Writes the child's scoreboard slot (its pid filled in). */
  slot(child: FakeChild, data: Partial<SlotData>): void;
  /** RSS (bytes) the next memory sample reports for a pid. */
  readonly rss: Map<number, number>;
  /** mtimes the master sees, by file. */
  readonly mtimes: Map<string, number>;
  /** The config a reload re-reads (an error: the file is invalid). */
  reloadTo: VassalConfig | Error;
  /** Every socket bound, by name, and whether the master closed it. */
  readonly bound: { readonly name: string; closed: boolean }[];
  /** Sockets listened on through a duplicate (cheap mode's watch), by name, in order. */
  readonly listened: string[];
  /** Every duplicate handed out for cheap mode's watch. */
  readonly dups: FakeDup[];
  /** Log messages matching `re`. */
  logged(re: RegExp): Line[];
  /** Advances the clock by `ms`, then lets microtasks (exits, promise continuations) run. */
  advance(ms: number): Promise<void>;
  flush(): Promise<void>;
  /** With `deferLaunch`: lets every launch asked for so far complete. */
  completeLaunches(): void;
}

/** A duplicate socket handle as cheap mode's watch sees it (sockets.ts `DupHandle`). */
export interface FakeDup {
  readonly fd: number;
  readonly name: string;
  listening: boolean;
  closed: boolean;
  onconnection: ((status: number, client: unknown) => void) | null;
  listen(backlog: number): number;
  close(): void;
}

/** Starts a master on fakes with `config`; `sync` makes the runtime a one-request-at-a-time one (harakiri by request start). */
export async function startMaster(
  config: VassalConfig,
  options: { sync?: boolean; deferLaunch?: boolean; python?: (clock: ManualClock, logger: Logger) => Runtime } = {},
): Promise<Harness> {
  const clock = new ManualClock(1_800_000_000_000);
  const launched: Launched[] = [];
  const lines: Line[] = [];
  const events: string[] = [];
  const scoreboard = new FakeScoreboard();
  const rss = new Map<number, number>();
  const mtimes = new Map<string, number>();
  const deferred: (() => void)[] = [];
  const bound: { name: string; closed: boolean }[] = [];
  const listened: string[] = [];
  const dups: FakeDup[] = [];
  const runtime = (name: 'node' | 'python'): Runtime => ({
    name,
    sync: options.sync ?? name === 'python',
    code: [process.execPath],
    stackPipe: false,
    prepare: () => {},
    app: (c) => ({ runtime: 'node', module: c.module ?? '' }),
    launch(request) {
      const start = () => {
        const child = new FakeChild(clock, { exitOnSigkill: false });
        launched.push({ child, request });
        return { child, askStack: undefined };
      };
      // A runtime that learns the pid later, as a fork request to a template process would.
      if (options.deferLaunch === true) return new Promise((resolve) => deferred.push(() => resolve(start())));
      return start();
    },
  });
  const io: MasterIo = {
    bindSockets: async (specs) => specs.map((spec): BoundSocket => {
      const record = { name: spec.name, closed: false };
      bound.push(record);
      return { spec, fd: 100 + bound.length, inode: 0, tcp: spec.address.kind === 'tcp', close: () => { record.closed = true; } };
    }),
    dupSockets: async (sockets) => sockets.map((s) => {
      const dup: FakeDup = {
        fd: 1000 + dups.length,
        name: s.spec.name,
        listening: false,
        closed: false,
        onconnection: null,
        listen: () => {
          dup.listening = true;
          listened.push(s.spec.name);
          return 0;
        },
        close: () => {
          dup.closed = true;
        },
      };
      dups.push(dup);
      return dup;
    }),
    createScoreboard: () => scoreboard,
    sampleMemory: async (pids) => new Map(pids.filter((p) => rss.has(p)).map((p) => [p, { rss: rss.get(p) as number, vsz: 0 }])),
    samplePss: async (pids) => new Map(pids.filter((p) => rss.has(p)).map((p) => [p, Math.round((rss.get(p) as number) / 2)])),
    readListenQueues: async () => new Map(),
    mtime: (file) => mtimes.get(file) ?? -1,
  };
  const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Line) });
  const h: Harness = {
    master: undefined as unknown as Master,
    clock,
    launched,
    lines,
    events,
    rss,
    mtimes,
    reloadTo: config,
    bound,
    listened,
    dups,
    workers: (id) => launched.filter((l) => l.request.id === id).map((l) => l.child),
    last: (id) => h.workers(id).at(-1) as FakeChild,
    ready: (child) => child.say({ v: 1, type: 'ready' }),
    slot(child, data) {
      const l = launched.find((x) => x.child === child);
      if (l !== undefined) scoreboard.write(l.request.spec.scoreboard.index, { ...EMPTY_SLOT, ...data, pid: child.pid });
    },
    logged: (re) => lines.filter((l) => re.test(l.msg)),
    async advance(ms) {
      clock.advance(ms);
      await flushMicrotasks();
    },
    flush: flushMicrotasks,
    completeLaunches: () => {
      for (const complete of deferred.splice(0)) complete();
    },
  };
  const master = new Master({
    config,
    logger,
    reloadConfig: () => {
      if (h.reloadTo instanceof Error) throw h.reloadTo;
      return h.reloadTo;
    },
    runtimes: { node: runtime('node'), python: options.python?.(clock, logger) ?? runtime('python') },
    clock,
    io,
  });
  (h as { master: Master }).master = master;
  for (const event of ['ready', 'accepting', 'loyal', 'heartbeat'] as const) master.on(event, () => events.push(event));
  master.on('reloaded', (ok) => events.push(`reloaded:${ok}`));
  master.on('exit', (code) => events.push(`exit:${code}`));
  master.on('touch-logreopen', (file) => events.push(`touch-logreopen:${file}`));
  await master.start();
  return h;
}

/** Every worker of the first generation ready. */
export async function allReady(h: Harness): Promise<void> {
  for (const l of [...h.launched]) if (!l.child.isDead()) h.ready(l.child);
  await h.flush();
}
