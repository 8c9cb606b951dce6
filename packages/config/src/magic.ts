/**
 * uWSGI's "magic" placeholders (core/uwsgi.c `config_magic_table_fill`, core/utils.c
 * `magic_sub`): `%n`, `%d`, ... expanded per file. uWSGI substitutes them in the raw file
 * text; we substitute them in each option value, which gives the same result for values.
 *
 * Nothing here runs a command. Host facts are read lazily, only when a value uses them.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname, userInfo } from 'node:os';
import { basename, dirname, extname, resolve } from 'node:path';
import type { RawOption } from './types.js';
import { invalid } from './values.js';
import { VERSION as EMPEROR_VERSION } from '@emperor/protocol';

/** The placeholders we expand, for messages and docs. */
export const MAGIC_PLACEHOLDERS = '%p %s %n %e %d %c %0..%9 %h %k %v %V %u %U %g %G %%';

/** Expanders of one file's magic placeholders, keyed by the character after `%`. */
export type MagicTable = ReadonlyMap<string, () => string>;

/**
 * The magic table of `file` (as given; made absolute against the process cwd).
 * `%0`..`%9` are the components of the absolute directory (`/srv/apps/x.ini`: `%0` = srv,
 * `%1` = apps).
 */
export function magicTable(file: string): MagicTable {
  const path = resolve(file);
  const dir = dirname(path);
  const name = basename(path);
  const extension = extname(name);
  const table = new Map<string, () => string>([
    ['p', () => path],
    ['s', () => name],
    ['n', () => (extension === '' ? name : name.slice(0, -extension.length))],
    ['e', () => extension.slice(1)],
    ['d', () => (dir.endsWith('/') ? dir : `${dir}/`)],
    ['c', () => basename(dir)],
    ['h', () => hostname()],
    ['k', () => String(availableParallelism())],
    ['v', () => process.cwd()],
    ['V', () => EMPEROR_VERSION],
    ['u', () => String(process.getuid?.() ?? '')],
    ['U', () => userName()],
    ['g', () => String(process.getgid?.() ?? '')],
    ['G', () => groupName()],
    ['%', () => '%'],
  ]);
  const components = dir.split('/').filter((part) => part !== '');
  components.slice(0, 10).forEach((part, i) => table.set(String(i), () => part));
  return table;
}

/**
 * Expands the magic placeholders in `option.value`. `%(` is left for the `%(option)` pass,
 * and a `%` at the very end stays a `%`.
 *
 * @throws {ConfigValueError} any other `%x`, including `%5` past the directory's depth:
 *   uWSGI silently expands unknown ones to "", which hides typos in paths.
 */
export function expandMagic(option: RawOption, table: MagicTable): string {
  return option.value.replace(/%(.)/gsu, (whole, key: string) => {
    if (key === '(') return whole;
    const expand = table.get(key);
    if (expand === undefined) {
      invalid(option, `known magic placeholders (${MAGIC_PLACEHOLDERS})`, /^\d$/.test(key)
        ? `${whole}: the file's directory has fewer than ${Number(key) + 1} components`
        : `unknown magic placeholder ${JSON.stringify(whole)} (uWSGI expands it to ""; use %% for a literal %)`);
    }
    return expand();
  });
}

function userName(): string {
  try {
    return userInfo().username;
  } catch {
    // No passwd entry for our uid (common in containers): uWSGI prints the number then too.
    return String(process.getuid?.() ?? '');
  }
}

/** Node has no getgrgid(); /etc/group is where it would look for local groups. */
function groupName(): string {
  const gid = String(process.getgid?.() ?? '');
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (id === gid && name !== undefined && name !== '') return name;
    }
  } catch {
    // Unreadable or missing: fall back to the number, as for the user.
  }
  return gid;
}
