/**
 * The Python worker's own unit tests (test/python, stdlib unittest): its sans-IO HTTP and
 * uwsgi parsers, the WSGI layer over a fake connection and the package's layout. Run
 * here on each interpreter a vassal gets on this machine: `python3` on PATH, Debian's
 * /usr/bin/python3, and the oldest supported Python (3.9, MIN_PYTHON) when pyenv has it.
 * The C accelerator (emperor_worker/_speedups.c, built by `npm run build`) is what the
 * worker runs where it is built; the suite runs once more on `python3` with
 * EMPEROR_PY_SPEEDUPS=0 (the pure-Python path), and its uwsgi parser tests run against
 * both implementations in every run (test/python/test_uwsgi.py).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../helpers/index.js';
import { DEBIAN_PYTHON } from '../../helpers/nginx.js';

const TESTS = join(ROOT, 'test', 'python');

/** pyenv's Python 3.9 (the oldest the worker supports), if installed. */
function pyenvPython39(): string | undefined {
  const versions = join(process.env.PYENV_ROOT ?? join(homedir(), '.pyenv'), 'versions');
  try {
    const found = readdirSync(versions).filter((v) => /^3\.9\.\d+$/.test(v)).sort().pop();
    return found === undefined ? undefined : join(versions, found, 'bin', 'python3');
  } catch {
    return undefined;
  }
}

/** Runs the Python tests with `python` (and `env` added); the assertion message carries unittest's report. */
function runPythonTests(python: string, env: Record<string, string> = {}): void {
  const r = spawnSync(python, ['-B', '-m', 'unittest', 'discover', '-s', TESTS, '-t', TESTS], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONPATH: '', ...env },
  });
  assert.equal(r.error, undefined, `${python} did not run: ${String(r.error)}`);
  assert.equal(r.status, 0, `python -m unittest failed on ${python}:\n${r.stdout}${r.stderr}`);
  const ran = /^Ran (\d+) tests? in /m.exec(r.stderr);
  assert.ok(ran && Number(ran[1]) >= 80, `expected the whole suite to run on ${python}:\n${r.stderr}`);
}

test('Python worker unit tests on python3 from PATH', () => {
  runPythonTests('python3');
});

test('Python worker unit tests on python3 from PATH, pure-Python path (EMPEROR_PY_SPEEDUPS=0)', () => {
  runPythonTests('python3', { EMPEROR_PY_SPEEDUPS: '0' });
});

/** Which request path the worker's package picks under `python` with `env` added: "C" or "python". */
function speedupsUsed(python: string, env: Record<string, string> = {}): string {
  const r = spawnSync(python, ['-B', '-c', 'from emperor_worker import speedups; print("C" if speedups.C else "python", speedups.WHY_NOT)'], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(ROOT, 'packages', 'vassal', 'python'), ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

/** Whether `python` has its C headers (Python.h) and a C compiler is on PATH: the build then makes the accelerator. */
function canBuild(python: string): boolean {
  const r = spawnSync(python, ['-c', 'import os, sysconfig; print(os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'], { encoding: 'utf8' });
  return r.stdout.trim() === 'True' && spawnSync('cc', ['--version']).status === 0;
}

for (const python of ['python3', DEBIAN_PYTHON]) {
  test(`the build made the C accelerator for ${python}, and the worker uses it unless EMPEROR_PY_SPEEDUPS=0`, { skip: canBuild(python) ? false : 'no C compiler or no Python.h: the pure-Python path is expected' }, () => {
    assert.equal(speedupsUsed(python), 'C');
    assert.equal(speedupsUsed(python, { EMPEROR_PY_SPEEDUPS: '0' }), 'python EMPEROR_PY_SPEEDUPS=0');
  });
}

test("Python worker unit tests on Debian's /usr/bin/python3", () => {
  runPythonTests(DEBIAN_PYTHON);
});

const py39 = pyenvPython39();
test('Python worker unit tests on Python 3.9, the oldest supported', { skip: py39 === undefined ? 'no pyenv Python 3.9 on this machine' : false }, () => {
  runPythonTests(py39 as string);
});
