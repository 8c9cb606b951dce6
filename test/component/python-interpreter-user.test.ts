/**
 * A Python vassal with `uid` run by root (issue 22, friction 1): the interpreter is the one
 * the vassal's user would run, not root's. Root's PATH here starts with pyenv shims under
 * /root (mode 0700), which a `uid = nginx` vassal picked and whose workers then died with
 * exit 126 in a loop. Needs root, to start vassals as `nobody`.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, freePort, pidIn, procStatus, serving, spawnEmperor, tempDir, type Spawned } from '../helpers/index.js';
import { DEBIAN_PYTHON } from '../helpers/nginx.js';

const skip = process.getuid?.() !== 0 ? 'needs root to run a vassal as nobody' : false;
const APP = join(FIXTURES, 'apps', 'wsgi_app.py');
const NOBODY = 65534;

/** A directory only root may enter, holding a working `python3` (a link to Debian's), like /root/.pyenv/shims. */
function rootOnlyPython(t: TestContext): string {
  const dir = join(tempDir(t, 'emperor-root-python-'), 'shims');
  mkdirSync(dir, { mode: 0o700 });
  symlinkSync(DEBIAN_PYTHON, join(dir, 'python3'));
  return dir;
}

/** `emperor --ini` of a vassal run as nobody by root, in a directory nobody may enter, with `path` as PATH. */
async function asNobody(t: TestContext, app: string, path = '/usr/bin:/bin'): Promise<{ url: string; proc: Spawned }> {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const port = await freePort();
  writeFileSync(join(dir, 'v.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\n${app}\nuid = nobody\ngid = nogroup\n`);
  return { url: `http://127.0.0.1:${port}`, proc: spawnEmperor(t, ['--ini', join(dir, 'v.ini')], { env: { PATH: path } }) };
}

test('uid = nobody: a python3 first on root\'s PATH that nobody cannot run is skipped and named; the workers run', { skip }, async (t) => {
  const shims = rootOnlyPython(t);
  const v = await asNobody(t, `wsgi-file = ${APP}`, `${shims}:/usr/bin:/bin`);
  const body = await serving(`${v.url}/`);
  const worker = pidIn(body);
  assert.match(procStatus(worker, 'Uid') ?? '', new RegExp(`^${NOBODY}\\s`));
  const line = await v.proc.logs.waitFor((l) => /^python interpreter: /.test(l.msg ?? ''));
  assert.equal(line.msg, `python interpreter: ${DEBIAN_PYTHON} (Python ${String(line.python_version)}, from PATH; skipped ${shims}/: uid ${NOBODY} (nobody) cannot search or execute it)`);
  assert.equal(v.proc.logs.find((l) => / died: /.test(l.msg ?? '')).length, 0, v.proc.logs.tail());
});

test('an interpreter nobody cannot run is one error naming it, the user and the fix; no worker is started', { skip }, async (t) => {
  // A venv that only root may use (home), and a pyenv-like shim nobody may execute but
  // which execs a root-only interpreter (exit 126 as nobody).
  const venv = join(tempDir(t, 'emperor-root-venv-'), 'venv');
  mkdirSync(join(venv, 'bin'), { recursive: true, mode: 0o755 });
  symlinkSync(DEBIAN_PYTHON, join(venv, 'bin', 'python3'));
  chmodSync(venv, 0o700);
  const home = await asNobody(t, `wsgi-file = ${APP}\nhome = ${venv}`);
  assert.equal((await home.proc.exited).code, 69);
  const homeErrors = home.proc.logs.find((l) => l.level === 50);
  assert.equal(homeErrors.length, 1, home.proc.logs.tail());
  assert.equal(homeErrors[0]?.code, 'ERR_PYTHON_INTERPRETER');
  assert.equal(homeErrors[0]?.msg, `home ${venv}: no Python interpreter there that uid ${NOBODY} (nobody) can execute (looked for ${venv}/bin/python3 and ${venv}/bin/python); ` +
    'let the vassal\'s user read and run the environment (chmod, chgrp), or fix home');

  const shims = rootOnlyPython(t);
  const bin = tempDir(t, 'emperor-shim-');
  chmodSync(bin, 0o755);
  writeFileSync(join(bin, 'python3'), `#!/bin/sh\nexec ${shims}/python3 "$@"\n`, { mode: 0o755 });
  const shim = await asNobody(t, `wsgi-file = ${APP}`, `${bin}:/usr/bin:/bin`);
  assert.equal((await shim.proc.exited).code, 69);
  const shimErrors = shim.proc.logs.find((l) => l.level === 50);
  assert.equal(shimErrors.length, 1, shim.proc.logs.tail());
  assert.match(shimErrors[0]?.msg ?? '', new RegExp(`^${bin}/python3 \\(from PATH\\) does not run as uid ${NOBODY} \\(nobody\\): exit code 126 \\(.*Permission denied\\); ` +
    'let that user run it \\(a pyenv shim needs its PYENV_ROOT readable\\), or set home to a virtual environment that user can read$'));
  assert.equal(shim.proc.logs.find((l) => /spawned worker/.test(l.msg ?? '')).length, 0, 'no worker was started');
});

test('an app nobody cannot read (a wsgi-file, a module under chdir) is one error before any worker', { skip }, async (t) => {
  const secret = tempDir(t, 'emperor-secret-app-');
  chmodSync(secret, 0o755);
  writeFileSync(join(secret, 'app.py'), 'def application(e, s):\n    s("200 OK", [])\n    return [b"x"]\n', { mode: 0o600 });
  const unreadable = await asNobody(t, `wsgi-file = ${join(secret, 'app.py')}`);
  assert.equal((await unreadable.proc.exited).code, 69);
  const errors = unreadable.proc.logs.find((l) => l.level === 50);
  assert.equal(errors.length, 1, unreadable.proc.logs.tail());
  assert.equal(errors[0]?.msg, `wsgi-file ${join(secret, 'app.py')}: uid ${NOBODY} (nobody) cannot read it, and the workers run as that user: give it access (chmod, chgrp) or change wsgi-file`);

  const closed = tempDir(t, 'emperor-closed-');
  mkdirSync(join(closed, 'pkg'));
  writeFileSync(join(closed, 'pkg', '__init__.py'), '');
  writeFileSync(join(closed, 'pkg', 'app.py'), 'def application(e, s):\n    s("200 OK", [])\n    return [b"x"]\n', { mode: 0o600 });
  chmodSync(closed, 0o755);
  chmodSync(join(closed, 'pkg'), 0o755);
  const module = await asNobody(t, `module = pkg.app:application\nchdir = ${closed}`);
  assert.equal((await module.proc.exited).code, 69);
  const moduleError = module.proc.logs.find((l) => l.level === 50)[0];
  assert.equal(moduleError?.msg, `module pkg.app:application (${join(closed, 'pkg', 'app.py')}): uid ${NOBODY} (nobody) cannot read it, and the workers run as that user: give it access (chmod, chgrp) or change module`);
});
