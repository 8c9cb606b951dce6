/**
 * From a file (or text) to a {@link RawConfig}: the options in file order, magic
 * placeholders expanded, nothing validated yet.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { ConfigReadError } from './errors.js';
import { configFormatFromPath } from './file-name.js';
import { expandMagic, magicTable } from './magic.js';
import { readIni } from './read-ini.js';
import { readJson } from './read-json.js';
import { readXml } from './read-xml.js';
import { lineLocator } from './text.js';
import type { ConfigFormat, RawConfig, RawOption } from './types.js';

/** Config files larger than this are refused before they are read: 1 MiB. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

const READERS: Readonly<Record<ConfigFormat, (text: string, file: string) => RawOption[]>> = {
  ini: readIni,
  xml: readXml,
  json: readJson,
};

/** Options of {@link readConfigFile}. */
export interface ReadConfigOptions {
  /** The format; by default taken from the extension (`.ini`, `.xml`, `.json`). */
  readonly format?: ConfigFormat;
}

/**
 * Parses config text (pure apart from the host facts some magic placeholders read; no I/O
 * on `file`). A leading UTF-8 BOM is dropped; magic placeholders (`%n`, `%d`, ...) are
 * expanded with `file` as the file they describe.
 *
 * @param file path of the file as given to the loader; used in messages and for `%p`, `%d`, ...
 * @throws {ConfigReadError} the text contains a NUL character (a binary file)
 * @throws {ConfigParseError} the text is not valid in `format` (see readIni, readXml, readJson)
 * @throws {ConfigValueError} an unknown magic placeholder such as `%z`
 */
export function parseConfigText(text: string, file: string, format: ConfigFormat): RawConfig {
  const body = text.startsWith('\ufeff') ? text.slice(1) : text;
  const nul = body.indexOf('\0');
  if (nul !== -1) throw new ConfigReadError({ file, line: lineLocator(body)(nul) }, 'contains a NUL byte; is it a binary file?');
  const table = magicTable(file);
  const options = READERS[format](body, file).map((option) => ({ ...option, value: expandMagic(option, table) }));
  return { file, format, options };
}

/**
 * Reads and parses a config file. The file is opened once (non-blocking, so a FIFO cannot
 * hang us), checked with `fstat` to be a regular file of at most 1 MiB, read, and checked
 * to be UTF-8 before parsing.
 *
 * @param path the file as the caller names it; kept as is in messages and `RawConfig.file`
 * @throws {ConfigReadError} missing, unreadable, not a regular file, a symlink loop, over 1 MiB, not UTF-8, a NUL byte
 * @throws {ConfigParseError} an unsupported extension (`.yaml`, ...) or invalid content
 * @throws {ConfigValueError} an unknown magic placeholder
 */
export function readConfigFile(path: string, options: ReadConfigOptions = {}): RawConfig {
  const format = options.format ?? configFormatFromPath(path);
  const bytes = readBytes(path);
  if (!isUtf8(bytes)) throw new ConfigReadError({ file: path, line: firstNonUtf8Line(bytes) }, 'not valid UTF-8');
  return parseConfigText(bytes.toString('utf8'), path, format);
}

function readBytes(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new ConfigReadError({ file: path, line: 0 }, `cannot read: ${describeErrno(err)}`, { cause: err });
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new ConfigReadError({ file: path, line: 0 }, `cannot read: not a regular file (${kindOf(stats)})`);
    if (stats.size > MAX_CONFIG_BYTES) throw tooLarge(path, `${stats.size} bytes`);
    // Read to EOF, not just `size` bytes: the file may grow between fstat and read.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > MAX_CONFIG_BYTES) throw tooLarge(path, `more than ${MAX_CONFIG_BYTES} bytes`);
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks, total);
  } catch (err) {
    if (err instanceof ConfigReadError) throw err;
    throw new ConfigReadError({ file: path, line: 0 }, `cannot read: ${describeErrno(err)}`, { cause: err });
  } finally {
    closeSync(fd);
  }
}

function tooLarge(path: string, size: string): ConfigReadError {
  return new ConfigReadError({ file: path, line: 0 }, `file is ${size}; the limit is ${MAX_CONFIG_BYTES} bytes (1 MiB)`);
}

function describeErrno(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ELOOP':
      return 'too many levels of symbolic links (a symlink loop?)';
    case 'EISDIR':
      return 'not a regular file (a directory)';
    case 'ENOTDIR':
      return 'a component of the path is not a directory';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  return 'not a file';
}

/** The first line whose bytes are not UTF-8 (a multi-byte sequence never spans a newline byte). */
function firstNonUtf8Line(bytes: Buffer): number {
  let line = 1;
  let start = 0;
  for (let end = bytes.indexOf(0x0a); ; end = bytes.indexOf(0x0a, start)) {
    if (!isUtf8(bytes.subarray(start, end === -1 ? bytes.length : end))) return line;
    if (end === -1) return 0;
    start = end + 1;
    line++;
  }
}
