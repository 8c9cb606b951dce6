/**
 * Quoting that keeps an error message one line long: the helpers every coded error uses
 * to show a value, a path or text it did not write (a file name, a parser's message).
 */

/** Longest value, in characters, that an error message quotes before cutting it. */
const MAX_QUOTED_CHARS = 60;
/** Longest text we did not write (tag names, parser messages) that a message carries. */
const MAX_CLIPPED_CHARS = 200;

/** Control characters, and the two line separators JSON.stringify leaves raw. */
const CONTROL = /[\u0000-\u001f\u007f\u2028\u2029]/g;
const LINE_SEPARATORS = /[\u2028\u2029]/g;

/**
 * A value as an error message shows it: JSON-quoted (control characters escaped) and cut
 * to about 60 characters, so junk in a file cannot flood or split a log line.
 */
export function quote(value: string): string {
  return JSON.stringify(cut(value, MAX_QUOTED_CHARS)).replace(LINE_SEPARATORS, escapeChar);
}

/** Text we did not write (tag names, parser messages), cut to 200 characters, control characters escaped. */
export function clip(text: string): string {
  return cut(text, MAX_CLIPPED_CHARS).replace(CONTROL, escapeChar);
}

/** `file:line`, or just `file` when the line is unknown (0). Control characters in the path are escaped. */
export function describeLocation(file: string, line: number): string {
  const safe = file.replace(CONTROL, escapeChar);
  return line > 0 ? `${safe}:${line}` : safe;
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function escapeChar(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}
