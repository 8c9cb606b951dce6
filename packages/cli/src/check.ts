/**
 * `emperor check FILE...`: every problem of every file as `file:line: option: message`
 * (errors, then warnings), a verdict line per file, and with `--print` the options as
 * the master would see them: placeholders expanded, then the defaults of what is unset.
 */
import { checkConfigFile, type CheckResult } from '@emperor/config';
import { ExitCode } from '@emperor/protocol';

/** Options of {@link runCheck}. */
export interface RunCheckOptions {
  /** Also print the resolved options of each file. */
  readonly print: boolean;
  /** `vassals-inherit` files applied before each vassal file. */
  readonly inherit: readonly string[];
}

/** Checks each file; returns {@link ExitCode.OK} when all are valid (warnings allowed), else {@link ExitCode.FAILURE}. */
export function runCheck(files: readonly string[], options: RunCheckOptions, out: NodeJS.WritableStream): ExitCode {
  let invalid = 0;
  for (const file of files) {
    const result = checkConfigFile(file, { inherit: options.inherit });
    const errors = result.problems.filter((p) => p.severity === 'error');
    for (const p of [...errors, ...result.problems.filter((q) => q.severity === 'warning')]) out.write(`${p.text}\n`);
    const warnings = result.problems.length - errors.length;
    const counts = [plural(errors.length, 'error'), plural(warnings, 'warning')].filter((s) => s !== '').join(', ');
    out.write(`${file}: ${errors.length > 0 ? 'invalid' : 'valid'} ${result.kind} file${counts === '' ? '' : ` (${counts})`}\n`);
    if (errors.length > 0) invalid += 1;
    if (options.print) out.write(renderResolved(file, result));
  }
  if (files.length > 1) out.write(`${files.length} files checked, ${invalid} invalid\n`);
  return invalid > 0 ? ExitCode.FAILURE : ExitCode.OK;
}

function plural(n: number, noun: string): string {
  return n === 0 ? '' : `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** The options as an INI file, each with where it came from, then the defaults that apply. */
export function renderResolved(file: string, result: CheckResult): string {
  if (result.resolved === undefined) return `; ${file}: nothing to print, the file could not be read\n`;
  const set = result.resolved.map((o) => `${o.name} = ${o.value}`);
  const width = Math.min(60, Math.max(0, ...set.map((s) => s.length)));
  const lines = [`; ${file}, resolved (placeholders expanded)`, '[uwsgi]'];
  result.resolved.forEach((o, i) => lines.push(`${(set[i] as string).padEnd(width)}  ; ${o.line > 0 ? `${o.file}:${o.line}` : o.file}`));
  if (result.defaults.length > 0) {
    lines.push(`; defaults of the ${result.kind} options not set above`);
    for (const d of result.defaults) lines.push(`${d.name} = ${d.value}`);
  }
  return `${lines.join('\n')}\n`;
}
