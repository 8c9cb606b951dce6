/**
 * The reliability suite's record of what it tried: one JSON line per row, appended to
 * `EMPEROR_RELIABILITY_OUT` (default test/dist/reliability.jsonl, reset by the runner)
 * and rendered into docs/reliability.md by scripts/reliability-table.mjs.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './index.js';

/** One row of the table. */
export interface ReliabilityRow {
  /** `bad file`, `fuzz`, `chaos`, `zero downtime`, `security`. */
  readonly area: string;
  /** What was tried. */
  readonly what: string;
  /** How many times. */
  readonly tries: number;
  /** What happened (the documented outcome). */
  readonly outcome: string;
  /** The log line an operator sees, when there is one. */
  readonly log?: string | undefined;
}

/** Where rows go. */
export const RELIABILITY_OUT = process.env.EMPEROR_RELIABILITY_OUT ?? join(ROOT, 'test', 'dist', 'reliability.jsonl');

/** Appends one row. */
export function record(row: ReliabilityRow): void {
  appendFileSync(RELIABILITY_OUT, `${JSON.stringify(row)}\n`);
}
