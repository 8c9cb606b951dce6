#!/usr/bin/env node
// Compiles the Python worker package (packages/vassal/python) to bytecode for every Python
// 3 interpreter found here (`python3` on PATH and /usr/bin/python3), as Debian's
// py3compile and pip do for installed packages. Run by `npm run build` and `prepare`.
//
// Why: workers run as the vassal's user, who usually cannot write __pycache__ beside a
// package root installed, and PYTHONDONTWRITEBYTECODE may be set; without the .pyc files
// every template and lazy worker compiles the worker's ~5,000 lines from source at each
// start (measured: 30-40 ms of CPU per Python process start on this project's 2-core
// machine). Interpreters of the same minor version share one .pyc file
// (`__pycache__/X.cpython-311.pyc`); a source changed later is recompiled in memory by
// Python as usual.
//
// A missing interpreter is not an error (a Node-only host); a failure is one warning line
// and the build goes on: the workers then compile in memory, as before.
import { execFileSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const target = join(root, 'packages', 'vassal', 'python');
const env = { ...process.env };
delete env.PYTHONDONTWRITEBYTECODE;

/** Distinct real executables answering to the candidate names, in order. */
function interpreters() {
  const seen = new Map();
  for (const candidate of ['python3', '/usr/bin/python3']) {
    try {
      const exe = execFileSync(candidate, ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000 }).trim();
      const real = realpathSync(exe);
      if (!seen.has(real)) seen.set(real, exe);
    } catch {
      // not installed here
    }
  }
  return [...seen.values()];
}

for (const python of interpreters()) {
  try {
    execFileSync(python, ['-m', 'compileall', '-q', '-j', '0', target], { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000 });
  } catch (err) {
    const why = String(err.stderr ?? err.message).trim().split('\n').pop();
    console.warn(`build-python: could not compile ${target} with ${python} (${why}); workers will compile it in memory at each start`);
  }
}
