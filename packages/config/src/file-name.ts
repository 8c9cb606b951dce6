/**
 * Which files are config files, by name. The emperor's directory scanner and the reader
 * share these rules (uWSGI core/emperor.c `uwsgi_emperor_is_valid`: `.ini`, `.xml`,
 * `.json`, `.yml`/`.yaml`, case-sensitive).
 */
import { extname } from 'node:path';
import { ConfigParseError } from './errors.js';
import type { ConfigFormat } from './types.js';

const FORMATS: Readonly<Record<string, ConfigFormat>> = { '.ini': 'ini', '.xml': 'xml', '.json': 'json' };
/** NAME_MAX on Linux: a longer name cannot exist, so it cannot be ours. */
const MAX_NAME_BYTES = 255;

/**
 * The format of a vassal file name, or `undefined` when the emperor should ignore it.
 *
 * Valid: a plain file name (no `/`) ending in `.ini`, `.xml` or `.json` (lower case, as
 * uWSGI), with a non-empty stem, not hidden (editors and `kubectl` ConfigMap updates leave
 * dot files such as `.#shop.ini` and `..data`), without control characters (they would
 * break log lines), shorter than 255 bytes.
 */
export function isVassalFileName(name: string): ConfigFormat | undefined {
  if (name.startsWith('.') || name.includes('/') || /[\u0000-\u001f\u007f]/.test(name)) return undefined;
  if (Buffer.byteLength(name) >= MAX_NAME_BYTES) return undefined;
  const extension = extname(name);
  return extension.length < name.length ? FORMATS[extension] : undefined;
}

/**
 * The format of a config file from its extension: `.ini`, `.xml` or `.json`.
 *
 * @throws {ConfigParseError} `.yml`/`.yaml` ("YAML vassal files are not supported; use INI,
 *   XML or JSON") or any other extension.
 */
export function configFormatFromPath(path: string): ConfigFormat {
  const extension = extname(path);
  const format = FORMATS[extension];
  if (format !== undefined) return format;
  if (extension === '.yml' || extension === '.yaml') {
    throw new ConfigParseError({ file: path, line: 0 }, 'YAML vassal files are not supported; use INI, XML or JSON');
  }
  const got = extension === '' ? 'name without an extension' : `extension ${JSON.stringify(extension)}`;
  throw new ConfigParseError({ file: path, line: 0 }, `unsupported config file ${got}; expected .ini, .xml or .json`);
}
