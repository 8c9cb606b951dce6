/**
 * uWSGI-style command-line options: every option of a vassal or emperor file can be
 * given as `--name value` (or `--name=value`; a boolean may stand alone), exactly as
 * `uwsgi --http-socket :8080 --module app.js` takes them. They form one more config
 * source, applied after the file's options.
 */
import { OPTIONS, type OptionSpec, type RawOption } from '@emperor/config';

/** The source name used in messages for options from the command line. */
export const COMMAND_LINE = '<command line>';

/**
 * The flags that never take a separate value: every name and alias of the table's `bool`
 * options (uWSGI's `UWSGI_OPT_*` flags without an argument, core/uwsgi.c `no_argument`).
 * Derived, never copied, so an option added to the table is a flag at once.
 * @param options the option table; the real one unless a test passes its own
 */
export function booleanFlags(options: readonly OptionSpec[] = OPTIONS): ReadonlySet<string> {
  return new Set(options.filter((spec) => spec.type === 'bool').flatMap((spec) => [spec.name, ...spec.aliases]));
}

const BOOLEAN_FLAGS = booleanFlags();

/** True for a flag of a `bool` option of the table (see {@link booleanFlags}). */
export function isBooleanFlag(name: string): boolean {
  return BOOLEAN_FLAGS.has(name);
}

/** Flags the CLI itself owns; everything else is a config option. */
const OWN = new Set(['help', 'version', 'ini', 'xml', 'json', 'h', 'v']);
/** Flags of {@link OWN} that never take a value. */
const OWN_ALONE = new Set(['help', 'version', 'h', 'v']);

/**
 * Extracts config options from raw argv, in order. A flag followed by another flag (or
 * nothing) is a boolean set to true (`""`, which uWSGI treats as true).
 * @param isBoolean tells flags that never take a separate value (e.g. `master`), so
 *   `--master --processes 2` and `--master app.ini` parse as uWSGI does.
 *   @default isBooleanFlag (the table's `bool` options)
 */
export function optionsFromArgv(argv: readonly string[], isBoolean: (name: string) => boolean = isBooleanFlag): RawOption[] {
  const out: RawOption[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--') || arg === '--') continue;
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (OWN.has(name)) {
      if (value === undefined && !OWN_ALONE.has(name)) i++; // skip its value
      continue;
    }
    if (value === undefined) {
      const next = argv[i + 1];
      if (!isBoolean(name) && next !== undefined && !next.startsWith('--')) {
        value = next;
        i++;
      } else {
        value = '';
      }
    }
    out.push({ name, value, file: COMMAND_LINE, line: 0 });
  }
  return out;
}

/**
 * The words of argv that are neither a flag nor a flag's value, read exactly as
 * {@link optionsFromArgv} reads flags: for the default command these are mistakes (a
 * mistyped command such as `stat`, or a file given without `--ini`).
 * @param isBoolean as in {@link optionsFromArgv}
 */
export function strayWordsOfArgv(argv: readonly string[], isBoolean: (name: string) => boolean = isBooleanFlag): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') break;
    if (arg.startsWith('-') && arg !== '-') {
      if (!arg.startsWith('--') || arg.includes('=')) continue; // -h, --name=value
      const name = arg.slice(2);
      const takesValue = OWN.has(name) ? !OWN_ALONE.has(name) : !isBoolean(name);
      const next = argv[i + 1];
      if (takesValue && next !== undefined && !next.startsWith('--')) i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}
