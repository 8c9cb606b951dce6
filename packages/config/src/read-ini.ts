/**
 * The INI reader, with uWSGI's rules (core/ini.c), not the usual INI ones.
 *
 * We do not use the `ini` package: it strips inline `;`/`#` comments (uWSGI keeps
 * `a = b ; c` as `b ; c`, and `env = COLOR=#fff` must keep `#fff`) and collapses repeated
 * keys (uWSGI accumulates `socket` lines). A line reader is shorter than undoing that.
 */
import { ConfigParseError } from './errors.js';
import type { RawOption } from './types.js';

/** The only section uWSGI reads by default; the name is case-sensitive. */
const SECTION = 'uwsgi';

/** uWSGI trims spaces, tabs and carriage returns (not other Unicode spaces). */
const TRIM = /^[ \t\r]+|[ \t\r]+$/g;

/**
 * Reads the `[uwsgi]` section(s) of INI text: one option per `key = value` line, in file
 * order, repeated keys repeated. A bare `key` has the value `""`. `;` and `#` start a
 * comment only at the start of a line. Other sections are skipped.
 *
 * @throws {ConfigParseError} a section header without `]`, a line starting with `=`, or no `[uwsgi]` section at all
 *   (uWSGI only warns there, and then the vassal fails for lack of a socket; naming the cause is kinder).
 */
export function readIni(text: string, file: string): RawOption[] {
  const options: RawOption[] = [];
  let inSection = false;
  let sawSection = false;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').replace(TRIM, '');
    const lineNumber = i + 1;
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      if (!line.endsWith(']')) {
        throw new ConfigParseError({ file, line: lineNumber }, 'expected "]" at the end of the section header');
      }
      inSection = line.slice(1, -1) === SECTION;
      sawSection ||= inSection;
      continue;
    }
    if (!inSection) continue;
    const eq = line.indexOf('=');
    const name = (eq === -1 ? line : line.slice(0, eq)).replace(TRIM, '');
    if (name === '') throw new ConfigParseError({ file, line: lineNumber }, 'expected "key = value", got a line starting with "="');
    options.push({ file, line: lineNumber, name, value: eq === -1 ? '' : line.slice(eq + 1).replace(TRIM, '') });
  }
  if (!sawSection) throw new ConfigParseError({ file, line: 0 }, `no [${SECTION}] section`);
  return options;
}
