/**
 * The `emperor` command line as data: every command, its arguments, its own flags and
 * examples. The parser (main.ts, yargs) is built from this table and the man page
 * emperor(1) (man.ts) is rendered from it and the option table, so `--help`, the man
 * page and the docs say the same thing.
 */

/** A flag of a command (not a config option: those come from the option table). */
export interface CliFlag {
  readonly name: string;
  readonly type: 'string' | 'boolean';
  /** Repeatable (`--inherit A --inherit B`). */
  readonly array?: boolean;
  /** Shown as the default in `--help` and the man page. */
  readonly default?: string | boolean | readonly string[];
  /** The value's name in the man page (`FILE`, `SECONDS`); string flags only. */
  readonly value?: string;
  readonly describe: string;
}

/** A positional argument. */
export interface CliPositional {
  readonly name: string;
  /** Takes one or more values (`check <files..>`). */
  readonly variadic?: boolean;
  readonly describe: string;
}

/** One command. `run` is the default command (no command word). */
export interface CliCommand {
  readonly name: 'run' | 'stats' | 'top' | 'upgrade' | 'check' | 'completion';
  /** The synopsis after `emperor`, in yargs' syntax (`stats <address>`); `$0` for the default command. */
  readonly usage: string;
  readonly summary: string;
  readonly positionals: readonly CliPositional[];
  readonly flags: readonly CliFlag[];
  /** `[command line after "emperor", what it does]`. */
  readonly examples: readonly (readonly [string, string])[];
  /** A paragraph after the examples. */
  readonly epilog?: string;
}

const ADDRESS: CliPositional = { name: 'address', describe: 'host:port, a unix socket path, @abstract, or http://...' };

/** Every command, the default one first. */
export const COMMANDS: readonly CliCommand[] = [
  {
    name: 'run',
    usage: '$0',
    summary: 'Run the emperor on a directory of vassal files, or one vassal in the foreground',
    positionals: [],
    flags: [
      { name: 'ini', type: 'string', value: 'FILE', describe: 'INI file: an emperor config (has `emperor =`) or a vassal to run' },
      { name: 'xml', type: 'string', value: 'FILE', describe: 'XML file, likewise' },
      { name: 'json', type: 'string', value: 'FILE', describe: 'JSON file, likewise' },
      { name: 'emperor', type: 'string', array: true, value: 'DIR', describe: 'Directory of vassal files to watch (repeatable)' },
      { name: 'emperor-stats', type: 'string', value: 'ADDRESS', describe: 'Serve the emperor stats JSON on host:port or a unix path' },
      { name: 'log-style', type: 'string', value: 'STYLE', describe: 'Event lines as text or json; auto: text under systemd and on a terminal, JSON otherwise' },
    ],
    examples: [
      ['--emperor /etc/emperor.d', 'run the emperor on a directory'],
      ['--emperor ./emperor.d --emperor-stats 127.0.0.1:9190', 'with a stats socket'],
      ['--ini /etc/emperor.ini', 'run the emperor from its own config file'],
      ['--ini emperor.d/hello.ini', 'run one vassal in the foreground, like uwsgi --ini'],
      ['--http-socket :8080 --module app.js --processes 2', 'run an app from options alone'],
    ],
  },
  {
    name: 'stats',
    usage: 'stats <address>',
    summary: 'Print one snapshot of a stats socket (vassal or emperor, ours or uWSGI\'s), as text or JSON',
    positionals: [ADDRESS],
    flags: [{ name: 'json', type: 'boolean', default: false, describe: 'Print the JSON document as served' }],
    examples: [
      ['stats 127.0.0.1:9190', 'the emperor started by npm start: its vassals'],
      ['stats 127.0.0.1:9191', 'a vassal: its workers, as emperor top shows them'],
      ['stats /run/shop.stats --json', 'the raw JSON of a vassal on a unix socket'],
    ],
  },
  {
    name: 'top',
    usage: 'top <address>',
    summary: 'Live view of a stats socket, like uwsgitop: workers of a vassal, or the vassals of an emperor',
    positionals: [ADDRESS],
    flags: [{ name: 'interval', type: 'string', default: '1', value: 'SECONDS', describe: 'Seconds between refreshes (decimals allowed, at least 0.1)' }],
    examples: [
      ['top 127.0.0.1:9191', 'a vassal: per worker requests, req/s, average time, memory, harakiri, respawns'],
      ['top 127.0.0.1:9190 --interval 5', 'the emperor: vassals with state, pid, respawns and uptime'],
      ['top /run/shop.stats | cat', 'not a terminal: one snapshot as text'],
    ],
    epilog: 'Keys: s sorts by the next column, r reverses the order, q quits.',
  },
  {
    name: 'upgrade',
    usage: 'upgrade',
    summary: 'Start the emperor anew (the build now installed, its configuration read again) and hand every vassal over to it, losing no request',
    positionals: [],
    flags: [{ name: 'runtime-dir', type: 'string', value: 'DIR', describe: 'The emperor\'s emperor-runtime-dir (default: $RUNTIME_DIRECTORY)' }],
    examples: [
      ['upgrade', 'under systemd (ExecReload=): the unit\'s RuntimeDirectory'],
      ['upgrade --runtime-dir /run/emperor', 'an emperor started by hand with emperor-runtime-dir = /run/emperor'],
    ],
    epilog: 'Only the emperor\'s own user (or root) can ask: the request proves itself with the runtime directory\'s admin.key. '
      + 'If the new emperor cannot start (an invalid emperor.ini), the old one runs on and the command fails with the reason.',
  },
  {
    name: 'check',
    usage: 'check <files..>',
    summary: 'Validate vassal files (or an emperor file, one with `emperor =`) without running them',
    positionals: [{ name: 'files', variadic: true, describe: 'INI, XML or JSON files' }],
    flags: [
      { name: 'print', type: 'boolean', default: false, describe: 'Also print the resolved options: placeholders expanded, defaults filled' },
      { name: 'inherit', type: 'string', array: true, default: [], value: 'FILE', describe: 'A vassals-inherit file applied first (repeatable)' },
      { name: 'tyrant', type: 'boolean', default: false, describe: 'Judge each vassal as tyrant mode runs it: as the owner of its file' },
    ],
    examples: [
      ['check /etc/emperor.d/*.ini', 'every problem as file:line: option: message; exit 1 if any file is invalid'],
      ['check shop.ini --print', 'the options the master would run with'],
      ['check shop.ini --inherit /etc/emperor/base.ini', 'as the emperor would load it with vassals-inherit'],
      ['check --tyrant /etc/emperor.d/*.ini', 'as an emperor with emperor-tyrant would run them'],
    ],
    epilog: 'Besides the values, check looks at the app as the vassal\'s user (uid, or the file\'s owner with --tyrant) would: '
      + 'module and wsgi-file exist and can be read, chdir, pythonpath and home exist. A Python module is looked for '
      + 'on chdir and pythonpath, as the worker would import it, without running any of its code.',
  },
  {
    name: 'completion',
    usage: 'completion',
    summary: 'Print a bash or zsh completion script for emperor',
    positionals: [],
    flags: [],
    examples: [
      ['completion >> ~/.bashrc', 'complete commands, flags and every option name in bash'],
      ['completion > /etc/bash_completion.d/emperor', 'for every user'],
    ],
  },
];

/** The command called `name`. */
export function command(name: CliCommand['name']): CliCommand {
  return COMMANDS.find((c) => c.name === name) as CliCommand;
}

/** The command words a user can type (every command but the default one). */
export function commandWords(): string[] {
  return COMMANDS.filter((c) => c.name !== 'run').map((c) => c.name);
}

/**
 * The command a mistyped word was probably meant to be: one that starts with it or that
 * it starts with (`stat`, `statistics`), else one at most two edits away (`chek`).
 */
export function suggestCommand(word: string): string | undefined {
  const words = commandWords();
  const lower = word.toLowerCase();
  const prefix = words.find((w) => lower.length >= 3 && (w.startsWith(lower) || lower.startsWith(w)));
  if (prefix !== undefined) return prefix;
  let best: string | undefined;
  let bestDistance = 3;
  for (const w of words) {
    const d = editDistance(lower, w);
    if (d < bestDistance && d < w.length) {
      best = w;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
