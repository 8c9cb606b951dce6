/**
 * `emperor top`'s screen as a pure function of two stats samples and the terminal's size,
 * so every layout is unit-tested without a terminal. Columns and their meanings follow
 * uwsgitop 0.12 (`WID % PID REQ RPS EXC SIG STATUS AVG RSS VSZ TX ReSpwn HC RunT LastSpwn`);
 * requests per second come from the difference between two samples, as in uwsgitop.
 */
import { toView, type EmperorView, type TopVassal, type TopWorker, type VassalView } from './model.js';

/** A stats document and when it was read (epoch ms). */
export interface TopSample {
  readonly doc: unknown;
  readonly atMs: number;
}

/** Sort order: a column header (`REQ`, `RSS`, `VASSAL`, ...) and its direction. */
export interface TopSort {
  readonly column: string;
  readonly descending: boolean;
}

/** Options of {@link renderTop}. */
export interface TopOptions {
  /** Terminal columns; `Infinity` for no limit (text output). */
  readonly width: number;
  /** Terminal rows; `Infinity` for no limit. */
  readonly height: number;
  /** @default the first column, ascending */
  readonly sort?: TopSort;
  /** Draw the key help footer (the live view). @default false */
  readonly interactive?: boolean;
  /** The stats address, shown in the title. */
  readonly address?: string;
  /** A status line shown above the footer, e.g. the last read error. */
  readonly message?: string;
}

interface Column<R> {
  readonly header: string;
  readonly align: 'left' | 'right';
  /** Columns with the lowest `keep` are dropped first when the terminal is too narrow; Infinity = never. */
  readonly keep: number;
  /** Left columns only: the widest it grows to. */
  readonly maxWidth?: number;
  cell(row: R): string;
  /** What the column sorts by. */
  key(row: R): number | string;
}

interface WorkerRow {
  readonly w: TopWorker;
  /** Requests per second since the previous sample; undefined without one. */
  readonly rps: number | undefined;
  readonly share: number;
}

interface VassalRow {
  readonly v: TopVassal;
  /** Seconds since the master was spawned; -1 when not running or unknown. */
  readonly uptime: number;
}

const WORKER_COLUMNS: readonly Column<WorkerRow>[] = [
  { header: 'WID', align: 'right', keep: Infinity, cell: (r) => String(r.w.id), key: (r) => r.w.id },
  { header: '%', align: 'right', keep: 3, cell: (r) => r.share.toFixed(1), key: (r) => r.share },
  { header: 'PID', align: 'right', keep: Infinity, cell: (r) => String(r.w.pid), key: (r) => r.w.pid },
  { header: 'REQ', align: 'right', keep: Infinity, cell: (r) => String(r.w.requests), key: (r) => r.w.requests },
  { header: 'RPS', align: 'right', keep: Infinity, cell: (r) => (r.rps === undefined ? '-' : String(Math.round(r.rps))), key: (r) => r.rps ?? -1 },
  { header: 'EXC', align: 'right', keep: 7, cell: (r) => String(r.w.exceptions), key: (r) => r.w.exceptions },
  { header: 'SIG', align: 'right', keep: 1, cell: (r) => String(r.w.signals), key: (r) => r.w.signals },
  { header: 'STATUS', align: 'left', keep: Infinity, cell: (r) => r.w.status, key: (r) => r.w.status },
  { header: 'AVG', align: 'right', keep: Infinity, cell: (r) => duration(r.w.avgRtUs), key: (r) => r.w.avgRtUs },
  { header: 'RSS', align: 'right', keep: Infinity, cell: (r) => bytes(r.w.rss), key: (r) => r.w.rss },
  { header: 'VSZ', align: 'right', keep: 4, cell: (r) => bytes(r.w.vsz), key: (r) => r.w.vsz },
  { header: 'TX', align: 'right', keep: 2, cell: (r) => bytes(r.w.tx), key: (r) => r.w.tx },
  { header: 'ReSpwn', align: 'right', keep: 6, cell: (r) => String(r.w.respawns), key: (r) => r.w.respawns },
  { header: 'HC', align: 'right', keep: 5, cell: (r) => String(r.w.harakiri), key: (r) => r.w.harakiri },
  { header: 'RunT', align: 'right', keep: 0.5, cell: (r) => duration(r.w.runningTimeUs), key: (r) => r.w.runningTimeUs },
  { header: 'LastSpwn', align: 'right', keep: 0, cell: (r) => clock(r.w.lastSpawn), key: (r) => r.w.lastSpawn },
];

/**
 * A vassal's state as shown: an on-demand vassal waiting on its socket is `on demand`
 * (uWSGI's words; also for uWSGI's own document, which has no state but `on_demand` and
 * pid -1).
 */
function vassalState(v: EmperorView['vassals'][number]): string {
  if (v.state === 'on-demand' || (v.state === '' && v.onDemand !== '' && v.pid <= 0)) return 'on demand';
  return v.state || '-';
}

const VASSAL_COLUMNS: readonly Column<VassalRow>[] = [
  { header: 'VASSAL', align: 'left', keep: Infinity, maxWidth: 40, cell: (r) => r.v.id, key: (r) => r.v.id },
  { header: 'STATE', align: 'left', keep: Infinity, cell: (r) => vassalState(r.v), key: (r) => vassalState(r.v) },
  { header: 'PID', align: 'right', keep: Infinity, cell: (r) => (r.v.pid > 0 ? String(r.v.pid) : '-'), key: (r) => r.v.pid },
  { header: 'READY', align: 'right', keep: 3, cell: (r) => flag(r.v.ready), key: (r) => r.v.ready },
  { header: 'LOYAL', align: 'right', keep: 2, cell: (r) => flag(r.v.loyal), key: (r) => r.v.loyal },
  { header: 'RESPAWNS', align: 'right', keep: 4, cell: (r) => (r.v.respawns < 0 ? '-' : String(r.v.respawns)), key: (r) => r.v.respawns },
  { header: 'COLD', align: 'right', keep: 2, cell: (r) => (r.v.coldStarts < 0 || r.v.onDemand === '' ? '-' : String(r.v.coldStarts)), key: (r) => r.v.coldStarts },
  { header: 'UPTIME', align: 'right', keep: 5, cell: (r) => (r.uptime < 0 ? '-' : duration(r.uptime * 1e6)), key: (r) => r.uptime },
  { header: 'LAST ERROR', align: 'left', keep: 1, cell: (r) => r.v.lastError, key: (r) => r.v.lastError },
];

/** The column headers `s` cycles through for each kind of document. */
export function sortColumns(kind: 'vassal' | 'emperor'): readonly string[] {
  return (kind === 'vassal' ? WORKER_COLUMNS : VASSAL_COLUMNS).map((c) => c.header);
}

/** The order before any key is pressed: by worker id, or by vassal name. */
export function defaultSort(kind: 'vassal' | 'emperor'): TopSort {
  return { column: sortColumns(kind)[0] as string, descending: false };
}

/**
 * The sort after `current` (key `s`; undefined is {@link defaultSort}): the next column.
 * Numbers sort largest first, the id and name columns smallest first.
 */
export function nextSort(kind: 'vassal' | 'emperor', current: TopSort | undefined): TopSort {
  const columns = sortColumns(kind);
  const at = columns.indexOf((current ?? defaultSort(kind)).column);
  const column = columns[(at + 1) % columns.length] as string;
  return { column, descending: !['WID', 'PID', 'VASSAL', 'STATUS', 'STATE', 'LAST ERROR'].includes(column) };
}

/** The kind of a stats document, or undefined when it is neither. */
export function kindOf(doc: unknown): 'vassal' | 'emperor' | undefined {
  try {
    return toView(doc).kind;
  } catch {
    return undefined;
  }
}

/**
 * Renders the screen: title and totals, the table, and (live view) the key help. Lines
 * are cut to `width` and the table to `height`; columns are dropped, least useful first,
 * until the table fits the width.
 * @throws StatsShapeError when `current.doc` is not a stats document
 */
export function renderTop(current: TopSample, previous: TopSample | undefined, options: TopOptions): string {
  const view = toView(current.doc);
  const before = previous === undefined ? undefined : safeView(previous.doc);
  const head = view.kind === 'vassal' ? vassalHead(view, before?.kind === 'vassal' ? before : undefined, current, previous, options) : emperorHead(view, current, options);
  const sort = options.sort ?? defaultSort(view.kind);
  const footer: string[] = [];
  if (options.message !== undefined && options.message !== '') footer.push(options.message);
  if (options.interactive === true) {
    footer.push(`sort: ${sort.column} ${sort.descending ? '▼' : '▲'}   s: next column   r: reverse   q: quit`);
  }
  const room = Math.max(2, options.height - head.lines.length - 1 - footer.length);
  const table = head.table(sort, options.width, room);
  const lines = [...head.lines, '', ...table, ...footer].map((line) => cut(line, options.width).trimEnd());
  return `${lines.join('\n')}\n`;
}

function safeView(doc: unknown): VassalView | EmperorView | undefined {
  try {
    return toView(doc);
  } catch {
    return undefined;
  }
}

interface Head {
  readonly lines: string[];
  table(sort: TopSort, width: number, rows: number): string[];
}

function vassalHead(view: VassalView, before: VassalView | undefined, current: TopSample, previous: TopSample | undefined, options: TopOptions): Head {
  const seconds = previous === undefined ? 0 : (current.atMs - previous.atMs) / 1000;
  const prior = new Map((before?.workers ?? []).map((w) => [w.id, w.requests]));
  const total = view.workers.reduce((sum, w) => sum + w.requests, 0);
  const rows: WorkerRow[] = view.workers.map((w) => {
    const was = prior.get(w.id);
    const rps = seconds > 0 && was !== undefined ? Math.max(0, w.requests - was) / seconds : undefined;
    return { w, rps, share: total > 0 ? (w.requests / total) * 100 : 0 };
  });
  const rates = rows.map((r) => r.rps).filter((r): r is number => r !== undefined);
  const count = (status: string): number => view.workers.filter((w) => w.status === status).length;
  const name = view.vassal !== '' ? view.vassal : 'uWSGI instance';
  const title = [name, view.state !== '' ? `state ${view.state}` : '', `version ${view.version || '?'}`, `master pid ${view.pid}`, options.address ?? '']
    .filter((s) => s !== '')
    .join(' · ');
  const statuses = ['busy', 'idle', 'starting', 'stopping', 'cheap'].map((s) => [s, count(s)] as const).filter(([, n]) => n > 0);
  const totals = [
    `req/s ${rates.length > 0 ? Math.round(rates.reduce((a, b) => a + b, 0)) : '-'}`,
    `requests ${total}`,
    `exceptions ${sum(view.workers, (w) => w.exceptions)}`,
    `harakiri ${sum(view.workers, (w) => w.harakiri)}`,
    `workers ${view.workers.length}${statuses.length > 0 ? ` (${statuses.map(([s, n]) => `${n} ${s}`).join(', ')})` : ''}`,
    `rss ${bytes(sum(view.workers, (w) => w.rss))}`,
  ].join(' · ');
  const queues = [`listen queue ${view.listenQueue}`, ...view.sockets.map((s) => `${s.name} ${s.proto} ${s.queue}/${s.maxQueue}`)].join(' · ');
  return { lines: [title, totals, queues], table: (sort, width, room) => table(WORKER_COLUMNS, rows, sort, width, room, (r) => r.w.id, 'workers') };
}

function emperorHead(view: EmperorView, current: TopSample, options: TopOptions): Head {
  const now = current.atMs / 1000;
  const rows: VassalRow[] = view.vassals.map((v) => ({ v, uptime: v.pid > 0 && v.born > 0 ? Math.max(0, Math.floor(now - v.born)) : -1 }));
  const states = new Map<string, number>();
  for (const v of view.vassals) {
    const state = vassalState(v) === '-' ? 'unknown' : vassalState(v);
    states.set(state, (states.get(state) ?? 0) + 1);
  }
  const title = ['emperor', `version ${view.version || '?'}`, `pid ${view.pid}`, `watching ${view.emperor.join(', ') || '-'}`, `tyrant ${view.tyrant ? 'on' : 'off'}`, options.address ?? '']
    .filter((s) => s !== '')
    .join(' · ');
  const respawns = sum(view.vassals, (v) => Math.max(0, v.respawns));
  const summary = `${view.vassals.length} vassal${view.vassals.length === 1 ? '' : 's'}${states.size > 0 ? `: ${[...states].map(([s, n]) => `${n} ${s}`).join(', ')}` : ''} · respawns ${respawns}`;
  return { lines: [title, summary], table: (sort, width, room) => table(VASSAL_COLUMNS, rows, sort, width, room, (r) => r.v.id, 'vassals') };
}

/** Header and rows, sorted, with columns dropped until they fit `width` and rows cut to `room` lines (header included). */
function table<R>(columns: readonly Column<R>[], rows: readonly R[], sort: TopSort, width: number, room: number, id: (r: R) => number | string, noun: string): string[] {
  const by = columns.find((c) => c.header === sort.column) ?? (columns[0] as Column<R>);
  const sorted = [...rows].sort((a, b) => compare(by.key(a), by.key(b)) * (sort.descending ? -1 : 1) || compare(id(a), id(b)));
  const cells = sorted.map((r) => columns.map((c) => c.cell(r)));
  const widths = columns.map((c, i) => {
    const natural = Math.max(c.header.length, ...cells.map((row) => (row[i] as string).length));
    return c.maxWidth === undefined ? natural : Math.min(natural, c.maxWidth);
  });
  const shown = columns.map((_, i) => i);
  const total = (): number => shown.reduce((a, i) => a + (widths[i] as number), 0) + 2 * (shown.length - 1);
  // Drop the least useful columns until the rest fit; what still does not fit is cut at the edge.
  const droppable = columns.map((c, i) => [c.keep, i] as const).filter(([keep]) => keep !== Infinity).sort((a, b) => a[0] - b[0]);
  for (const [, i] of droppable) {
    if (total() <= width) break;
    shown.splice(shown.indexOf(i), 1);
  }
  const line = (values: readonly string[]): string =>
    shown
      .map((i, n) => {
        const c = columns[i] as Column<R>;
        const w = widths[i] as number;
        const v = cut(values[i] as string, w);
        return c.align === 'right' ? v.padStart(w) : n === shown.length - 1 ? v : v.padEnd(w);
      })
      .join('  ');
  const out = [line(columns.map((c) => c.header))];
  const fit = room - 1;
  const visible = cells.length > fit ? Math.max(0, fit - 1) : cells.length;
  for (const row of cells.slice(0, visible)) out.push(line(row));
  if (visible < cells.length) out.push(`… ${cells.length - visible} more ${noun}`);
  if (cells.length === 0) out.push(`(no ${noun})`);
  return out;
}

function compare(a: number | string, b: number | string): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b));
}

function sum<T>(items: readonly T[], f: (item: T) => number): number {
  return items.reduce((a, item) => a + f(item), 0);
}

function cut(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text;
}

/** `812K`, `45.2M`, `1.5G`; bytes below 1 KiB as is. */
export function bytes(n: number): string {
  if (n < 1024) return String(Math.round(n));
  const units = ['K', 'M', 'G', 'T'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)}${units[unit]}`;
}

/** Microseconds as `0.4ms`, `12ms`, `3.2s`, `4m05s`, `2h07m`, `3d04h`. */
export function duration(us: number): string {
  const ms = us / 1000;
  if (ms < 10) return `${ms.toFixed(1)}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const two = (n: number): string => String(Math.floor(n)).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${two((s % 86400) / 3600)}h`;
}

/** Epoch seconds as local `HH:MM:SS`; `--:--:--` for 0 (never), as uwsgitop shows it. */
function clock(epochSeconds: number): string {
  if (epochSeconds <= 0) return '--:--:--';
  const d = new Date(epochSeconds * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

function flag(v: number): string {
  return v < 0 ? '-' : v > 0 ? 'yes' : 'no';
}
