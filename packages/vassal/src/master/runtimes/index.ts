import type { Logger } from '@emperor/process';
import type { WorkerEntries } from '../worker-code.js';
import { nodeRuntime } from './node.js';
import { pythonRuntime } from './python.js';
import type { Runtimes } from './runtime.js';

export type { LaunchRequest, LaunchedWorker, Runtime, Runtimes } from './runtime.js';
export { nodeRuntime } from './node.js';
export { pythonRuntime, TEMPLATE_ENV, type PythonRuntimeOptions } from './python.js';
export { ForkedChild, PythonTemplates, GONE_KILL_AFTER_MS, GONE_POLL_MS, TEMPLATE_STOP_MERCY_MS, type TemplateOptions } from './python-fork.js';

/** Today's runtimes, with their worker programs at `entries`; what they find is logged in `logger`. */
export function createRuntimes(entries: WorkerEntries, logger: Logger): Runtimes {
  return { node: nodeRuntime(entries.node), python: pythonRuntime(entries.python, logger) };
}
