/**
 * The placeholder passes that run on option values after the magic ones, in uWSGI's order
 * (core/config.c `uwsgi_apply_config_pass`): `$(ENV)`, then `@(...)`, then `%(name)`.
 *
 * - `$(NAME)` is the environment variable; an unset one expands to "" with a warning.
 * - `@(...)` reads files and, with `exec://`, runs commands in uWSGI: refused.
 * - `%(name)` is the final value of another option (known or not) or of a `set-placeholder`.
 *   No arithmetic (`%(a + 1)`).
 */
import type { ConfigWarning, RawOption, ResolvedOption } from './types.js';
import { invalid } from './values.js';

/**
 * Longest value after `%(name)` expansion. Without a cap, `b = %(a)%(a)`, `c = %(b)%(b)`, ...
 * doubles per line: a "billion laughs" made of placeholders.
 */
const MAX_EXPANDED_CHARS = 64 * 1024;
/** Longest chain of `%(a)` → `%(b)` → ... followed. */
const MAX_PLACEHOLDER_DEPTH = 32;

const ENV_REFERENCE = /\$\(([^)]*)\)/g;
const OPTION_REFERENCE = /%\(([^)]*)\)/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const OPTION_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Inputs of {@link expandPlaceholders}. */
export interface PlaceholderInput {
  /** Every option occurrence, in order (inherited files, the file, overrides). */
  readonly options: readonly RawOption[];
  /** Where `$(NAME)` looks. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The lookup key of an option name: its canonical name for a known option (so `%(workers)` finds `processes`), else itself. */
  readonly keyOf: (name: string) => string;
  /** Canonical name of the option that defines placeholders (`set-placeholder`). */
  readonly definer: string;
  /**
   * Options whose values keep a `%(name)` that nothing defines, verbatim: `log-format`,
   * whose `%(addr)`, `%(status)` ... are the request logger's variables (uWSGI leaves an
   * undefined placeholder as written, which is what makes its logformat lines work).
   */
  readonly keepsUndefined?: (key: string) => boolean;
}

/** Result of {@link expandPlaceholders}. */
export interface PlaceholderOutput {
  /** The options with every placeholder expanded, same order and locations. */
  readonly options: readonly ResolvedOption[];
  /** Keys that some `%(name)` referred to: unknown options used as variables are not typos. */
  readonly referenced: ReadonlySet<string>;
  readonly warnings: readonly ConfigWarning[];
}

/**
 * Runs the `$(ENV)`, `@(...)` and `%(name)` passes over every value.
 *
 * @throws {ConfigValueError} `@(...)` anywhere, a malformed `$()`/`%()`, `%(name)` of an
 *   option never set, a cycle, a chain deeper than 32, or a value longer than 64 KiB after expansion.
 */
export function expandPlaceholders(input: PlaceholderInput): PlaceholderOutput {
  const warnings: ConfigWarning[] = [];
  const warnedEnv = new Set<string>();

  const afterEnv = input.options.map((option) => {
    if (option.value.includes('@(')) {
      invalid(option, 'no @(...)', '@(...) is not supported: it can run commands');
    }
    const value = option.value.replace(ENV_REFERENCE, (whole, name: string) => {
      if (!ENV_NAME.test(name)) invalid(option, '$(NAME) with an environment variable name', `malformed ${whole}`);
      const found = input.env[name];
      if (found === undefined && !warnedEnv.has(name)) {
        warnedEnv.add(name);
        warnings.push({ file: option.file, line: option.line, code: 'unset-variable', option: option.name, message: `$(${name}) is not set; expanded to ""` });
      }
      return found ?? '';
    });
    return { ...option, value };
  });

  // The final definition of each key: the last option of that name, or the last
  // `set-placeholder` of that name, whichever comes later.
  const definitions = new Map<string, { readonly option: ResolvedOption; readonly text: string }>();
  for (const option of afterEnv) {
    const key = input.keyOf(option.name);
    if (key !== input.definer) {
      definitions.set(key, { option, text: option.value });
      continue;
    }
    const eq = option.value.indexOf('=');
    const name = eq === -1 ? '' : option.value.slice(0, eq).trim();
    if (!OPTION_NAME.test(name)) invalid(option, 'name=value');
    definitions.set(input.keyOf(name), { option, text: option.value.slice(eq + 1) });
  }

  const referenced = new Set<string>();
  const done = new Map<string, string>();
  const expand = (owner: ResolvedOption, text: string, chain: readonly string[]): string => {
    const result = text.replace(OPTION_REFERENCE, (whole, name: string) => {
      if (!OPTION_NAME.test(name)) {
        invalid(owner, '%(option-name)', `${whole}: placeholders take an option name (no arithmetic or expressions)`);
      }
      const key = input.keyOf(name);
      referenced.add(key);
      const cached = done.get(key);
      if (cached !== undefined) return cached;
      if (chain.includes(key)) {
        const cycle = [...chain.slice(chain.indexOf(key)), key].map((k) => `%(${k})`).join(' -> ');
        invalid(owner, 'placeholders without cycles', `placeholder cycle ${cycle}`);
      }
      if (chain.length >= MAX_PLACEHOLDER_DEPTH) invalid(owner, `placeholders nested at most ${MAX_PLACEHOLDER_DEPTH} deep`);
      const definition = definitions.get(key);
      if (definition === undefined && input.keepsUndefined?.(input.keyOf(owner.name)) === true) return whole;
      if (definition === undefined) invalid(owner, 'an option set somewhere', `${whole} refers to an option that is never set`);
      const value = expand(definition.option, definition.text, [...chain, key]);
      done.set(key, value);
      return value;
    });
    if (result.length > MAX_EXPANDED_CHARS) {
      invalid(owner, `at most ${MAX_EXPANDED_CHARS} characters after expanding placeholders`);
    }
    return result;
  };

  const options = afterEnv.map((option) => {
    // Only the final definition of a key can be part of a cycle through that key: an
    // earlier `a = %(b)` may well be followed by `b = %(a)` and a final `a = x`.
    const key = input.keyOf(option.name);
    return { ...option, value: expand(option, option.value, definitions.get(key)?.option === option ? [key] : []) };
  });
  return { options, referenced, warnings };
}
