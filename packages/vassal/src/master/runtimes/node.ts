/** Node workers: `node worker-main.js`, one event loop serving many requests at once. */
import { execWorker } from './exec.js';
import type { Runtime } from './runtime.js';

/** The Node runtime running the worker program at `entry`. */
export function nodeRuntime(entry: string): Runtime {
  return {
    name: 'node',
    sync: false,
    code: [entry],
    // The master asks the worker's watchdog thread for the main thread's stack on a pipe:
    // a signal handler would never run on a blocked event loop (see stack-dump.ts).
    stackPipe: true,
    prepare: () => {},
    app: (config) => ({ runtime: 'node', module: config.module ?? '' }),
    launch(request) {
      // `node-args`: the app's Node flags, before the worker program.
      const { child, pipe } = execWorker(process.execPath, [...request.config.nodeArgs, entry], request, request.spec.stackPipeFd !== undefined);
      return {
        child,
        askStack: pipe === undefined ? undefined : () => {
          pipe.write('S');
          return true;
        },
      };
    },
  };
}
