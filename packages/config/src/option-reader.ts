/**
 * Typed access to the options that apply, with the table's defaults: the one place where
 * "last occurrence wins" and "repeatable options accumulate" are decided.
 */
import { InternalError } from '@emperor/protocol';
import type { AppliedOption, CollectedOptions } from './collect.js';
import { findOption, type OptionName, type OptionNameOf, type OptionNameWithDefaultOf, type OptionSpec, type OptionType } from './options.js';
import type { ConfigWarningCode, ListenAddress, ResolvedOption, SourceLocation } from './types.js';
import { parseAddress, parseBool, parseChoice, parseIdentifier, parsePath, parseUint, toBaseUnit } from './values.js';

/**
 * The `file` of options given on the command line. Their relative paths resolve against
 * the process cwd, as a shell user expects; options from files resolve against a directory
 * the caller picks.
 */
export const COMMAND_LINE = '<command line>';

/**
 * Reads typed values of canonical option names. Each method takes only the names the
 * table gives the right type (and, where it falls back to it, a default), so a misspelt
 * name or a name of the wrong type is a compile error; at run time it is still an
 * {@link InternalError}, for callers the compiler did not see.
 */
export interface OptionReader {
  /** The occurrence that wins: the last one of the option under any of its names. */
  last(name: OptionName): ResolvedOption | undefined;
  /** Every occurrence, in order (for repeatable options). */
  all(name: OptionName): readonly ResolvedOption[];
  /** `bool` options; their default when unset (false, or true for the flags Emperor always has on). */
  bool(name: OptionNameOf<'bool'>): boolean;
  /** `uint` options with a default, in the base unit (ms, bytes). */
  uint(name: OptionNameWithDefaultOf<'uint'>): number;
  /** `uint` options, `undefined` when unset (for those without a default). */
  optionalUint(name: OptionNameOf<'uint'>): number | undefined;
  /** `path` options, absolute. */
  path(name: OptionNameOf<'path'>): string | undefined;
  /** Repeatable `path` options, absolute, in order. */
  paths(name: OptionNameOf<'path'>): readonly string[];
  /** `address` options. */
  address(name: OptionNameOf<'address'>): ListenAddress | undefined;
  /** `identifier` options, with their default. */
  identifier(name: OptionNameWithDefaultOf<'identifier'>): string;
  /** `choice` options, with their default. */
  choice(name: OptionNameWithDefaultOf<'choice'>): string;
  /** The winning occurrence through `parse`, or `undefined` when unset. */
  parsed<T>(name: OptionName, parse: (option: ResolvedOption) => T): T | undefined;
  /** The directory a relative path in this occurrence resolves against (for paths whose base depends on other options). */
  baseDirOf(location: SourceLocation): string;
  /** Adds a warning about `option`. */
  warn(option: ResolvedOption, code: ConfigWarningCode, message: string): void;
}

/**
 * The typed reads the vassal and emperor builders make over the collected options.
 * @param fileBaseDir the directory a relative path from `file` resolves against (options
 *   from {@link COMMAND_LINE} resolve against the process cwd)
 * @throws {InternalError} from a read, for a name the table does not have with that type
 *   (or, for `uint`, `identifier` and `choice`, without a default)
 */
export function createOptionReader(collected: CollectedOptions, fileBaseDir: (file: string) => string): OptionReader {
  const baseDirOf = (location: SourceLocation): string => (location.file === COMMAND_LINE ? process.cwd() : fileBaseDir(location.file));
  const byName = new Map<string, AppliedOption[]>();
  for (const entry of collected.applied) {
    const list = byName.get(entry.spec.name) ?? [];
    list.push(entry);
    byName.set(entry.spec.name, list);
  }
  const spec = (name: string, type: OptionType): OptionSpec => {
    const found = findOption(name);
    if (found?.name !== name || found.type !== type) throw new InternalError(`option table has no ${type} option ${JSON.stringify(name)}`);
    return found;
  };
  const all = (name: string): readonly ResolvedOption[] => (byName.get(name) ?? []).map((entry) => entry.option);
  const last = (name: string): ResolvedOption | undefined => byName.get(name)?.at(-1)?.option;
  const parsed = <T>(name: string, parse: (option: ResolvedOption) => T): T | undefined => {
    const option = last(name);
    return option === undefined ? undefined : parse(option);
  };
  const withDefault = (name: string, type: OptionType, parse: (option: ResolvedOption, found: OptionSpec) => string): string => {
    const found = spec(name, type);
    const value = parsed(name, (option) => parse(option, found)) ?? found.default;
    if (value === undefined) throw new InternalError(`option ${name} has no default`);
    return value;
  };
  const optionalUint = (name: string): number | undefined => parsed(name, (option) => parseUint(option, spec(name, 'uint')));

  return {
    last,
    all,
    bool: (name) => {
      const found = spec(name, 'bool');
      return parsed(name, parseBool) ?? found.default === 'true';
    },
    uint: (name) => {
      const found = spec(name, 'uint');
      if (found.default === undefined) throw new InternalError(`option ${name} has no default; use optionalUint`);
      return optionalUint(name) ?? toBaseUnit(Number(found.default), found.unit);
    },
    optionalUint,
    path: (name) => {
      spec(name, 'path');
      return parsed(name, (option) => parsePath(option, baseDirOf(option)));
    },
    paths: (name) => {
      spec(name, 'path');
      return all(name).map((option) => parsePath(option, baseDirOf(option)));
    },
    address: (name) => {
      spec(name, 'address');
      return parsed(name, (option) => parseAddress(option, baseDirOf(option)));
    },
    identifier: (name) => withDefault(name, 'identifier', parseIdentifier),
    choice: (name) => withDefault(name, 'choice', parseChoice),
    parsed,
    baseDirOf,
    warn: (option, code, message) => {
      collected.warnings.push({ file: option.file, line: option.line, code, option: option.name, message });
    },
  };
}
