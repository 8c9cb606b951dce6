/**
 * The `emperor` command line (yargs): run the emperor, run one vassal in the foreground,
 * or talk to a running one.
 */
import { readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import {
  findOption,
  formatListenAddress,
  formatWarning,
  loadEmperorConfig,
  readConfigFile,
  resolveEmperorConfig,
  type ConfigWarning,
  type EmperorConfig,
  type RawOption,
} from '@emperor/config';
import { Emperor, notifierFromEnv } from '@emperor/emperor';
import { createLogger, emperorMetrics, readCapabilitySets, serveMetrics, type StatsServer } from '@emperor/process';
import { ExitCode, VERSION, isEmperorError, readStats } from '@emperor/protocol';
import { COMMAND_LINE, optionsFromArgv } from './argv.js';
import { runCheck } from './check.js';
import { planEmperorDrop, runLauncher, takeHandoff, type HandedFds } from './privilege-drop.js';
import { printSnapshot, runTop } from './top/terminal.js';

const EPILOG = `Any uWSGI option of a vassal or emperor file can also be given as --option value
(repeatable options may be repeated); those come after the file's options.
Docs: docs/getting-started.md, docs/configuration.md.`;

/**
 * Runs the command line; resolves to the process exit code, which the bin (bin/emperor.ts)
 * exits with; running a vassal in the foreground, once the vassal has stopped.
 */
export async function main(argv: readonly string[]): Promise<ExitCode> {
  // The emperor proper, started as its configured user by the launcher (privilege-drop.ts).
  const handoff = takeHandoff();
  if (handoff !== undefined) return runEmperor(() => ({ config: handoff.config, warnings: [] }), handoff.fds);
  let code: ExitCode = ExitCode.OK;
  const parser = yargs([...argv])
    .scriptName('emperor')
    .usage('$0 [--emperor DIR | --ini FILE | --xml FILE | --json FILE] [--option value ...]')
    .command(
      '$0',
      'Run the emperor on a directory of vassal files, or one vassal in the foreground',
      (y) =>
        y
          .option('ini', { type: 'string', describe: 'INI file: an emperor config (has `emperor =`) or a vassal to run' })
          .option('xml', { type: 'string', describe: 'XML file, likewise' })
          .option('json', { type: 'string', describe: 'JSON file, likewise' })
          .option('emperor', { type: 'string', array: true, describe: 'Directory of vassal files to watch (repeatable)' })
          .option('emperor-stats', { type: 'string', describe: 'Serve the emperor stats JSON on host:port or a unix path' })
          .example('$0 --emperor /etc/emperor.d', 'run the emperor on a directory')
          .example('$0 --emperor ./emperor.d --emperor-stats 127.0.0.1:9190', 'with a stats socket')
          .example('$0 --ini /etc/emperor.ini', 'run the emperor from its own config file')
          .example('$0 --ini emperor.d/hello.ini', 'run one vassal in the foreground, like uwsgi --ini')
          .example('$0 --http-socket :8080 --module app.js --processes 2', 'run an app from options alone'),
      async (args) => {
        code = await run(argv, args.ini, args.xml, args.json);
      },
    )
    .command(
      'stats <address>',
      'Print one snapshot of a stats socket (vassal or emperor, ours or uWSGI\'s), as text or JSON',
      (y) =>
        y
          .positional('address', { type: 'string', demandOption: true, describe: 'host:port, a unix socket path, @abstract, or http://...' })
          .option('json', { type: 'boolean', default: false, describe: 'Print the JSON document as served' })
          .example('$0 stats 127.0.0.1:9190', 'the emperor started by npm start: its vassals')
          .example('$0 stats 127.0.0.1:9191', 'a vassal: its workers, as emperor top shows them')
          .example('$0 stats /run/shop.stats --json', 'the raw JSON of a vassal on a unix socket'),
      async (args) => {
        if (!args.json) {
          code = await printSnapshot(args.address, process);
          return;
        }
        try {
          const doc = await readStats(args.address);
          process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
        } catch (err) {
          process.stderr.write(`emperor stats: ${(err as Error).message}\n`);
          code = ExitCode.FAILURE;
        }
      },
    )
    .command(
      'top <address>',
      'Live view of a stats socket, like uwsgitop: workers of a vassal, or the vassals of an emperor',
      (y) =>
        y
          .positional('address', { type: 'string', demandOption: true, describe: 'host:port, a unix socket path, @abstract, or http://...' })
          .option('interval', { type: 'string', default: '1', describe: 'Seconds between refreshes (decimals allowed, at least 0.1)' })
          .example('$0 top 127.0.0.1:9191', 'a vassal: per worker requests, req/s, average time, memory, harakiri, respawns')
          .example('$0 top 127.0.0.1:9190 --interval 5', 'the emperor: vassals with state, pid, respawns and uptime')
          .example('$0 top /run/shop.stats | cat', 'not a terminal: one snapshot as text')
          .epilog('Keys: s sorts by the next column, r reverses the order, q quits.'),
      async (args) => {
        const seconds = Number(args.interval);
        if (!Number.isFinite(seconds) || seconds < 0.1) {
          code = fail(`--interval: expected seconds >= 0.1, got ${JSON.stringify(args.interval)}`);
          return;
        }
        code = await runTop(args.address, { intervalMs: Math.round(seconds * 1000) });
      },
    )
    .command(
      'check <files..>',
      'Validate vassal files (or an emperor file, one with `emperor =`) without running them',
      (y) =>
        y
          .positional('files', { type: 'string', array: true, demandOption: true, describe: 'INI, XML or JSON files' })
          .option('print', { type: 'boolean', default: false, describe: 'Also print the resolved options: placeholders expanded, defaults filled' })
          .option('inherit', { type: 'string', array: true, default: [] as string[], describe: 'A vassals-inherit file applied first (repeatable)' })
          .example('$0 check /etc/emperor.d/*.ini', 'every problem as file:line: option: message; exit 1 if any file is invalid')
          .example('$0 check shop.ini --print', 'the options the master would run with')
          .example('$0 check shop.ini --inherit /etc/emperor/base.ini', 'as the emperor would load it with vassals-inherit'),
      (args) => {
        code = runCheck(args.files, { print: args.print, inherit: args.inherit }, process.stdout);
      },
    )
    .epilog(EPILOG)
    .strictCommands()
    .version(VERSION)
    .help()
    .alias('h', 'help')
    .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false, 'parse-positional-numbers': false, 'unknown-options-as-args': false })
    .fail((msg, err) => {
      process.stderr.write(`emperor: ${msg ?? err?.message}\n`);
      code = ExitCode.USAGE;
    });
  await parser.parseAsync();
  return code;
}

/**
 * The vassal master's entry (`@emperor/vassal` dist/bin/master.js), found without loading
 * the vassal package: the emperor never runs vassal code, and importing it would cost
 * the emperor about 1 MB of RSS (measured) and start-up time.
 */
function masterEntry(): string {
  return fileURLToPath(new URL('./bin/master.js', import.meta.resolve('@emperor/vassal')));
}

/** True for an `emperor` option (a file or flag that sets it runs the emperor, not a vassal). */
function isEmperorOption(option: RawOption): boolean {
  return findOption(option.name)?.name === 'emperor';
}

/** Prints a usage problem; returns {@link ExitCode.USAGE}. */
function fail(message: string): ExitCode {
  process.stderr.write(`emperor: ${message}\n`);
  return ExitCode.USAGE;
}

async function run(argv: readonly string[], ini?: string, xml?: string, json?: string): Promise<ExitCode> {
  const files = [ini, xml, json].filter((f): f is string => f !== undefined);
  if (files.length > 1) return fail('give only one of --ini, --xml, --json');
  const overrides = optionsFromArgv(argv);
  const file = files[0];
  if (file !== undefined) {
    let hasEmperor: boolean;
    try {
      hasEmperor = readConfigFile(file).options.some(isEmperorOption) || overrides.some(isEmperorOption);
    } catch {
      // Unreadable or invalid: run it as a vassal, which reports the error the way the
      // emperor would (one log line naming file and line, exit code 78).
      hasEmperor = overrides.some(isEmperorOption);
    }
    if (!hasEmperor) {
      const { runVassal } = await import('@emperor/vassal');
      return runVassal(file, { overrides });
    }
    return runEmperor(() => loadEmperorConfig(file, { overrides }));
  }
  if (overrides.some(isEmperorOption)) {
    return runEmperor(() => resolveEmperorConfig([{ file: COMMAND_LINE, format: 'ini', options: overrides }]));
  }
  if (overrides.length === 0) return fail('nothing to run: give --emperor DIR, --ini FILE, or a vassal\'s options (see --help)');
  const { runVassal } = await import('@emperor/vassal');
  return runVassal(undefined, { overrides });
}

/**
 * Runs the emperor until SIGTERM, SIGINT or SIGQUIT. Resolves to {@link ExitCode.OK} after
 * the shutdown, {@link ExitCode.CONFIG} for an invalid config (or a `uid`/`gid` that
 * cannot be had), {@link ExitCode.FAILURE} when it cannot start.
 *
 * With `uid` in the config and root privileges, this process becomes the launcher of the
 * emperor proper (privilege-drop.ts); `handed` are the sockets such a launcher bound for
 * this process, which then neither writes nor removes the pidfile (the launcher does).
 */
async function runEmperor(load: () => { config: EmperorConfig; warnings: readonly ConfigWarning[] }, handed?: HandedFds): Promise<ExitCode> {
  const logger = createLogger({ role: 'emperor' });
  let config: EmperorConfig;
  try {
    const loaded = load();
    config = loaded.config;
    for (const w of loaded.warnings) logger.warn({ code: w.code, option: w.option }, formatWarning(w));
  } catch (err) {
    logger.error({ code: (err as { code?: string }).code }, isEmperorError(err) ? err.message : String(err));
    return ExitCode.CONFIG;
  }
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
  const emperor = new Emperor({
    config,
    logger,
    masterEntry: masterEntry(),
    notifier: notifierFromEnv(process.env, logger),
    listenFds: { emperorStats: handed?.emperorStats, stats: handed?.stats },
  });
  const ownsPidfile = handed === undefined && config.pidfile !== undefined;
  if (ownsPidfile && config.pidfile !== undefined) writeFileSync(config.pidfile, `${process.pid}\n`);
  const done = new Promise<ExitCode>((resolve) => {
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
    process.on('SIGTERM', () => shutdown('SIGTERM'));
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
