/**
 * The rows of a vassal query, read with uWSGI emperor-pg's rules
 * (plugins/emperor_pg/emperor_pg.c): columns by position, not by name (1 name, 2 config,
 * 3 ts, then 4 uid and 5 gid for tyrant mode, 6 the on-demand socket). Pure: rows in,
 * vassals and one-line problems out; the source does the I/O.
 */
import { isVassalFileName, type ConfigFormat } from '@emperor/config';
import { quote } from '@emperor/protocol';

/** One row that can be a vassal. */
export interface VassalRow {
  /** The vassal's name, with its format's extension (`shop.ini`): column 1. */
  readonly name: string;
  readonly format: ConfigFormat;
  /** The vassal file's text: column 2 (NULL reads as empty, which the master then reports). */
  readonly config: string;
  /**
   * Column 3 exactly as PostgreSQL sent it (`1796565095.800382`, or a timestamp's text):
   * the row's version. A different text reloads the vassal; the same text does nothing,
   * whatever happened to `config` (uWSGI's rule; it compares whole seconds, forward only).
   */
  readonly ts: string;
  /** `ts` as epoch milliseconds for stats (`last_mod`); 0 when it is neither a number nor a timestamp. */
  readonly tsMs: number;
  /** Columns 4 and 5, read in tyrant mode only (uWSGI ignores them otherwise). */
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  /** Column 6: uWSGI's on-demand socket; "" when absent or NULL. */
  readonly socket: string;
}

/** Something wrong with one row, as one log line (without the source, which the caller adds). */
export interface RowProblem {
  /** What the problem is about (the row's name, or its position when it has none), to report it once. */
  readonly key: string;
  readonly message: string;
}

/** What {@link readVassalRows} makes of a result. */
export type VassalRows =
  | { readonly ok: true; readonly rows: ReadonlyMap<string, VassalRow>; readonly problems: readonly RowProblem[] }
  /** The result as a whole cannot be read (too few columns): nothing in it is applied. */
  | { readonly ok: false; readonly problem: string };

/** Options of {@link readVassalRows}. */
export interface ReadRowsOptions {
  /** `emperor-tyrant`: the uid and gid columns are required. */
  readonly tyrant: boolean;
}

/** Largest uid/gid: (uid_t)-1 means "no change" to chown and setuid. */
const MAX_ID = 4_294_967_294;

/**
 * Reads a query result (every value as PostgreSQL's text, `null` for NULL).
 *
 * - Fewer than 3 columns, or fewer than 5 in tyrant mode: the whole result is refused.
 * - A row whose name is not a vassal name (`.ini`, `.xml`, `.json`; no `/`, not hidden,
 *   under 255 bytes), or repeats an earlier row's name, is left out with a problem.
 * - A row with an unusable uid or gid (tyrant mode) is a problem too, and keeps the
 *   vassal's previous row when there is one: a bad edit to a running vassal's row does
 *   not stop it, as a bad edit to a vassal file does not (its master keeps the old
 *   config). uWSGI skips such a row and leaves the vassal running as well.
 *
 * @param previous the rows of the last result applied, by name
 */
export function readVassalRows(
  rows: ReadonlyArray<ReadonlyArray<string | null>>,
  columns: number,
  previous: ReadonlyMap<string, VassalRow>,
  options: ReadRowsOptions,
): VassalRows {
  if (columns < 3) {
    return { ok: false, problem: `the query returns ${columns} column(s); it must return name, config and ts first (uWSGI's emperor-pg shape)` };
  }
  if (options.tyrant && columns < 5) {
    return { ok: false, problem: `tyrant mode needs uid and gid as the 4th and 5th columns of the query, which returns ${columns}` };
  }
  const out = new Map<string, VassalRow>();
  const problems: RowProblem[] = [];
  rows.forEach((values, index) => {
    const name = values[0] ?? null;
    if (name === null) {
      problems.push({ key: `#${index + 1}`, message: `row ${index + 1}: the name is NULL; ignored` });
      return;
    }
    const format = isVassalFileName(name);
    if (format === undefined) {
      const why = /\.ya?ml$/.test(name) ? 'YAML vassals are not supported; use INI, XML or JSON' : 'a vassal name ends in .ini, .xml or .json, has no "/" and no control characters, does not start with "." and is under 255 bytes';
      problems.push({ key: name, message: `row ${quote(name)}: not a vassal name (${why}); ignored` });
      return;
    }
    if (out.has(name)) {
      problems.push({ key: `${name}#dup`, message: `row ${quote(name)}: another row has the same name; only the first one counts` });
      return;
    }
    let uid: number | undefined;
    let gid: number | undefined;
    if (options.tyrant) {
      const bad = (['uid', 'gid'] as const).map((column, i) => [column, values[3 + i] ?? null] as const).find(([, v]) => !isId(v));
      if (bad !== undefined) {
        const kept = previous.get(name);
        const [column, value] = bad;
        problems.push({
          key: name,
          message: `row ${quote(name)}: ${column}: expected a number from 0 to ${MAX_ID}, got ${value === null ? 'NULL' : quote(value)}; ${kept === undefined ? 'not started' : 'the vassal keeps its previous row'}`,
        });
        if (kept !== undefined) out.set(name, kept);
        return;
      }
      uid = Number(values[3]);
      gid = Number(values[4]);
    }
    const ts = values[2] ?? '';
    out.set(name, { name, format, config: values[1] ?? '', ts, tsMs: tsToMs(ts), uid, gid, socket: values[5] ?? '' });
  });
  return { ok: true, rows: out, problems };
}

function isId(value: string | null): boolean {
  return value !== null && /^\d{1,10}$/.test(value) && Number(value) <= MAX_ID;
}

/**
 * A `ts` value as epoch milliseconds: a number is epoch seconds (uWSGI's
 * `EXTRACT(epoch FROM ts)`), else PostgreSQL's ISO text of a timestamp
 * (`2026-12-06 13:51:35.800382+00`); 0 when it is neither.
 */
export function tsToMs(ts: string): number {
  if (/^-?\d+(?:\.\d+)?$/.test(ts)) return Math.round(Number(ts) * 1000);
  const iso = ts.trim().replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00');
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : 0;
}

/** True when two rows are the same version of a vassal: same `ts` and, in tyrant mode, the same owner. */
export function sameRowVersion(a: VassalRow, b: VassalRow): boolean {
  return a.ts === b.ts && a.uid === b.uid && a.gid === b.gid;
}
