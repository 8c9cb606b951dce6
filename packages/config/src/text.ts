/**
 * Small text helpers shared by the readers and the error messages: line numbers from
 * character offsets here, and quoting that keeps a log line one line long (from
 * `@emperor/protocol`, where the coded errors that use it live).
 */
export { clip, describeLocation, quote } from '@emperor/protocol';

/**
 * Returns a function from a 0-based character offset in `text` to its 1-based line.
 * Built once per text (binary search over line starts), so a file with thousands of
 * options is not rescanned for each one.
 */
export function lineLocator(text: string): (offset: number) => number {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
}
