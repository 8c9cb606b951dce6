/**
 * Restart backoff: a pure function of the exit history and the clock.
 *
 * A process that dies soon after it started is respawned after a delay that doubles
 * from `initialMs` up to `maxMs`; one that ran for `healthyMs` or longer resets the
 * count and is respawned at once. After `curseAfter` quick deaths in a row it is
 * "cursed" (uWSGI's word): still retried at the maximum interval, never abandoned.
 * Contrast uWSGI core/emperor.c (linear +1 s, halved at the maximum) and PM2's
 * `exp_backoff_restart_delay` (×1.5, reset after 30 s up).
 */

/** Tuning for {@link nextBackoff}. All durations in milliseconds. */
export interface BackoffOptions {
  /** First delay after a quick death. */
  readonly initialMs: number;
  /** Largest delay. */
  readonly maxMs: number;
  /** Growth per consecutive quick death. @default 2 */
  readonly factor?: number;
  /** Uptime after which a death counts as isolated and resets the backoff. */
  readonly healthyMs: number;
  /** Consecutive quick deaths after which the process is cursed. */
  readonly curseAfter: number;
}

/** Backoff state of one supervised process (a worker slot or a vassal). */
export interface BackoffState {
  /** Consecutive deaths that came before `healthyMs` of uptime. */
  readonly failures: number;
  /** Delay before the next spawn, ms. */
  readonly delayMs: number;
  readonly cursed: boolean;
  /** Epoch ms of the first death of the current streak; 0 when none. */
  readonly firstFailureAt: number;
  /** Epoch ms of the latest death; 0 when none. */
  readonly lastFailureAt: number;
}

export const INITIAL_BACKOFF: BackoffState = { failures: 0, delayMs: 0, cursed: false, firstFailureAt: 0, lastFailureAt: 0 };

/**
 * The state after one more death.
 * @param uptimeMs how long the process that just died had run, ms
 * @param now epoch ms of the death
 */
export function nextBackoff(state: BackoffState, uptimeMs: number, now: number, options: BackoffOptions): BackoffState {
  if (uptimeMs >= options.healthyMs) {
    return { failures: 0, delayMs: 0, cursed: false, firstFailureAt: 0, lastFailureAt: now };
  }
  const failures = state.failures + 1;
  const factor = options.factor ?? 2;
  const delayMs = Math.min(options.maxMs, Math.round(options.initialMs * factor ** (failures - 1)));
  return {
    failures,
    delayMs,
    cursed: failures >= options.curseAfter,
    firstFailureAt: state.failures === 0 ? now : state.firstFailureAt,
    lastFailureAt: now,
  };
}
