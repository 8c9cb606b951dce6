/**
 * The three coded errors of `@emperor/config`, defined with every other code in the error
 * registry (`@emperor/protocol` errors.ts) and re-exported here. Each names the file (as
 * given to the loader) and the 1-based line, and its message is one line:
 *
 *   emperor.d/shop.ini:7: harakiri: expected whole seconds >= 0, got "ten"
 *
 * Codes and fixes are listed in docs/errors.md.
 */
export {
  ConfigError,
  ConfigParseError,
  ConfigReadError,
  ConfigValueError,
  type ConfigErrorLocation,
  type ConfigValueErrorInit,
} from '@emperor/protocol';
