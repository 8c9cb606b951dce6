/**
 * Time as a dependency: everything that reads the clock or arms a timer takes a
 * {@link Clock}, so tests drive time by hand (undici swaps `lib/util/timers.js` the same
 * way).
 */

/** An armed timer; only {@link Clock.clearTimeout} looks inside. */
export type TimerHandle = { readonly __timer: unique symbol } | NodeJS.Timeout;

/** Wall-clock time and one-shot timers. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(timer: TimerHandle): void;
}

/** The real clock: `Date.now()` and Node's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};
