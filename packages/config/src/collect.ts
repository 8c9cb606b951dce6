/**
 * From every option occurrence of every source to the ones that apply: placeholders
 * expanded, then each name sorted into known (and in the right kind of file), misplaced,
 * unsupported or unknown, with one warning per name.
 */
import { findOption, findUnsupportedOption, misplacedAdvice, suggestOptionName, type OptionName, type OptionScope, type OptionSpec } from './options.js';
import { expandPlaceholders } from './placeholders.js';
import type { ConfigWarning, ConfigWarningCode, RawOption, ResolvedOption } from './types.js';
import { invalid, parseBool } from './values.js';

/** A known option occurrence that applies to this kind of file. */
export interface AppliedOption {
  readonly spec: OptionSpec<OptionName>;
  readonly option: ResolvedOption;
}

/** What {@link collectOptions} returns. */
export interface CollectedOptions {
  /** Every occurrence after the placeholder passes, in order, as `emperor check --print` shows them. */
  readonly resolved: readonly ResolvedOption[];
  /** The occurrences of known options that apply, in order. */
  readonly applied: readonly AppliedOption[];
  /** Warnings so far; the builders add theirs. */
  readonly warnings: ConfigWarning[];
}

/** The kind of file being resolved: a vassal's, or the emperor's own. */
export type ConfigKind = Exclude<OptionScope, 'both'>;

const PLACEHOLDER_DEFINER = 'set-placeholder' satisfies OptionName;
const STRICT = 'strict' satisfies OptionName;
const LOG_FORMAT = 'log-format' satisfies OptionName;

/** True when `option` is a valid boolean other than `expected` (an invalid one is the value check's to report). */
function isOtherBool(option: ResolvedOption, expected: boolean): boolean {
  try {
    return parseBool(option) !== expected;
  } catch {
    return false;
  }
}

/**
 * Expands placeholders, reads `strict`, and classifies every occurrence.
 *
 * @throws {ConfigValueError} from the placeholder passes, a bad `strict` value, or (with
 *   `strict` true) the first unknown option
 */
export function collectOptions(
  options: readonly RawOption[],
  kind: ConfigKind,
  env: Readonly<Record<string, string | undefined>>,
): CollectedOptions {
  const expanded = expandPlaceholders({
    options,
    env,
    keyOf: (name) => findOption(name)?.name ?? name,
    definer: PLACEHOLDER_DEFINER,
    keepsUndefined: (key) => key === LOG_FORMAT,
  });
  const warnings = [...expanded.warnings];
  const strictOption = expanded.options.findLast((option) => findOption(option.name)?.name === STRICT);
  const strict = strictOption !== undefined && parseBool(strictOption);

  const warned = new Set<string>();
  const warnOnce = (option: ResolvedOption, code: ConfigWarningCode, message: string): void => {
    if (warned.has(option.name)) return;
    warned.add(option.name);
    warnings.push({ file: option.file, line: option.line, code, option: option.name, message });
  };

  const applied: AppliedOption[] = [];
  for (const option of expanded.options) {
    const spec = findOption(option.name);
    if (spec !== undefined) {
      if (spec.scope === 'both' || spec.scope === kind) {
        applied.push({ spec, option });
        if (spec.fixed === true && spec.type === 'bool' && isOtherBool(option, spec.default === 'true')) {
          warnOnce(option, 'no-effect', `Emperor always runs as ${spec.name} = ${spec.default ?? ''}; ${JSON.stringify(option.value)} changes nothing`);
        }
      }
      else warnOnce(option, 'misplaced-option', misplacedAdvice(spec, kind));
      continue;
    }
    const unsupported = findUnsupportedOption(option.name);
    if (unsupported !== undefined) {
      warnOnce(option, 'unsupported-option', `is a uWSGI option Emperor does not support; ignored (${unsupported.reason})`);
      continue;
    }
    const suggestion = suggestOptionName(option.name);
    const hint = suggestion === undefined ? '' : `; did you mean ${JSON.stringify(suggestion)}?`;
    if (strict) invalid(option, 'a known option (strict mode)', `unknown option (strict mode${hint})`);
    // uWSGI files often define their own variables (`project = shop`, then `%(project)`).
    if (!expanded.referenced.has(option.name)) warnOnce(option, 'unknown-option', `unknown option; ignored${hint}`);
  }
  return { resolved: expanded.options, applied, warnings };
}
