/**
 * The Python worker's own unit tests (test/python, stdlib unittest): its sans-IO HTTP and
 * uwsgi parsers, the WSGI layer over a fake connection and the package's layout. Run
 * here on each interpreter a vassal gets on this machine: `python3` on PATH, Debian's
 * /usr/bin/python3, and the oldest supported Python (3.9, MIN_PYTHON) when pyenv has it.
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

/** Runs the Python tests with `python`; the assertion message carries unittest's report. */
function runPythonTests(python: string): void {
  const r = spawnSync(python, ['-B', '-m', 'unittest', 'discover', '-s', TESTS, '-t', TESTS], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONPATH: '' },
  });
  assert.equal(r.error, undefined, `${python} did not run: ${String(r.error)}`);
  assert.equal(r.status, 0, `python -m unittest failed on ${python}:\n${r.stdout}${r.stderr}`);
  const ran = /^Ran (\d+) tests? in /m.exec(r.stderr);
  assert.ok(ran && Number(ran[1]) >= 80, `expected the whole suite to run on ${python}:\n${r.stderr}`);
}

test('Python worker unit tests on python3 from PATH', () => {
  runPythonTests('python3');
});

test("Python worker unit tests on Debian's /usr/bin/python3", () => {
  runPythonTests(DEBIAN_PYTHON);
});

const py39 = pyenvPython39();
test('Python worker unit tests on Python 3.9, the oldest supported', { skip: py39 === undefined ? 'no pyenv Python 3.9 on this machine' : false }, () => {
  runPythonTests(py39 as string);
});
