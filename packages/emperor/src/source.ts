/**
 * Vassal sources: where the desired set of vassals comes from. The `dir` source reads
 * `*.ini`, `*.xml` and `*.json` files in a directory (uWSGI core/emperor.c's dir monitor),
 * reacts to inotify events through `fs.watch` at once and rescans every `emperor-freq` as
 * a safety net for what the watch misses (NFS, some overlay filesystems).
 */
import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join, resolve } from 'node:path';
import { isVassalFileName, type ConfigFormat } from '@emperor/config';

/** Files larger than this are not hashed (the master reports them as invalid). */
const MAX_HASHED_BYTES = 1024 * 1024;

/** A vassal file as found on disk. */
export interface VassalFile {
  /** The vassal's id: the file name, e.g. `shop.ini`. */
  readonly name: string;
  /** Absolute path (as found, symlinks not resolved). */
  readonly path: string;
  readonly format: ConfigFormat;
  /** The directory or pattern it was found by (`monitor` in stats). */
  readonly monitor: string;
  readonly fingerprint: Fingerprint;
  /** Owner of the file (of its target when it is a symlink). */
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
   * out; `settleInMs` says when to look again (0 when nothing is pending).
   */
  scan(now?: number): { files: Map<string, VassalFile>; settleInMs: number };
  close(): void;
}

/** A file younger than this (by mtime) may still be being written: wait one more scan. */
export const SETTLE_MS = 100;
/** Events are coalesced over this window before a rescan, ms. */
export const DEBOUNCE_MS = 50;

/** The `dir` source. */
export class DirectorySource extends EventEmitter<{ change: [] }> implements VassalSource {
  readonly monitor: string;
  readonly #freqMs: number;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  /** Hash cache: path → fingerprint, so unchanged files are not re-read on every scan. */
  readonly #known = new Map<string, Fingerprint>();
  readonly #onError: (err: Error) => void;

  /**
   * @param dir the directory of vassal files
   * @param freqMs rescan interval, ms (`emperor-freq`)
   * @param onError called when the watch fails (the periodic rescan keeps working)
   */
  constructor(dir: string, freqMs: number, onError: (err: Error) => void) {
    super();
    this.monitor = resolve(dir);
    this.#freqMs = freqMs;
    this.#onError = onError;
  }

  start(): void {
    this.#startWatch();
    this.#timer = setInterval(() => this.emit('change'), this.#freqMs);
  }

  #startWatch(): void {
    try {
      this.#watcher = watch(this.monitor, { persistent: false }, () => this.#poke());
      this.#watcher.on('error', (err) => {
        this.#onError(err);
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch (err) {
      this.#onError(err as Error);
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
      names = readdirSync(this.monitor);
    } catch {
      return { files, settleInMs };
    }
    const seen = new Set<string>();
    for (const name of names) {
      // Dotfiles are editor and tooling artefacts (`.#x.ini` locks, `..data` of a ConfigMap).
      if (name.startsWith('.')) continue;
      const format = isVassalFileName(name);
      if (format === undefined) continue;
      const path = join(this.monitor, name);
      let st;
      try {
        st = statSync(path); // follows symlinks: a ConfigMap's files are links into ..data
      } catch {
        continue; // vanished, or a dangling link
      }
      if (!st.isFile()) continue;
      if (now - st.mtimeMs < SETTLE_MS && now >= st.mtimeMs) {
        const wait = SETTLE_MS - (now - st.mtimeMs) + 1;
        settleInMs = settleInMs === 0 ? wait : Math.min(settleInMs, wait);
        const prev = this.#known.get(path);
        if (prev === undefined) continue; // new and still being written: next scan
        files.set(name, { name, path, format, monitor: this.monitor, fingerprint: prev, uid: st.uid, gid: st.gid });
        seen.add(path);
        continue;
      }
      seen.add(path);
      const prev = this.#known.get(path);
      let fingerprint: Fingerprint;
      if (prev !== undefined && prev.dev === st.dev && prev.ino === st.ino && prev.mtimeMs === st.mtimeMs && prev.size === st.size) {
        fingerprint = prev;
      } else {
        let hash = '';
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
      files.set(name, { name, path, format, monitor: this.monitor, fingerprint, uid: st.uid, gid: st.gid });
    }
    for (const path of this.#known.keys()) if (!seen.has(path)) this.#known.delete(path);
    return { files, settleInMs };
  }

  close(): void {
    this.#watcher?.close();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#debounce !== undefined) clearTimeout(this.#debounce);
  }
}
