/**
 * The three coded errors of `@emperor/config`. Each names the file (as given to the
 * loader) and the 1-based line, and its message is one line:
 *
 *   emperor.d/shop.ini:7: harakiri: expected whole seconds >= 0, got "ten"
 *
 * Codes and fixes are listed in docs/errors.md.
 */
import { EmperorError, type EmperorErrorOptions } from '@emperor/protocol';
import { clip, describeLocation, quote } from './text.js';

/** Where a read or parse error happened. */
export interface ConfigErrorLocation {
  /** The file as given to the loader (not made absolute). */
  readonly file: string;
  /** 1-based line; 0 when unknown or not about one line. */
  readonly line: number;
}

/**
 * Base of the three config errors: each names the file as given and the 1-based line
 * (0 when unknown), and its message is `file:line: problem` on one line.
 */
export abstract class ConfigError extends EmperorError {
  readonly file: string;
  readonly line: number;

  /** `problem` is the sentence after `file:line: `. */
  constructor(where: ConfigErrorLocation, problem: string, options?: EmperorErrorOptions) {
    super(`${describeLocation(where.file, where.line)}: ${problem}`, options);
    this.file = where.file;
    this.line = where.line;
  }
}

/**
 * `ERR_CONFIG_READ`: the file could not be turned into text. Missing, unreadable
 * (EACCES), not a regular file, a symlink loop (ELOOP), larger than 1 MiB, not valid
 * UTF-8, or containing a NUL byte (a binary file). Problem example: `cannot read: permission denied`.
 */
export class ConfigReadError extends ConfigError {
  readonly code = 'ERR_CONFIG_READ' as const;
}

/**
 * `ERR_CONFIG_PARSE`: the text is not a config file we accept. Bad XML or JSON, a root
 * element other than `<uwsgi>`, JSON without an object `uwsgi`, a nested element or
 * object where a value belongs, an XML entity declaration (refused outright, so an
 * entity-expansion bomb cannot even start), or an unsupported extension such as `.yaml`.
 * Problem example: `expected closing tag </socket>, got </uwsgi>`.
 */
export class ConfigParseError extends ConfigError {
  readonly code = 'ERR_CONFIG_PARSE' as const;
}

/** What a {@link ConfigValueError} is about. */
export interface ConfigValueErrorInit extends ConfigErrorLocation {
  /** The option (as written) whose value is wrong, or the option that is missing. */
  readonly option: string;
  /** The offending value after placeholder passes; `undefined` when the option is missing. */
  readonly value: string | undefined;
  /** What would have been accepted, e.g. `whole seconds >= 0`. */
  readonly expected: string;
  /** The sentence after the subject; defaults to `expected <expected>`. */
  readonly problem?: string;
  /** What the message names before the problem; defaults to `option` (`no app` for a missing app). */
  readonly subject?: string;
}

/**
 * `ERR_CONFIG_VALUE`: the file parsed but a value cannot be accepted: a bad value for a
 * known option, a missing socket or app, a contradiction (`cheaper` >= `processes`,
 * `module` with `wsgi-file`), a bad placeholder (`%(x)` of an option never set, a cycle,
 * `@(...)`, an unknown `%x`), or, with `strict = true`, an unknown option.
 *
 * The message is `file:line: option: expected ..., got "value"` with the value quoted and
 * cut to about 60 characters.
 */
export class ConfigValueError extends ConfigError {
  readonly code = 'ERR_CONFIG_VALUE' as const;
  readonly option: string;
  readonly value: string | undefined;
  readonly expected: string;

  constructor(init: ConfigValueErrorInit, options?: EmperorErrorOptions) {
    const problem = init.problem ?? `expected ${init.expected}`;
    const got = init.value === undefined ? '' : `, got ${quote(init.value)}`;
    // The option name comes from the file too: clip it like any other untrusted text.
    super(init, `${init.subject ?? clip(init.option)}: ${problem}${got}`, options);
    this.option = init.option;
    this.value = init.value;
    this.expected = init.expected;
  }
}
