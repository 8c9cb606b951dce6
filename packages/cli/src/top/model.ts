/**
 * From a stats document (ours or uWSGI's own) to what `emperor top` shows. Every key that
 * uwsgitop treats as optional may be missing, and so may our additions, so a document
 * from any uWSGI 2.0 stats server reads (uWSGI core/master_utils.c; uwsgitop 0.12 reads
 * `vassals` as the sign of an emperor and `workers` as that of an instance).
 */
import { StatsShapeError } from '@emperor/protocol';

// Defined in the error registry (@emperor/protocol errors.ts); re-exported so existing imports keep working.
export { StatsShapeError };

/** One worker row. Times in microseconds, sizes in bytes, as the stats document has them. */
export interface TopWorker {
  readonly id: number;
  readonly pid: number;
  readonly status: string;
  readonly requests: number;
  readonly exceptions: number;
  readonly signals: number;
  readonly harakiri: number;
  /** `respawn_count`: processes this id has had (1 after the first spawn). */
  readonly respawns: number;
  readonly avgRtUs: number;
  readonly rss: number;
  readonly vsz: number;
  readonly tx: number;
  readonly runningTimeUs: number;
  /** Epoch seconds; 0 = never. */
  readonly lastSpawn: number;
}

/** A vassal's (or a uWSGI instance's) document. */
export interface VassalView {
  readonly kind: 'vassal';
  readonly version: string;
  readonly pid: number;
  /** Ours: the vassal file name; "" from uWSGI. */
  readonly vassal: string;
  /** Ours: the master's state; "" from uWSGI. */
  readonly state: string;
  readonly listenQueue: number;
  readonly sockets: readonly { readonly name: string; readonly proto: string; readonly queue: number; readonly maxQueue: number }[];
  readonly workers: readonly TopWorker[];
}

/** One vassal of an emperor. Unknown values are -1 (numbers) or "" (strings). */
export interface TopVassal {
  readonly id: string;
  readonly pid: number;
  readonly state: string;
  readonly respawns: number;
  /** Epoch seconds of the current master's spawn; 0 = not running or unknown. */
  readonly born: number;
  readonly ready: number;
  readonly loyal: number;
  /** `on_demand`: the socket an on-demand vassal waits on; "" when it is not on demand. */
  readonly onDemand: string;
  /** Emperor's `cold_starts`: starts by a connection on the on-demand socket; -1 when absent. */
  readonly coldStarts: number;
  readonly lastError: string;
}

/** An emperor's document. */
export interface EmperorView {
  readonly kind: 'emperor';
  readonly version: string;
  readonly pid: number;
  readonly emperor: readonly string[];
  readonly tyrant: number;
  readonly vassals: readonly TopVassal[];
}

type Doc = Record<string, unknown>;

const num = (d: Doc, key: string, fallback = 0): number => {
  const v = d[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
};
const str = (d: Doc, key: string): string => {
  const v = d[key];
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
};
const objects = (v: unknown): Doc[] => (Array.isArray(v) ? v.filter((x): x is Doc => typeof x === 'object' && x !== null) : []);

/** Reads a stats document. @throws StatsShapeError when it has neither `vassals` nor `workers`. */
export function toView(doc: unknown): VassalView | EmperorView {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new StatsShapeError('the stats document is not a JSON object');
  const d = doc as Doc;
  if ('vassals' in d) {
    return {
      kind: 'emperor',
      version: str(d, 'version'),
      pid: num(d, 'pid'),
      emperor: Array.isArray(d.emperor) ? d.emperor.map(String) : d.emperor === undefined ? [] : [String(d.emperor)],
      tyrant: num(d, 'emperor_tyrant'),
      vassals: objects(d.vassals).map((v) => ({
        id: str(v, 'id'),
        pid: num(v, 'pid', -1),
        state: str(v, 'state'),
        respawns: num(v, 'respawns', -1),
        born: num(v, 'born'),
        ready: num(v, 'ready', -1),
        loyal: num(v, 'loyal', -1),
        lastError: str(v, 'last_error'),
        onDemand: str(v, 'on_demand'),
        coldStarts: num(v, 'cold_starts', -1),
      })),
    };
  }
  if ('workers' in d) {
    return {
      kind: 'vassal',
      version: str(d, 'version'),
      pid: num(d, 'pid'),
      vassal: str(d, 'vassal'),
      state: str(d, 'state'),
      listenQueue: num(d, 'listen_queue'),
      sockets: objects(d.sockets).map((s) => ({ name: str(s, 'name'), proto: str(s, 'proto'), queue: num(s, 'queue'), maxQueue: num(s, 'max_queue') })),
      // uWSGI lists never-spawned cheaper slots with id 0; uwsgitop shows them, and so do we.
      workers: objects(d.workers).map((w) => ({
        id: num(w, 'id'),
        pid: num(w, 'pid'),
        status: str(w, 'status'),
        requests: num(w, 'requests'),
        exceptions: num(w, 'exceptions'),
        signals: num(w, 'signals'),
        harakiri: num(w, 'harakiri_count'),
        respawns: num(w, 'respawn_count'),
        avgRtUs: num(w, 'avg_rt'),
        rss: num(w, 'rss'),
        vsz: num(w, 'vsz'),
        tx: num(w, 'tx'),
        runningTimeUs: num(w, 'running_time'),
        lastSpawn: num(w, 'last_spawn'),
      })),
    };
  }
  throw new StatsShapeError('the stats document has neither "workers" (a vassal) nor "vassals" (an emperor)');
}
