/**
 * The `emperor` command line (yargs): run the emperor, run one vassal in the foreground,
 * or talk to a running one. The commands, their flags and examples are data
 * (commands.ts), which the man page is rendered from too.
 *
 * Errors of the command line itself (an unknown command, a missing argument, a file that
 * cannot be read or is invalid) are one plain line on stderr, `emperor: ...`, never a log
 * record: nothing runs yet, so there is nothing to log.
 */
import { existsSync, readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs, { type Argv } from 'yargs';
import {
  ConfigError,
  OPTIONS,
  findOption,
  findUnsupportedOption,
  formatListenAddress,
  formatWarning,
  loadEmperorConfig,
  loadVassalConfig,
  readConfigFile,
  resolveEmperorConfig,
  resolveVassalConfig,
  suggestOptionName,
  type ConfigWarning,
  type EmperorConfig,
  type LoadedConfig,
  type RawOption,
} from '@emperor/config';
import { Emperor, notifierFromEnv, systemdRestartPending, tellPredecessor } from '@emperor/emperor';
import { createLogger, emperorMetrics, pinLogStyle, readCapabilitySets, serveMetrics, type StatsServer } from '@emperor/process';
import { ExitCode, UsageError, VERSION, isEmperorError, readStats } from '@emperor/protocol';
import { COMMAND_LINE, optionsFromArgv, strayWordsOfArgv } from './argv.js';
import { runCheck } from './check.js';
import { COMMANDS, command, suggestCommand, type CliCommand } from './commands.js';
import { planEmperorDrop, runLauncher, takeHandoff, type HandedFds } from './privilege-drop.js';
import { printSnapshot, runTop } from './top/terminal.js';
import { runUpgrade, upgradeRuntimeDir } from './upgrade.js';

/**
 * The directory of the docs shipped with this install (a checkout, or the package `npm
 * install -g` unpacked): the first directory above this file holding
 * `docs/getting-started.md`. Undefined when there is none.
 */
export function docsDir(from: string = dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'docs', 'getting-started.md'))) return join(dir, 'docs');
    if (dirname(dir) === dir) return undefined;
  }
}

/** The text after `--help`: how config options are given, and where the manual is (absolute paths only). */
function epilog(): string {
  const docs = docsDir();
  return [
    'Any uWSGI option of a vassal or emperor file can also be given as --option value',
    '(repeatable options may be repeated); those come after the file\'s options.',
    `Manual: man emperor${docs === undefined ? '' : `; guides in ${docs}/ (getting-started.md, configuration.md)`}.`,
  ].join('\n');
}

/** Adds a command's positionals, flags and examples (from commands.ts) to its yargs builder. */
function describe(y: Argv, spec: CliCommand): Argv {
  let out = y;
  for (const p of spec.positionals) out = out.positional(p.name, { type: 'string', describe: p.describe, ...(p.variadic === true ? { array: true } : {}) });
  for (const f of spec.flags) {
    out = out.option(f.name, {
      type: f.type,
      describe: f.describe,
      ...(f.array === true ? { array: true } : {}),
      ...(f.default !== undefined ? { default: f.default } : {}),
      // A string flag needs its value: `emperor --ini` alone is a usage error, not a file named "".
      ...(f.type === 'string' ? { requiresArg: true } : {}),
    });
  }
  for (const [line, what] of spec.examples) out = out.example(`$0 ${line}`, what);
  if (spec.epilog !== undefined) out = out.epilog(spec.epilog);
  return out;
}

/** What yargs hands a completion function: the default completions, then ours. */
type Completer = (
  current: string,
  parsed: { _: (string | number)[] },
  defaults: (done: (err: Error | null, completions: string[] | undefined) => void) => void,
  done: (completions: string[]) => void,
) => void;

/**
 * Shell completion: the commands and their flags (yargs), plus, for the default command,
 * every option name of the option table (`--harakiri`). After a flag that takes a file or
 * directory, nothing, so the shell completes file names.
 * @param argv the command line as given (`--get-yargs-completions emperor WORDS...`)
 */
function completer(argv: readonly string[]): Completer {
  return (current, parsed, defaults, done) => complete(current, parsed._.map(String).slice(1), argv.at(-2) ?? '', defaults, done);
}

function complete(current: string, words: readonly string[], previous: string, defaults: Parameters<Completer>[2], done: Parameters<Completer>[3]): void {
  if (['--ini', '--xml', '--json', '--emperor', '--inherit'].includes(previous)) {
    done([]);
    return;
  }
  defaults((_err, completions) => {
    const out = (completions ?? []).filter((c) => c !== '$0' && !c.startsWith('$0'));
    const subcommand = words.find((w) => COMMANDS.some((c) => c.name === w && c.name !== 'run'));
    if (subcommand === undefined && (current.startsWith('-') || current === '')) {
      for (const f of command('run').flags) out.push(`--${f.name}`);
      if (current.startsWith('-')) for (const spec of OPTIONS) for (const name of [spec.name, ...spec.aliases]) out.push(`--${name}`);
    }
    done([...new Set(out)]);
  });
}

/**
 * Runs the command line; resolves to the process exit code, which the bin (bin/emperor.ts)
 * exits with; running a vassal in the foreground, once the vassal has stopped.
 */
export async function main(argv: readonly string[]): Promise<ExitCode> {
  // The emperor proper, started as its configured user by the launcher (privilege-drop.ts).
  const handoff = takeHandoff();
  if (handoff !== undefined) return runEmperor({ config: handoff.config, warnings: [] }, handoff.fds);
  let code: ExitCode = ExitCode.OK;
  const run0 = command('run');
  const parser = yargs([...argv])
    .scriptName('emperor')
    .usage('$0 [--emperor DIR | --ini FILE | --xml FILE | --json FILE] [--option value ...]')
    .command('$0', run0.summary, (y) => describe(y, run0), async (args) => {
      const stray = strayWordsOfArgv(argv);
      if (stray.length > 0) {
        code = fail(unknownCommand(stray[0] as string));
        return;
      }
      code = await run(argv, args.ini as string | undefined, args.xml as string | undefined, args.json as string | undefined);
    })
    .command(command('stats').usage, command('stats').summary, (y) => describe(y, command('stats')), async (args) => {
      const address = String(args.address);
      if (args.json !== true) {
        code = await printSnapshot(address, process);
        return;
      }
      try {
        const doc = await readStats(address);
        process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
      } catch (err) {
        process.stderr.write(`emperor stats: ${(err as Error).message}\n`);
        code = ExitCode.FAILURE;
      }
    })
    .command(command('top').usage, command('top').summary, (y) => describe(y, command('top')), async (args) => {
      const seconds = Number(args.interval);
      if (!Number.isFinite(seconds) || seconds < 0.1) {
        code = fail(`top: --interval: expected seconds >= 0.1, got ${JSON.stringify(args.interval)}`);
        return;
      }
      code = await runTop(String(args.address), { intervalMs: Math.round(seconds * 1000) });
    })
    .command(command('upgrade').usage, command('upgrade').summary, (y) => describe(y, command('upgrade')), async (args) => {
      code = await runUpgrade(upgradeRuntimeDir(args['runtime-dir'] as string | undefined, process.env), process.stdout, process.stderr);
    })
    .command(command('check').usage, command('check').summary, (y) => describe(y, command('check')), async (args) => {
      code = await runCheck((args.files as string[]).map(String), { print: args.print === true, inherit: (args.inherit as string[]).map(String), tyrant: args.tyrant === true }, process.stdout);
    })
    .completion('completion', command('completion').summary, completer(argv))
    .epilog(epilog())
    .strictCommands()
    .version(VERSION)
    .help()
    .alias('h', 'help')
    .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false, 'parse-positional-numbers': false, 'unknown-options-as-args': false })
    .fail((msg, err) => {
      if ((msg === null || msg === undefined) && err !== undefined) throw err; // a bug in a handler: let it show
      // Thrown, not returned: yargs would run the command's handler anyway. Caught below, printed as one line.
      throw new UsageError(describeUsageProblem(msg ?? '', argv));
    });
  try {
    await parser.parseAsync();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return fail(err.message);
  }
  return code;
}

/** yargs' wording of a usage problem, with the command named and what to give. */
function describeUsageProblem(message: string, argv: readonly string[]): string {
  const spec = COMMANDS.find((c) => c.name !== 'run' && argv.includes(c.name));
  if (spec !== undefined && /^Not enough non-option arguments/.test(message)) {
    const missing = spec.positionals.map((p) => `<${p.name}${p.variadic === true ? '..' : ''}>`).join(' ');
    return `${spec.name}: missing ${missing} (${spec.positionals.map((p) => p.describe).join('; ')}); see emperor ${spec.name} --help`;
  }
  const flag = /^Not enough arguments following: (.+)$/.exec(message);
  if (flag !== null) return `--${flag[1] ?? ''} needs a value; see emperor --help`;
  return `${spec === undefined ? '' : `${spec.name}: `}${message}`;
}

/** The one line for a word that is no command: the command it looks like, or how to run a file. */
function unknownCommand(word: string): string {
  const suggestion = suggestCommand(word);
  if (suggestion !== undefined) return `unknown command ${JSON.stringify(word)}; did you mean ${suggestion}? (see emperor --help)`;
  if (/\.(?:ini|xml|json)$/i.test(word)) {
    const flag = /\.(ini|xml|json)$/i.exec(word)?.[1]?.toLowerCase() ?? 'ini';
    return `unknown command ${JSON.stringify(word)}; to run a file, give it with its format: emperor --${flag} ${word}`;
  }
  return `unknown command ${JSON.stringify(word)}; the commands are ${COMMANDS.filter((c) => c.name !== 'run').map((c) => c.name).join(', ')} (see emperor --help)`;
}

/**
 * The vassal master's entry (`@emperor/vassal` dist/bundle/master.js, the one-file bundle of
 * dist/bin/master.js made by scripts/bundle.mjs), found without loading
 * the vassal package: the emperor never runs vassal code, and importing it would cost
 * the emperor about 1 MB of RSS (measured) and start-up time.
 */
function masterEntry(): string {
  return fileURLToPath(new URL('./bundle/master.js', import.meta.resolve('@emperor/vassal')));
}

/** True for an `emperor` option (a file or flag that sets it runs the emperor, not a vassal). */
function isEmperorOption(option: RawOption): boolean {
  return findOption(option.name)?.name === 'emperor';
}

/** Prints a usage problem as one line; returns {@link ExitCode.USAGE}. */
function fail(message: string): ExitCode {
  process.stderr.write(`emperor: ${message}\n`);
  return ExitCode.USAGE;
}

/**
 * Loads a config before anything runs; on a config problem, prints the error as one
 * plain line, then one line per command-line flag that is no option at all (often the
 * real cause: `emperor --intervall 5` has "no app"), and returns undefined (the caller
 * exits {@link ExitCode.CONFIG}, as a vassal with an invalid file does).
 */
function loadOrReport<T>(load: () => LoadedConfig<T>, overrides: readonly RawOption[]): LoadedConfig<T> | undefined {
  try {
    return load();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`emperor: ${err.message}\n`);
    for (const option of overrides) {
      if (findOption(option.name) !== undefined || findUnsupportedOption(option.name) !== undefined) continue;
      const hint = suggestOptionName(option.name);
      process.stderr.write(`emperor: --${option.name}: unknown option${hint === undefined ? '' : `; did you mean --${hint}?`}\n`);
    }
    return undefined;
  }
}

async function run(argv: readonly string[], ini?: string, xml?: string, json?: string): Promise<ExitCode> {
  const files = [ini, xml, json].filter((f): f is string => f !== undefined);
  if (files.length > 1) return fail('give only one of --ini, --xml, --json');
  const overrides = optionsFromArgv(argv);
  const file = files[0];
  if (file !== undefined) {
    let raw;
    try {
      raw = readConfigFile(file);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`emperor: ${err.message}\n`);
      return ExitCode.CONFIG;
    }
    if (raw.options.some(isEmperorOption) || overrides.some(isEmperorOption)) {
      const loaded = loadOrReport(() => loadEmperorConfig(file, { overrides }), overrides);
      return loaded === undefined ? ExitCode.CONFIG : runEmperor(loaded);
    }
    // A vassal in the foreground: its config is checked here first, so a bad value is a
    // plain line like any other command-line error; the master then loads it again. A
    // listening socket on stdin (lighttpd's bin-path) counts as its socket, as in the master.
    const { runVassal, inspectSocketFd } = await import('@emperor/vassal');
    const stdinSocket = (await inspectSocketFd(0))?.listening === true;
    if (loadOrReport(() => loadVassalConfig(file, { overrides, stdinSocket }), overrides) === undefined) return ExitCode.CONFIG;
    return runVassal(file, { overrides, stdinSocket });
  }
  if (overrides.some(isEmperorOption)) {
    const loaded = loadOrReport(() => resolveEmperorConfig([{ file: COMMAND_LINE, format: 'ini', options: overrides }]), overrides);
    return loaded === undefined ? ExitCode.CONFIG : runEmperor(loaded);
  }
  if (overrides.length === 0) return fail('nothing to run: give --emperor DIR, --ini FILE, or a vassal\'s options (see emperor --help)');
  const { runVassal, inspectSocketFd } = await import('@emperor/vassal');
  const stdinSocket = (await inspectSocketFd(0))?.listening === true;
  if (loadOrReport(() => resolveVassalConfig([{ file: COMMAND_LINE, format: 'ini', options: overrides }], { stdinSocket }), overrides) === undefined) return ExitCode.CONFIG;
  return runVassal(undefined, { overrides, stdinSocket });
}

/**
 * Runs the emperor until SIGTERM, SIGINT or SIGQUIT. Resolves to {@link ExitCode.OK} after
 * the shutdown, {@link ExitCode.CONFIG} for a `uid`/`gid` that cannot be had,
 * {@link ExitCode.FAILURE} when it cannot start.
 *
 * With `uid` in the config and root privileges, this process becomes the launcher of the
 * emperor proper (privilege-drop.ts); `handed` are the sockets such a launcher bound for
 * this process, which then neither writes nor removes the pidfile (the launcher does).
 * @param loaded its config, valid (the caller reported an invalid one; the launcher loaded the emperor proper's)
 */
async function runEmperor(loaded: { config: EmperorConfig; warnings: readonly ConfigWarning[] }, handed?: HandedFds): Promise<ExitCode> {
  const config = loaded.config;
  // Decided once, by the process started first (the launcher, when there is one), and
  // inherited by the emperor proper, every master and every worker (EMPEROR_LOG_STYLE).
  pinLogStyle(config.logStyle);
  const logger = createLogger({ role: 'emperor' });
  for (const w of loaded.warnings) logger.warn({ code: w.code, option: w.option }, formatWarning(w));
  if (handed === undefined) {
    let decision;
    try {
      decision = planEmperorDrop(config);
    } catch (err) {
      const code = (err as { code?: string }).code;
      logger.error({ code }, isEmperorError(err) ? err.message : String(err));
      return code === 'ERR_MISSING_TOOL' ? ExitCode.FAILURE : ExitCode.CONFIG;
    }
    if (decision.kind === 'drop') return runLauncher(config, decision.plan, logger);
    for (const warning of decision.warnings) logger.warn({ code: 'no-effect', option: 'cap' }, warning);
  }
  process.title = 'emperor';
  let handedOver: () => void = () => {};
  const emperor = new Emperor({
    onHandedOver: () => handedOver(),
    onControlListening: () => tellPredecessor(process.env),
    launched: handed !== undefined,
    config,
    logger,
    masterEntry: masterEntry(),
    notifier: notifierFromEnv(process.env, logger),
    listenFds: { emperorStats: handed?.emperorStats, stats: handed?.stats },
  });
  const ownsPidfile = handed === undefined && config.pidfile !== undefined;
  if (ownsPidfile && config.pidfile !== undefined) writeFileSync(config.pidfile, `${process.pid}\n`);
  const done = new Promise<ExitCode>((resolve) => {
    // The vassals went to a next emperor (emperor upgrade, or systemctl restart): it owns the pidfile now.
    handedOver = () => resolve(ExitCode.OK);
    const shutdown = (signal: string): void => {
      logger.info(`${signal} received`);
      void emperor.shutdown().then(() => {
        if (ownsPidfile && config.pidfile !== undefined) {
          try {
            if (readFileSync(config.pidfile, 'utf8').trim() === String(process.pid)) unlinkSync(config.pidfile);
          } catch {
            // gone
          }
        }
        resolve(ExitCode.OK);
      });
    };
    // systemctl stop and systemctl restart both send SIGTERM: a restart hands the vassals
    // over to the emperor systemd starts next (systemd-restart.ts).
    let terms = 0;
    process.on('SIGTERM', () => {
      if (++terms > 1 || !emperor.canHandOver) {
        shutdown('SIGTERM');
        return;
      }
      void systemdRestartPending(process.env).then((restart) => {
        if (!restart) {
          shutdown('SIGTERM');
          return;
        }
        logger.info('SIGTERM during a restart of this unit: handing the vassals over to the next emperor');
        void emperor.handOver();
      });
    });
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGQUIT', () => shutdown('SIGQUIT'));
  });
  process.on('SIGHUP', () => emperor.reloadAll());
  // Node opens its inspector on SIGUSR1, and whoever may signal this process (any process
  // of its user, such as a vassal without uid) could then run code in it: with CAP_SETUID
  // that is root. An emperor holding capabilities without being root says who it is instead.
  if ((process.getuid?.() ?? 0) !== 0 && readCapabilitySets().effective !== 0n) {
    process.on('SIGUSR1', () => logger.info(`SIGUSR1: ${emperor.vassals.size} vassal(s); the inspector stays off in an emperor holding capabilities`));
  }
  // logrotate's postrotate can signal the emperor alone (systemctl kill --kill-whom=main -s USR2);
  // a signal to every process would reach Python workers, whose SIGUSR2 dumps stacks.
  process.on('SIGUSR2', () => {
    logger.info(`SIGUSR2: asking ${emperor.vassals.size} vassal(s) to reopen their log files`);
    for (const vassal of emperor.vassals.values()) vassal.reopenLogs();
  });
  try {
    await emperor.start();
  } catch (err) {
    logger.error(`emperor failed to start: ${(err as Error).message}`);
    await emperor.shutdown();
    return ExitCode.FAILURE;
  }
  let prometheus: StatsServer | undefined;
  // Behind a launcher, a socket it could not bind is absent (it said so).
  if (config.emperorPrometheus !== undefined && (handed === undefined || handed.emperorPrometheus !== undefined)) {
    const address = config.emperorPrometheus;
    try {
      prometheus = await serveMetrics(address, emperorMetrics(() => emperor.stats()), {
        onError: (err) => logger.error(`metrics: cannot render: ${err.message}`),
        fd: handed?.emperorPrometheus,
      });
      logger.info(`prometheus metrics on ${prometheus.address}/metrics`);
    } catch (err) {
      logger.error(`emperor-prometheus: cannot listen on ${formatListenAddress(address)}: ${(err as Error).message}; the emperor keeps running without metrics`);
    }
  }
  const exit = await done;
  await prometheus?.close();
  return exit;
}
