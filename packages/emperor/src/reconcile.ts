/**
 * Reconciliation: a pure function from the desired vassal files and what the emperor
 * knows to the actions that make them agree. No I/O, no clock: the emperor carries the
 * actions out.
 */
import { fileChanged, type VassalFile } from './source.js';

/** What the emperor knows about a vassal it manages. */
export interface KnownVassal {
  readonly name: string;
  /** The file as it was when the vassal was last started or reloaded. */
  readonly file: VassalFile;
  /** True while the vassal is being stopped (its file went away, or shutdown). */
  readonly stopping: boolean;
}

/** One step of reconciliation. */
export type ReconcileAction =
  /** A new file: start its vassal. */
  | { readonly kind: 'start'; readonly file: VassalFile }
  /** The file changed: reload the vassal with it. */
  | { readonly kind: 'reload'; readonly file: VassalFile }
  /**
   * Stop the vassal: its file is gone (or refused); in tyrant mode its owner changed, so
   * it must not go on running as the old owner; or its name now comes from another file
   * (another source took it over after its own went away), which its master cannot
   * reload from. After an owner or source change the next scan starts it again, as the
   * new owner (if allowed) or from the new file.
   */
  | { readonly kind: 'stop'; readonly name: string; readonly reason: 'gone' | 'owner-changed' | 'source-changed' };

/** Options of {@link reconcile}. */
export interface ReconcileOptions {
  /** `emperor-tyrant`: a vassal runs as its file's owner, so an owner change is a restart. */
  readonly tyrant?: boolean;
}

/**
 * Actions that turn `known` into `desired`, in a stable order (stops first, then
 * reloads, then starts, each by name). A renamed file is a stop of the old name and a
 * start of the new one. A vassal already stopping whose file reappears is left alone
 * until it is gone; the next scan starts it again.
 */
export function reconcile(
  desired: ReadonlyMap<string, VassalFile>,
  known: ReadonlyMap<string, KnownVassal>,
  options: ReconcileOptions = {},
): ReconcileAction[] {
  const stops: ReconcileAction[] = [];
  const reloads: ReconcileAction[] = [];
  const starts: ReconcileAction[] = [];
  for (const [name, vassal] of known) {
    if (!desired.has(name) && !vassal.stopping) stops.push({ kind: 'stop', name, reason: 'gone' });
  }
  for (const [name, file] of desired) {
    const vassal = known.get(name);
    if (vassal === undefined) starts.push({ kind: 'start', file });
    else if (vassal.stopping) continue;
    else if (vassal.file.path !== file.path) stops.push({ kind: 'stop', name, reason: 'source-changed' });
    else if (options.tyrant === true && (vassal.file.uid !== file.uid || vassal.file.gid !== file.gid)) stops.push({ kind: 'stop', name, reason: 'owner-changed' });
    else if (fileChanged(vassal.file.fingerprint, file.fingerprint)) reloads.push({ kind: 'reload', file });
  }
  const byName = (a: ReconcileAction, b: ReconcileAction): number =>
    (a.kind === 'stop' ? a.name : a.file.name).localeCompare(b.kind === 'stop' ? b.name : b.file.name);
  return [...stops.sort(byName), ...reloads.sort(byName), ...starts.sort(byName)];
}
