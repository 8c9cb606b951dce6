/**
 * The man page emperor(1), rendered from the command table (commands.ts) and the option
 * table (`@emperor/config`), the same sources as `--help` and docs/configuration.md.
 * `npm run docs` writes it to man/emperor.1, which package.json's `man` installs with the
 * package; a unit test fails while the committed page is stale.
 */
import { OPTION_GROUPS, OPTIONS, UNSUPPORTED_UWSGI_OPTIONS, type OptionSpec, type OptionType, type OptionUnit } from '@emperor/config';
import { ExitCode, VERSION } from '@emperor/protocol';
import { COMMANDS, type CliCommand, type CliFlag } from './commands.js';

/** What each exit status means, for EXIT STATUS (every {@link ExitCode} has one: the compiler checks). */
export const EXIT_STATUS: Readonly<Record<keyof typeof ExitCode, string>> = {
  OK: 'The command did what it was asked; the emperor or a vassal stopped after a requested stop.',
  FAILURE: 'emperor check found an invalid file; emperor stats or top could not read the socket; the emperor could not start.',
  USAGE: 'The command line is wrong: an unknown command (with the one it looks like), a missing argument, a flag without its value.',
  CONFIG: 'A config file is invalid or cannot be read (one line names the file, line, option and reason), or the emperor\'s own uid, gid or cap cannot be had. Under the emperor, a vassal exiting so waits for its file to change; systemd does not restart the emperor for it (RestartPreventExitStatus=78).',
  APP_LOAD: 'A worker could not load the app (module missing, import error); it is respawned with a growing delay.',
  UNAVAILABLE: 'A vassal could not get a resource (a busy port, an unknown uid, no Python interpreter its user can run, an app its user cannot read); it is respawned with a growing delay.',
};

/** The value's placeholder in the man page, by option type (a flag has none). */
const VALUE_NAMES: Readonly<Record<OptionType, string>> = {
  bool: '', uint: 'N', string: 'STRING', identifier: 'NAME', choice: '', path: 'PATH', socket: 'ADDRESS', address: 'ADDRESS',
  mode: 'MODE', owner: 'USER[:GROUP]', principal: 'USER', env: 'KEY=VALUE', placeholder: 'NAME=VALUE', plugins: 'PLUGINS', capabilities: 'CAPS',
};

const UNIT_NAMES: Readonly<Record<OptionUnit, string>> = { seconds: 'seconds', milliseconds: 'milliseconds', megabytes: 'MB (MiB)', bytes: 'bytes', percent: 'percent' };

/** Text for roff: backslashes escaped, a leading `.` or `'` defused, Markdown code as bold. */
function roff(text: string): string {
  const escaped = text
    .replace(/\\/g, '\\e')
    .replace(/\*\*([^*]+)\*\*/g, '\\fB$1\\fR')
    .replace(/\[([^\]]+)\]\([^)]+\)/g, '$1')
    .replace(/`([^`]+)`/g, (_m, code: string) => `\\fB${code.replace(/-/g, '\\-')}\\fR`);
  return escaped.replace(/^([.'])/gm, '\\&$1');
}

/** An option or flag name as roff shows it: bold, with its dashes as minus signs. */
function flagName(name: string): string {
  return `\\fB\\-\\-${name.replace(/-/g, '\\-')}\\fR`;
}

function synopsis(command: CliCommand): string {
  const words = command.name === 'run' ? ['.B emperor'] : [`.B emperor ${command.name}`];
  for (const p of command.positionals) words.push(`.I ${p.name}${p.variadic === true ? ' ...' : ''}`);
  if (command.name === 'run') {
    words.push('[\\fB\\-\\-emperor\\fR \\fIDIR\\fR | \\fB\\-\\-ini\\fR|\\fB\\-\\-xml\\fR|\\fB\\-\\-json\\fR \\fIFILE\\fR] [\\fB\\-\\-\\fR\\fIoption\\fR \\fIvalue\\fR ...]');
  } else {
    for (const f of command.flags) words.push(`[${flagName(f.name)}${f.type === 'string' ? ` \\fI${f.value ?? 'VALUE'}\\fR` : ''}]`);
  }
  return words.join('\n');
}

/** `text` ending with one period. */
function sentence(text: string): string {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

function flagItem(flag: CliFlag): string {
  const value = flag.type === 'string' ? ` \\fI${flag.value ?? 'VALUE'}\\fR` : '';
  const extra = [flag.array === true && !/repeatable/i.test(flag.describe) ? 'Repeatable.' : '', typeof flag.default === 'string' ? `Default: ${roff(`\`${flag.default}\``)}.` : ''].filter((s) => s !== '').join(' ');
  return `.TP\n${flagName(flag.name)}${value}\n${roff(sentence(flag.describe))}${extra === '' ? '' : ` ${extra}`}`;
}

function commandSection(command: CliCommand): string {
  const head = command.name === 'run' ? 'emperor [\\fIflags\\fR] [\\fB\\-\\-\\fR\\fIoption\\fR \\fIvalue\\fR ...]' : `emperor ${command.name}${command.positionals.map((p) => ` \\fI${p.name}${p.variadic === true ? ' ...' : ''}\\fR`).join('')}`;
  const lines = ['.SS "' + head.replace(/"/g, '') + '"', roff(sentence(command.summary))];
  for (const p of command.positionals) lines.push(`.TP\n.I ${p.name}\n${roff(sentence(p.describe))}`);
  for (const f of command.flags) lines.push(flagItem(f));
  if (command.epilog !== undefined) lines.push('.PP', roff(command.epilog));
  if (command.examples.length > 0) {
    lines.push('.PP', 'Examples:', '.RS', '.nf');
    for (const [line, what] of command.examples) lines.push(`${roff(`emperor ${line}`)}`, `    # ${roff(what)}`);
    lines.push('.fi', '.RE');
  }
  return lines.join('\n');
}

function optionItem(spec: OptionSpec): string {
  const type = spec.choices !== undefined ? spec.choices.join('|') : VALUE_NAMES[spec.type];
  const value = type === '' ? '' : ` \\fI${roff(type)}\\fR`;
  const aliases = spec.aliases.length === 0 ? '' : ` (also ${spec.aliases.map(flagName).join(', ')})`;
  const facts = [
    spec.scope === 'both' ? 'In a vassal or the emperor\'s file.' : spec.scope === 'emperor' ? 'In the emperor\'s file.' : '',
    spec.unit === undefined ? '' : `Unit: ${UNIT_NAMES[spec.unit]}.`,
    spec.type === 'uint' && (spec.min !== undefined || spec.max !== undefined) ? `Range: ${spec.min ?? 0}..${spec.max ?? 'unbounded'}.` : '',
    spec.default === undefined ? '' : `Default: ${roff(`\`${spec.default}\``)}.`,
    spec.repeatable ? 'Repeatable.' : '',
  ].filter((s) => s !== '');
  return `.TP\n${flagName(spec.name)}${value}${aliases}\n${roff(spec.doc)}${facts.length === 0 ? '' : `\n${facts.join(' ')}`}`;
}

/** The whole page, in man(7) macros. Deterministic: no date, so the committed file is stable. */
export function renderManPage(): string {
  const byReason = new Map<string, string[]>();
  for (const { name, reason } of UNSUPPORTED_UWSGI_OPTIONS) byReason.set(reason, [...(byReason.get(reason) ?? []), name]);
  const run = COMMANDS[0] as CliCommand;
  const sections = [
    '.\\" Generated by `npm run docs` from packages/cli/src/commands.ts and the option table; do not edit by hand.',
    `.TH EMPEROR 1 "" "emperor ${VERSION}" "User Commands"`,
    '.SH NAME',
    'emperor \\- a uWSGI\\-style emperor and vassal supervisor for Node.js and Python WSGI apps',
    '.SH SYNOPSIS',
    COMMANDS.map(synopsis).join('\n.br\n'),
    '.SH DESCRIPTION',
    roff('Drop one vassal file per app (INI, XML or JSON, with uWSGI\'s option names) into a directory. The emperor starts a master for each: the master binds the app\'s sockets, drops to the app\'s `uid`/`gid` and preforks a pool of workers, which accept connections themselves. Touching a file reloads its app without dropping a connection; deleting it stops the app.'),
    '.PP',
    roff(`${run.summary}: with \`--emperor DIR\` (or a file that sets \`emperor\`) the emperor, else the vassal the file or the options describe, in the foreground, as \`uwsgi --ini\` would.`),
    '.PP',
    roff('Errors of the command line itself (an unknown command, a missing argument, a file that cannot be read or is invalid) are one plain line on stderr. Once running, the emperor, masters and workers log one line per event (see `log-style`).'),
    '.SH COMMANDS',
    COMMANDS.map(commandSection).join('\n'),
    '.SH OPTIONS',
    roff('Every option of a vassal file or of the emperor\'s own file, with uWSGI\'s names, units and defaults. In a file: `name = value` (INI), `<name>value</name>` (XML), `"name": value` (JSON). On the command line: `--name value`, after the file\'s options; a boolean option\'s flag stands alone (`--master`).'),
    ...OPTION_GROUPS.flatMap(({ group, title }) => [`.SS "${title}"`, ...OPTIONS.filter((spec) => spec.group === group).map(optionItem)]),
    '.SS "uWSGI options Emperor does not support"',
    roff(`These ${UNSUPPORTED_UWSGI_OPTIONS.length} uWSGI options are recognised, reported once per file as \`unsupported-option\`, and ignored; the vassal still starts.`),
    ...[...byReason].map(([reason, names]) => `.TP\n${roff(reason[0]?.toUpperCase() + reason.slice(1))}.\n${names.map((n) => n.replace(/-/g, '\\-')).join(', ')}`),
    '.SH ENVIRONMENT',
    '.TP\n.B EMPEROR_LOG_STYLE',
    roff('`text` or `json`: the style of event lines when `log-style` is `auto`. Each tier sets it for its children: the emperor for its masters, a master for its workers.'),
    '.TP\n.B EMPEROR_LOG_LEVEL',
    roff('The lowest level of event lines: `trace`, `debug`, `info` (the default), `warn`, `error`, `fatal`, `silent`. Request lines follow `disable-logging` and the `log-*` options instead.'),
    '.TP\n.B JOURNAL_STREAM',
    roff('Set by systemd when stderr is the journal: `log-style = auto` then writes text.'),
    '.TP\n.B NOTIFY_SOCKET', roff('Set by systemd for `Type=notify`: the emperor reports readiness, reloads, its status line and the watchdog there.'),
    '.SH "EXIT STATUS"',
    ...(Object.keys(ExitCode) as (keyof typeof ExitCode)[]).map((name) => `.TP\n.B ${ExitCode[name]}\n${roff(EXIT_STATUS[name])}`),
    '.SH FILES',
    '.TP\n.I /etc/emperor.ini', roff('The emperor\'s own configuration, as the shipped systemd unit runs it (`emperor --ini /etc/emperor.ini`).'),
    '.TP\n.I /etc/emperor.d/', roff('The vassal files, one per app.'),
    '.TP\n.I /run/emperor/', roff('The emperor\'s stats socket and pidfile under systemd (`RuntimeDirectory=emperor`).'),
    '.SH "SEE ALSO"',
    roff('The guides in the package\'s `docs/` directory (after `npm install -g`, `$(npm root -g)/emperor/docs/`): getting-started.md, configuration.md, migrating-from-uwsgi.md, systemd.md, logging.md, errors.md.'),
    '.PP',
    '.BR systemd.service (5),',
    '.BR systemd.exec (5),',
    '.BR uwsgi (1)',
  ];
  return `${sections.join('\n')}\n`;
}
