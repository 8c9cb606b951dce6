/**
 * Coded errors shared by every package.
 *
 * One class per code, the code as a literal type, the original error as `cause`
 * (the shape of undici `lib/core/errors.js` and fastify `lib/errors.js`). Every code
 * has a row in `docs/errors.md`: what it means and how to fix it.
 */

/** Options accepted by every {@link EmperorError} subclass. */
export interface EmperorErrorOptions {
  /** The lower-level error this one explains. */
  readonly cause?: unknown;
}

/**
 * Base class of every error this project throws on purpose. Code that catches errors
 * can tell ours from a bug with `err instanceof EmperorError` and switch on `err.code`.
 */
export abstract class EmperorError extends Error {
  /** Stable machine-readable code, e.g. `ERR_CONFIG_VALUE`; documented in docs/errors.md. */
  abstract readonly code: string;

  constructor(message: string, options?: EmperorErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }
}

/** True when `err` is one of our coded errors (any package). */
export function isEmperorError(err: unknown): err is EmperorError {
  return err instanceof EmperorError;
}

/**
 * Tyrant mode (`emperor-tyrant`) refused a vassal: its file is owned by uid 0 or gid 0,
 * the emperor cannot run it as the file's owner, or the vassal asks for a `uid`/`gid`
 * other than its file's owner. uWSGI core/emperor.c logs "invalid permissions" for the
 * first and fails a later `setgid()` for the last.
 */
export class TyrantError extends EmperorError {
  readonly code = 'ERR_TYRANT' as const;
}
