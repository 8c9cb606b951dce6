import { clip, describeLocation } from './text.js';
import type { ConfigWarning } from './types.js';

/**
 * One log line for a warning: `file:line: option: message` (`file: option: message` when
 * the line is unknown). The option name comes from the file, so it is clipped and its
 * control characters escaped like any other untrusted text.
 */
export function formatWarning(warning: ConfigWarning): string {
  return `${describeLocation(warning.file, warning.line)}: ${clip(warning.option)}: ${warning.message}`;
}
