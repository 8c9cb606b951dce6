/**
 * Vassal sources: where the desired set of vassals comes from (uWSGI core/emperor.c's
 * imperial monitors). The `dir` source reads `*.ini`, `*.xml` and `*.json` files in a
 * directory; the `glob` source reads the files matching a pattern such as
 * `/etc/emperor.d/*.ini`. Both react to inotify events through `fs.watch` at once and
 * rescan every `emperor-freq` as a safety net for what the watch misses (NFS, some
 * overlay filesystems, a symlink's target changing in another directory).
 */
import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { isPgMonitor, isVassalFileName, type ConfigFormat } from '@emperor/config';
import { InternalError, quote } from '@emperor/protocol';
import { PgSource, type PgSourceOptions } from './pg-source.js';

/** Files larger than this are not hashed (the master reports them as invalid). */
const MAX_HASHED_BYTES = 1024 * 1024;

/** A vassal file as found on disk, or a row of a database source written to one. */
export interface VassalFile {
  /** The vassal's id: the file name, e.g. `shop.ini` (for a row, its name column). */
  readonly name: string;
  /** Absolute path (as found, symlinks not resolved); for a row, the file its config was written to. */
  readonly path: string;
  readonly format: ConfigFormat;
  /** The directory, pattern or database (password removed) it was found by (`monitor` in stats). */
  readonly monitor: string;
  /**
   * `row`: a row of a database source (`pg://`): the master is started on `name` in the
   * row file's directory, so its errors name the row, and messages say "row" instead of
   * "file". @default 'file'
   */
  readonly kind?: 'file' | 'row';
  readonly fingerprint: Fingerprint;
  /**
   * Owner of the file: of its target when it is a symlink, or of the link itself when the
   * source was told not to follow links (`emperor-tyrant-nofollow`). Tyrant mode runs the
   * vassal as this user and group.
   */
  readonly uid: number;
  readonly gid: number;
}

/** What identifies a version of a file, to tell a touch from a copy and a copy from an edit. */
export interface Fingerprint {
  readonly dev: number;
  readonly ino: number;
  /** Modification time, ms (sub-millisecond precision kept). */
  readonly mtimeMs: number;
  readonly size: number;
  /** sha256 of the content (hex), or "" when not read. */
  readonly hash: string;
}

/**
 * True when a file changed in a way that should reload its vassal: the content differs,
 * or the same file (same inode) got a new mtime (`touch`, uWSGI's reload trigger). A new
 * inode with the same content (a config-management or Kubernetes ConfigMap symlink swap
 * that rewrote every file) is not a change, so unchanged vassals keep their workers.
 */
export function fileChanged(before: Fingerprint, after: Fingerprint): boolean {
  if (before.hash !== after.hash) return true;
  return before.dev === after.dev && before.ino === after.ino && before.mtimeMs !== after.mtimeMs;
}

/** Where the desired set of vassals comes from. */
export interface VassalSource extends EventEmitter<{ change: [] }> {
  /** What this source watches, as shown in stats. */
  readonly monitor: string;
  /** Starts watching; `change` is emitted when a rescan is worthwhile. */
  start(): void;
  /**
   * Lists the vassal files now. A new file modified in the last {@link SETTLE_MS} is left
   * out; `settleInMs` says when to look again (0 when nothing is pending). `unlisted`:
   * the source cannot list its vassals yet (a database not read yet); the emperor then
   * keeps the vassals it runs from it as they are.
   */
  scan(now?: number): { files: Map<string, VassalFile>; settleInMs: number; unlisted?: boolean };
  /**
   * Stops watching. `handover` (the emperor exits for a next one, its vassals serve on):
   * leave what their masters read in place. @default 'stop'
   */
  close(how?: 'stop' | 'handover'): void;
}

/** A file younger than this (by mtime) may still be being written: wait one more scan. */
export const SETTLE_MS = 100;
/** Events are coalesced over this window before a rescan, ms. */
export const DEBOUNCE_MS = 50;

/** Options of {@link DirectorySource} and {@link GlobSource} (and, through {@link createSource}, {@link PgSource}). */
export interface SourceOptions {
  /** Rescan interval, ms (`emperor-freq`). */
  readonly freqMs: number;
  /** What a `pg://` source needs besides `freqMs`; required for such a value. */
  readonly pg?: Omit<PgSourceOptions, 'freqMs'>;
  /**
   * Report a symlink's own owner instead of its target's (`emperor-tyrant-nofollow`).
   * The content (and so the fingerprint) is still the target's. @default false
   */
  readonly ownerOfLink?: boolean;
  /** Called when the watch fails (the periodic rescan keeps working). */
  readonly onError: (err: Error) => void;
  /**
   * Called once when a file that looks like a vassal is skipped (a symlink loop, a
   * dangling link, not a regular file, YAML), and again only if the reason changes.
   */
  readonly onSkip?: (path: string, reason: string) => void;
  /**
   * Called when a new file is left for a later scan because it was modified less than
   * {@link SETTLE_MS} ago (it may still be being written); `waitMs` until that scan.
   */
  readonly onSettling?: (path: string, waitMs: number) => void;
}

/** True when `spec` is a glob pattern (uWSGI picks the glob monitor the same way: any of `*?[`). */
export function isGlobPattern(spec: string): boolean {
  return /[*?[]/.test(spec);
}

/**
 * A `RegExp` for one path component of a glob(3) pattern: `*`, `?`, `[abc]`, `[a-z]`,
 * `[!x]`; a backslash escapes. (Dotfiles never reach it: sources skip them.)
 */
export function globToRegExp(pattern: string): RegExp {
  const literal = (c: string): string => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end === -1) {
        out += '\\[';
        continue;
      }
      let set = pattern.slice(i + 1, end);
      if (set.startsWith('!')) set = `^${set.slice(1)}`;
      out += `[${set.replace(/[\\\]]/g, (m) => `\\${m}`)}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) out += literal(pattern[++i] as string);
    else out += literal(c);
  }
  return new RegExp(`^${out}$`);
}

/**
 * A source that lists one directory and keeps the entries a filter accepts: the base of
 * the `dir` and `glob` sources.
 */
abstract class FileSource extends EventEmitter<{ change: [] }> implements VassalSource {
  abstract readonly monitor: string;
  /** The directory listed and watched. */
  protected abstract readonly dir: string;
  readonly #options: SourceOptions;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #watchFailing = false;
  /** Hash cache: path → fingerprint, so unchanged files are not re-read on every scan. */
  readonly #known = new Map<string, Fingerprint>();
  /** Entries skipped, with the reason already reported (so each is reported once). */
  readonly #skipped = new Map<string, string>();

  constructor(options: SourceOptions) {
    super();
    this.#options = options;
  }

  /** Whether a directory entry (a vassal file name) belongs to this source. */
  protected abstract accepts(name: string): boolean;

  start(): void {
    this.#startWatch();
    this.#timer = setInterval(() => this.emit('change'), this.#options.freqMs);
  }

  #startWatch(): void {
    // Retried on every scan until it works (the directory may appear later), but
    // reported once per failure streak, not every `emperor-freq`.
    const failed = (err: Error): void => {
      if (!this.#watchFailing) this.#options.onError(err);
      this.#watchFailing = true;
    };
    try {
      this.#watcher = watch(this.dir, { persistent: false }, () => this.#poke());
      this.#watchFailing = false;
      this.#watcher.on('error', (err) => {
        failed(err);
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch (err) {
      failed(err as Error);
    }
  }

  #poke(): void {
    if (this.#debounce !== undefined) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      this.emit('change');
    }, DEBOUNCE_MS);
  }

  scan(now = Date.now()): { files: Map<string, VassalFile>; settleInMs: number } {
    const files = new Map<string, VassalFile>();
    let settleInMs = 0;
    if (this.#watcher === undefined && this.#timer !== undefined) this.#startWatch(); // the directory may exist now
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return { files, settleInMs };
    }
    const seen = new Set<string>();
    const skipped = new Set<string>();
    const skip = (name: string, reason: string): void => {
      skipped.add(name);
      if (this.#skipped.get(name) === reason) return;
      this.#skipped.set(name, reason);
      this.#options.onSkip?.(join(this.dir, name), reason);
    };
    for (const name of names) {
      // Dotfiles are editor and tooling artefacts (`.#x.ini` locks, `..data` of a ConfigMap).
      const format = isVassalFileName(name);
      if (format === undefined && /^[^.].*\.ya?ml$/.test(name) && this.accepts(name)) {
        skip(name, 'YAML vassal files are not supported; use INI, XML or JSON');
        continue;
      }
      if (format === undefined && /^[^.][\s\S]*\.(ini|xml|json)$/.test(name) && /[\u0000-\u001f\u007f]/.test(name) && this.accepts(name)) {
        skip(name, 'the file name contains a control character (it would break log lines and ps); rename the file');
        continue;
      }
      if (format === undefined || !this.accepts(name)) continue;
      const path = join(this.dir, name);
      let st;
      let owner;
      try {
        st = statSync(path); // follows symlinks: a ConfigMap's files are links into ..data
        owner = this.#options.ownerOfLink === true ? lstatSync(path) : st;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ELOOP') skip(name, 'symlink loop (ELOOP); ignored until it changes');
        else if (code === 'ENOENT') {
          // Vanished between readdir and stat, or a link to nothing: only the latter is worth a line.
          try {
            if (lstatSync(path).isSymbolicLink()) skip(name, 'dangling symlink; ignored until its target exists');
          } catch {
            // gone
          }
        } else skip(name, `cannot stat (${code ?? (err as Error).message}); ignored`);
        continue;
      }
      if (!st.isFile()) {
        skip(name, `not a regular file (${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'special'}); ignored`);
        continue;
      }
      const found = (fingerprint: Fingerprint): VassalFile => ({ name, path, format, monitor: this.monitor, fingerprint, uid: owner.uid, gid: owner.gid });
      if (now - st.mtimeMs < SETTLE_MS && now >= st.mtimeMs) {
        const wait = SETTLE_MS - (now - st.mtimeMs) + 1;
        settleInMs = settleInMs === 0 ? wait : Math.min(settleInMs, wait);
        const prev = this.#known.get(path);
        if (prev === undefined) {
          this.#options.onSettling?.(path, wait); // new and maybe still being written: next scan
          continue;
        }
        files.set(name, found(prev));
        seen.add(path);
        continue;
      }
      seen.add(path);
      const prev = this.#known.get(path);
      let fingerprint: Fingerprint;
      if (prev !== undefined && prev.dev === st.dev && prev.ino === st.ino && prev.mtimeMs === st.mtimeMs && prev.size === st.size) {
        fingerprint = prev;
      } else {
        let hash: string;
        if (st.size <= MAX_HASHED_BYTES) {
          try {
            hash = createHash('sha256').update(readFileSync(path)).digest('hex');
          } catch {
            hash = `unreadable:${st.mtimeMs}`; // EACCES: the master will report it
          }
        } else {
          hash = `large:${st.size}:${st.mtimeMs}`;
        }
        fingerprint = { dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, hash };
        this.#known.set(path, fingerprint);
      }
      files.set(name, found(fingerprint));
    }
    for (const path of this.#known.keys()) if (!seen.has(path)) this.#known.delete(path);
    for (const name of this.#skipped.keys()) if (!skipped.has(name)) this.#skipped.delete(name);
    return { files, settleInMs };
  }

  close(): void {
    this.#watcher?.close();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#debounce !== undefined) clearTimeout(this.#debounce);
  }
}

/** The `dir` source: every vassal file in a directory. */
export class DirectorySource extends FileSource {
  readonly monitor: string;
  protected readonly dir: string;

  /** @param dir the directory of vassal files */
  constructor(dir: string, options: SourceOptions) {
    super(options);
    this.dir = resolve(dir);
    this.monitor = this.dir;
  }

  protected accepts(): boolean {
    return true;
  }
}

/**
 * The `glob` source: the vassal files whose name matches a pattern, e.g.
 * `/etc/emperor.d/*.ini`. Only the file name part may hold wildcards (the config loader
 * refuses others). The vassal's name is its file name, as for the `dir` source, so
 * moving from `emperor = DIR` to `emperor = DIR/*.ini` keeps every vassal's identity
 * (uWSGI names a glob vassal by the whole matched path instead).
 */
export class GlobSource extends FileSource {
  readonly monitor: string;
  protected readonly dir: string;
  readonly #pattern: RegExp;

  /** @param pattern an absolute (or cwd-relative) glob pattern */
  constructor(pattern: string, options: SourceOptions) {
    super(options);
    this.monitor = resolve(pattern);
    this.dir = dirname(this.monitor);
    this.#pattern = globToRegExp(basename(this.monitor));
  }

  protected accepts(name: string): boolean {
    return this.#pattern.test(name);
  }
}

/**
 * The source for one `emperor` value: a PostgreSQL source for `pg://`/`pgsql://`, a glob
 * source for a pattern, else a dir source (uWSGI picks its imperial monitor by scheme,
 * then by glob, the same way).
 * @throws {InternalError} a `pg://` value without `options.pg`
 */
export function createSource(spec: string, options: SourceOptions): VassalSource {
  if (isPgMonitor(spec)) {
    if (options.pg === undefined) throw new InternalError('createSource: a pg:// value needs options.pg');
    return new PgSource(spec, { ...options.pg, freqMs: options.freqMs });
  }
  return isGlobPattern(spec) ? new GlobSource(spec, options) : new DirectorySource(spec, options);
}

/** What {@link vassalOrigin} needs of a vassal: a file's path, or a row's name and database. */
export type VassalOriginParts = Pick<VassalFile, 'path'> & Partial<Pick<VassalFile, 'kind' | 'name' | 'monitor'>>;

/**
 * How messages name where a vassal comes from: its file's path, or its row and database
 * (the path when a row's name or database is not given).
 */
export function vassalOrigin(file: VassalOriginParts): string {
  return file.kind === 'row' && file.name !== undefined && file.monitor !== undefined ? `row ${quote(file.name)} of ${file.monitor}` : file.path;
}
