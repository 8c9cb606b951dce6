import { describeLocation } from './text.js';
import type { ConfigWarning } from './types.js';

/** One log line for a warning: `file:line: option: message` (`file: option: message` when the line is unknown). */
export function formatWarning(warning: ConfigWarning): string {
  return `${describeLocation(warning.file, warning.line)}: ${warning.option}: ${warning.message}`;
}
