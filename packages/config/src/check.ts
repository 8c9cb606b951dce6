/**
 * `emperor check`: validates a vassal file (or the emperor's own file) without running
 * it, and reports EVERY problem it can find, not just the first one the loader throws.
 *
 * Each applied option's value is checked on its own first (so three bad values are three
 * errors), then the file is built as the master would build it from the values that
 * passed, which adds the cross-option errors (no socket, `cheaper` >= `processes`, ...)
 * and the builder's warnings.
 */
import { dirname, resolve } from 'node:path';
import { collectOptions, type CollectedOptions, type ConfigKind } from './collect.js';
import { parseCapabilities } from './capabilities.js';
import { buildEmperorConfig } from './emperor-config.js';
import { ConfigError, ConfigValueError } from './errors.js';
import { findOption, OPTIONS, type OptionSpec } from './options.js';
import { readConfigFile } from './read.js';
import type { RawConfig, ResolvedOption, SourceLocation, VassalConfig } from './types.js';
import { parseAddress, parseSocketAddress, parseBool, parseChoice, parseEnv, parseIdentifier, parseMode, parseOwner, parsePath, parsePrincipal, parseUint } from './values.js';
import { buildVassalConfig } from './vassal-config.js';
import { formatWarning } from './warnings.js';

/** One problem found by {@link checkConfigFile}. */
export interface ConfigProblem extends SourceLocation {
  /** `error`: the file would not run. `warning`: it runs, and this is reported once. */
  readonly severity: 'error' | 'warning';
  /** `ERR_CONFIG_*` for errors, the warning code (`unknown-option`, ...) for warnings. */
  readonly code: string;
  /** The option concerned; "" for a file that cannot be read or parsed. */
  readonly option: string;
  /** One line: `file:line: option: message`, as the loader and the master log it. */
  readonly text: string;
}

/** What {@link checkConfigFile} found. */
export interface CheckResult {
  /** `emperor` when the file sets `emperor`, else `vassal`. */
  readonly kind: ConfigKind;
  /** Errors first, each group in file order. */
  readonly problems: readonly ConfigProblem[];
  /** Every option after the placeholder passes, in file order; undefined when the file could not be read this far. */
  readonly resolved: readonly ResolvedOption[] | undefined;
  /** The table's default of each option of this kind of file that is not set, in table order. */
  readonly defaults: readonly { readonly name: string; readonly value: string }[];
  /** The vassal's config as the master would build it; undefined for an emperor file or when any error was found. */
  readonly vassal: VassalConfig | undefined;
}

/** Options of {@link checkConfigFile}. */
export interface CheckOptions {
  /** `vassals-inherit` files applied first (vassal files only). */
  readonly inherit?: readonly string[];
  /** Where `$(NAME)` looks. @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Checks one file; never throws for a problem in the file (that is a {@link ConfigProblem}). */
export function checkConfigFile(path: string, options: CheckOptions = {}): CheckResult {
  const problems: ConfigProblem[] = [];
  let sources: RawConfig[];
  try {
    sources = [...(options.inherit ?? []).map((file) => readConfigFile(file)), readConfigFile(path)];
  } catch (err) {
    return { kind: 'vassal', problems: [errorProblem(err)], resolved: undefined, defaults: [], vassal: undefined };
  }
  const own = sources.at(-1) as RawConfig;
  const kind: ConfigKind = own.options.some((o) => findOption(o.name)?.name === 'emperor') ? 'emperor' : 'vassal';
  let collected: CollectedOptions;
  try {
    collected = collectOptions(kind === 'emperor' ? own.options : sources.flatMap((s) => s.options), kind, options.env ?? process.env);
  } catch (err) {
    return { kind, problems: [errorProblem(err)], resolved: undefined, defaults: [], vassal: undefined };
  }
  const failed = new Set<unknown>();
  for (const entry of collected.applied) {
    try {
      checkValue(entry.spec, entry.option);
    } catch (err) {
      problems.push(errorProblem(err));
      failed.add(entry);
    }
  }
  // The builder stops at its first error: give it only the values that passed, so the
  // cross-option rules and the builder's warnings still cover the rest of the file. An
  // option it then misses (line 0: "no socket") may be one we took away, so that one is
  // only reported when nothing was.
  let vassal: VassalConfig | undefined;
  try {
    const passed: CollectedOptions = { ...collected, applied: collected.applied.filter((entry) => !failed.has(entry)) };
    if (kind === 'emperor') buildEmperorConfig(own.file, passed);
    else vassal = buildVassalConfig(own, passed);
  } catch (err) {
    const problem = errorProblem(err);
    const duplicate = problems.some((p) => p.file === problem.file && p.line === problem.line && p.option === problem.option);
    if (!duplicate && (problem.line > 0 || failed.size === 0)) problems.push(problem);
  }
  for (const w of collected.warnings) {
    problems.push({ severity: 'warning', code: w.code, file: w.file, line: w.line, option: w.option, text: formatWarning(w) });
  }
  const set = new Set(collected.applied.map(({ spec }) => spec.name));
  const defaults = OPTIONS.filter((spec) => (spec.scope === 'both' || spec.scope === kind) && spec.default !== undefined && !set.has(spec.name)).map(
    (spec) => ({ name: spec.name, value: spec.default as string }),
  );
  return { kind, problems, resolved: collected.resolved, defaults, vassal: failed.size === 0 ? vassal : undefined };
}

/**
 * The value check of one option on its own, by type: the same parsers the builders use.
 * Paths resolve against the option's file (enough to judge them: only the unix socket
 * length depends on the directory).
 */
function checkValue(spec: OptionSpec, option: ResolvedOption): void {
  const baseDir = dirname(resolve(option.file));
  switch (spec.type) {
    case 'bool':
      parseBool(option);
      return;
    case 'uint':
      parseUint(option, spec);
      return;
    case 'identifier':
      parseIdentifier(option);
      return;
    case 'choice':
      parseChoice(option, spec);
      return;
    case 'path':
      parsePath(option, baseDir);
      return;
    case 'socket':
      parseSocketAddress(option, baseDir);
      return;
    case 'address':
      parseAddress(option, baseDir);
      return;
    case 'mode':
      parseMode(option);
      return;
    case 'owner':
      parseOwner(option);
      return;
    case 'principal':
      parsePrincipal(option);
      return;
    case 'env':
      parseEnv(option);
      return;
    case 'capabilities':
      parseCapabilities(option);
      return;
    case 'string':
    case 'placeholder': // checked by the placeholder pass
    case 'plugins': // checked by the vassal builder, which knows the runtime
      return;
    default: {
      const never: never = spec.type;
      void never;
    }
  }
}

function errorProblem(err: unknown): ConfigProblem {
  if (err instanceof ConfigError) {
    const option = err instanceof ConfigValueError ? err.option : '';
    return { severity: 'error', code: err.code, file: err.file, line: err.line, option, text: err.message };
  }
  throw err;
}
