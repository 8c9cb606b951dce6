/**
 * The loader's front door: files (or parsed sources) in, a filled, validated, readonly
 * config and its warnings out.
 *
 * Sources are applied in order: inherited files, then the file itself, then overrides
 * (command-line flags). For a scalar option the LATER occurrence wins, so a vassal's own
 * value beats an inherited one; uWSGI's `--inherit` does the opposite (the template wins),
 * which surprises people, and we deliberately differ. Repeatable options (sockets, env,
 * touch-reload, ...) accumulate in that order.
 */
import { InternalError } from '@emperor/protocol';
import { buildEmperorConfig } from './emperor-config.js';
import { collectOptions } from './collect.js';
import { COMMAND_LINE } from './option-reader.js';
import { readConfigFile } from './read.js';
import type { ConfigWarning, EmperorConfig, RawConfig, RawOption, VassalConfig } from './types.js';
import { buildVassalConfig } from './vassal-config.js';

/** Options of {@link resolveVassalConfig} and {@link resolveEmperorConfig}. */
export interface ResolveConfigOptions {
  /** Where `$(NAME)` looks. @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * Options applied after every source, e.g. command-line flags with `file: '<command line>'`
   * ({@link COMMAND_LINE}); their relative paths resolve against the process cwd.
   */
  readonly overrides?: readonly RawOption[];
}

/** Options of {@link resolveVassalConfig}. */
export interface ResolveVassalConfigOptions extends ResolveConfigOptions {
  /**
   * The caller found a listening socket on stdin (fd 0), as a web server that spawns
   * its FastCGI backend leaves it (lighttpd `bin-path`): unless an option already names
   * `fd://0` or `skip-zero` is set, the vassal serves it too, with `protocol` if set,
   * else FastCGI (uWSGI core/socket.c adds fd 0 with its default protocol; flup takes
   * it as FastCGI). @default false
   */
  readonly stdinSocket?: boolean;
  /**
   * The emperor started this vassal on demand (`emperor-on-demand-*`): the listening
   * socket on stdin is the one it bound, named so. A socket option with the same address
   * serves fd 0 with that option's protocol instead of binding again (uWSGI would bind a
   * second time: its docs warn never to declare it, unbit/uwsgi#608); when none has it,
   * fd 0 is served with `protocol` (uWSGI's default: uwsgi). Implies `stdinSocket`.
   */
  readonly onDemandSocket?: string | undefined;
}

/** Options of {@link loadVassalConfig}. */
export interface LoadVassalConfigOptions extends ResolveVassalConfigOptions {
  /** Files whose options come first (the emperor's `vassals-inherit`), in order. */
  readonly inherit?: readonly string[];
}

/** A config and the warnings met while building it (each already reported nowhere). */
export interface LoadedConfig<T> {
  readonly config: T;
  readonly warnings: readonly ConfigWarning[];
}

/**
 * Reads a vassal file (and the files it inherits) and builds its {@link VassalConfig}.
 *
 * @param path the vassal file, as the caller names it (messages show it as given)
 * @throws {ConfigReadError} a file cannot be read
 * @throws {ConfigParseError} a file is not valid INI/XML/JSON for uWSGI
 * @throws {ConfigValueError} a value, a placeholder or a combination is invalid
 */
export function loadVassalConfig(path: string, options: LoadVassalConfigOptions = {}): LoadedConfig<VassalConfig> {
  const sources = [...(options.inherit ?? []).map((file) => readConfigFile(file)), readConfigFile(path)];
  return resolveVassalConfig(sources, options);
}

/**
 * Builds a {@link VassalConfig} from parsed sources: inherited files first, the vassal's
 * own file LAST (it names the vassal and anchors relative paths), then `options.overrides`.
 *
 * @throws {ConfigValueError} a value, a placeholder or a combination is invalid
 * @throws {InternalError} `sources` is empty (a bug in the caller)
 */
export function resolveVassalConfig(sources: readonly RawConfig[], options: ResolveVassalConfigOptions = {}): LoadedConfig<VassalConfig> {
  const vassal = sources.at(-1);
  if (vassal === undefined) throw new InternalError('resolveVassalConfig needs at least the vassal file as a source');
  const collected = collectOptions(allOptions(sources, options), 'vassal', options.env ?? process.env);
  return { config: buildVassalConfig(vassal, collected, { stdinSocket: (options.stdinSocket ?? false) || options.onDemandSocket !== undefined, onDemandSocket: options.onDemandSocket }), warnings: collected.warnings };
}

/**
 * Reads the emperor's own config file and builds its {@link EmperorConfig}; flags from the
 * command line go in `options.overrides`.
 *
 * @throws {ConfigReadError} {ConfigParseError} {ConfigValueError} as {@link loadVassalConfig}
 */
export function loadEmperorConfig(path: string, options: ResolveConfigOptions = {}): LoadedConfig<EmperorConfig> {
  return resolveEmperorConfig([readConfigFile(path)], options);
}

/**
 * Builds an {@link EmperorConfig} from parsed sources (possibly none: command-line flags
 * alone, in `options.overrides`). Paths resolve against each file's directory, and
 * against the process cwd for {@link COMMAND_LINE} options.
 *
 * @throws {ConfigValueError} a value is invalid, or no `emperor` directory is set
 */
export function resolveEmperorConfig(sources: readonly RawConfig[], options: ResolveConfigOptions = {}): LoadedConfig<EmperorConfig> {
  const collected = collectOptions(allOptions(sources, options), 'emperor', options.env ?? process.env);
  return { config: buildEmperorConfig(sources.at(-1)?.file ?? COMMAND_LINE, collected), warnings: collected.warnings };
}

function allOptions(sources: readonly RawConfig[], options: ResolveConfigOptions): readonly RawOption[] {
  return [...sources.flatMap((source) => source.options), ...(options.overrides ?? [])];
}
